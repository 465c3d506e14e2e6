"""self_critic: draft (`user`) -> critique (`critique`) -> revision (`revise`), joined by `target`; kept
only when the revision verifies. metadata.draft_verdict records whether the draft was right."""

from __future__ import annotations

from mmreason.data.kinds.registry import RecipeKind
from mmreason.data.kinds.runner import Outcome, Runner, classify, unbox
from mmreason.records import Record


def run(ctx: Runner, rec: Record) -> Outcome:
    out = Outcome()
    drafts = []
    for i, text, fail in ctx.sample(out, rec, "user", "draft"):
        if fail:
            out.samples[fail] += 1
        else:
            drafts.append((i, text.strip()))
    reqs = [ctx.request(rec, "critique", i, "critique", aux=True, draft=d) for i, d in drafts]
    critiqued = []
    for (i, d), rp in zip(drafts, ctx.ask(out, reqs)):
        fail = classify(rp)
        if fail:
            out.samples[fail] += 1
        else:
            critiqued.append((i, d, rp.text.strip()))
    reqs = [ctx.request(rec, "revise", i, "revise", aux=True, draft=d, critique=c) for i, d, c in critiqued]
    for (i, d, c), rp in zip(critiqued, ctx.ask(out, reqs)):
        fail = classify(rp)
        if fail:
            out.samples[fail] += 1
            continue
        text = ctx.text("target", rec, draft=unbox(d), critique=unbox(c), revision=rp.text.strip())
        ctx.accept(out, rec, text, i, {"draft_verdict": ctx.judged(d, rec)})
    return out


KIND = RecipeKind(
    name="self_critic",
    run=run,
    prompts={"user": (), "critique": ("draft",), "revise": ("draft", "critique"),
             "target": ("draft", "critique", "revision")},
    required=("user", "critique", "revise", "target"),
    help="draft -> critique -> verified revision.",
)
