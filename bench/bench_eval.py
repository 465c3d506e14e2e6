"""Eval benchmarks: rule-path scoring speed (ours vs the official scripts' approach) and tiny-model
generation speed. Run: python -m bench.bench_eval (or through bench/run.py)."""

from __future__ import annotations

import json
import os
import random
import tempfile
import time
from pathlib import Path

from bench.smoke import size

# The full benchmark data when $MMREASON_BENCHMARKS names it, else the test fixtures' small copy.
DATA = Path(os.environ.get("MMREASON_BENCHMARKS") or Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "benchmarks")


def _best(fn, repeat=size(3, 1)):
    best = float("inf")
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def bench_mathvista() -> None:
    from mmreason.eval import mathvista as mv
    from mmreason.eval.reference import mathvista_official_loop

    problems = mv.load_problems(DATA / "mathvista")
    path = DATA / "mathvista" / "official_results" / "output_llava_llama_2_13b.json"
    official = json.loads(path.read_text())
    preds = mv.read_predictions(path)
    ours_t, s = _best(lambda: mv.score(preds, problems, mode="official"))
    base_t, ref = _best(lambda: mathvista_official_loop(official), repeat=1)
    assert s["correct"] == ref["average"]["correct"]
    print(f"mathvista_score_{len(problems)}: ours {ours_t:.3f} s, baseline {base_t:.3f} s, ratio {base_t / ours_t:.1f}")


def bench_wemath() -> None:
    from mmreason.eval import wemath as wm
    from mmreason.eval.reference import wemath_official_pandas

    rows = wm.load_rows(DATA / "wemath")
    nodes = wm.load_knowledge_nodes(DATA / "wemath" / "knowledge_structure_nodes.json")
    rng = random.Random(0)
    resp = {wm.item_id(r): f"<Thought process>: ... <Answer>: <<{r['answer'] if rng.random() < 0.6 else 'A'}>>"
            for r in rows}
    preds = {k: {"response": v} for k, v in resp.items()}
    official_rows = [dict(r, response=resp[wm.item_id(r)]) for r in rows]
    ours_t, s = _best(lambda: wm.score(preds, rows, nodes=nodes))
    base_t, ref = _best(lambda: wemath_official_pandas(official_rows, nodes, n_composite=s["n_composite"]))
    assert all(s[k] == v for k, v in ref.items())
    print(f"wemath_score_{len(rows)}: ours {ours_t:.3f} s, baseline {base_t:.3f} s, ratio {base_t / ours_t:.1f}")


def bench_generation() -> None:
    os.environ.setdefault("MMREASON_OFFLINE", "1")
    from mmreason.offline import offline_defaults

    offline_defaults()
    from mmreason.eval.run import run_benchmark
    from mmreason.tiny import build_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_model(Path(tmp) / "tiny", size="tiny", seed=0)
        n = int(os.environ.get("BENCH_EVAL_WEMATH_N", size("60", "4")))  # 1740 = the full testmini
        s = run_benchmark(str(model), "wemath", Path(tmp) / "out", data_dir=str(DATA / "wemath"), limit=n,
                          batch_size=16, max_new_tokens=32, temperature=0.0, progress=False)
        g = s["generation"]
        print(f"tiny_generation_wemath_{s['total']}: {g['seconds']:.1f} s, {g['items_per_s']:.2f} items/s "
              f"(batch 16, 32 new tokens, CPU)")


def main() -> None:
    print(f"benchmark data: {DATA}" + ("" if os.environ.get("MMREASON_BENCHMARKS") else
                                       " (the test fixtures; MMREASON_BENCHMARKS=DIR for the full data)"))
    bench_mathvista()
    bench_wemath()
    bench_generation()


if __name__ == "__main__":
    main()
