"""distilled: rejection sampling. The teacher answers the question k times; a reply is kept when its final
\\boxed{} verifies against the gold answer (at most filters.keep_per_question, the first in sample order)."""

from __future__ import annotations

from mmreason.data.kinds.registry import RecipeKind
from mmreason.data.kinds.runner import Outcome, Runner
from mmreason.records import Record


def run(ctx: Runner, rec: Record) -> Outcome:
    out = Outcome()
    for i, text, fail in ctx.sample(out, rec, "user", "cot"):
        if fail:
            out.samples[fail] += 1
        else:
            ctx.accept(out, rec, text, i)
    return out


KIND = RecipeKind(
    name="distilled",
    run=run,
    prompts={"user": ()},
    required=("user",),
    help="verified teacher chains of thought (rejection sampling).",
)
