"""How each recipe kind turns one source question into SFT targets (or new questions) with a teacher.

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
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from mmreason.verify import boxed_regions, extract_boxed, extract_boxed_all
from mmreason.data.decontam import ngrams, normalise
from mmreason.data.recipe import Recipe, render
from mmreason.data.teachers import ChatRequest, Reply, Teacher, image_part, text_part
from mmreason.records import LETTERS, Record, question_text

Verifier = Callable[[str | None, Record], str]  # -> correct | incorrect | timeout | error


@dataclass
class Target:
    text: str
    sample_index: int
    extra: dict = field(default_factory=dict)


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
    return {
        "question": rec.question,
        "question_with_choices": question_text(rec, suffix=None),
        "answer": rec.gold_text() or "",
        "choices": "\n".join(f"({l}) {c}" for l, c in zip(LETTERS, rec.choices or [])),
        "answer_type": rec.answer_type,
    }


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
    """Runs a recipe kind for one question. Stateless apart from the teacher, safe across threads."""

    def __init__(self, recipe: Recipe, teacher: Teacher, verify: Verifier, source_questions: set[str] | None = None):
        self.r = recipe
        self.teacher = teacher
        self.verify = verify
        self.source_questions = source_questions or set()

    # ------------------------------------------------------------------ helpers
    def messages(self, rec: Record, template: str, with_images: bool = True, **extra) -> list[dict]:
        f = fields_of(rec) | extra
        msgs = []
        if self.r.prompts.get("system"):
            msgs.append({"role": "system", "content": [text_part(render(self.r.prompts["system"], **f))]})
        parts = [image_part(p) for p in rec.image_paths()] if with_images else []
        parts.append(text_part(render(template, **f)))
        msgs.append({"role": "user", "content": parts})
        return msgs

    def ask(self, out: Outcome, reqs: list[ChatRequest]) -> list[Reply]:
        if not reqs:
            return []
        out.requests += len(reqs)
        return self.teacher.chat(reqs, self.r.sampling)

    def seed(self, rec: Record, i: int, stage: str) -> int:
        return sample_seed(self.r.sampling.seed, rec.id, i, stage)

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

    def sample(self, out: Outcome, rec: Record, template: str, stage: str, **extra) -> list[tuple[int, str | None, str | None]]:
        """k samples of `template`: [(index, text or None, failure outcome or None)]."""
        reqs = [ChatRequest(self.messages(rec, template, **extra), seed=self.seed(rec, i, stage)) for i in range(self.r.sampling.k)]
        return [(i, rp.text, classify(rp)) for i, rp in enumerate(self.ask(out, reqs))]

    def judged(self, text: str, rec: Record) -> str:
        """correct | wrong | no_answer for one complete reply."""
        pred = extract_boxed(text)
        if pred is None:
            return "no_answer"
        status = self.verify(pred, rec)
        return {"correct": "correct", "incorrect": "wrong"}.get(status, "no_answer")  # unverifiable: not usable

    # ------------------------------------------------------------------ kinds
    def run(self, rec: Record) -> Outcome:
        return getattr(self, f"run_{self.r.kind}")(rec)

    def run_distilled(self, rec: Record) -> Outcome:
        out = Outcome()
        for i, text, fail in self.sample(out, rec, self.r.prompts["user"], "cot"):
            if fail:
                out.samples[fail] += 1
            else:
                self.accept(out, rec, text, i)
        return out

    def run_reflection(self, rec: Record) -> Outcome:
        out = Outcome()
        correct, wrong = [], []
        for i, text, fail in self.sample(out, rec, self.r.prompts["user"], "cot"):
            if fail:
                out.samples[fail] += 1
                continue
            verdict = self.judged(text, rec)
            if verdict == "no_answer":
                out.samples["no_answer"] += 1
            else:
                (correct if verdict == "correct" else wrong).append((i, text))
        tmpl = self.r.prompts["target"]
        if self.r.reflection_mode == "assemble":
            pairs = list(zip(wrong, correct))
            out.samples["wrong_attempt_used"] += len(pairs)  # the first half of an assembled target
            for (wi, wt), (ci, ct) in pairs:
                text = render(tmpl, **fields_of(rec), wrong_solution=unbox(wt).strip(), correct_solution=ct.strip(),
                              transition=self.r.transition)
                self.accept(out, rec, text, ci, {"wrong_sample_index": wi})
            # samples without a partner: a correct chain with no wrong one (or the reverse) is not a reflection
            out.samples["no_pair"] += len(wrong) + len(correct) - 2 * len(pairs)
            return out
        # prompt mode: the teacher continues each wrong attempt with a reflection
        out.samples["no_pair"] += len(correct)  # correct-first chains have nothing to reflect on
        reqs = [
            ChatRequest(self.messages(rec, self.r.prompts["reflect"], wrong_solution=unbox(wt).strip()),
                        seed=self.seed(rec, wi, "reflect"), temperature=self.r.sampling.aux_temperature)
            for wi, wt in wrong
        ]
        for (wi, wt), rp in zip(wrong, self.ask(out, reqs)):
            fail = classify(rp)
            if fail:
                out.samples[fail] += 1
                continue
            text = render(tmpl, **fields_of(rec), wrong_solution=unbox(wt).strip(), correct_solution=rp.text.strip(),
                          transition=self.r.transition)
            self.accept(out, rec, text, wi)
        return out

    def run_caption(self, rec: Record) -> Outcome:
        out = Outcome()
        k, aux = self.r.sampling.k, self.r.sampling.aux_temperature
        reqs = [ChatRequest(self.messages(rec, self.r.prompts["caption"]), seed=self.seed(rec, i, "caption"), temperature=aux)
                for i in range(k)]
        captions = []
        for i, rp in enumerate(self.ask(out, reqs)):
            fail = classify(rp)
            if not fail and len(rp.text.strip()) < self.r.filters.min_caption_chars:
                fail = "short_caption"
            if fail:
                out.samples[fail] += 1
            else:
                captions.append((i, unbox(rp.text).strip()))
        reqs = [ChatRequest(self.messages(rec, self.r.prompts["reason_from_caption"], caption=c), seed=self.seed(rec, i, "reason"))
                for i, c in captions]
        for (i, cap), rp in zip(captions, self.ask(out, reqs)):
            fail = classify(rp)
            if fail:
                out.samples[fail] += 1
                continue
            text = render(self.r.prompts["target"], **fields_of(rec), caption=cap, reasoning=rp.text.strip())
            self.accept(out, rec, text, i)
        return out

    def run_self_critic(self, rec: Record) -> Outcome:
        out = Outcome()
        aux = self.r.sampling.aux_temperature
        drafts = []
        for i, text, fail in self.sample(out, rec, self.r.prompts["user"], "draft"):
            if fail:
                out.samples[fail] += 1
            else:
                drafts.append((i, text.strip()))
        reqs = [ChatRequest(self.messages(rec, self.r.prompts["critique"], draft=d), seed=self.seed(rec, i, "critique"),
                            temperature=aux) for i, d in drafts]
        critiqued = []
        for (i, d), rp in zip(drafts, self.ask(out, reqs)):
            fail = classify(rp)
            if fail:
                out.samples[fail] += 1
            else:
                critiqued.append((i, d, rp.text.strip()))
        reqs = [ChatRequest(self.messages(rec, self.r.prompts["revise"], draft=d, critique=c), seed=self.seed(rec, i, "revise"),
                            temperature=aux) for i, d, c in critiqued]
        for (i, d, c), rp in zip(critiqued, self.ask(out, reqs)):
            fail = classify(rp)
            if fail:
                out.samples[fail] += 1
                continue
            text = render(self.r.prompts["target"], **fields_of(rec), draft=unbox(d), critique=unbox(c),
                          revision=rp.text.strip())
            self.accept(out, rec, text, i, {"draft_verdict": self.judged(d, rec)})
        return out

    # ------------------------------------------------------------------ new questions (unlabeled)
    def run_synth_questions_incontext(self, rec: Record) -> Outcome:
        return self._new_questions(rec)

    def run_synth_questions_direct(self, rec: Record) -> Outcome:
        return self._new_questions(rec)

    def _new_questions(self, rec: Record) -> Outcome:
        out = Outcome()
        f = self.r.filters
        seen = [ngrams(normalise(rec.question), f.dedupe_ngram)] if rec.question.strip() else []
        for i, text, fail in self.sample(out, rec, self.r.prompts["user"], "question"):
            if fail:
                out.samples[fail] += 1
                continue
            q = parse_question(text)
            if len(q) < f.min_chars:
                out.samples["too_short"] += 1
                continue
            if len(q) > f.max_chars:
                out.samples["too_long"] += 1
                continue
            grams = ngrams(normalise(q), f.dedupe_ngram) or {" ".join(normalise(q))}
            if " ".join(normalise(q)) in self.source_questions or any(jaccard(grams, s) >= f.dedupe_threshold for s in seen):
                out.samples["duplicate"] += 1
                continue
            if len(out.targets) >= f.keep_per_question:
                out.samples["over_cap"] += 1
                continue
            seen.append(grams)
            out.samples["accepted"] += 1
            out.targets.append(Target(q, i))
        return out


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


_LABEL = re.compile(r"^\s*(?:\*\*)?(?:new\s+)?question\s*(?:\*\*)?\s*[:：]\s*", re.I)


def parse_question(text: str) -> str:
    """The question in a teacher reply: text after a 'Question:' label if any, first paragraph, unquoted."""
    t = text.strip()
    m = re.search(r"(?im)^\s*(?:\*\*)?(?:new\s+)?question\s*(?:\*\*)?\s*[:：]", t)
    if m:
        t = t[m.start():]
    t = _LABEL.sub("", t).strip()
    t = t.split("\n\n")[0].strip().strip('"“”').strip()
    return t


def boxes(text: str) -> int:
    return len(extract_boxed_all(text))
