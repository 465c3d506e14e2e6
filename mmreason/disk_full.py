"""Disk full (ENOSPC) during a save, as one line naming the folder and the size, instead of
`RuntimeError: [enforce fail at inline_container.cc:672] . unexpected pos ...` (torch's zip writer) or a bare
`[Errno 28] No space left on device`.

- `guard_disk_full(folder, what)`: a block that saves into `folder`; a disk-full failure inside becomes a
  `DiskFullError` saying where, how much had been written, how much a complete one takes (when known) and how
  much is free.
- `write_text_atomic(path, text)`: tmp file + fsync + rename, the tmp removed on failure, ENOSPC named.
- `DiskFullSaveMixin`: a Trainer mixin that guards checkpoint and model saves (SFT and GRPO share it through
  `mmreason.resume.CheckpointWeightsMixin`). A checkpoint torn by a full disk has no trainer_state.json, so
  resume keeps not trusting it (`mmreason.resume.incomplete_reason`).
"""

from __future__ import annotations

import errno
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

DISK_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
# torch's zip writer drops the errno: these are its words for a failed write.
TORCH_WRITE_FAILED = ("unexpected pos", "file write failed", "PytorchStreamWriter failed writing")
# After a torch write failure, a filesystem with less than this free is taken to be full.
LOW_FREE_BYTES = 64 << 20


class DiskFullError(OSError):
    """No space left while saving: the message is the whole story (no '[Errno 28]' prefix)."""

    def __init__(self, message: str):
        super().__init__(errno.ENOSPC, message)

    def __str__(self) -> str:
        return self.strerror


def human(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def tree_bytes(path: str | os.PathLike) -> int:
    """Bytes in a file or a folder tree (0 when it does not exist)."""
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    total = 0
    for root, _, files in os.walk(p):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def free_bytes(path: str | os.PathLike) -> int | None:
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def is_disk_full(exc: BaseException, where: str | os.PathLike) -> bool:
    """ENOSPC/EDQUOT anywhere in the exception chain, or torch's errno-less write failure on a filesystem that
    is (nearly) full now."""
    seen = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in DISK_FULL_ERRNOS:
            return True
        if isinstance(e, RuntimeError) and any(s in str(e) for s in TORCH_WRITE_FAILED):
            free = free_bytes(where)
            return free is not None and free < LOW_FREE_BYTES
        e = e.__cause__ or e.__context__
    return False


@contextmanager
def guard_disk_full(target: str | os.PathLike, what: str, expected: int | None = None) -> Iterator[None]:
    """Saves into `target` (a folder, or a file) inside the block; a full disk becomes one `DiskFullError`:
    "no space left on the disk of TARGET while writing WHAT: N written before it filled (a complete one is
    about M), F free". Other errors pass unchanged."""
    target = Path(target)
    before = tree_bytes(target)
    try:
        yield
    except DiskFullError:
        raise
    except (OSError, RuntimeError) as e:
        if not is_disk_full(e, target):
            raise
        written = max(0, tree_bytes(target) - before)
        size = f" (a complete one is about {human(expected)})" if expected else ""
        raise DiskFullError(
            f"no space left on the disk of {target} while writing {what}: {human(written)} written before it filled"
            f"{size}, {human(free_bytes(target))} free now; free space or point the output elsewhere, then rerun"
        ) from e


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """`path` replaced by `text` whole (tmp + fsync + rename) or not at all; a full disk names the file and size."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    data = text.encode("utf-8")
    try:
        with guard_disk_full(tmp, f"{path.name} ({human(len(data))})"):
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # nothing half-written left behind
        raise


class DiskFullSaveMixin:
    """Trainer mixin: a checkpoint or model save that fills the disk stops the run with one line (the folder, what
    was written, the size of the last complete checkpoint, what is free) instead of torch's zip-writer error."""

    def _save_checkpoint(self, model, trial):
        folder = Path(self._get_output_dir(trial)) / f"checkpoint-{self.state.global_step}"
        with guard_disk_full(folder, f"checkpoint {folder.name}", expected=_last_checkpoint_bytes(folder.parent)):
            return super()._save_checkpoint(model, trial)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        if _internal_call:  # part of a checkpoint save: `_save_checkpoint` names it
            return super().save_model(output_dir, _internal_call)
        out = Path(output_dir or self.args.output_dir)
        with guard_disk_full(out, "the final model"):
            return super().save_model(output_dir, _internal_call)


def _last_checkpoint_bytes(output_dir: Path) -> int | None:
    found = [p for p in output_dir.glob("checkpoint-*") if p.is_dir() and p.name.split("-", 1)[1].isdigit()]
    if not found:
        return None
    return tree_bytes(max(found, key=lambda p: int(p.name.split("-", 1)[1])))


__all__ = ["DiskFullError", "DiskFullSaveMixin", "guard_disk_full", "is_disk_full", "write_text_atomic"]
