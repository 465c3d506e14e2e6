"""Accuracy-reward throughput: mmreason's timed process pool vs naive in-process math-verify.

Benign completions (numbers, fractions vs decimals, radicals, expressions, choice letters, words), each
scored once. Baseline: what a plain reward function does - `math_verify.parse` the gold and the whole
completion and `verify` them in the trainer process (math-verify's own signal timeouts, main thread only).
Ours: `mmreason.rewards.accuracy` (boxed extraction, in-process fast path, pool with hard timeouts);
a second line turns the fast path and cache off (in-batch dedupe stays). Pool start-up is reported separately;
the first start-up includes the forkserver and its sympy warm-up.
"""

from __future__ import annotations

import logging
import random
import time

from bench.smoke import size


def make_cases(n: int, seed: int = 0):
    rng = random.Random(seed)
    out = []
    kinds = ["int", "float", "frac", "sqrt", "expr", "choice", "word"]
    for i in range(n):
        k = kinds[i % len(kinds)]
        right = rng.random() < 0.6
        if k == "int":
            g = str(rng.randint(0, 500)); p = g if right else str(int(g) + 1); t = "integer"; ch = None
        elif k == "float":
            v = rng.randint(1, 999) / 100; g = f"{v:.2f}"; p = g if right else f"{v + 0.1:.2f}"; t = "float"; ch = None
        elif k == "frac":
            a, b = rng.randint(1, 9), rng.randint(10, 19)
            g = f"{a / b:.6f}"; p = rf"\frac{{{a}}}{{{b}}}" if right else rf"\frac{{{a + 1}}}{{{b}}}"; t = "float"; ch = None
        elif k == "sqrt":
            a = rng.randint(2, 9); g = rf"{a}\sqrt{{2}}"; p = rf"\sqrt{{{2 * a * a}}}" if right else rf"\sqrt{{{2 * a * a + 1}}}"; t = "text"; ch = None
        elif k == "expr":
            a = rng.randint(1, 9); g = f"x^2+{a}x"; p = f"x({a}+x)" if right else f"x({a}+2x)"; t = "text"; ch = None
        elif k == "choice":
            ch = ["red", "blue", "green", "yellow"]; g = rng.choice("ABCD"); p = g if right else "ABCD"[("ABCD".index(g) + 1) % 4]; t = "choice"
        else:
            g = rng.choice(["circle", "square", "triangle"]); p = g if right else "hexagon"; t = "text"; ch = None
        out.append((f"Let me think step by step about it. The answer is \\boxed{{{p}}}", g, t, ch))
    return out


def make_groups(n_questions: int, G: int = 10, seed: int = 1):
    """GRPO-like batches: G completions per question, answers concentrated on a few forms."""
    rng = random.Random(seed)
    base = make_cases(n_questions * 3, seed)
    out = []
    for q in range(n_questions):
        _, gold, t, ch = base[q]
        forms = [c for c in base if c[1] == gold and c[2] == t][:3] or [base[q]]
        wrong = base[(q + 7) % len(base)][0]
        for _ in range(G):
            out.append((rng.choice(forms)[0] if rng.random() < 0.7 else wrong, gold, t, ch))
    return out


def naive(cases):
    from math_verify import parse, verify

    return [float(bool(verify(parse(f"${g}$"), parse(c)))) for c, g, _, _ in cases]


def ours(cases, pool):
    from mmreason.rewards import verifiable

    verifiable.verify_many = pool.verify_many  # score through the given pool
    n = len(cases)
    return verifiable.accuracy(prompts=["q"] * n, completions=[c[0] for c in cases], answer=[c[1] for c in cases],
                               answer_type=[c[2] for c in cases], choices=[c[3] for c in cases])


def main() -> None:
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    from mmreason.rewards import verifiable
    from mmreason.verify.pool import VerifyPool

    original = verifiable.verify_many
    naive(make_cases(7))  # sympy warm-up for the baseline
    try:
        for data, cases in (("unique completions", make_cases(size(280, 14))),
                            ("GRPO-like groups of 10", make_groups(size(28, 2)))):
            for label, fast in (("pool + fast path + cache", True), ("pool + in-batch dedupe only", False)):
                pool = VerifyPool(timeout=10.0, fast_path=fast, cache_size=8192 if fast else 0)
                t = time.perf_counter(); pool.verify_many([("1/2", "0.5", "text", None, None)])
                t_start = time.perf_counter() - t
                ours(make_cases(7), pool)  # same warm-up as the baseline got
                # side by side: baseline and ours on the same cases, back to back
                t = time.perf_counter(); base = naive(cases); t_base = time.perf_counter() - t
                t = time.perf_counter(); got = ours(cases, pool); t_ours = time.perf_counter() - t
                agree = sum(a == b for a, b in zip(got, base)) / len(cases)
                print(f"accuracy reward, {len(cases)} {data}, {label} ({pool.n_workers} workers): "
                      f"ours {t_ours:.2f} s, baseline {t_base:.2f} s, speed-up (baseline / ours) {t_base / t_ours:.2f}  "
                      f"[pool start-up {t_start:.2f} s; agreement with naive {agree:.1%}; stats {pool.stats()}]",
                      flush=True)
                pool.close()
    finally:
        verifiable.verify_many = original


if __name__ == "__main__":
    main()
