"""SIGTERM-safe training (SFT and GRPO): what Slurm and other schedulers send before killing a preempted job.

The signal handler only sets a flag. At the end of every optimizer step `PreemptionCallback.on_step_end` agrees on
the flag across ranks (a max all-reduce: the signal may reach one rank or all of them) and, when any rank got it,
asks the Trainer for a checkpoint and a stop (`control.should_save`, `control.should_training_stop`), so every rank
takes part in the save through transformers' own `_save_checkpoint`. The stage then exits with `EXIT_CODE` (143,
128 + SIGTERM, what a shell reports for a process ended by SIGTERM) without its final save; the same command
resumes from that checkpoint (`resume_from_checkpoint: true`). More SIGTERMs change nothing (under a launcher a
worker often gets the scheduler's signal and the launcher's copy of it); SIGKILL ends the process at once.
"""

from __future__ import annotations

import logging
import signal
import sys

import torch
import torch.distributed as dist
from transformers import TrainerCallback

logger = logging.getLogger("mmreason.preemption")

EXIT_CODE = 128 + signal.SIGTERM


def _any_rank(flag: bool, device) -> bool:
    """True when `flag` is set on any rank (every rank must call this at the same point)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    backend = dist.get_backend()
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device if backend == "nccl" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


class PreemptionCallback(TrainerCallback):
    """On SIGTERM: finish the current optimizer step, save a complete checkpoint on every rank, stop training.
    `stopped` tells the stage to exit with EXIT_CODE instead of writing its final model."""

    def __init__(self):
        self.signalled = False
        self.stopped = False
        self._previous = None

    def _handler(self, signum, frame):
        if self.signalled:  # the same request again: a launcher forwards the scheduler's SIGTERM to its workers
            return
        self.signalled = True
        print("SIGTERM: finishing the current step, then saving a checkpoint and exiting with code "
              f"{EXIT_CODE} (SIGKILL ends it at once)", file=sys.stderr, flush=True)

    def on_train_begin(self, args, state, control, **kwargs):
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handler)
        except ValueError:  # not the main thread (e.g. a trainer driven from a worker thread): nothing to hook
            logger.warning("SIGTERM handler not installed (training runs outside the main thread)")

    def on_step_end(self, args, state, control, **kwargs):
        if _any_rank(self.signalled, args.device):
            self.stopped = True
            control.should_save = True
            control.should_training_stop = True
            logger.warning("SIGTERM: saving checkpoint-%d and stopping", state.global_step)
        return control

    def on_train_end(self, args, state, control, **kwargs):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None


def preempted(trainer) -> bool:
    """Whether `trainer` stopped on SIGTERM (its PreemptionCallback saved a checkpoint)."""
    handler = getattr(trainer, "callback_handler", None)
    return any(isinstance(cb, PreemptionCallback) and cb.stopped for cb in getattr(handler, "callbacks", []))
