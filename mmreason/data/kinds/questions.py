"""New questions about a source image (the unlabeled kinds): parse the teacher's reply, drop duplicates."""

from __future__ import annotations

import re

from mmreason.data.decontam import ngrams, normalise
from mmreason.data.kinds.runner import Outcome, Runner, Target
from mmreason.records import Record


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


def new_questions(ctx: Runner, rec: Record) -> Outcome:
    """k teacher questions; a repeat of any source question, or one too close (n-gram Jaccard) to the
    source question of this image or an earlier kept one, is a duplicate."""
    out = Outcome()
    f = ctx.r.filters
    seen = [ngrams(normalise(rec.question), f.dedupe_ngram)] if rec.question.strip() else []
    for i, text, fail in ctx.sample(out, rec, "user", "question"):
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
        if " ".join(normalise(q)) in ctx.source_questions or any(jaccard(grams, s) >= f.dedupe_threshold for s in seen):
            out.samples["duplicate"] += 1
            continue
        if len(out.targets) >= f.keep_per_question:
            out.samples["over_cap"] += 1
            continue
        seen.append(grams)
        out.samples["accepted"] += 1
        out.targets.append(Target(q, i))
    return out
