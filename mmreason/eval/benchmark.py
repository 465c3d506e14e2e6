"""The benchmark protocol and its registry.

A benchmark is one class (usually one module) that knows how to
- `load` its items (from the spec's data folder / annotations file, or the Hub),
- give each item an `item_id`, its template fields (`prompt_fields`) and its `media` (images, a `Video`),
- `score` a set of predictions (item id -> {"response", ...}) into a scores dict (scores.json),
- write its report (`report_md`, `charts`, any extra file in `write_report`).
`mmreason.eval.run` is the one pipeline over it (`eval run` and `eval score`): prompt rendering (jinja2), the
prediction cache and its identity, generation, scoring and the output files are the same for every benchmark.

A spec YAML picks its plugin with `scorer:` — a registered name (`@register("name")`; a name not yet
registered is looked up as the module `mmreason.eval.<name>`), `package.module:Class`, or
`path/to/file.py:Class` (relative to the spec file). Adding a benchmark = one module + one spec YAML.
"""

from __future__ import annotations

import abc
import importlib
import importlib.util
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mmreason.disk_full import write_text_atomic
from mmreason.eval.report import table
from mmreason.eval.spec import BenchmarkSpec
from mmreason.plugins import import_file

logger = logging.getLogger(__name__)

# The built-in plugins, imported when a name is resolved (a new module under mmreason/eval/ needs no entry here:
# `scorer: <name>` imports mmreason.eval.<name>).
VIDEO_READERS = ("qwen-vl-utils", "clip")
BUILTIN_MODULES = ("mmreason.eval.records_eval", "mmreason.eval.mathvista", "mmreason.eval.wemath")


@dataclass
class Video:
    """A video input, read by one of two readers:

    * `reader="qwen-vl-utils"` (the official evals' reader, e.g. FutureBench): qwen-vl-utils reads the file and
      samples frames at `fps` (or `nframes` frames) within the pixel bounds. Its `video_start`/`video_end` cut
      keeps the frame AT `end`, so it is not used for cuts: a cut video must use the clip reader.
    * `reader="clip"` (training-format records): `mmreason.video.media.load_clip`, the loader SFT and GRPO use,
      with the cut start <= t < end (a past clip never shows the first future frame), frame lists and frame
      folders; unset settings take the training defaults (`mmreason.video.media.clip_config`).
    """

    path: str
    fps: float | None = None
    nframes: int | None = None
    max_frames: int | None = None
    min_pixels: int | None = None
    max_pixels: int | None = None
    total_pixels: int | None = None
    start: float | None = None
    end: float | None = None
    reader: str = "qwen-vl-utils"

    def __post_init__(self):
        if self.reader not in VIDEO_READERS:
            raise ValueError(f"video reader {self.reader!r}; choose from {VIDEO_READERS}")
        if self.reader == "qwen-vl-utils" and (self.start is not None or self.end is not None):
            raise ValueError(f"{self.path}: a cut (start/end) needs reader='clip' (qwen-vl-utils keeps the frame "
                             "at `end`, one frame of the future)")
        if self.reader == "clip" and self.nframes is not None:
            raise ValueError(f"{self.path}: reader='clip' samples by fps; nframes is a qwen-vl-utils setting")

    def message_part(self) -> dict[str, Any]:
        """The `{"type": "video", ...}` chat part `mmreason.generation.vision` reads: a qwen-vl-utils element, or
        for the clip reader a `ClipRef` loaded when its batch is encoded."""
        if self.reader == "clip":
            from mmreason.video.media import ClipRef, clip_config

            cfg = clip_config(self.fps, self.max_frames, self.min_pixels, self.max_pixels, self.total_pixels)
            return {"type": "video", "video": ClipRef(str(self.path), cfg, self.start, self.end, str(self.path))}
        part: dict[str, Any] = {"type": "video", "video": str(self.path)}
        for key, val in (("fps", self.fps), ("nframes", self.nframes), ("max_frames", self.max_frames),
                         ("min_pixels", self.min_pixels),
                         ("max_pixels", self.max_pixels), ("total_pixels", self.total_pixels),
                         ("video_start", self.start), ("video_end", self.end)):
            if val is not None:
                part[key] = val
        return part


@dataclass
class Item:
    """One prompt: chat messages with `{"type": "image"}` / `{"type": "video"}` placeholders, and the media that
    fill them in order (image paths or PIL images, `Video`s)."""

    id: str
    messages: list[dict[str, Any]]
    media: list[Any] = field(default_factory=list)

    def backend_input(self) -> tuple[list[dict[str, Any]], list[Any]]:
        """(messages, images) for `mmreason.generation`: videos go into their placeholders here, images stay
        for the backend to fill (with the run's pixel bounds)."""
        videos = [m for m in self.media if isinstance(m, Video)]
        images = [m for m in self.media if not isinstance(m, Video)]
        if not videos:
            return self.messages, images
        it = iter(videos)
        msgs = []
        for m in self.messages:
            m = dict(m)
            if isinstance(m.get("content"), list):
                parts = []
                for part in m["content"]:
                    if part.get("type") == "video" and "video" not in part:
                        v = next(it, None)
                        if v is None:
                            raise ValueError(f"item {self.id}: more video placeholders than videos")
                        part = v.message_part()
                    parts.append(part)
                m["content"] = parts
            msgs.append(m)
        if next(it, None) is not None:
            raise ValueError(f"item {self.id}: more videos than video placeholders")
        return msgs, images


@dataclass
class ScoreOptions:
    """What `score` may use besides the predictions; a benchmark ignores what it has no use for."""

    mode: str
    judge: Any = None
    breakdown_from_predictions: bool = False


class Benchmark(abc.ABC):
    """Base class of the benchmark plugins; see the module doc. One instance per run, built from its spec.
    Required: load, item_id, prompt_fields, score; the rest has defaults."""

    name: ClassVar[str] = ""  # the registry name (set by @register)
    modes: ClassVar[tuple[str, ...]] = ("boxed",)  # scoring modes; the first is `eval score`'s default
    fields: ClassVar[tuple[str, ...]] = ("question", "instruction")  # the template fields `prompt_fields` gives
    default_template: ClassVar[str | None] = None  # the prompt_template when the spec sets none (None: the spec default)
    uses_model_template: ClassVar[bool] = False  # items in the training format: a checkpoint's template applies
    media_hint: ClassVar[str] = "check the benchmark's data folder"

    def __init__(self, spec: BenchmarkSpec):
        self.spec = spec

    # ---- data
    @classmethod
    def detect(cls, path: Path) -> BenchmarkSpec | None:
        """A spec for a data file this benchmark reads directly (`--benchmark FILE`), else None."""
        return None

    def data_location(self, annotations: str | Path | None) -> tuple[Path | None, str]:
        """(data folder, split) from `eval score --annotations`: a folder, or its <split>.json file;
        without it, the spec's (None = the Hub)."""
        if annotations is None:
            return self.spec.resolved_data_dir(), self.spec.split
        ann = Path(annotations)
        return (ann.parent, ann.stem) if ann.is_file() else (ann, self.spec.split)

    @abc.abstractmethod
    def load(self, data_dir: Path | None, split: str) -> list[Any]:
        raise NotImplementedError

    @abc.abstractmethod
    def item_id(self, item: Any) -> str:
        raise NotImplementedError

    def limit(self, items: list[Any], n: int | None) -> list[Any]:
        """`--limit N`: the first N items."""
        return items if n is None else items[:n]

    def select(self, items: list[Any], ids: set[str]) -> list[Any]:
        """`--only-predicted`: the items with a prediction."""
        return [it for it in items if self.item_id(it) in ids]

    def identity(self) -> dict[str, Any]:
        """Extra entries of the prediction cache's identity (what else changes the answers)."""
        return {}

    # ---- prompts
    @abc.abstractmethod
    def prompt_fields(self, item: Any) -> dict[str, Any]:
        """The template fields of an item (all of `fields` except instruction, which the pipeline adds)."""
        raise NotImplementedError

    def media(self, item: Any) -> list[Any]:
        """Image paths / PIL images and `Video`s, in placeholder order."""
        return []

    def messages(self, text: str, media: list[Any], system: str | None) -> list[dict[str, Any]]:
        """The chat: optional system message, then the user turn (media placeholders, then the text)."""
        from mmreason.records import chat_messages

        n_images = sum(not isinstance(m, Video) for m in media)
        msgs = chat_messages(text, n_images, system)
        n_videos = len(media) - n_images
        if n_videos:
            user = msgs[-1]["content"]
            msgs[-1]["content"] = user[:n_images] + [{"type": "video"} for _ in range(n_videos)] + user[n_images:]
        return msgs

    # ---- predictions and scores
    def read_predictions(self, path: str | Path) -> dict[str, dict[str, Any]]:
        """item id -> prediction row ({"id", "response", ...}) from a predictions JSONL (read only)."""
        return read_jsonl_predictions(path)

    @abc.abstractmethod
    def score(self, predictions: dict[str, dict[str, Any]], items: list[Any], opts: ScoreOptions) -> dict[str, Any]:
        raise NotImplementedError

    # ---- report
    def report_md(self, scores: dict[str, Any]) -> str:
        """A table of the top-level numbers."""
        rows = [[k, v] for k, v in scores.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool) and not (isinstance(v, float) and math.isnan(v))]
        return "\n".join([f"# {scores.get('benchmark', self.spec.name)} — mode `{scores.get('mode')}`", "",
                          table(["score", "value"], rows), ""])

    def charts(self, scores: dict[str, Any], out_dir: Path) -> list[Path]:
        return []

    def write_report(self, scores: dict[str, Any], items: list[Any], predictions: dict[str, dict[str, Any]],
                     out_dir: Path) -> list[Path]:
        """report.md and the charts (and any file a benchmark adds)."""
        path = out_dir / "report.md"
        write_text_atomic(path, self.report_md(scores) + "\n")
        return [path, *self.charts(scores, out_dir)]


class Predictions(dict):
    """item id -> prediction row, the first row per id kept; what reading met on the way: `conflicts` (an id
    seen again with different content: {"id", "kept", "dropped"} — `where` strings), `identical` (repeats with the
    same content) and `skipped` ("file:line: reason" of lines that are no prediction)."""

    def __init__(self):
        super().__init__()
        self.conflicts: list[dict[str, str]] = []
        self.identical = 0
        self.skipped: list[str] = []
        self._where: dict[str, str] = {}

    def add(self, key: str, row: dict[str, Any], where: str) -> None:
        if key not in self:
            self[key], self._where[key] = row, where
        elif _canonical(self[key]) == _canonical(row):
            self.identical += 1
        else:
            self.conflicts.append({"id": key, "kept": self._where[key], "dropped": where})

    def skip(self, where: str, reason: str) -> None:
        self.skipped.append(f"{where}: {reason}")
        logger.warning("%s: skipping %s", where, reason)

    def report(self) -> dict[str, Any]:
        return {"conflicting": self.conflicts, "identical_repeats": self.identical, "skipped_lines": self.skipped}


def _canonical(row: Any) -> str:
    import json

    return json.dumps(row, sort_keys=True, default=str)


def load_json_array(path: Path, text: str) -> list[Any]:
    """A predictions file that starts with '[' must be one JSON array (the official output), not JSONL."""
    import json

    from mmreason.usage import UsageError

    try:
        rows = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"{path}: starts with '[' but is not one JSON array ({e.msg}, line {e.lineno}): give the "
                         "official output (one JSON array) or a predictions JSONL (one JSON object per line)") from None
    if not isinstance(rows, list):
        raise UsageError(f"{path}: expected a JSON array of predictions, got {type(rows).__name__}")
    return rows


def read_text(path: str | Path) -> str:
    """A predictions file's text; invalid UTF-8 is an error naming file:line (not a byte offset)."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8").removeprefix("\ufeff")  # a BOM from a Windows editor is no character
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise ValueError(f"{path}:{line}: invalid UTF-8 (byte 0x{data[e.start]:02x} at column {col})") from None


def read_jsonl_predictions(path: str | Path) -> Predictions:
    """id -> row of a predictions JSONL, the first row per id (repeats counted in `Predictions`); a bad line is an
    error naming file and line."""
    import json

    out = Predictions()
    for lineno, line in enumerate(read_text(path).split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{lineno}: not a JSON line ({e.msg})") from None
        if not isinstance(row, dict) or "id" not in row:
            raise ValueError(f"{path}:{lineno}: a prediction needs an 'id' field")
        out.add(str(row["id"]), row, f"{path}:{lineno}")
    return out


# ---------------------------------------------------------------- registry

BENCHMARKS: dict[str, type[Benchmark]] = {}


def register(name: str):
    """Class decorator: make a Benchmark subclass available as `scorer: <name>`."""

    def deco(cls: type[Benchmark]) -> type[Benchmark]:
        if not (isinstance(cls, type) and issubclass(cls, Benchmark)):
            raise TypeError(f"@register({name!r}): {cls!r} is not a Benchmark subclass")
        cls.name = name
        BENCHMARKS[name] = cls
        return cls

    return deco


def _load_builtins() -> None:
    for mod in BUILTIN_MODULES:
        importlib.import_module(mod)


def _from_file(path: Path, cls_name: str, where: str) -> type:
    path = path.resolve()
    if not path.is_file():
        raise FileNotFoundError(f"{where}: benchmark plugin file not found: {path}")
    module = import_file(path, "mmreason_benchmark_plugin")
    if not hasattr(module, cls_name):
        raise ValueError(f"{where}: {path} has no class {cls_name!r}")
    return getattr(module, cls_name)


def benchmark_class(spec: BenchmarkSpec) -> type[Benchmark]:
    """The plugin class named by `spec.scorer` (see the module doc)."""
    scorer, where = spec.scorer, spec.where()
    if ":" in scorer:
        target, cls_name = scorer.rsplit(":", 1)
        if target.endswith(".py"):
            p = Path(target).expanduser()
            if not p.is_absolute() and spec.source:
                p = Path(spec.source).parent / p
            cls = _from_file(p, cls_name, where)
        else:
            try:
                cls = getattr(importlib.import_module(target), cls_name)
            except (ImportError, AttributeError) as e:
                raise ValueError(f"{where}: scorer {scorer!r}: {e}") from e
        if not (isinstance(cls, type) and issubclass(cls, Benchmark)):
            raise ValueError(f"{where}: scorer {scorer!r} is not a mmreason.eval.benchmark.Benchmark subclass")
        if not cls.name:
            cls.name = cls.__name__
        return cls
    _load_builtins()
    if scorer not in BENCHMARKS and scorer.isidentifier():
        if importlib.util.find_spec(f"mmreason.eval.{scorer}") is not None:
            importlib.import_module(f"mmreason.eval.{scorer}")
    if scorer not in BENCHMARKS:
        raise ValueError(f"{where}: unknown scorer {scorer!r}; registered: {sorted(BENCHMARKS)} (or "
                         f"`module:Class`, `file.py:Class`)")
    return BENCHMARKS[scorer]


def resolve(benchmark: str | Path) -> tuple[BenchmarkSpec, Benchmark]:
    """`--benchmark` -> (spec, plugin): a data file a plugin reads directly (e.g. a records .jsonl), a spec
    YAML, a repo spec name (eval/<name>.yaml) or a built-in preset."""
    from mmreason.eval.spec import load_spec

    _load_builtins()
    spec = None
    for cls in BENCHMARKS.values():
        spec = cls.detect(Path(benchmark))
        if spec is not None:
            break
    spec = spec or load_spec(benchmark)
    return spec, benchmark_class(spec)(spec)
