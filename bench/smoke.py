"""Smoke mode (`python -m bench.run --smoke`, or BENCH_SMOKE=1): every bench runs its whole path on the smallest
sizes that still exercise it, in seconds to a minute, so `tests/test_bench_smoke.py` can run each one end to end
and `make bench` cannot rot unseen. Numbers printed in this mode mean nothing."""

from __future__ import annotations

import os

SMOKE = os.environ.get("BENCH_SMOKE", "") not in ("", "0")


def size(full, smoke):
    """`smoke` in smoke mode, else `full`."""
    return smoke if SMOKE else full
