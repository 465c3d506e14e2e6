r"""`answer_letter`: the MCQ reward of the NEP paper's video GRPO, on `<answer>...</answer>` tags, or on
FutureBench's bare-letter answers.

mode 'strict' (default, NON-OFFICIAL): the content of the first `<answer>...</answer>` must be the option
letter alone, optionally as "(B)", "B.", "B:" or "B)", optionally followed by the option text
("B. The ball stops."); 1.0 if it is the gold letter, else 0.0 (0.0 without an answer tag).
mode 'official': the EasyR1 fork's `v1_compute_score` bug for bug (sail-sg/Video-Next-Event-Prediction,
`verl/utils/reward_score/v1.py`): the first capital A-D *anywhere* inside the first answer tag counts
(the "B" of "Based on ..."), an answer of more than 10 words without any capital A-D gives 0, no tag
gives 0, and the letter is compared case-insensitively with the gold.
mode 'futurebench': the completion is read exactly as `eval run --benchmark futurebench` (mode official) reads
a response — FutureBench's own direct-answer extraction, quirks included (first capital A-D after its prefix
removal, no tags) — and 1.0 iff that letter equals the gold letter (upper-cased), as the benchmark scores it.
For a model that answers FutureBench's prompt with the bare letter (`make nep-demo`'s SFT).
The extraction rules are `mmreason.verify.letters` (shared with the FutureBench plugin).
Rows without a gold answer or that are not multiple choice get None (TRL: not applicable).
"""

from __future__ import annotations

from mmreason.rewards.columns import column
from mmreason.rewards.registry import never_raises, register
from mmreason.verify import completion_text
from mmreason.verify.letters import answer_tag_letter, futurebench_letter, strict_tag_letter

MODES = ("strict", "official", "futurebench")


@register("answer_letter")
@never_raises("answer_letter")
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
    """1.0 if the completion holds the gold option letter: in <answer> tags (strict by default; 'official' = the
    NEP paper's rule), or as FutureBench's official extraction reads it ('futurebench')."""
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
            out.append(1.0 if answer_tag_letter(text).lower() == gold.lower() and gold else 0.0)
        elif mode == "futurebench":
            out.append(1.0 if futurebench_letter(text) == str(golds[i]).upper() and gold else 0.0)
        else:
            letter = strict_tag_letter(text, len(choice_lists[i]))
            out.append(1.0 if letter is not None and letter == gold.upper()[:1] else 0.0)
    return out
