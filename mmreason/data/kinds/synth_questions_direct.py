"""synth_questions_direct: a new question from the image alone (source records need no question and no
answer). Output records are unlabeled (answer null)."""

from __future__ import annotations

from mmreason.data.kinds.questions import new_questions
from mmreason.data.kinds.registry import RecipeKind

KIND = RecipeKind(
    name="synth_questions_direct",
    run=new_questions,
    prompts={"user": ()},
    required=("user",),
    unlabeled=True,
    help="new unlabeled questions from the image alone.",
)
