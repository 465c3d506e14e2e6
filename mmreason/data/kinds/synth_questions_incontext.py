"""synth_questions_incontext: a new question about the image, written with an existing question and its
answer in context. Output records are unlabeled (answer null)."""

from __future__ import annotations

from mmreason.data.kinds.questions import new_questions
from mmreason.data.kinds.registry import RecipeKind

KIND = RecipeKind(
    name="synth_questions_incontext",
    run=new_questions,
    prompts={"user": ()},
    required=("user",),
    unlabeled=True,
    skip=lambda rec: None if rec.question.strip() else "no_source_question",
    help="new unlabeled questions about the image, with a source question and its answer in context.",
)
