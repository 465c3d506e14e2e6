"""Durable append-only JSONL (the data builder's ledger and records, the eval prediction cache), and the
reader of input JSONL files (`jsonl_lines`: gzip by its magic bytes, a UTF-8 BOM dropped).

Appends: one `os.write` per line on an O_APPEND descriptor, fsync'd per batch, so a killed job leaves at most
one partial last line. `read_jsonl_repair` cuts that line off (fsync'd) so a rerun regenerates exactly the
rows that have no complete line.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from pathlib import Path
from typing import Iterable, Iterator

from mmreason.disk_full import guard_disk_full, write_text_atomic

GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz")


def is_jsonl_name(path: str | os.PathLike) -> bool:
    """A records file by its name: .jsonl or .jsonl.gz."""
    return str(path).lower().endswith(JSONL_SUFFIXES)


def jsonl_lines(path: str | os.PathLike) -> Iterator[bytes]:
    """The raw lines (bytes, newline kept) of an input JSONL file: gzip-compressed ones (known by their first bytes,
    whatever the name) are decompressed; a UTF-8 byte-order mark before line 1 (Windows editors) is dropped. A
    corrupt or truncated gzip stream is a ValueError naming the file and the line it stopped at."""
    with open(path, "rb") as raw:
        gz = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        f = gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw
        lineno = 0
        try:
            for line in f:
                lineno += 1
                yield line[len(UTF8_BOM):] if lineno == 1 and line.startswith(UTF8_BOM) else line
        except (EOFError, OSError, zlib.error) as e:
            if not gz:
                raise
            raise ValueError(f"{path}:{lineno + 1}: the gzip stream is corrupt or truncated ({e}); "
                             f"the {lineno} line(s) before it were read - recompress the file") from None


def _write_lines(fd: int, rows: Iterable[dict], sort_keys: bool, path: Path) -> int:
    n = 0
    with guard_disk_full(path, "a line of it"):
        for row in rows:
            data = (json.dumps(row, ensure_ascii=False, sort_keys=sort_keys) + "\n").encode("utf-8")
            written = os.write(fd, data)
            while written < len(data):  # a short write (rare: signals, full disk) is completed, not lost
                written += os.write(fd, data[written:])
            n += 1
        os.fsync(fd)
    return n


class AppendLog:
    """An append-only JSONL file kept open for a long job; `append` fsyncs each batch."""

    def __init__(self, path: str | os.PathLike, sort_keys: bool = True):
        self.path = Path(path)
        self.sort_keys = sort_keys
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(self, rows: Iterable[dict]) -> int:
        return _write_lines(self.fd, rows, self.sort_keys, self.path)

    def close(self) -> None:
        os.close(self.fd)


def append_jsonl(path: str | os.PathLike, rows: Iterable[dict], sort_keys: bool = False) -> int:
    """Open, append `rows` (fsync'd), close; returns the number of rows written."""
    log = AppendLog(path, sort_keys=sort_keys)
    try:
        return log.append(rows)
    finally:
        log.close()


def read_jsonl_repair(path: str | os.PathLike, corrupt: str = "cut") -> tuple[list, int]:
    """The rows of a JSONL file and how many lines were cut off.

    A last line without its newline, or a garbled last line, is a write a kill interrupted: it is cut off
    (the file is truncated and fsync'd). A garbled line before the last is not a torn write: with
    corrupt="raise" it is a ValueError naming file and line; with corrupt="cut" (for files whose rows can be
    regenerated) it and everything after it are cut off and counted."""
    if corrupt not in ("cut", "raise"):
        raise ValueError(f"corrupt must be 'cut' or 'raise', not {corrupt!r}")
    path = Path(path)
    if not path.exists():
        return [], 0
    data = path.read_bytes()
    rows: list = []
    good_bytes = dropped = pos = 0
    lineno = 0
    while pos < len(data):
        lineno += 1
        nl = data.find(b"\n", pos)
        if nl < 0:
            dropped += 1
            break
        line = data[pos:nl]
        if line.strip():
            try:
                rows.append(json.loads(line.decode("utf-8")))
            except (UnicodeDecodeError, json.JSONDecodeError):
                if corrupt == "raise" and nl + 1 < len(data):
                    raise ValueError(f"{path}:{lineno}: corrupt line (not a torn last write): {line[:80]!r}") from None
                dropped += 1 + data[nl + 1 :].count(b"\n") + (not data.endswith(b"\n"))
                break
        pos = good_bytes = nl + 1
    if good_bytes < len(data):
        with open(path, "r+b") as f:
            f.truncate(good_bytes)
            f.flush()
            os.fsync(f.fileno())
    return rows, dropped


def rewrite_jsonl(path: str | os.PathLike, rows: Iterable[dict], sort_keys: bool = True) -> None:
    """Replace the file atomically (tmp + fsync + rename)."""
    write_text_atomic(path, "".join(json.dumps(row, ensure_ascii=False, sort_keys=sort_keys) + "\n" for row in rows))
