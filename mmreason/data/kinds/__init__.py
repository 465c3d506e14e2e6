"""Recipe kinds: how a kind turns one source question into SFT targets (or new questions) with a teacher.

One module per kind in this folder, each defining `KIND = RecipeKind(...)` (its templates and placeholders,
required templates, whether it is unlabeled, its run function); `registry.py` finds them. A recipe may
also name a kind outside the package: `kind: path/to/file.py:NAME`. `runner.py` holds what a run
function works with (teacher requests, templates, the verified final check).
"""

from mmreason.data.kinds.questions import jaccard, new_questions, parse_question
from mmreason.data.kinds.registry import KindError, RecipeKind, builtin_kinds, kind_of, kinds_help, resolve_kind
from mmreason.data.kinds.runner import (
    RECORD_FIELDS,
    Outcome,
    Runner,
    Target,
    Verifier,
    classify,
    fields_of,
    sample_seed,
    unbox,
)

__all__ = [
    "KindError", "Outcome", "RECORD_FIELDS", "RecipeKind", "Runner", "Target", "Verifier", "builtin_kinds",
    "classify", "fields_of", "jaccard", "kind_of", "kinds_help", "new_questions", "parse_question",
    "resolve_kind", "sample_seed", "unbox",
]
