"""NEP's EasyR1 video GRPO JSON (sail-sg/Video-Next-Event-Prediction EasyR1/verl/utils/dataset_video_v1.py): a
JSON list of {video_path, qa: {Question, Options: {A: ..}, Answer}}. The official code keeps the part of
`video_path` after its first '/' and joins it to the V1-33K `first_part_video` folder: give that folder as
`media_dir` to do the same; without it `video_path` resolves against the data file's folder as it is. The question
is the official problem text (`Question:\\n...\\n\\nOptions:\\nA: ...`), the answer the option letter."""

from __future__ import annotations

from mmreason.formats.row import RowContext, record
from mmreason.records import RecordError

NAME = "nep_video"
COLUMNS = "video_path, qa {Question, Options, Answer}"


def detect(columns: set[str], opts) -> bool:
    return {"video_path", "qa"} <= columns


def official_problem(qa: dict) -> str:
    options = "\n".join(f"{key}: {value}" for key, value in qa["Options"].items())
    return f"Question:\n{qa['Question']}\n\nOptions:\n{options}"


def to_record(row: dict, ctx: RowContext) -> dict:
    qa = ctx.need(row, "qa")
    if not isinstance(qa, dict) or not {"Question", "Options", "Answer"} <= set(qa) \
            or not isinstance(qa["Options"], dict):
        raise RecordError(ctx.where, "column 'qa' must be {Question, Options: {letter: text}, Answer}")
    path = ctx.text(row, "video_path")
    if ctx.options.media_dir:
        path = path.split("/", 1)[-1]
    video = ctx.video(path)
    return record(ctx, row, NAME, official_problem(qa), str(qa["Answer"]).strip() or None, None, [], video,
                  metadata={"qa": qa})
