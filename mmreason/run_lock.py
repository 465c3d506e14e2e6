"""A run owns its output folder: `<output_dir>/run.lock`, held for the life of an SFT or GRPO run.

The lock file (created with O_EXCL) names the holder: pid, host, the holder process's start time and command. A
second run into the folder stops at once with `RunLockError` naming them while the holder lives. A lock left by a
dead process on this host (a SIGKILL, a machine reboot) is taken over with a line saying so; a lock naming another
host cannot be checked from here and stops the run (the message says which file to delete once that run is gone).
Under a multi-process launch only global rank 0 takes the lock (one per job, on the node of rank 0); the other
ranks do not touch it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from pathlib import Path

import psutil

logger = logging.getLogger("mmreason.run_lock")

LOCK_NAME = "run.lock"


class RunLockError(RuntimeError):
    """Another live run holds the output folder."""


def _start_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except Exception:  # the process is gone, or not ours to read
        return None


def _alive(holder: dict) -> bool:
    """Whether the process a lock on this host names still runs (and is that process, not a reused pid)."""
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    started, now_started = holder.get("started"), _start_time(pid)
    if isinstance(started, (int, float)) and now_started is not None and abs(now_started - started) > 1.0:
        return False  # the pid was reused by a newer process
    return True


def _describe(holder: dict) -> str:
    return f"pid {holder.get('pid')} on host {holder.get('host')!r}"


class RunLock:
    """`with RunLock(output_dir): ...` — take the folder's lock (or raise RunLockError), release it at the end.
    `enabled=False` (a rank other than 0) makes it a no-op."""

    def __init__(self, output_dir: str | os.PathLike, enabled: bool | None = None):
        self.path = Path(output_dir) / LOCK_NAME
        self.enabled = int(os.environ.get("RANK", "0")) == 0 if enabled is None else enabled
        self.held = False

    def _write(self) -> None:
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": _start_time(os.getpid()),
              "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": " ".join(sys.argv)}
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(me, f)

    def _holder(self) -> dict:
        try:
            holder = json.loads(self.path.read_text(encoding="utf-8"))
            return holder if isinstance(holder, dict) else {}
        except (OSError, ValueError):
            return {}

    def acquire(self) -> "RunLock":
        if not self.enabled:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # a racing run may create or remove the file between our steps
            try:
                self._write()
                self.held = True
                return self
            except FileExistsError:
                pass
            holder = self._holder()
            if not holder:  # torn or being written: give its writer a moment, then treat it as stale
                time.sleep(0.2)
                holder = self._holder()
            if holder.get("host") not in (None, socket.gethostname()):
                raise RunLockError(
                    f"{self.path.parent}: another run holds this output folder ({_describe(holder)}, since "
                    f"{holder.get('since')}); it cannot be checked from this host. Use another output_dir, or delete "
                    f"{self.path} once that run has ended")
            if holder and _alive(holder):
                raise RunLockError(
                    f"{self.path.parent}: another run is live in this output folder ({_describe(holder)}, since "
                    f"{holder.get('since')}: {holder.get('command', '')[:200]}). Use another output_dir or wait "
                    "for it to end")
            print(f"run lock: taking over the stale lock {self.path} of {_describe(holder) if holder else 'an unreadable holder'} "
                  "(that process is gone)", file=sys.stderr, flush=True)
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        raise RunLockError(f"{self.path}: could not take the run lock (another run keeps taking it)")

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        if self._holder().get("pid") == os.getpid():
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
