r"""Answer checking, shared by rewards, evaluation and the data builder: `\boxed{}` extraction
(`answers`), completion text (`text`), answer comparison (`answers.match_answer`) and the timed
math-verify process pool (`pool.verify_many`). Stages import these public names only."""

from mmreason.verify.answers import (
    MAX_ANSWER_CHARS,
    boxed_regions,
    boxed_spans,
    decide_answer,
    extract_boxed,
    extract_boxed_all,
    extract_letter,
    final_box,
    match_answer,
    normalize_text,
    to_number,
)
from mmreason.verify.pool import QUICK_MAX_CHARS, Result, VerifyPool, quick_match, verify_many
from mmreason.verify.text import completion_text

__all__ = [
    "MAX_ANSWER_CHARS",
    "QUICK_MAX_CHARS",
    "Result",
    "VerifyPool",
    "boxed_regions",
    "boxed_spans",
    "completion_text",
    "decide_answer",
    "extract_boxed",
    "extract_boxed_all",
    "extract_letter",
    "final_box",
    "match_answer",
    "normalize_text",
    "quick_match",
    "to_number",
    "verify_many",
]
