"""EasyR1's layout (hiyouga/EasyR1 verl/utils/dataset.py `RLHFDataset`): a question column (`prompt_key`,
default `problem`) with `<image>`/`<video>` placeholders, an answer column (`answer_key`, `answer`), images
(`image_key`, `images`: bytes in parquet or paths) and videos (`video_key`, `videos`). Released as
WaltonFuture/Multimodal-Cold-Start (where `answer` is the whole chain of thought), WaltonFuture/Multimodal-RL-Data,
and MM-UPT's training data."""

from __future__ import annotations

from mmreason.formats.answers import answer_and_target
from mmreason.formats.row import RowContext, record

NAME = "easyr1"
COLUMNS = "problem, answer, images|videos (prompt_key/answer_key/image_key/video_key)"


def detect(columns: set[str], opts) -> bool:
    return opts.prompt_key in columns and opts.answer_key in columns


def to_record(row: dict, ctx: RowContext) -> dict:
    o = ctx.options
    answer, solution = answer_and_target(row.get(o.answer_key))
    return record(ctx, row, NAME, ctx.text(row, o.prompt_key), answer, solution, ctx.images(row.get(o.image_key)),
                  ctx.video(row.get(o.video_key)))
