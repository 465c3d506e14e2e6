r"""Option-letter extraction from model text, shared by the FutureBench plugin (`mmreason.eval.futurebench`) and the
`answer_letter` reward (`mmreason.rewards.answer_tag`): one place for each rule, so a GRPO reward and the eval that
judges the trained model read a completion the same way.

- `futurebench_letter`: FutureBench's direct-answer rule (lmms-eval `extract_characters_regex`), bug for bug:
  the prefixes are removed with str.replace *anywhere*, case-sensitively, in order; two missing commas in the
  official list join "The best option is" + "The correct option is" and "Best answer:" + "Best option:" into
  single strings (so those four are never removed); then the first capital A-D *anywhere* counts (the "B" of
  "Based"); a response of more than 10 words without any A-D gives "".
- `answer_tag_letter`: the reasoning rule of FutureBench (`extract_thinking_answer_regex`) and of the NEP paper's
  EasyR1 reward (`v1_compute_score`): the first capital A-D inside the first `<answer>...</answer>`; "" without
  a tag or for an answer of more than 10 words without any A-D.
- `strict_tag_letter` (NON-OFFICIAL): the content of the first `<answer>` tag must be the letter alone, optionally
  "(B)", "B.", "B:" or "B)", optionally followed by the option text; None otherwise.
- `corrected_letter` (NON-OFFICIAL FutureBench): prefixes removed only at the start, case-insensitively, commas
  fixed; inside `<answer>` tags when present; the letter must stand alone; a lone lower-case letter counts; a
  response equal to one option's text counts as that option.
"""

from __future__ import annotations

import re
from typing import Any

from mmreason.records import LETTERS

# The official list as Python evaluates it (adjacent string literals concatenate).
OFFICIAL_PREFIXES = (
    "The best answer is",
    "The correct answer is",
    "The answer is",
    "The answer",
    "The best option is" "The correct option is",
    "Best answer:" "Best option:",
)
CORRECTED_PREFIXES = (
    "The best answer is",
    "The correct answer is",
    "The answer is",
    "The answer",
    "The best option is",
    "The correct option is",
    "Best answer:",
    "Best option:",
    "Answer:",
)
_TAG = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL)
_STANDALONE = re.compile(r"(?<![A-Za-z0-9])\(?([ABCD])\)?(?![A-Za-z0-9])")
_MARKED = re.compile(r"(?<![A-Za-z0-9])(?:\(([ABCD])\)|([ABCD])[.):](?![A-Za-z0-9]))")


def _first_abcd(s: str) -> str:
    if len(s.split()) > 10 and not re.search("[ABCD]", s):
        return ""
    m = re.search(r"[ABCD]", s)
    return m[0] if m else ""


def futurebench_letter(response: Any) -> str:
    """FutureBench's official direct-answer extraction (`extract_characters_regex`), bug for bug."""
    if not isinstance(response, str):
        return ""
    s = response.strip()
    for prefix in OFFICIAL_PREFIXES:
        s = s.replace(prefix, "")
    return _first_abcd(s)


def answer_tag_letter(response: Any) -> str:
    """`extract_thinking_answer_regex` (FutureBench reasoning mode; the NEP paper's GRPO reward), bug for bug."""
    if not isinstance(response, str):
        return ""
    m = _TAG.search(response.strip())
    return _first_abcd(m.group(1).strip()) if m else ""


def strict_tag_letter(text: str, n_choices: int = 4) -> str | None:
    """NON-OFFICIAL: the letter standing alone in the first `<answer>` tag (see the module docstring)."""
    m = _TAG.search(text.strip())
    if not m:
        return None
    letters = LETTERS[: max(1, n_choices)]
    hit = re.fullmatch(rf"(?:\(([{letters}])\)|([{letters}]))(?:[.:)](?:\s+.*)?)?", m.group(1).strip(), re.DOTALL)
    return (hit.group(1) or hit.group(2)) if hit else None


def corrected_letter(response: Any, options: dict[str, str] | None = None) -> str:
    """NON-OFFICIAL FutureBench extraction (see the module docstring)."""
    if not isinstance(response, str):
        return ""
    s = response.strip()
    m = _TAG.search(s)
    if m:
        s = m.group(1).strip()
    changed = True
    while changed:
        changed = False
        for prefix in CORRECTED_PREFIXES:
            if s.lower().startswith(prefix.lower()):
                s = s[len(prefix):].lstrip(" :\t\n")
                changed = True
    if re.fullmatch(r"\(?([ABCDabcd])\)?[.:)]?", s):
        return re.sub(r"[^A-Da-d]", "", s).upper()
    # a letter with an explicit marker ("(B)", "B.", "B)", "B:") first, then any standalone capital A-D
    m = _MARKED.search(s) or _STANDALONE.search(s)
    if m:
        return next(g for g in m.groups() if g)
    if options:
        norm = s.strip().rstrip(".").strip().lower()
        for letter, text in options.items():
            if norm and norm == str(text).strip().rstrip(".").strip().lower():
                return letter
    return ""
