"""`make bench`: run every bench/bench_*.py (or those named on the command line) in turn;
`make bench ARGS="--profile [bench_grpo]"` also prints the profiles the benches offer; `--smoke` runs each on
its smallest sizes (seconds; the numbers mean nothing: `tests/test_bench_smoke.py` runs every bench this way).

Benchmarks measure speed and memory side by side in one run and print ratios;
they are not tests and assert nothing about absolute times."""

from __future__ import annotations

import importlib
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MMREASON_OFFLINE", "1")


def main(argv: list[str]) -> int:
    from mmreason.offline import offline_defaults

    offline_defaults()
    if "--profile" in argv:  # benches that can profile themselves print a profile too (bench_grpo)
        os.environ["BENCH_PROFILE"] = "1"
    if "--smoke" in argv:  # read by bench.smoke when the benches (and their worker processes) import it
        os.environ["BENCH_SMOKE"] = "1"
    unknown = [a for a in argv if a.startswith("-") and a not in ("--profile", "--smoke")]
    if unknown:
        print(f"unknown option(s) {unknown}; usage: python -m bench.run [--profile] [--smoke] [bench_name ...]")
        return 2
    argv = [a for a in argv if not a.startswith("-")]
    names = argv or sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))
    failed = []
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        t = time.perf_counter()
        try:
            importlib.import_module(f"bench.{name}").main()
        except Exception as e:  # one broken bench must not hide the others' numbers
            failed.append(name)
            print(f"{name} FAILED: {type(e).__name__}: {e}", flush=True)
        print(f"({name} took {time.perf_counter() - t:.1f} s)", flush=True)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
