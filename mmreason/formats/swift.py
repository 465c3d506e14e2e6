"""ms-swift's query/response layout (`[{"query", "response", "images": [path]}]`), as RL-with-Cold-Start's
SFT/convert_data.py writes Multimodal-Cold-Start for ms-swift. The response is the SFT target verbatim; its last
`\\boxed{}` is the answer."""

from __future__ import annotations

from mmreason.formats.answers import answer_and_target
from mmreason.formats.row import RowContext, record

NAME = "swift"
COLUMNS = "query, response, images"


def detect(columns: set[str], opts) -> bool:
    return {"query", "response"} <= columns


def to_record(row: dict, ctx: RowContext) -> dict:
    response = ctx.text(row, "response")
    answer, _ = answer_and_target(response)
    system = row.get("system")
    return record(ctx, row, NAME, ctx.text(row, "query"), answer if "\\boxed" in response else None, response,
                  ctx.images(row.get(ctx.options.image_key)), ctx.video(row.get(ctx.options.video_key)),
                  metadata={"system_prompt": system} if system else {})
