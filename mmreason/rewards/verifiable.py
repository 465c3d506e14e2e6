r"""Rewards checked against the gold answer: `accuracy`, `format`, `mcq_letter`.

Several boxes: the answer is the LAST complete `\boxed{}` (as in `mmreason.verify.answers.extract_boxed`), but
`accuracy` and `mcq_letter` by default (`single_box=True`) give 0 to a completion with more than one
box. Seen here: with "last box matches" as the reward a policy learned to repeat
"\boxed{red} red. \boxed{red} ..." up to the length cap; requiring exactly one box removes that.
Set `single_box: false` to score the last box regardless.

Rows without a gold answer (`answer` None) get None from `accuracy`/`mcq_letter` — TRL's
"not applicable" (NaN, ignored in its means); `mcq_letter` is also None on non-choice rows.
No reward raises: an unexpected error gives 0.0 for the batch, logged and counted.
"""

from __future__ import annotations

import logging
import re
from typing import Literal

from mmreason.rewards.columns import column, emit_metric
from mmreason.rewards.official_math import official_accuracy
from mmreason.rewards.registry import never_raises, register
from mmreason.verify import boxed_spans, completion_text, extract_letter, final_box, verify_many

logger = logging.getLogger("mmreason.rewards")


@register("accuracy")
@never_raises("accuracy")
def accuracy(
    prompts=None,
    completions=None,
    completion_ids=None,
    answer=None,
    answer_type=None,
    choices=None,
    precision=None,
    *,
    single_box: bool = True,
    mode: Literal["verify", "official"] = "verify",
    timeout: float | None = None,
    log_metric=None,
    **kwargs,
) -> list[float | None]:
    r"""1.0 if the last \boxed{} matches the gold answer (math-verify in the timed pool), else 0.0.

    mode "official": RL-with-Cold-Start's GRPO/examples/score_function/math.py bug for bug (mathruler's
    extract_boxed_content + grade_answer, `mmreason.rewards.official_math`); single_box does not apply."""
    completions = list(completions or [])
    n = len(completions)
    if mode not in ("verify", "official"):
        raise ValueError(f"accuracy: mode must be 'verify' or 'official', got {mode!r}")
    golds, types = column(answer, n), column(answer_type, n)
    if mode == "official":
        return [None if g is None else official_accuracy(completion_text(c) or "", str(g))
                for c, g in zip(completions, golds)]
    choice_lists, precisions = column(choices, n), column(precision, n)
    rewards: list[float | None] = [0.0] * n
    items, where = [], []
    multi = no_box = 0
    for i, c in enumerate(completions):
        if golds[i] is None:
            rewards[i] = None
            continue
        spans = boxed_spans(completion_text(c))
        if not spans:
            no_box += 1
            continue
        if single_box and len(spans) > 1:
            multi += 1
            continue
        items.append((final_box(spans)[2], str(golds[i]), types[i] or "text", choice_lists[i], precisions[i]))
        where.append(i)
    results = verify_many(items, timeout=timeout) if items else []
    timeouts = errors = 0
    for i, r in zip(where, results):
        rewards[i] = 1.0 if r.correct else 0.0
        timeouts += r.status == "timeout"
        errors += r.status == "error"
    if timeouts or errors:
        logger.warning("accuracy: %d answer check(s) timed out and %d failed in this batch of %d (scored 0)",
                       timeouts, errors, n)
    emit_metric(log_metric, "accuracy/verify_timeouts", timeouts)
    emit_metric(log_metric, "accuracy/verify_errors", errors)
    if n:
        emit_metric(log_metric, "accuracy/multi_box_frac", multi / n)
        emit_metric(log_metric, "accuracy/no_box_frac", no_box / n)
    return rewards


_TAIL_OK = re.compile(r"[\s$.)\]\\]*")


@register("format")
@never_raises("format")
def format_reward(
    prompts=None,
    completions=None,
    *,
    scale: float = 1.0,
    min_reasoning_chars: int = 1,
    log_metric=None,
    **kwargs,
) -> list[float]:
    r"""`scale` for exactly one \boxed{} that ends the text, after >= min_reasoning_chars of reasoning.

    Give it a small weight with TRL's `reward_weights` (the configs use 0.1 next to accuracy's 1.0).

    "Ends the text": only whitespace, `$`, `.`, `)`, `]` or `\` may follow the box (so `\boxed{3}$.` and
    `\[\boxed{3}\]` pass). Reasoning = the non-space characters before the box. Else 0.0.
    """
    out = []
    for c in completions or []:
        text = completion_text(c)
        spans = boxed_spans(text)
        ok = (
            len(spans) == 1
            and bool(spans[0][2])
            and _TAIL_OK.fullmatch(text[spans[0][1] :]) is not None
            and len("".join(text[: spans[0][0]].split())) >= min_reasoning_chars
        )
        out.append(float(scale) if ok else 0.0)
    return out


@register("mcq_letter")
@never_raises("mcq_letter")
def mcq_letter(
    prompts=None,
    completions=None,
    completion_ids=None,
    answer=None,
    answer_type=None,
    choices=None,
    *,
    single_box: bool = True,
    log_metric=None,
    **kwargs,
) -> list[float | None]:
    r"""1.0 if the last \boxed{} holds the gold option LETTER ('B', '(B)', 'B. text'); None on non-choice rows."""
    completions = list(completions or [])
    n = len(completions)
    golds, types, choice_lists = column(answer, n), column(answer_type, n), column(choices, n)
    out: list[float | None] = []
    for i, c in enumerate(completions):
        opts = choice_lists[i]
        if golds[i] is None or types[i] != "choice" or not opts:
            out.append(None)
            continue
        spans = boxed_spans(completion_text(c))
        if not spans or (single_box and len(spans) > 1):
            out.append(0.0)
            continue
        letter = extract_letter(final_box(spans)[2], len(opts))
        out.append(1.0 if letter is not None and letter == str(golds[i]).strip().upper()[:1] else 0.0)
    return out
