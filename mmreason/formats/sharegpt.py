"""LLaMA-Factory's sharegpt layout (data/README.md): `conversations` of {from, value} with from human/gpt (and an
optional `system` column or system turn), `<image>`/`<video>` placeholders, `images`, `videos`."""

from __future__ import annotations

from mmreason.formats.chatlog import reply_fields, single_turn
from mmreason.formats.row import RowContext, record
from mmreason.errors import RecordError

NAME = "sharegpt"
COLUMNS = "conversations (from/value), images|videos"
ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


def detect(columns: set[str], opts) -> bool:
    return "conversations" in columns


def to_record(row: dict, ctx: RowContext) -> dict:
    conv = ctx.need(row, "conversations")
    if not isinstance(conv, list) or not all(isinstance(t, dict) and "from" in t for t in conv):
        raise RecordError(ctx.where, "column 'conversations' must be a list of {from, value}")
    turns = [(ROLES.get(t["from"], t["from"]), t.get("value")) for t in conv]
    if row.get("system"):
        turns.insert(0, ("system", row["system"]))
    system, question, reply = single_turn(turns, ctx.where)
    answer, solution = reply_fields(reply)
    return record(ctx, row, NAME, question, answer, solution, ctx.images(row.get(ctx.options.image_key)),
                  ctx.video(row.get(ctx.options.video_key)), metadata={"system_prompt": system} if system else {})
