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

Every consumer (SFT, GRPO, eval, data builder, video) reads records through
`load_records`, which names `file:line` and the reason for every bad line.
"""

from __future__ import annotations

import json
import logging
import os
import string
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

logger = logging.getLogger(__name__)

ANSWER_TYPES = ("integer", "float", "text", "choice", "list")
BOXED_SUFFIX = "Please reason step by step, and put your final answer within \\boxed{}."
LETTERS = string.ascii_uppercase


class RecordError(ValueError):
    """A bad record: `where` is `file:line` (or a record id), `reason` says what is wrong."""

    def __init__(self, where: str, reason: str):
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


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
        return [Path(self.base_dir) / p for p in self.images]

    def video_path(self) -> Path | None:
        return Path(self.base_dir) / self.video.path if self.video else None

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
        for p in rec.image_paths():
            check_image(p, where)
        vp = rec.video_path()
        if vp is not None and not (vp.is_file() or vp.is_dir()):  # a file, a frame list or a frames folder
            raise RecordError(where, f"video file not found: {vp}")
    return rec


def _check_answer(where: str, answer: str, answer_type: str, choices: list | None) -> None:
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


def check_image(path: Path, where: str) -> None:
    """Raise `RecordError` unless `path` is a readable image. The format is taken from the
    bytes, not the suffix: a JPEG named .png (as in We-Math) is valid."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise RecordError(where, f"image file not found: {path}")
    try:
        with Image.open(path) as im:
            im.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise RecordError(where, f"corrupt or unreadable image {path}: {e}") from None


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
    base = path.parent
    seen: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                try:
                    d = json.loads(line)
                except json.JSONDecodeError as e:
                    raise RecordError(where, f"invalid JSON ({e.msg} at column {e.colno})") from None
                rec = record_from_dict(d, where, base, require_answer=require_answer, check_media=check_media)
                if rec.id in seen:
                    raise RecordError(where, f"duplicate id {rec.id!r} (first on line {seen[rec.id]})")
                seen[rec.id] = lineno
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
    tmp = path.with_suffix(path.suffix + ".tmp")
    n = 0
    with open(tmp, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r.to_json(), ensure_ascii=False, sort_keys=True) + "\n")
            n += 1
    os.replace(tmp, path)
    return n


# ---------------------------------------------------------------- prompt formats


def question_text(rec: Record, suffix: str | None = BOXED_SUFFIX) -> str:
    """The user text: question, lettered options for choice questions, then the instruction suffix."""
    text = rec.question
    if rec.choices:
        text += "\nChoices:\n" + "\n".join(f"({l}) {c}" for l, c in zip(LETTERS, rec.choices))
    if suffix:
        text += "\n" + suffix
    return text


def user_message(rec: Record, suffix: str | None = BOXED_SUFFIX) -> dict[str, Any]:
    return chat_messages(question_text(rec, suffix), len(rec.images), video=rec.video is not None)[0]


def chat_messages(text: str, n_images: int = 0, system: str | None = None, video: bool = False) -> list[dict]:
    """The one prompt layout (training and evaluation): optional system message, then a user turn of
    `{"type": "image"}` placeholders (a video placeholder), then the text."""
    msgs = [{"role": "system", "content": [{"type": "text", "text": system}]}] if system else []
    content: list[dict[str, Any]] = [{"type": "image"} for _ in range(n_images)]
    if video:
        content.append({"type": "video"})
    content.append({"type": "text", "text": text})
    return msgs + [{"role": "user", "content": content}]


def prompt_messages(rec: Record, system: str | None = None, suffix: str | None = BOXED_SUFFIX) -> list[dict]:
    return chat_messages(question_text(rec, suffix), len(rec.images), system, video=rec.video is not None)


def to_sft_example(rec: Record, system: str | None = None, suffix: str | None = BOXED_SUFFIX) -> dict[str, Any]:
    """TRL conversational SFT format: {'messages': [...], 'images': [paths]}."""
    if not rec.solution:
        raise RecordError(rec.id, "record has no 'solution' (the SFT target)")
    msgs = prompt_messages(rec, system, suffix)
    msgs.append({"role": "assistant", "content": [{"type": "text", "text": rec.solution}]})
    return {"messages": msgs, "images": [str(p) for p in rec.image_paths()]}


def to_grpo_example(rec: Record, system: str | None = None, suffix: str | None = BOXED_SUFFIX) -> dict[str, Any]:
    """TRL GRPO prompt format plus the columns reward functions receive."""
    return {
        "prompt": prompt_messages(rec, system, suffix),
        "images": [str(p) for p in rec.image_paths()],
        "answer": rec.answer,
        "answer_type": rec.answer_type,
        "choices": rec.choices,
        "precision": rec.precision,
        "record_id": rec.id,
        "source": rec.source or "",
    }
