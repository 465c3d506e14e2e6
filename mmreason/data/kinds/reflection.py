"""reflection: an attempt that goes wrong, notices it, and reaches the verified answer.

reflection_mode assemble: the i-th wrong sample and the i-th correct sample of the same question are joined
by `target` (wrong_solution, transition, correct_solution). reflection_mode prompt: the teacher continues
each wrong sample with the `reflect` template; the continuation must reach the verified answer.
"""

from __future__ import annotations

from mmreason.data.kinds.registry import RecipeKind
from mmreason.data.kinds.runner import Outcome, Runner, classify, unbox
from mmreason.records import Record


def run(ctx: Runner, rec: Record) -> Outcome:
    out = Outcome()
    correct, wrong = [], []
    for i, text, fail in ctx.sample(out, rec, "user", "cot"):
        if fail:
            out.samples[fail] += 1
            continue
        verdict = ctx.judged(text, rec)
        if verdict == "no_answer":
            out.samples["no_answer"] += 1
        else:
            (correct if verdict == "correct" else wrong).append((i, text))
    if ctx.r.reflection_mode == "assemble":
        pairs = list(zip(wrong, correct))
        out.samples["wrong_attempt_used"] += len(pairs)  # the first half of an assembled target
        for (wi, wt), (ci, ct) in pairs:
            text = ctx.text("target", rec, wrong_solution=unbox(wt).strip(), correct_solution=ct.strip(),
                            transition=ctx.r.transition)
            ctx.accept(out, rec, text, ci, {"wrong_sample_index": wi})
        # samples without a partner: a correct chain with no wrong one (or the reverse) is not a reflection
        out.samples["no_pair"] += len(wrong) + len(correct) - 2 * len(pairs)
        return out
    # prompt mode: the teacher continues each wrong attempt with a reflection
    out.samples["no_pair"] += len(correct)  # correct-first chains have nothing to reflect on
    reqs = [ctx.request(rec, "reflect", wi, "reflect", aux=True, wrong_solution=unbox(wt).strip()) for wi, wt in wrong]
    for (wi, wt), rp in zip(wrong, ctx.ask(out, reqs)):
        fail = classify(rp)
        if fail:
            out.samples[fail] += 1
            continue
        text = ctx.text("target", rec, wrong_solution=unbox(wt).strip(), correct_solution=rp.text.strip(),
                        transition=ctx.r.transition)
        ctx.accept(out, rec, text, wi)
    return out


KIND = RecipeKind(
    name="reflection",
    run=run,
    prompts={"user": (), "reflect": ("wrong_solution",), "target": ("wrong_solution", "correct_solution", "transition")},
    required=("user", "target"),
    required_when={"reflect": lambda r: r.reflection_mode == "prompt"},
    help="wrong attempt -> transition -> verified solution (reflection_mode assemble | prompt; "
         "prompts.reflect is required in prompt mode).",
)
