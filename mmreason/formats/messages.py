"""The role/content `messages` layout of ms-swift and LLaMA-Factory (openai-style tags): `messages` with `<image>` /
`<video>` placeholders, `images`, `videos`. NEP's official SFT data (`video_fp_sft_data`) is this layout."""

from __future__ import annotations

from mmreason.formats.chatlog import reply_fields, single_turn
from mmreason.formats.row import RowContext, record
from mmreason.errors import RecordError

NAME = "messages"
COLUMNS = "messages (role/content), images|videos"


def detect(columns: set[str], opts) -> bool:
    return "messages" in columns


def to_record(row: dict, ctx: RowContext) -> dict:
    msgs = ctx.need(row, "messages")
    if not isinstance(msgs, list) or not all(isinstance(m, dict) and "role" in m for m in msgs):
        raise RecordError(ctx.where, "column 'messages' must be a list of {role, content}")
    system, question, reply = single_turn([(m["role"], m.get("content")) for m in msgs], ctx.where)
    answer, solution = reply_fields(reply)
    return record(ctx, row, NAME, question, answer, solution, ctx.images(row.get(ctx.options.image_key)),
                  ctx.video(row.get(ctx.options.video_key)), metadata={"system_prompt": system} if system else {})
