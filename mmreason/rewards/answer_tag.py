r"""`answer_letter`: the MCQ reward of the NEP paper's video GRPO, on `<answer>...</answer>` tags.

mode 'strict' (default, NON-OFFICIAL): the content of the first `<answer>...</answer>` must be the option
letter alone, optionally as "(B)", "B.", "B:" or "B)", optionally followed by the option text
("B. The ball stops."); 1.0 if it is the gold letter, else 0.0 (0.0 without an answer tag).
mode 'official': the EasyR1 fork's `v1_compute_score` bug for bug (sail-sg/Video-Next-Event-Prediction,
`verl/utils/reward_score/v1.py`): the first capital A-D *anywhere* inside the first answer tag counts
(the "B" of "Based on ..."), an answer of more than 10 words without any capital A-D gives 0, no tag
gives 0, and the letter is compared case-insensitively with the gold.
Rows without a gold answer or that are not multiple choice get None (TRL: not applicable).
"""

from __future__ import annotations

import re

from mmreason.records import LETTERS
from mmreason.rewards.columns import column
from mmreason.rewards.registry import register
from mmreason.rewards.verifiable import _safe
from mmreason.verify import completion_text

MODES = ("strict", "official")
_TAG = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL)


def official_letter(text: str) -> str:
    """`extract_thinking_answer_regex` of the EasyR1 fork's v1.py (the same rule as FutureBench's reasoning mode)."""
    m = _TAG.search(text.strip())
    if not m:
        return ""
    ans = m.group(1).strip()
    if len(ans.split()) > 10 and not re.search("[ABCD]", ans):
        return ""
    hit = re.search(r"[ABCD]", ans)
    return hit[0] if hit else ""


def strict_letter(text: str, n_choices: int = 4) -> str | None:
    m = _TAG.search(text.strip())
    if not m:
        return None
    letters = LETTERS[: max(1, n_choices)]
    hit = re.fullmatch(rf"(?:\(([{letters}])\)|([{letters}]))(?:[.:)](?:\s+.*)?)?", m.group(1).strip(), re.DOTALL)
    return (hit.group(1) or hit.group(2)) if hit else None


@register("answer_letter")
@_safe("answer_letter")
def answer_letter(
    prompts=None,
    completions=None,
    completion_ids=None,
    answer=None,
    answer_type=None,
    choices=None,
    *,
    mode: str = "strict",
    log_metric=None,
    **kwargs,
) -> list[float | None]:
    """1.0 if the <answer> tag holds the gold option letter (strict by default; 'official' = the NEP paper's rule)."""
    if mode not in MODES:
        raise ValueError(f"answer_letter mode {mode!r}; choose from {MODES}")
    completions = list(completions or [])
    n = len(completions)
    golds, types, choice_lists = column(answer, n), column(answer_type, n), column(choices, n)
    out: list[float | None] = []
    for i, c in enumerate(completions):
        if golds[i] is None or types[i] != "choice" or not choice_lists[i]:
            out.append(None)
            continue
        text = completion_text(c)
        gold = str(golds[i]).strip()
        if mode == "official":
            out.append(1.0 if official_letter(text).lower() == gold.lower() and gold else 0.0)
        else:
            letter = strict_letter(text, len(choice_lists[i]))
            out.append(1.0 if letter is not None and letter == gold.upper()[:1] else 0.0)
    return out
