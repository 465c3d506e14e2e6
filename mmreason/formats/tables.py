"""Open a data source as rows: a JSONL file, a JSON list, a parquet file or folder of shards, a `save_to_disk`
folder, or a Hub id `org/name[@split]` (EasyR1's spelling; online only).

Each row comes with `where` (`file:line` for JSONL, `file[i]` for the others), the name its errors carry.
Image columns of Arrow data are read undecoded ({bytes, path}), so a corrupt image is that row's error."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from mmreason.errors import RecordError
from mmreason.jsonl import UTF8_BOM, jsonl_lines

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w.-]+)?$")
SAVE_TO_DISK_MARKERS = ("dataset_info.json", "dataset_dict.json", "state.json")


@dataclass
class Table:
    """Rows of one source. `rows()` yields (where, row) where row is a dict, or a RecordError for a line that does
    not parse; `columns` are the first readable row's keys (JSON) or the dataset's columns (Arrow)."""

    name: str
    kind: str  # jsonl | json | parquet | save_to_disk | hub
    base_dir: Path
    columns: list[str]
    rows: Callable[[], Iterator[tuple[str, Any]]]
    path: Path | None = None


def open_table(spec: str | os.PathLike, split: str = "train") -> Table:
    """`spec` may end in `@split` (a Hub id, a parquet folder or a save_to_disk DatasetDict: default `split`)."""
    label = spec = str(spec)  # `label` names the rows (`label[i]`) and the derived ids: the split stays in it
    p = Path(spec).expanduser()
    if "@" in spec and not p.exists() and Path(spec.rsplit("@", 1)[0]).expanduser().exists():
        spec, split = spec.rsplit("@", 1)
        p = Path(spec).expanduser()
    if p.is_file():
        if p.suffix == ".parquet":
            return _arrow(spec, "parquet", p.parent, lambda ds: ds.load_dataset("parquet", data_files=[str(p)],
                                                                                 split="train"), p)
        return _json_file(p)
    if p.is_dir():
        if any((p / m).exists() for m in SAVE_TO_DISK_MARKERS):
            return _arrow(label, "save_to_disk", p, lambda ds: _pick(ds.load_from_disk(str(p)), split, spec), p)
        if any(p.rglob("*.parquet")):  # a downloaded Hub folder: splits from the shard names, as EasyR1 reads it
            return _arrow(label, "parquet", p, lambda ds: ds.load_dataset("parquet", data_dir=str(p), split=split), p)
        raise FileNotFoundError(f"{spec}: a folder without parquet shards or a `save_to_disk` dataset "
                                f"({', '.join(SAVE_TO_DISK_MARKERS)})")
    if HUB_ID.match(spec) and not spec.endswith((".json", ".jsonl", ".parquet")):
        name, _, hub_split = spec.partition("@")
        if os.environ.get("HF_DATASETS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1":
            raise FileNotFoundError(
                f"{spec}: not a file or folder here, and reading the Hub dataset {name!r} needs the network "
                "(HF_DATASETS_OFFLINE / HF_HUB_OFFLINE is set): download it (huggingface-cli download --repo-type "
                "dataset ...) and pass the folder")
        return _arrow(spec, "hub", Path.cwd(), lambda ds: ds.load_dataset(name, split=hub_split or split), None)
    raise FileNotFoundError(f"data file not found: {spec}")


def _pick(ds, split: str, spec: str):
    import datasets  # lazy: datasets (~1.6 s), for Hub / parquet / arrow sources only

    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise ValueError(f"{spec}: split {split!r} not in {list(ds)}")
        return ds[split]
    return ds


def _arrow(spec: str, kind: str, base: Path, load, path: Path | None) -> Table:
    import datasets  # lazy: datasets (~1.6 s), for Hub / parquet / arrow sources only

    ds = _undecoded(load(datasets))
    return Table(spec, kind, base.resolve(), list(ds.column_names),
                 lambda: ((f"{spec}[{i}]", row) for i, row in enumerate(ds)), path)


def _undecoded(ds):
    """Image columns (one image or a list) read as raw {bytes, path}."""
    import datasets  # lazy: datasets (~1.6 s), for Hub / parquet / arrow sources only

    for name, feat in ds.features.items():
        if isinstance(feat, datasets.Image):
            ds = ds.cast_column(name, datasets.Image(decode=False))
        elif isinstance(getattr(feat, "feature", None), datasets.Image):
            ds = ds.cast_column(name, datasets.List(datasets.Image(decode=False)))
    return ds


def _json_file(p: Path) -> Table:
    with open(p, "rb") as f:
        head = f.read(4096).lstrip()
    if head.startswith(UTF8_BOM):
        head = head[len(UTF8_BOM):].lstrip()
    if head.startswith(b"["):  # a JSON list (ms-swift, LLaMA-Factory, NEP's EasyR1 JSON)
        try:
            items = json.loads(p.read_bytes().decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise RecordError(str(p), f"not a readable JSON list: {e}") from None
        columns = sorted(items[0]) if items and isinstance(items[0], dict) else []
        return Table(str(p), "json", p.parent.resolve(), columns,
                     lambda: ((f"{p}[{i}]", row) for i, row in enumerate(items)), p)
    return Table(str(p), "jsonl", p.parent.resolve(), _first_keys(p), lambda: _jsonl_rows(p), p)


def _jsonl_rows(p: Path) -> Iterator[tuple[str, Any]]:
    # bytes per line: a bad byte is this line's error, not the whole file's (.jsonl.gz and a BOM: jsonl_lines)
    for lineno, raw in enumerate(jsonl_lines(p), 1):
        if not raw.strip():
            continue
        where = f"{p}:{lineno}"
        try:
            yield where, json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            yield where, RecordError(where, f"invalid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})")
        except json.JSONDecodeError as e:
            yield where, RecordError(where, f"invalid JSON ({e.msg} at column {e.colno})")


def _first_keys(p: Path) -> list[str]:
    for _, row in _jsonl_rows(p):
        if isinstance(row, dict):
            return sorted(row)
    return []
