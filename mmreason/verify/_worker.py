"""Code that runs inside a verify-pool worker process (kept tiny so a forkserver can preload it).

A worker imports math-verify once, warms sympy up, says "ready", then answers
`(job_id, item)` messages with `(job_id, status, value)` until it receives None.
math-verify's own signal-based timeouts stay off: the parent kills a worker that
overruns its deadline.
"""

from __future__ import annotations

import logging
import os

from mmreason.verify.answers import match_answer


def _limit_memory(memory_limit_mb: int | None) -> None:
    if not memory_limit_mb:
        return
    try:
        import resource  # lazy: POSIX only; the ImportError elsewhere is caught below

        limit = int(memory_limit_mb) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):  # not on this platform / not allowed: the timeout still holds
        pass


def serve(conn, memory_limit_mb: int | None = None) -> None:
    """Worker main loop. Every exception becomes an ("error", text) reply; only a kill stops it mid-item."""
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        match_answer("1", "1", "text")
        match_answer(r"\frac{1}{2}", "0.5", "text")  # sympy warm-up (~0.1 s) before we accept deadlines
    except Exception:  # noqa: BLE001 - warm-up only
        pass
    _limit_memory(memory_limit_mb)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        job_id, (pred, gold, answer_type, choices, precision) = msg
        try:
            ok = bool(match_answer(pred, gold, answer_type, choices, precision))
            reply = (job_id, "correct" if ok else "incorrect", None)
        except MemoryError:
            reply = (job_id, "error", "MemoryError")
        except BaseException as e:  # noqa: BLE001 - a verifier bug must not kill the worker
            reply = (job_id, "error", f"{type(e).__name__}: {str(e)[:200]}")
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            return
