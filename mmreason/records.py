"""The one record schema of mmreason, and validated JSONL I/O.

A JSONL line is one record::

    {"id": "count-000001",
     "images": ["images/count-000001.png"],        # paths relative to the JSONL file
     "video": null,                                 # or {"path": "clip.mp4", "start": 0.0, "end": 4.5}
     "question": "How many red shapes are there?",
     "choices": null,                               # or ["3", "4", "5"] (answer is then the letter)
     "answer": "3",                                 # may be null for unlabeled (MM-UPT) data
     "answer_type": "integer",                      # integer | float | text | choice | list
     "precision": null, "unit": null,
     "solution": "... \\boxed{3}",                  # reference chain-of-thought: the SFT target
     "source": "synth/count", "metadata": {}}

Every consumer (SFT, GRPO, eval, data builder, video) reads records through `mmreason.formats.read_source`
(this file's `iter_records` for our JSONL, the layouts of EasyR1, ms-swift, LLaMA-Factory, verl and NEP beside it),
which names `file:line` and the reason for every bad line. The question may hold `<image>` / `<video>`
placeholders, one per image / video: each is placed where its placeholder stands (`mmreason.chat`).
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import string
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

from mmreason.disk_full import write_text_atomic
from mmreason.errors import RecordError
from mmreason.jsonl import jsonl_lines
from mmreason.media.images import gate_image
from mmreason.prompts import BOXED_INSTRUCTION

logger = logging.getLogger(__name__)

ANSWER_TYPES = ("integer", "float", "text", "choice", "list")
BOXED_SUFFIX = BOXED_INSTRUCTION
LETTERS = string.ascii_uppercase


@dataclass
class Video:
    path: str
    start: float | None = None  # seconds
    end: float | None = None


@dataclass
class Record:
    id: str
    question: str
    answer: str | None = None
    answer_type: str = "text"
    images: list[str] = field(default_factory=list)
    video: Video | None = None
    choices: list[str] | None = None
    precision: int | None = None
    unit: str | None = None
    solution: str | None = None
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    # Directory the relative media paths resolve against (not serialised).
    base_dir: str = field(default=".", repr=False, compare=False)
    # Where the record was read (`file:line`), for errors found later, e.g. when its video is decoded (not serialised).
    origin: str = field(default="", repr=False, compare=False)

    def image_paths(self) -> list[Path]:
        return [resolve_media(p, self.base_dir) for p in self.images]

    def video_path(self) -> Path | None:
        return resolve_media(self.video.path, self.base_dir) if self.video else None

    def choice_letters(self) -> list[str]:
        return list(LETTERS[: len(self.choices or [])])

    def gold_text(self) -> str | None:
        """The gold answer as text; for choice questions the option text of the gold letter."""
        if self.answer is None or self.answer_type != "choice" or not self.choices:
            return self.answer
        idx = LETTERS.find(self.answer.strip().upper()[:1])
        return self.choices[idx] if 0 <= idx < len(self.choices) else self.answer

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("base_dir")
        d.pop("origin")
        return d


def resolve_media(path: str | os.PathLike, base_dir: str | os.PathLike) -> Path:
    """The one media path rule: an absolute path stays as it is; a relative one is relative to `base_dir` (the
    folder of the records JSONL, or of a `save_to_disk` dataset; the working directory for a Hub dataset).
    The result is absolute, so it stays valid whatever the working directory is later."""
    p = Path(path)
    return p if p.is_absolute() else Path(os.path.abspath(Path(base_dir) / p))


_FIELDS = {
    "id": (str,),
    "question": (str,),
    "answer": (str, type(None)),
    "answer_type": (str,),
    "images": (list,),
    "video": (dict, type(None)),
    "choices": (list, type(None)),
    "precision": (int, type(None)),
    "unit": (str, type(None)),
    "solution": (str, type(None)),
    "source": (str,),
    "metadata": (dict,),
}
_REQUIRED = ("id", "question", "answer_type")
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://|data:)")


def record_from_dict(
    d: Any, where: str, base_dir: str | os.PathLike = ".", require_answer: bool = True, check_media: bool = True
) -> Record:
    """Validate one decoded JSON object and build a `Record`; raise `RecordError` naming `where`."""
    if not isinstance(d, dict):
        raise RecordError(where, f"expected a JSON object, got {type(d).__name__}")
    for key in _REQUIRED:
        if key not in d:
            raise RecordError(where, f"missing required field '{key}'")
    unknown = sorted(set(d) - set(_FIELDS))
    if unknown:
        raise RecordError(where, f"unknown field(s) {unknown}; known: {sorted(_FIELDS)}")
    for key, types in _FIELDS.items():
        if key in d and not isinstance(d[key], types) or (key == "precision" and isinstance(d.get(key), bool)):
            want = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise RecordError(where, f"field '{key}' must be {want}, got {type(d[key]).__name__}")
    if not d["id"]:
        raise RecordError(where, "field 'id' is empty")
    if d["answer_type"] not in ANSWER_TYPES:
        raise RecordError(where, f"field 'answer_type' is {d['answer_type']!r}; must be one of {list(ANSWER_TYPES)}")
    answer = d.get("answer")
    if answer is None and require_answer:
        raise RecordError(where, "field 'answer' is missing or null (allowed only for unlabeled data)")
    if answer is not None:
        _check_answer(where, answer, d["answer_type"], d.get("choices"))
    images = d.get("images") or []
    if not all(isinstance(p, str) and p for p in images):
        raise RecordError(where, "field 'images' must be a list of non-empty path strings")
    video = d.get("video")
    for key, p in [("images", p) for p in images] + [("video.path", (video or {}).get("path"))]:
        if isinstance(p, str) and _URL.match(p):
            raise RecordError(where, f"field '{key}' is a URL ({p[:60]}): URLs are not fetched - download the file "
                                     "and give its path (relative to the records file)")
    if video is not None:
        if not isinstance(video.get("path"), str) or set(video) - {"path", "start", "end"}:
            raise RecordError(where, "field 'video' must be {'path': str, 'start': seconds, 'end': seconds}")
        for k in ("start", "end"):
            if video.get(k) is not None and not isinstance(video[k], (int, float)):
                raise RecordError(where, f"field 'video.{k}' must be a number of seconds")
        start, end = video.get("start"), video.get("end")
        if start is not None and start < 0:
            raise RecordError(where, f"field 'video.start' is negative ({start})")
        if start is not None and end is not None and start >= end:
            raise RecordError(where, f"field 'video': start {start} >= end {end}")
        video = Video(**video)
    if images and video:
        raise RecordError(where, "a record has 'images' or 'video', not both")
    _check_text(where, d, len(images), video is not None)
    rec = Record(
        id=d["id"],
        question=d["question"],
        answer=answer,
        answer_type=d["answer_type"],
        images=list(images),
        video=video,
        choices=d.get("choices"),
        precision=d.get("precision"),
        unit=d.get("unit"),
        solution=d.get("solution"),
        source=d.get("source", ""),
        metadata=d.get("metadata", {}),
        base_dir=str(base_dir),
        origin=where,
    )
    if check_media:
        # A converted copy is an absolute path, so `image_paths()` (base_dir / path) returns it as it is.
        gated = [check_image(p, where) for p in rec.image_paths()]
        rec.images = [str(g) if g != p else orig for g, p, orig in zip(gated, rec.image_paths(), rec.images)]
        vp = rec.video_path()
        if vp is not None and not (vp.is_file() or vp.is_dir()):  # a file, a frame list or a frames folder
            raise RecordError(where, f"video file not found: {vp}")
    return rec


IMAGE_PLACEHOLDER, VIDEO_PLACEHOLDER = "<image>", "<video>"
# The model's own vision tokens: in a text field they make the processor count more image slots than images
# (a crash inside training, naming no record) or read text as an image.
VISION_TOKENS = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")


def _check_text(where: str, d: dict, n_images: int, has_video: bool) -> None:
    """No vision token in any text field; `<image>` / `<video>` placeholders (EasyR1, ms-swift, LLaMA-Factory)
    in the question and options either absent or one per image / video."""
    texts = {k: d.get(k) for k in ("question", "answer", "solution", "unit")}
    texts.update({f"choices[{i}]": c for i, c in enumerate(d.get("choices") or [])})
    for key, text in texts.items():
        if isinstance(text, str):
            for tok in VISION_TOKENS:
                if tok in text:
                    raise RecordError(where, f"field '{key}' holds the model's own vision token {tok!r}; images "
                                             "and videos go in 'images' / 'video' (a placeholder is <image> / <video>)")
    prompt = d["question"] + "".join(c for c in d.get("choices") or [] if isinstance(c, str))
    for tag, n in ((IMAGE_PLACEHOLDER, n_images), (VIDEO_PLACEHOLDER, int(has_video))):
        count = prompt.count(tag)
        if count and count != n:
            raise RecordError(where, f"{count} {tag} placeholder(s) in the question but {n} "
                                     f"{'image' if tag == IMAGE_PLACEHOLDER else 'video'}(s) in the record")


def _check_answer(where: str, answer: str, answer_type: str, choices: list | None) -> None:
    if not answer.strip():
        raise RecordError(where, "field 'answer' is empty (it could never be matched; use null for unlabeled data)")
    if answer_type == "integer":
        try:
            int(answer.strip().replace(",", ""))
        except ValueError:
            raise RecordError(where, f"answer {answer!r} is not an integer (answer_type 'integer')") from None
    elif answer_type == "float":
        try:
            float(answer.strip().replace(",", ""))
        except ValueError:
            raise RecordError(where, f"answer {answer!r} is not a number (answer_type 'float')") from None
    elif answer_type == "choice":
        if not choices:
            raise RecordError(where, "answer_type 'choice' needs a non-empty 'choices' list")
        if not all(isinstance(c, str) for c in choices):
            raise RecordError(where, "field 'choices' must be a list of strings")
        letters = LETTERS[: len(choices)]
        if answer.strip() not in letters:
            raise RecordError(where, f"answer {answer!r} must be one of the option letters {list(letters)}")


def check_image(path: Path, where: str) -> Path:
    """The path a stage should feed the model for this image — itself, or an 8-bit RGB copy the image gate
    (`mmreason.media.images`) made of a 16-bit, float, CMYK, transparent, rotated, TIFF/BMP... image. Raises
    `RecordError` for anything unusable (missing, unreadable, a decompression bomb, an extreme aspect ratio).
    The format is taken from the bytes, not the suffix: a JPEG named .png (as in We-Math) is valid."""
    return gate_image(path, where)


@dataclass
class LoadReport:
    """What a lenient load skipped: one `RecordError` per bad line."""

    path: str
    loaded: int = 0
    skipped: list[RecordError] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"{self.path}: loaded {self.loaded}, skipped {len(self.skipped)}"]
        lines += [f"  skipped {e.where}: {e.reason}" for e in self.skipped]
        return "\n".join(lines)


def counted(makers: Iterable[Callable[[], Record]], strict: bool, report: LoadReport | None) -> Iterator[Record]:
    """The record each `make()` returns; its RecordError raises (strict) or is a counted skip in `report`."""
    for make in makers:
        try:
            rec = make()
        except RecordError as e:
            if strict:
                raise
            if report is not None:
                report.skipped.append(e)
            logger.warning("skipping %s", e)
            continue
        if report is not None:
            report.loaded += 1
        yield rec


def iter_records(
    path: str | os.PathLike,
    strict: bool = True,
    require_answer: bool = True,
    check_media: bool = True,
    report: LoadReport | None = None,
) -> Iterator[Record]:
    """Yield validated records from a JSONL file. Strict: the first bad line raises
    `RecordError('file:line', reason)`. Lenient: bad lines are skipped and added to `report`."""
    path = Path(path)
    seen: dict[str, int] = {}

    def parse(lineno: int, raw: bytes) -> Record:
        where = f"{path}:{lineno}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise RecordError(where, f"invalid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})") from None
        try:
            d = json.loads(line)
        except json.JSONDecodeError as e:
            raise RecordError(where, f"invalid JSON ({e.msg} at column {e.colno})") from None
        rec = record_from_dict(d, where, path.parent, require_answer=require_answer, check_media=check_media)
        if rec.id in seen:
            raise RecordError(where, f"duplicate id {rec.id!r} (first on line {seen[rec.id]})")
        seen[rec.id] = lineno
        return rec

    # bytes per line: a bad byte is this line's error, not the whole file's (.jsonl.gz and a BOM: jsonl_lines)
    lines = jsonl_lines(path)
    yield from counted((partial(parse, n, raw) for n, raw in enumerate(lines, 1) if raw.strip()), strict, report)


def load_records(
    path: str | os.PathLike,
    strict: bool = True,
    require_answer: bool = True,
    check_media: bool = True,
) -> tuple[list[Record], LoadReport]:
    report = LoadReport(str(path))
    recs = list(iter_records(path, strict, require_answer, check_media, report))
    if report.skipped:
        logger.warning(report.summary())
    return recs, report


def write_records(path: str | os.PathLike, records: Iterable[Record]) -> int:
    """Write records as JSONL (atomically: temp file then rename). Returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(r.to_json(), ensure_ascii=False, sort_keys=True) + "\n" for r in records]
    write_text_atomic(path, "".join(lines))
    return len(lines)


T = TypeVar("T")


def seeded_subset(items: Sequence[T], n: int | None, seed: int, what: str = "max_samples") -> list[T]:
    """`max_samples` in every stage: a random subset of `n` items drawn with `seed`, kept in their original
    order (all items when `n` is None or not smaller than their count)."""
    if n is None:
        return list(items)
    if n < 1:
        raise ValueError(f"{what} must be >= 1, got {n}")
    if n >= len(items):
        return list(items)

    return [items[i] for i in sorted(random.Random(seed).sample(range(len(items)), n))]
