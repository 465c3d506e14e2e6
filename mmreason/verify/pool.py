"""Answer checks with a hard per-call timeout: a persistent process pool that kills stuck workers.

math-verify (sympy) can hang or eat memory on adversarial LaTeX (`9^{9^{9^{9}}}`, `(10!)!`) and its
own signal-based timeout only works in the main thread. Here every check that needs math-verify runs
in a worker process; a worker that overruns its deadline is SIGKILLed and replaced, the item gets
`Result("timeout")`, and every other item still gets its answer.

- Workers come from a `forkserver` context (torch is loaded in the trainer, so no plain fork) whose
  server preloads `mmreason.verify._worker`, so a replacement starts in milliseconds; `spawn` is the
  fallback. They are created lazily on the first check that needs them and stopped at exit.
- Checks that need no math-verify (choice letters, two plain numbers, identical normalised text) are
  decided in-process by `quick_match` (`mmreason.verify.answers.decide_answer` without math-verify: the
  same branches as `match_answer`, linear regexes only); everything else goes to the pool.
- Thread-safe: one batch runs in the pool at a time (a lock); counters are guarded too. After a fork
  the child builds its own workers instead of touching the parent's.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing as mp
import os
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from multiprocessing.connection import wait as mp_wait

from mmreason.verify._worker import serve
from mmreason.verify.answers import decide_answer

logger = logging.getLogger("mmreason.rewards")

DEFAULT_TIMEOUT = 5.0
STARTUP_TIMEOUT = 120.0  # a worker must import math-verify within this (2 busy cores can be slow)
Item = tuple  # (pred, gold, answer_type, choices, precision)


@dataclass(frozen=True)
class Result:
    """Outcome of one check: status is correct | incorrect | timeout | error."""

    status: str
    detail: str | None = None

    @property
    def correct(self) -> bool:
        return self.status == "correct"

    @property
    def failed(self) -> bool:
        """The check did not finish (timeout or error): the answer was never judged."""
        return self.status in ("timeout", "error")


CORRECT, INCORRECT = Result("correct"), Result("incorrect")


# Numbers longer than this are not parsed in-process by the vote (answers.to_number caps at 100 characters).
QUICK_MAX_CHARS = 64


def quick_match(pred, gold, answer_type, choices=None, precision=None) -> bool | None:
    """`match_answer`'s decision when it needs no math-verify, else None (the same code path:
    `answers.decide_answer` without math-verify)."""
    if not isinstance(gold, str) and isinstance(pred, str):
        return False
    return decide_answer(pred, gold, answer_type, choices, precision, use_math_verify=False)


class _Worker:
    __slots__ = ("process", "conn", "ready", "job", "started")

    def __init__(self, ctx, memory_limit_mb):
        parent, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=serve, args=(child, memory_limit_mb), daemon=True, name="mmreason-verify")
        self.process.start()
        child.close()
        self.conn = parent
        self.ready = False
        self.job: tuple[int, float] | None = None  # (item index, deadline)
        self.started = time.monotonic()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=2)
        self.conn.close()

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, ValueError):
            pass
        self.process.join(timeout=1)
        self.kill()


def _default_workers() -> int:
    env = os.environ.get("MMREASON_VERIFY_WORKERS")
    if env:
        return max(1, int(env))
    return max(1, min(4, os.cpu_count() or 1))


def _context(start_method: str | None):
    methods = mp.get_all_start_methods()
    method = start_method or ("forkserver" if "forkserver" in methods else "spawn")
    ctx = mp.get_context(method)
    if method == "forkserver":
        # Preload only our worker module (not __main__) so replacements fork from a warm server.
        # Has no effect if this process's forkserver is already running.
        ctx.set_forkserver_preload(["mmreason.verify._worker", "mmreason.verify._warm"])
    return ctx


class VerifyPool:
    """A lazily started pool of answer-checking worker processes with a hard per-item timeout."""

    def __init__(
        self,
        workers: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        memory_limit_mb: int | None = 4096,
        start_method: str | None = None,
        fast_path: bool = True,
        cache_size: int = 8192,
    ):
        self.n_workers = workers or _default_workers()
        self.timeout = timeout
        self.memory_limit_mb = memory_limit_mb
        self.start_method = start_method
        self.fast_path = fast_path  # decide math-verify-free checks in-process (see quick_match)
        self._ctx = None
        self._workers: list[_Worker] = []
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._counts = {"checks": 0, "in_process": 0, "cached": 0, "pooled": 0, "timeouts": 0, "errors": 0,
                        "restarts": 0}
        # finished verdicts (correct/incorrect only: a timeout under load may not repeat) of recent checks;
        # GRPO groups repeat the same (answer, gold) pairs a lot
        self.cache_size = cache_size
        self._cache: OrderedDict = OrderedDict()

    # -- public -----------------------------------------------------------------------------
    def verify_many(self, items: list[Item], timeout: float | None = None) -> list[Result]:
        """One Result per `(pred, gold, answer_type, choices, precision)`, in order. Never raises
        for bad items; each item needing math-verify gets at most `timeout` seconds in a worker."""
        timeout = self.timeout if timeout is None else float(timeout)
        results: list[Result | None] = [None] * len(items)
        need, keys, first_of, n_cached = [], {}, {}, 0
        for i, item in enumerate(items):
            try:
                pred, gold, answer_type, choices, precision = item
                q = quick_match(pred, gold, answer_type, choices, precision) if self.fast_path else None
            except Exception as e:  # noqa: BLE001 - malformed item
                results[i] = Result("error", f"{type(e).__name__}: {e}")
                continue
            if q is not None:
                results[i] = CORRECT if q else INCORRECT
                continue
            key = _key(item)
            hit = self._cache_get(key)
            if hit is not None:
                results[i], n_cached = hit, n_cached + 1
            elif key is not None and key in first_of:  # duplicate within this batch: check once
                keys[i] = key
            else:
                need.append(i)
                keys[i] = key
                if key is not None:
                    first_of[key] = i
        if need:
            with self._lock:
                self._run(items, need, results, timeout)
        for i, key in keys.items():
            if results[i] is None:
                results[i] = results[first_of[key]]
        with self._lock:
            for i in need:
                if keys.get(i) is not None and results[i].status in ("correct", "incorrect") and self.cache_size:
                    self._cache[keys[i]] = results[i]
                    self._cache.move_to_end(keys[i])
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        n_err = sum(r.status == "error" for r in results)
        n_to = sum(r.status == "timeout" for r in results)
        with self._lock:
            c = self._counts
            c["checks"] += len(items)
            c["cached"] += n_cached + len(keys) - len(need)
            c["in_process"] += len(items) - len(keys) - n_cached
            c["pooled"] += len(need)
            c["timeouts"] += n_to
            c["errors"] += n_err
        return results  # type: ignore[return-value]

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    @property
    def processes(self) -> list:
        """The worker processes (multiprocessing.Process) running now; empty before the first pooled check."""
        return [w.process for w in self._workers]

    def close(self) -> None:
        with self._lock:
            if os.getpid() == self._pid:
                for w in self._workers:
                    w.stop()
            self._workers = []

    # -- internals --------------------------------------------------------------------------
    def _cache_get(self, key):
        if key is None or not self.cache_size:
            return None
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
            return hit

    def _check_fork(self) -> None:
        if os.getpid() != self._pid:  # forked child: the workers belong to the parent
            self._workers, self._pid = [], os.getpid()

    def _spawn(self) -> _Worker:
        if self._ctx is None:
            self._ctx = _context(self.start_method)
        return _Worker(self._ctx, self.memory_limit_mb)

    def _replace(self, w: _Worker) -> None:
        w.kill()
        self._workers[self._workers.index(w)] = self._spawn()
        self._counts["restarts"] += 1

    def _run(self, items, need, results, timeout) -> None:
        self._check_fork()
        while len(self._workers) < self.n_workers:
            self._workers.append(self._spawn())
        pending = deque(need)
        startup_failures = 0
        while pending or any(w.job for w in self._workers):
            now = time.monotonic()
            for w in self._workers:
                if w.ready and w.job is None and pending:
                    i = pending.popleft()
                    try:
                        w.conn.send((i, tuple(items[i])))
                        w.job = (i, time.monotonic() + timeout)
                    except (BrokenPipeError, ConnectionError, EOFError, OSError):
                        pending.appendleft(i)
                        self._replace(w)
                    except Exception as e:  # noqa: BLE001 - unpicklable item
                        results[i] = Result("error", f"cannot send item: {type(e).__name__}")
            if not pending and not any(w.job for w in self._workers):
                break
            deadlines = [w.job[1] for w in self._workers if w.job]
            deadlines += [w.started + STARTUP_TIMEOUT for w in self._workers if not w.ready]
            wait_for = max(0.0, min(deadlines) - time.monotonic()) if deadlines else 0.05
            handles = [w.conn for w in self._workers] + [w.process.sentinel for w in self._workers]
            ready = set(mp_wait(handles, timeout=wait_for))
            for w in list(self._workers):
                if w.conn in ready:
                    try:
                        msg = w.conn.recv()
                    except (EOFError, OSError):
                        msg = None
                    if msg is not None and msg[0] == "ready":
                        w.ready, startup_failures = True, 0
                        continue
                    if msg is not None and w.job and msg[0] == w.job[0]:
                        results[w.job[0]] = Result(msg[1], msg[2])
                        w.job = None
                        continue
                if w.process.sentinel in ready or (w.conn in ready and msg is None):
                    if w.job:
                        results[w.job[0]] = Result("error", f"worker died (exit code {w.process.exitcode})")
                        logger.warning("verify worker died (exit code %s) on item %s", w.process.exitcode,
                                       _short(items[w.job[0]]))
                    elif not w.ready:
                        startup_failures += 1
                    self._replace(w)
            now = time.monotonic()
            for w in list(self._workers):
                if w.job and now >= w.job[1]:
                    i = w.job[0]
                    results[i] = Result("timeout", f"no answer within {timeout:g} s")
                    logger.warning("answer check timed out after %.1f s; worker killed: %s", timeout,
                                   _short(items[i]))
                    self._replace(w)
                elif not w.ready and now >= w.started + STARTUP_TIMEOUT:
                    startup_failures += 1
                    self._replace(w)
            if startup_failures >= 3 * self.n_workers:
                for i in pending:
                    results[i] = Result("error", "verify workers failed to start")
                logger.error("verify workers failed to start %d times; %d checks marked as errors",
                             startup_failures, len(pending))
                pending.clear()


def _key(item):
    pred, gold, answer_type, choices, precision = item
    try:
        key = (pred, gold, answer_type, tuple(choices) if isinstance(choices, list) else choices, precision)
        hash(key)
        return key
    except TypeError:
        return None


def _short(item) -> str:
    try:
        pred = item[0]
        return (pred[:120] + "...") if isinstance(pred, str) and len(pred) > 120 else repr(pred)
    except Exception:  # noqa: BLE001
        return "<item>"


_POOL: VerifyPool | None = None
_POOL_LOCK = threading.Lock()


def get_pool() -> VerifyPool:
    """The process-wide pool (created on first use, closed at exit)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            timeout = float(os.environ.get("MMREASON_VERIFY_TIMEOUT", DEFAULT_TIMEOUT))
            _POOL = VerifyPool(timeout=timeout)
            atexit.register(_POOL.close)
        return _POOL


def verify_many(items: list[Item], timeout: float | None = None) -> list[Result]:
    """`VerifyPool.verify_many` on the process-wide pool."""
    return get_pool().verify_many(items, timeout=timeout)


def stats() -> dict[str, int]:
    """Counters of the process-wide pool: checks, in_process, pooled, timeouts, errors, restarts."""
    return get_pool().stats()
