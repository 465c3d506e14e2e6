"""caption: describe the image first (`caption`, at sampling.aux_temperature), then reason from the
description (`reason_from_caption`); `target` joins both. Descriptions shorter than
filters.min_caption_chars are dropped (short_caption); their \\boxed{} are unboxed."""

from __future__ import annotations

from mmreason.data.kinds.registry import RecipeKind
from mmreason.data.kinds.runner import Outcome, Runner, classify, unbox
from mmreason.records import Record


def run(ctx: Runner, rec: Record) -> Outcome:
    out = Outcome()
    reqs = [ctx.request(rec, "caption", i, "caption", aux=True) for i in range(ctx.r.sampling.k)]
    captions = []
    for i, rp in enumerate(ctx.ask(out, reqs)):
        fail = classify(rp)
        if not fail and len(rp.text.strip()) < ctx.r.filters.min_caption_chars:
            fail = "short_caption"
        if fail:
            out.samples[fail] += 1
        else:
            captions.append((i, unbox(rp.text).strip()))
    reqs = [ctx.request(rec, "reason_from_caption", i, "reason", caption=c) for i, c in captions]
    for (i, cap), rp in zip(captions, ctx.ask(out, reqs)):
        fail = classify(rp)
        if fail:
            out.samples[fail] += 1
            continue
        ctx.accept(out, rec, ctx.text("target", rec, caption=cap, reasoning=rp.text.strip()), i)
    return out


KIND = RecipeKind(
    name="caption",
    run=run,
    prompts={"caption": (), "reason_from_caption": ("caption",), "target": ("caption", "reasoning")},
    required=("caption", "reason_from_caption", "target"),
    help="describe the image, then reason from the description to the verified answer.",
)
