"""Append-only prediction cache: one JSON object per line, keyed by item id.

A killed run leaves at most one partial last line; `PredictionCache` truncates it on open,
so a rerun regenerates exactly the items that have no complete line. Every append is
flushed and fsync'd before the run moves on.

`identity` (model, weights, prompt and sampling settings) is kept beside the cache: a rerun into the
same folder with a different identity is refused rather than mixing two models' answers in one score.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Iterable

from mmreason.disk_full import write_text_atomic
from mmreason.jsonl import append_jsonl, read_jsonl_repair

logger = logging.getLogger(__name__)


class PredictionCache:
    def __init__(self, path: str | os.PathLike, key: str = "id", identity: dict[str, Any] | None = None):
        self.path = Path(path)
        self.key = key
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rows: dict[str, dict[str, Any]] = {}
        self.repaired = 0  # partial last lines cut off
        self.duplicates = 0
        if identity is not None:
            self._check_identity(json.loads(json.dumps(identity, default=str)))
        self._load()

    def _check_identity(self, identity: dict[str, Any]) -> None:
        ident_path = self.path.with_name(self.path.name + ".identity.json")
        if ident_path.is_file() and self.path.is_file() and self.path.stat().st_size:
            old = json.loads(ident_path.read_text())
            diff = sorted(k for k in set(old) | set(identity) if old.get(k) != identity.get(k))
            if diff:
                shown = "; ".join(f"{k}: {old.get(k)!r} -> {identity.get(k)!r}" for k in diff)
                raise ValueError(f"{self.path} holds predictions of another run ({shown}); use another output "
                                 f"folder or delete {self.path.name}")
            return
        write_text_atomic(ident_path, json.dumps(identity, indent=1, sort_keys=True))

    def _load(self) -> None:
        rows, self.repaired = read_jsonl_repair(self.path, corrupt="raise")
        if self.repaired:
            logger.warning("%s: dropped a partial last line left by an interrupted run", self.path)
        for i, row in enumerate(rows, 1):
            if not isinstance(row, dict) or self.key not in row:
                raise ValueError(f"{self.path}: corrupt line (row {i} has no {self.key!r} field): {str(row)[:80]!r}")
            k = str(row[self.key])
            if k in self.rows:
                self.duplicates += 1
            else:
                self.rows[k] = row

    def __contains__(self, key: str) -> bool:
        return str(key) in self.rows

    def __len__(self) -> int:
        return len(self.rows)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.rows.get(str(key))

    def append(self, rows: Iterable[dict[str, Any]]) -> int:
        """Append rows whose key is not cached yet; fsync; return how many were written."""
        new = []
        for r in rows:
            k = str(r[self.key])
            if k not in self.rows:
                self.rows[k] = r
                new.append(r)
        if new:
            append_jsonl(self.path, new)
        return len(new)


def generation_identity(settings: Any) -> dict[str, Any]:
    """The sampling settings that change an answer (batch size does not)."""
    return {k: v for k, v in vars(settings).items() if k != "batch_size"}


def weights_stamp(model_path: str | os.PathLike | None) -> list | None:
    """(file, size, mtime) of a local checkpoint's weights: a folder retrained in place is a different model."""
    if model_path is None or not Path(model_path).is_dir():
        return None
    names = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors")
    for name in names:
        f = Path(model_path) / name
        if f.is_file():
            st = f.stat()
            return [name, st.st_size, st.st_mtime_ns]
    return None
