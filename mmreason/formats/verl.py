"""verl's RL parquet layout (examples/data_preprocess/*.py; the Entropy-Mechanism data): `prompt` (a chat list
whose user turn holds the question, `<image>` placeholders included), `reward_model.ground_truth`, `images`,
`data_source`, `extra_info.index`."""

from __future__ import annotations

from mmreason.formats.chatlog import single_turn
from mmreason.formats.row import RowContext, record
from mmreason.errors import RecordError

NAME = "verl"
COLUMNS = "prompt (chat list), reward_model.ground_truth, images, data_source"


def detect(columns: set[str], opts) -> bool:
    return {"prompt", "reward_model"} <= columns


def to_record(row: dict, ctx: RowContext) -> dict:
    prompt = ctx.need(row, "prompt")
    if not isinstance(prompt, list) or not all(isinstance(m, dict) and "role" in m for m in prompt):
        raise RecordError(ctx.where, "column 'prompt' must be a chat list of {role, content}")
    system, question, _ = single_turn([(m["role"], m.get("content")) for m in prompt], ctx.where)
    reward = ctx.need(row, "reward_model")
    truth = reward.get("ground_truth") if isinstance(reward, dict) else None
    if isinstance(truth, (list, tuple)):
        truth = ", ".join(str(t) for t in truth)
    extra = row.get("extra_info") if isinstance(row.get("extra_info"), dict) else {}
    d = record(ctx, row, NAME, question, None if truth is None else str(truth).strip() or None, None,
               ctx.images(row.get(ctx.options.image_key)), None,
               metadata={k: v for k, v in (("system_prompt", system), ("extra_info", extra)) if v})
    if row.get("data_source"):
        d["source"] = f"{NAME}:{row['data_source']}"
        if "id" not in row and extra.get("index") is not None:
            d["id"] = f"{row['data_source']}-{extra['index']}"
    return d
