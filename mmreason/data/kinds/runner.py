"""What a kind's run function works with: the `Runner` (teacher calls, templates, the final check) and
the `Outcome` it returns for one source question.

Every kind runs its k sample chains stage by stage (all chains' stage-1 requests together, then the
survivors' stage-2 requests, ...), so an HTTP teacher keeps k requests in flight and a local teacher batches.
Each sample ends in exactly one outcome, counted in stats.json:

  accepted | over_cap (accepted beyond keep_per_question) | wrong_answer | no_answer (no \\boxed{}) |
  empty | truncated (finish_reason=length) | http_error | timeout | connection_error | malformed_response |
  engine_error | bad_image | verify_timeout | verify_error | too_short | too_long | short_caption | no_pair (reflection: no partner sample) |
  wrong_attempt_used (reflection: the wrong half of a kept pair) | duplicate (synth questions)

Targets always end at a verified answer: the final text is re-extracted and re-verified before it is kept.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from mmreason.data.kinds.registry import RECORD_FIELDS, RecipeKind, kind_of
from mmreason.data.recipe import Recipe
from mmreason.data.teachers import ChatRequest, Reply, Teacher, image_part, text_part
from mmreason.prompts import render
from mmreason.chat import question_text
from mmreason.records import LETTERS, Record
from mmreason.verify import boxed_regions, extract_boxed

Verifier = Callable[[str | None, Record], str]  # -> correct | incorrect | timeout | error



@dataclass
class Target:
    text: str
    sample_index: int
    extra: dict = field(default_factory=dict)  # merged into the output record's metadata


@dataclass
class Outcome:
    targets: list[Target] = field(default_factory=list)
    samples: Counter = field(default_factory=Counter)
    requests: int = 0

    def drop_reason(self) -> str | None:
        if self.targets:
            return None
        return "no_accepted_sample"


def sample_seed(base: int, source_id: str, index: int, stage: str) -> int:
    h = hashlib.sha256(f"{base}|{source_id}|{index}|{stage}".encode()).digest()
    return int.from_bytes(h[:4], "big") & 0x7FFFFFFF


def unbox(text: str, keep_last: bool = False) -> str:
    r"""Replace `\boxed{x}` by `x` (all of them, or all but the last) so the target has one final box."""
    spans = boxed_regions(text)
    if keep_last and spans:
        spans = spans[:-1]
    for start, inner, inner_end, end in reversed(spans):
        text = text[:start] + text[inner:inner_end] + text[end:]
    return text


def fields_of(rec: Record) -> dict:
    f = {
        "question": rec.question,
        "question_with_choices": question_text(rec, suffix=None),
        "answer": rec.gold_text() or "",
        "choices": "\n".join(f"({l}) {c}" for l, c in zip(LETTERS, rec.choices or [])),
        "answer_type": rec.answer_type,
    }
    assert tuple(f) == RECORD_FIELDS
    return f


def classify(reply: Reply) -> str | None:
    """The failure outcome of a reply, or None when it is usable text."""
    if reply.error:
        return reply.error
    if not reply.text or not reply.text.strip():
        return "empty"
    if reply.finish_reason == "length":
        return "truncated"
    return None


class Runner:
    """Runs a recipe's kind for one question. Stateless apart from the teacher, safe across threads."""

    def __init__(self, recipe: "Recipe", teacher: Teacher, verify: Verifier, source_questions: set[str] | None = None,
                 kind: "RecipeKind | None" = None):
        self.r = recipe
        self.kind = kind or kind_of(recipe)
        self.teacher = teacher
        self.verify = verify
        self.source_questions = source_questions or set()

    def run(self, rec: Record) -> Outcome:
        return self.kind.run(self, rec)

    # ------------------------------------------------------------------ templates and requests
    def text(self, prompt: str, rec: Record, **extra) -> str:
        """The recipe's template `prompt` rendered with the record fields and `extra`."""
        return render(self.r.prompts[prompt], **fields_of(rec), **extra)

    def messages(self, rec: Record, prompt: str, with_images: bool = True, **extra) -> list[dict]:
        msgs = []
        if self.r.prompts.get("system"):
            msgs.append({"role": "system", "content": [text_part(self.text("system", rec))]})
        parts = [image_part(p) for p in rec.image_paths()] if with_images else []
        parts.append(text_part(self.text(prompt, rec, **extra)))
        msgs.append({"role": "user", "content": parts})
        return msgs

    def request(self, rec: Record, prompt: str, i: int, stage: str, aux: bool = False, **extra) -> ChatRequest:
        """One request of sample chain i; `aux` uses sampling.aux_temperature (captions, critiques, ...)."""
        return ChatRequest(self.messages(rec, prompt, **extra), seed=self.seed(rec, i, stage),
                           temperature=self.r.sampling.aux_temperature if aux else None)

    def ask(self, out: Outcome, reqs: list[ChatRequest]) -> list[Reply]:
        if not reqs:
            return []
        out.requests += len(reqs)
        return self.teacher.chat(reqs, self.r.sampling)

    def seed(self, rec: Record, i: int, stage: str) -> int:
        return sample_seed(self.r.sampling.seed, rec.id, i, stage)

    def sample(self, out: Outcome, rec: Record, prompt: str, stage: str, **extra) -> list[tuple[int, str | None, str | None]]:
        """k samples of template `prompt`: [(index, text or None, failure outcome or None)]."""
        reqs = [self.request(rec, prompt, i, stage, **extra) for i in range(self.r.sampling.k)]
        return [(i, rp.text, classify(rp)) for i, rp in enumerate(self.ask(out, reqs))]

    # ------------------------------------------------------------------ checking and keeping targets
    def final_check(self, text: str, rec: Record) -> str | None:
        """Outcome for an assembled target: None when it is kept."""
        f = self.r.filters
        if f.require_single_final_box:
            text = unbox(text, keep_last=True)
        if len(text) < f.min_chars:
            return "too_short"
        if len(text) > f.max_chars:
            return "too_long"
        pred = extract_boxed(text)
        if pred is None:
            return "no_answer"
        status = self.verify(pred, rec)
        return {"correct": None, "incorrect": "wrong_answer", "timeout": "verify_timeout"}.get(status, "verify_error")

    def accept(self, out: Outcome, rec: Record, text: str, i: int, extra: dict | None = None) -> None:
        why = self.final_check(text, rec)
        if why:
            out.samples[why] += 1
            return
        if len(out.targets) >= self.r.filters.keep_per_question:
            out.samples["over_cap"] += 1
            return
        if self.r.filters.require_single_final_box:
            text = unbox(text, keep_last=True)
        out.samples["accepted"] += 1
        out.targets.append(Target(text.strip(), i, extra or {}))

    def judged(self, text: str, rec: Record) -> str:
        """correct | wrong | no_answer for one complete reply."""
        pred = extract_boxed(text)
        if pred is None:
            return "no_answer"
        status = self.verify(pred, rec)
        return {"correct": "correct", "incorrect": "wrong"}.get(status, "no_answer")  # unverifiable: not usable
