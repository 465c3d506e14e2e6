"""NEP's EasyR1 video GRPO JSON (sail-sg/Video-Next-Event-Prediction EasyR1/verl/utils/dataset_video_v1.py): a
JSON list of {video_path, qa: {Question, Options: {A: ..}, Answer}}. The official code keeps the part of
`video_path` after its first '/' and joins it to the V1-33K `first_part_video` folder: give that folder as
`media_dir` to do the same; without it `video_path` resolves against the data file's folder as it is.

A row becomes the choice record `mmreason nep build --strategy mcq` writes (question, options in letter order,
the answer letter); configs/grpo/qwen2_5_vl_7b_nep.yaml's template renders the official problem text
(`Question:\\n...\\n\\nOptions:\\nA: ...`) from it."""

from __future__ import annotations

from mmreason.formats.row import RowContext, record
from mmreason.errors import RecordError
from mmreason.records import LETTERS

NAME = "nep_video"
COLUMNS = "video_path, qa {Question, Options, Answer}"


def detect(columns: set[str], opts) -> bool:
    return {"video_path", "qa"} <= columns


def to_record(row: dict, ctx: RowContext) -> dict:
    qa = ctx.need(row, "qa")
    if not isinstance(qa, dict) or not {"Question", "Options", "Answer"} <= set(qa) \
            or not isinstance(qa["Options"], dict):
        raise RecordError(ctx.where, "column 'qa' must be {Question, Options: {letter: text}, Answer}")
    options = qa["Options"]
    letters = list(LETTERS[: len(options)])
    if sorted(options) != letters:
        raise RecordError(ctx.where, f"qa.Options keys {sorted(options)} are not the letters {letters}")
    path = ctx.text(row, "video_path")
    if ctx.options.media_dir:
        path = path.split("/", 1)[-1]
    d = record(ctx, row, NAME, str(qa["Question"]), str(qa["Answer"]).strip().upper() or None, None, [],
               ctx.video(path), choices=[str(options[k]) for k in letters], metadata={"strategy": "mcq"})
    d["answer_type"] = "choice"
    return d
