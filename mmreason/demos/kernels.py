"""The CPU kernels and thread count a demo computes with, pinned so the same command prints the same table on
any x86 machine with AVX2 (docs/reliability.md, "Reproducible demos"). Torch-free: `mmreason.cli` calls `pin_isa`
before the demo's module (and so torch) is imported."""

from __future__ import annotations

import os
import sys

# The CPU's vector width picks other float kernels (ATen's, MKL's, oneDNN's) and so other weights: on one machine
# an AVX2 run, a default-width run and an MKL "compatible" run trained three different SFT checkpoints in 10 steps.
# The demo computes as an AVX2 machine does on every x86 CPU that has AVX2 (read when torch loads).
DEMO_ISA = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
# CPU threads of every stage: float sums are ordered by the thread count, and 1,200 SFT steps at lr 1e-3 turn a
# last-bit difference into another table (1 vs 2 threads already give other weights after 10 steps)
DEMO_THREADS = 1


def pin_isa() -> bool:
    """Set DEMO_ISA before torch loads (True); inside a process that has loaded torch already it cannot apply, and
    the demo says so unless that process was started with it (False)."""
    if "torch" not in sys.modules:
        os.environ.update(DEMO_ISA)
        return True
    if any(os.environ.get(k) != v for k, v in DEMO_ISA.items()):
        print("nep demo: torch was loaded before the demo could pin its CPU kernels (DEMO_ISA): the table may differ "
              "from another machine's; run `mmreason nep demo` in its own process", file=sys.stderr)
    return False


def pin_threads(n: int = DEMO_THREADS) -> None:
    """The same float reduction order on every machine, whatever OMP_NUM_THREADS or the core count says."""
    import torch  # lazy: this module stays torch-free so `pin_isa` can run before torch loads

    torch.set_num_threads(n)
