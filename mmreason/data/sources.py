"""Source questions for the data builder: our records JSONL, or any `datasets` dataset mapped to records.

`iter_sources(cfg, media_dir, base_dir)` yields `SourceItem`s in source order. A bad row never stops
the build: it comes back as an item with `error` set (counted in stats.json with its reason).

A source in a layout `mmreason.formats` knows (EasyR1, ms-swift, LLaMA-Factory, verl, NEP; detected from the
columns, or named by `format`) is read by that reader, released targets and `<image>` placeholders kept. Other HF
rows become records through a column mapping (record field -> column). Ready presets:

- `coldstart_rl`: the released cold-start / RL data layout: `images` (list of images), `problem`, `answer`.
- `geometry3k`: Geometry3K as published on the Hub for R1-style training (`images`, `problem`, `answer`).
- `geoqa`: GeoQA-style single-image sets (`image`, `problem`, `answer`).

`<image>` placeholders in the question text are removed (our prompts put images first), and an answer
written as `\\boxed{x}` or `<answer>x</answer>` is reduced to `x`.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from mmreason.verify import extract_boxed
from mmreason.data.recipe import SourceConfig
from mmreason.errors import RecordError
from mmreason.formats import LAYOUT_NAMES, DataFormatArguments, iter_rows
from mmreason.jsonl import is_jsonl_name, jsonl_lines
from mmreason.records import ANSWER_TYPES, Record, record_from_dict

PRESETS: dict[str, dict[str, str]] = {
    "coldstart_rl": {"images": "images", "question": "problem", "answer": "answer"},
    "geometry3k": {"images": "images", "question": "problem", "answer": "answer"},
    "geoqa": {"images": "image", "question": "problem", "answer": "answer"},
}
MAPPABLE = ("id", "question", "answer", "images", "choices", "answer_type", "precision", "unit", "solution")


@dataclass
class SourceItem:
    index: int
    id: str
    record: Record | None = None
    error: str | None = None  # reason the row cannot be used (counted, never fatal)
    detail: str = ""


def is_records_source(cfg: SourceConfig) -> bool:
    return cfg.format == "records" or (cfg.format == "auto" and is_jsonl_name(cfg.path))


def iter_sources(cfg: SourceConfig, media_dir: Path, base_dir: Path) -> Iterator[SourceItem]:
    """`media_dir`: where HF images are written (inside the output folder); `base_dir`: the folder record
    image paths of HF rows are relative to (the output JSONL's folder)."""
    if is_records_source(cfg):
        yield from _iter_records_jsonl(Path(cfg.path))
    elif cfg.format in LAYOUT_NAMES or (cfg.format == "auto" and not cfg.preset and not cfg.mapping):
        yield from _iter_layout(cfg)
    else:
        yield from _iter_hf(cfg, media_dir, base_dir)


def _iter_layout(cfg: SourceConfig) -> Iterator[SourceItem]:
    """A source in a layout `mmreason.formats` reads (detected, or named by `format`): the released questions and
    targets as they are, each bad row a counted item."""
    opts = DataFormatArguments(data_format=cfg.format if cfg.format in LAYOUT_NAMES else "auto")
    for i, (where, rec) in enumerate(iter_rows(cfg.path, opts, require_answer=False, check_media=False)):
        if isinstance(rec, RecordError):
            yield SourceItem(i, f"row{i}", error="invalid_record", detail=str(rec))
        else:
            yield SourceItem(i, rec.id, record=rec)


def _iter_records_jsonl(path: Path) -> Iterator[SourceItem]:
    if not path.is_file():
        raise FileNotFoundError(f"source.path: records file not found: {path}")
    seen: set[str] = set()
    for i, raw in enumerate(jsonl_lines(path)):  # .jsonl.gz and a BOM too
        if not raw.strip():
            continue
        where = f"{path}:{i + 1}"
        try:
            d = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            yield SourceItem(i, f"line{i + 1}", error="invalid_record", detail=f"{where}: invalid UTF-8 ({e.reason})")
            continue
        except json.JSONDecodeError as e:
            yield SourceItem(i, f"line{i + 1}", error="invalid_record", detail=f"{where}: invalid JSON ({e.msg})")
            continue
        try:
            rec = record_from_dict(d, where, path.parent, require_answer=False, check_media=False)
        except RecordError as e:
            sid = d.get("id") if isinstance(d, dict) and isinstance(d.get("id"), str) and d.get("id") else f"line{i + 1}"
            yield SourceItem(i, sid, error="invalid_record", detail=str(e))
            continue
        if rec.id in seen:
            yield SourceItem(i, f"{rec.id}@line{i + 1}", error="duplicate_id", detail=where)
            continue
        seen.add(rec.id)
        yield SourceItem(i, rec.id, record=rec)


def _open_dataset(cfg: SourceConfig):
    import datasets  # lazy: datasets (~1.6 s), for Hub / parquet / arrow sources only

    p = Path(cfg.path)
    if p.is_dir() and ((p / "dataset_info.json").exists() or (p / "dataset_dict.json").exists()):
        ds = datasets.load_from_disk(str(p))
    elif p.exists():
        files = sorted(p.rglob("*.parquet")) if p.is_dir() else [p]
        if not files:
            raise FileNotFoundError(f"source.path: no dataset (save_to_disk folder or parquet files) in {p}")
        suffix = files[0].suffix.lstrip(".")
        builder = {"parquet": "parquet", "json": "json", "jsonl": "json", "csv": "csv"}.get(suffix)
        if builder is None:
            raise ValueError(f"source.path: cannot read {files[0]} (parquet, json, jsonl, csv or save_to_disk folder)")
        ds = datasets.load_dataset(builder, data_files=[str(f) for f in files], split="train")
    else:  # a Hub id (online only)
        ds = datasets.load_dataset(cfg.path, split=cfg.split)
    if isinstance(ds, datasets.DatasetDict):
        if cfg.split not in ds:
            raise ValueError(f"source.split: {cfg.split!r} not in {list(ds)} of {cfg.path}")
        ds = ds[cfg.split]
    return ds


def _undecoded(ds, column: str):
    """Read image columns as raw {bytes, path} so a corrupt image is a counted skip, not a crash."""
    import datasets  # lazy: datasets (~1.6 s), for Hub / parquet / arrow sources only

    feat = ds.features.get(column)
    if isinstance(feat, datasets.Image):
        return ds.cast_column(column, datasets.Image(decode=False))
    inner = getattr(feat, "feature", None)
    if isinstance(inner, datasets.Image):
        return ds.cast_column(column, datasets.List(datasets.Image(decode=False)))
    return ds


def clean_question(q: str) -> str:
    return re.sub(r"\s*<image>\s*", " ", q).strip()


def clean_answer(a: Any) -> str | None:
    if a is None:
        return None
    if isinstance(a, (list, tuple)):
        return ", ".join(str(x) for x in a)
    s = str(a).strip()
    m = re.search(r"<answer>(.*?)</answer>", s, re.S)
    if m:
        s = m.group(1).strip()
    boxed = extract_boxed(s)
    return (boxed if boxed is not None else s) or None


def _iter_hf(cfg: SourceConfig, media_dir: Path, base_dir: Path) -> Iterator[SourceItem]:
    mapping = dict(PRESETS.get(cfg.preset or "", {}))
    if cfg.preset and cfg.preset not in PRESETS:
        raise ValueError(f"source.preset: {cfg.preset!r} is not one of {sorted(PRESETS)}")
    mapping.update(cfg.mapping)
    bad = sorted(set(mapping) - set(MAPPABLE))
    if bad:
        raise ValueError(f"source.mapping: unknown record field(s) {bad}; mappable: {list(MAPPABLE)}")
    if "question" not in mapping:
        raise ValueError("source.mapping: needs at least a 'question' column (or a preset)")
    ds = _open_dataset(cfg)
    missing = sorted(c for c in mapping.values() if c not in ds.column_names)
    if missing:
        raise ValueError(f"source.mapping: column(s) {missing} not in {cfg.path} (columns: {ds.column_names})")
    if "images" in mapping:
        ds = _undecoded(ds, mapping["images"])
    prefix = cfg.id_prefix or re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(str(cfg.path).rstrip("/")).name) or "hf"
    seen: set[str] = set()
    for i, row in enumerate(ds):
        sid = str(row[mapping["id"]]) if "id" in mapping and row[mapping["id"]] is not None else f"{prefix}-{i:06d}"
        if sid in seen:
            yield SourceItem(i, f"{sid}@row{i}", error="duplicate_id", detail=f"{cfg.path} row {i}")
            continue
        seen.add(sid)
        try:
            rec = _row_to_record(row, mapping, cfg, sid, media_dir, base_dir)
        except (RecordError, ValueError, TypeError, OSError) as e:  # TypeError: e.g. a list where a number goes
            yield SourceItem(i, sid, error="invalid_record", detail=f"{cfg.path} row {i}: {e}")
            continue
        yield SourceItem(i, sid, record=rec)


def _row_to_record(row: dict, mapping: dict, cfg: SourceConfig, sid: str, media_dir: Path, base_dir: Path) -> Record:
    images = []
    if "images" in mapping:
        value = row[mapping["images"]]
        items = value if isinstance(value, list) else ([value] if value is not None else [])
        for j, im in enumerate(items):
            images.append(_materialise_image(im, sid, j, media_dir, base_dir))
    answer_type = str(row[mapping["answer_type"]]) if "answer_type" in mapping else cfg.answer_type
    if answer_type not in ANSWER_TYPES:
        raise ValueError(f"answer_type {answer_type!r} not in {list(ANSWER_TYPES)}")
    choices = row.get(mapping["choices"]) if "choices" in mapping else None
    d = {
        "id": sid,
        "question": clean_question(str(row[mapping["question"]] or "")),
        "answer": clean_answer(row[mapping["answer"]]) if "answer" in mapping else None,
        "answer_type": answer_type,
        "images": images,
        "choices": [str(c) for c in choices] if choices else None,
        "source": f"hf:{cfg.path}",
    }
    for key in ("precision", "unit", "solution"):
        if key in mapping and row[mapping[key]] is not None:
            d[key] = int(row[mapping[key]]) if key == "precision" else str(row[mapping[key]])
    return record_from_dict(d, f"{cfg.path} row {sid}", base_dir, require_answer=False, check_media=False)


def _materialise_image(im: Any, sid: str, j: int, media_dir: Path, base_dir: Path) -> str:
    """Write an HF image ({bytes, path} or PIL) under media_dir; return its path relative to base_dir."""
    media_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(im, dict) and (im.get("bytes") or im.get("path")):
        raw = im.get("bytes")
        if raw is None:
            raw = Path(im["path"]).read_bytes()
    elif hasattr(im, "save"):
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        raw = buf.getvalue()
    else:
        raise ValueError(f"image {j} is neither image bytes nor a PIL image")
    ext = ".jpg" if raw[:2] == b"\xff\xd8" else ".png"
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", sid)
    name = f"{safe}-{hashlib.sha256(sid.encode()).hexdigest()[:6]}-{j}{ext}"
    path = media_dir / name
    if not path.exists():
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(raw)
        tmp.replace(path)
    return str(path.relative_to(base_dir))
