"""Fault injection (c): reward and scorer fuzzing. Arbitrary unicode / LaTeX completions never raise, finish within
the per-call timeout plus a margin, and return a value in the documented range.

With `hypothesis` importable the properties run under it; otherwise a seeded generator of the same kind of strings
drives them (MMREASON_FUZZ_EXAMPLES sets how many)."""

from __future__ import annotations

import inspect
import os
import random
import time

import pytest

try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    HAVE_HYPOTHESIS = True
except ImportError:  # not in the pinned venv yet: the seeded generator below
    HAVE_HYPOTHESIS = False

EXAMPLES = int(os.environ.get("MMREASON_FUZZ_EXAMPLES", "200"))
SEED = 16
CHECK_TIMEOUT = 2.0  # seconds per math-verify check
MARGIN = 5.0  # process pool hand-off, worker restart after a kill
PURE_LIMIT = 1.0  # seconds for one pure-Python extraction of a few-KB string (the regexes are linear)

PIECES = ["\\boxed{", "}", "{", "\\frac{", "\\dfrac", "\\sqrt{", "\\sqrt[3]{", "^{", "_{", "^", "9", "1", "0", ".",
          ",", "-", "+", "x", "=", "$", "$$", "\\$", "\\text{", "\\textbf{", "\\mathrm{", "\\left(", "\\right)", "\\pi",
          "\\infty", "Answer:", "Answer", "A", "B", "(C)", "D.", "<", ">", "\\\\", "\\", "%", "\\%", "e", "E", "1e308",
          "\u2028", "\x00", "\ufeff", "𝟙", "½", "٣", "\u202e", " ", "\n", "\t", "9^{9^{9^{9}}}", "1" * 60, "(" * 30,
          "\\begin{pmatrix}", "\\end{pmatrix}", "&", "\\cdot", "\\times", "[", "]", "(", ")", "\\{", "\\}", "∞", "√",
          "≤", "°", "\\circ", "\\%", "\\boxed{}", "\\boxed{\\boxed{", "\\fbox{", "</think>", "<answer>", "NaN", "-0",
          "0x1F", "1,000,000", "3/4", "2\\sqrt{2}", "\\{1,2\\}", "(1, 2]", "\\mathbb{R}", "i", "j", "\\emptyset"]
GOLDS = [("1", "integer", None, None), ("0.75", "float", None, 2), ("3/4", "text", None, None),
         ("B", "choice", ["1", "2", "3"], None), ("\\frac{1}{2}", "text", None, None), ("[1, 2]", "list", None, None),
         ("red", "text", None, None), ("-3", "integer", None, None), ("1000000", "integer", None, None)]


def _char(rng: random.Random) -> str:
    while True:
        c = rng.choice([rng.randint(0x20, 0x7E), rng.randint(0xA0, 0x2FFF), rng.randint(0x1D400, 0x1F64F),
                        rng.randint(0, 0x10FFFF)])
        if not 0xD800 <= c <= 0xDFFF:  # lone surrogates cannot come out of a tokenizer's UTF-8 decode
            return chr(c)


def random_text(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(0, 40)):
        parts.append(rng.choice(PIECES) if rng.random() < 0.7 else "".join(_char(rng) for _ in range(rng.randint(1, 4))))
    text = "".join(parts)
    if rng.random() < 0.05:
        text = text * rng.randint(10, 60)  # a few-KB completion
    return text


if HAVE_HYPOTHESIS:
    TEXT = st.one_of(st.text(), st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=4)), max_size=40)
                     .map("".join))


def fuzz(prop):
    """Run `prop(texts, golds)` on batches of 1-6 texts (with as many gold rows): under hypothesis when it is
    installed, else on EXAMPLES seeded random batches. The number of texts tried goes to the faults table."""
    tried = [0]

    def counted(texts, golds):
        tried[0] += len(texts)
        prop(texts, golds)

    if HAVE_HYPOTHESIS:
        strat = st.lists(st.tuples(TEXT, st.sampled_from(GOLDS)), min_size=1, max_size=6)
        wrapped = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))(
            given(batch=strat)(lambda batch: counted([t for t, _ in batch], [g for _, g in batch])))
    else:
        def wrapped():
            rng = random.Random(SEED)
            for _ in range(EXAMPLES):
                n = rng.randint(1, 6)
                counted([random_text(rng) for _ in range(n)], [rng.choice(GOLDS) for _ in range(n)])

    def test(fault_log):
        wrapped()
        fault_log.record("fuzz", prop.__name__.removeprefix("test_"), "ok", n=tried[0],
                         engine="hypothesis" if HAVE_HYPOTHESIS else "seeded")

    test.__name__ = prop.__name__
    test.__doc__ = prop.__doc__
    return test


def _timed(fn, *a, **kw):
    t0 = time.monotonic()
    out = fn(*a, **kw)
    return out, time.monotonic() - t0


def _columns(golds):
    return dict(answer=[g[0] for g in golds], answer_type=[g[1] for g in golds], choices=[g[2] for g in golds],
                precision=[g[3] for g in golds])


def _conv(texts):
    return [[{"role": "assistant", "content": t}] for t in texts]


@pytest.fixture(scope="module", autouse=True)
def warm_pool():
    from mmreason.verify import verify_many

    verify_many([("1", "1", "text", None, None)])  # start the workers (imports math-verify) before timing


@fuzz
def test_accuracy_reward(texts, golds):
    from mmreason.rewards.verifiable import accuracy

    raw = inspect.unwrap(accuracy)  # without the safety net that turns a raise into zeros
    out, dt = _timed(raw, None, _conv(texts), None, timeout=CHECK_TIMEOUT, **_columns(golds))
    assert len(out) == len(texts) and all(r in (0.0, 1.0) for r in out), out
    assert dt <= CHECK_TIMEOUT * len(texts) + MARGIN, dt


@fuzz
def test_format_and_mcq_rewards(texts, golds):
    from mmreason.rewards.verifiable import format_reward
    from mmreason.rewards.verifiable import mcq_letter

    out, dt = _timed(inspect.unwrap(format_reward), None, _conv(texts), scale=0.5)
    assert all(r in (0.0, 0.5) for r in out) and len(out) == len(texts) and dt < PURE_LIMIT * len(texts)
    out = inspect.unwrap(mcq_letter)(None, texts, None, **{k: v for k, v in _columns(golds).items() if k != "precision"})
    assert all(r in (0.0, 1.0, None) for r in out) and len(out) == len(texts)
    assert [r is None for r in out] == [g[1] != "choice" for g in golds]


@fuzz
def test_majority_vote_reward(texts, golds):
    from mmreason.rewards.vote import majority_vote

    out, dt = _timed(inspect.unwrap(majority_vote), None, _conv(texts), num_generations=len(texts),
                     timeout=CHECK_TIMEOUT, **_columns(golds))
    assert len(out) == len(texts) and all(0.0 <= r <= 1.0 for r in out), out
    assert dt <= CHECK_TIMEOUT * len(texts) ** 2 + MARGIN, dt  # pairwise clustering: at most n^2 checks


@fuzz
def test_extractors(texts, golds):
    from mmreason.eval import mathvista as mv
    from mmreason.eval import wemath as wm
    from mmreason.verify import extract_boxed, extract_letter, normalize_text

    for t in texts:
        t0 = time.monotonic()
        box = extract_boxed(t)
        assert box is None or isinstance(box, str)
        assert extract_letter(t, 4) in (None, "A", "B", "C", "D")
        assert isinstance(normalize_text(t), str)
        assert wm.official_letter(t) in (None, *"ABCDEFGH") and wm.boxed_letter(t) in (None, *"ABCDEFGH")
        problem = {"question": "q", "query": "q", "choices": ["1", "2"], "question_type": "multi_choice",
                   "answer_type": "text", "answer": "1", "precision": None, "unit": None}
        ext = mv.rule_extract(t, problem)
        assert ext is None or isinstance(ext, str)
        norm = mv.normalize_extracted_answer(ext or "", ["1", "2"], "multi_choice", "text", None)
        assert norm in ("1", "2")
        for qt, at, prec in (("free_form", "integer", None), ("free_form", "float", 2), ("free_form", "list", None)):
            n = mv.normalize_extracted_answer(t, None, qt, at, prec)
            assert n is None or isinstance(n, str)
            assert isinstance(mv.safe_equal(n, "1"), bool)
        assert time.monotonic() - t0 < PURE_LIMIT * 5, (t[:80], time.monotonic() - t0)


@fuzz
def test_records_scorer(texts, golds):
    from mmreason.eval.records_eval import score_records
    from mmreason.records import Record

    recs = [Record(id=f"r{i}", question="q", answer=g[0], answer_type=g[1], choices=g[2], precision=g[3])
            for i, g in enumerate(golds)]
    s, dt = _timed(score_records, recs, {f"r{i}": t for i, t in enumerate(texts)})
    assert 0.0 <= s["accuracy"] <= 1.0 and s["total"] == len(texts) and 0 <= s["correct"] <= len(texts)
    assert dt <= CHECK_TIMEOUT * len(texts) + MARGIN, dt


def test_generator_makes_the_hard_cases():
    """The fallback generator does produce boxed answers, nested powers and non-ASCII text."""
    rng = random.Random(SEED)
    texts = [random_text(rng) for _ in range(EXAMPLES * 3)]
    assert sum("\\boxed{" in t for t in texts) > EXAMPLES // 4
    assert any("9^{9^{9^{9}}}" in t for t in texts) and any(any(ord(c) > 0xFFFF for c in t) for t in texts)
