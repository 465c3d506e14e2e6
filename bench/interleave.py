"""Several HF Trainers' real `train()` loops run interleaved in one process, one cycle at a time.

Each trainer trains in its own thread, but a baton lets exactly one run at any moment: a trainer runs one cycle
(`cycle_steps` optimizer steps, from one on_step_begin to the on_step_begin after the cycle: the steps, their
logging, the next batch fetch), then hands over to the next, round-robin, with the order rotated every round so
no trainer always runs first or last. Every trainer keeps its own RNG state across hand-overs (saved and
restored there), so each one trains as it would alone: same weights at start (each loads the same checkpoint),
same data order, same sampling. A cycle is timed as wall time and as its thread's CPU time (`time.thread_time`;
torch runs single-threaded here, so that is the work of that trainer alone, minus the time the machine gave to
other jobs). Neighbouring cycles of different trainers see the same machine load, which is what makes the
ratio of one round repeatable on a shared machine where whole separate runs differ by 10%."""

from __future__ import annotations

import copy
import math
import random
import resource
import statistics
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import TrainerCallback, set_seed


@dataclass
class Cycle:
    wall_s: float
    cpu_s: float
    sys_s: float = 0.0  # the part of cpu_s spent in the kernel (page faults, mostly)
    minflt: int = 0  # minor page faults: fresh pages the kernel zero-filled for the allocator


def _thread_usage() -> tuple[float, int]:
    """This thread's kernel CPU time and minor page faults so far."""
    ru = resource.getrusage(resource.RUSAGE_THREAD)
    return ru.ru_stime, ru.ru_minflt


@dataclass
class _Runner:
    name: str
    trainer: object
    cycles: list[Cycle] = field(default_factory=list)
    rng: tuple | None = None
    ready: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class _Baton:
    """Whose turn it is; `should_stop({name: cycles})` is asked after every full round."""

    def __init__(self, runners: dict[str, _Runner], should_stop=None, on_acquire=None, on_release=None):
        self.cond = threading.Condition()
        self.runners = runners
        self.order = list(runners)
        self.turn: str | None = None
        self.pos = 0
        self.finished: set[str] = set()
        self.stop = False
        self.should_stop, self.on_acquire, self.on_release = should_stop, on_acquire, on_release

    def _advance(self) -> None:  # under self.cond
        if len(self.finished) == len(self.order):
            self.turn = None
            return
        while True:
            self.pos += 1
            if self.pos >= len(self.order):  # a round is over: rotate the order, maybe stop
                self.pos = 0
                self.order = self.order[1:] + self.order[:1]
                if not self.stop and self.should_stop is not None:
                    self.stop = bool(self.should_stop({n: list(r.cycles) for n, r in self.runners.items()}))
            if self.order[self.pos] not in self.finished:
                self.turn = self.order[self.pos]
                return

    def wait(self, name: str) -> None:
        with self.cond:
            self.cond.wait_for(lambda: self.turn == name)

    def pass_on(self, name: str, finished: bool = False) -> None:
        if self.on_release:
            self.on_release(name)
        with self.cond:
            if finished:
                self.finished.add(name)
            self._advance()
            self.cond.notify_all()


def _save_rng():
    return torch.get_rng_state(), random.getstate(), np.random.get_state()


def _load_rng(state) -> None:
    torch.set_rng_state(state[0])
    random.setstate(state[1])
    np.random.set_state(state[2])


def _snapshot(trainer) -> tuple[dict, dict]:
    return ({k: v.detach().clone() for k, v in trainer.model.state_dict().items()},
            copy.deepcopy(trainer.optimizer.state_dict()))


def _restore(trainer, snap: tuple[dict, dict]) -> None:
    trainer.model.load_state_dict(snap[0])
    trainer.optimizer.load_state_dict(copy.deepcopy(snap[1]))


class _CycleCallback(TrainerCallback):
    def __init__(self, runner: _Runner, baton: _Baton, cycle_steps: int, seed: int, reset: bool = False):
        self.r, self.baton, self.k, self.seed, self.reset = runner, baton, cycle_steps, seed, reset
        self.t0 = (0.0, 0.0, 0.0, 0)
        self.stopping = False
        self.snap = None

    def _start(self) -> None:
        self.baton.wait(self.r.name)
        if self.reset:  # every cycle from the trainer's starting weights and optimizer state, RNG seeded by round
            if self.snap is None:
                self.snap = _snapshot(self.r.trainer)
            else:
                _restore(self.r.trainer, self.snap)
            set_seed(self.seed + len(self.r.cycles))
        elif self.r.rng is None:
            set_seed(self.seed)  # every trainer starts its loop from the same RNG state
        else:
            _load_rng(self.r.rng)
        if self.baton.on_acquire:  # after the reset, which is neither timed nor profiled
            self.baton.on_acquire(self.r.name)
        self.stopping = self.baton.stop  # then: one more (untimed) step, and stop
        self.t0 = (time.perf_counter(), time.thread_time(), *_thread_usage())

    def _stop(self) -> None:
        sys_s, minflt = _thread_usage()
        self.r.cycles.append(Cycle(time.perf_counter() - self.t0[0], time.thread_time() - self.t0[1],
                                   sys_s - self.t0[2], minflt - self.t0[3]))
        self.r.rng = _save_rng()
        self.baton.pass_on(self.r.name)

    def on_train_begin(self, args, state, control, **kw):
        self.r.ready.set()
        self._start()

    def on_step_begin(self, args, state, control, **kw):
        if state.global_step % self.k == 0 and state.global_step > 0 and not self.stopping:
            self._stop()
            self._start()

    def on_step_end(self, args, state, control, **kw):
        if self.stopping:
            control.should_training_stop = True

    def on_train_end(self, args, state, control, **kw):
        # the cycle running now holds the end of train() (final log, metrics) or the stopping step: not counted
        self.baton.pass_on(self.r.name, finished=True)


def train_interleaved(trainers: dict, cycle_steps: int, seed: int = 0, should_stop=None, on_acquire=None,
                      on_release=None, reset: bool = False) -> dict[str, list[Cycle]]:
    """Run every trainer's `train()` interleaved cycle by cycle, until its max_steps or until
    `should_stop({name: [Cycle, ...]})`, asked after every round, says so. Returns {name: [Cycle, ...]}, the
    complete cycles in training order, as many for every trainer. `on_acquire(name)` / `on_release(name)` run in
    the trainer's thread when it gets / hands over the baton (e.g. a per-thread profiler).

    `reset`: every cycle starts (untimed) from the trainer's weights and optimizer state at the start of
    `train()`, with the RNG seeded by the round (`seed + round`): trainers loaded from the same checkpoint then
    do the same work in a round (same weights, same prompts, same sampled completions) and differ only in their
    code. Without it each trains on as it would alone, and the weights drift apart as their losses differ."""
    runners = {n: _Runner(n, t) for n, t in trainers.items()}
    baton = _Baton(runners, should_stop, on_acquire, on_release)
    for r in runners.values():
        r.trainer.add_callback(_CycleCallback(r, baton, cycle_steps, seed, reset))

    def run(r: _Runner) -> None:
        try:
            r.trainer.train()
        except BaseException as e:  # noqa: BLE001 - re-raised by the caller
            r.error = e
            r.ready.set()
            with baton.cond:  # never leave the others waiting for a dead thread
                baton.stop = True
                if r.name not in baton.finished:
                    baton.finished.add(r.name)
                    if baton.turn in (r.name, None):
                        baton._advance()
                baton.cond.notify_all()

    threads = []
    for r in runners.values():  # set-ups one after another (each thread waits at its on_train_begin)
        th = threading.Thread(target=run, args=(r,), name=f"train-{r.name}", daemon=True)
        th.start()
        r.ready.wait()
        threads.append(th)
    with baton.cond:
        baton.turn = baton.order[0]
        baton.cond.notify_all()
    for th in threads:
        th.join()
    for r in runners.values():
        if r.error is not None:
            raise RuntimeError(f"trainer {r.name} failed: {type(r.error).__name__}: {r.error}") from r.error
    n = min(len(r.cycles) for r in runners.values())
    return {name: r.cycles[:n] for name, r in runners.items()}


def median_ci(xs: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """(median, lo, hi): the median and its distribution-free confidence interval, order statistics x_(j) and
    x_(n+1-j) with the largest j that keeps P(Binomial(n, 1/2) < j) <= (1 - level) / 2 (the whole range when
    n is too small for that)."""
    s = sorted(xs)
    n = len(s)
    if n == 0:
        raise ValueError("median_ci of no values")
    tail, j, cdf = (1 - level) / 2, 0, 0.0
    while j < n // 2:
        cdf += math.comb(n, j) / 2**n  # P(X <= j)
        if cdf > tail:
            break
        j += 1
    j = max(j, 1)  # j-th smallest (1-based); the whole range when n is too small
    return statistics.median(s), s[j - 1], s[n - j]
