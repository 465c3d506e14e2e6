"""The benchmark protocol and its registry.

A benchmark is one class (usually one module) that knows how to
- `load` its items (from the spec's data folder / annotations file, or the Hub),
- give each item an `item_id`, its template fields (`prompt_fields`) and its `media` (images, a `VideoInput`),
- `score` a set of predictions (item id -> {"response", ...}) into a scores dict (scores.json),
- write its report (`report_md`, `charts`, any extra file in `write_report`).
`mmreason.eval.run` is the one pipeline over it (`eval run` and `eval score`): prompt rendering (jinja2), the
prediction cache and its identity, generation, scoring and the output files are the same for every benchmark.

A spec YAML picks its plugin with `scorer:` — a built-in name (`@register("name")` in a module of
`mmreason/eval/`, found by scanning the folder), `package.module:Class`, or `path/to/file.py:Class` (relative to
the spec file; `mmreason.plugins.resolve`). Adding a benchmark = one module + one spec YAML.
"""

from __future__ import annotations

import abc
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mmreason.chat import chat_messages
from mmreason.disk_full import write_text_atomic
from mmreason.errors import PluginError
from mmreason.eval.report import table
from mmreason.eval.spec import BenchmarkSpec, load_spec
from mmreason.media.video import ClipRef, clip_config
from mmreason.plugins import discover, resolve as resolve_plugin
from mmreason.usage import UsageError

logger = logging.getLogger(__name__)

# The built-in plugins, imported when a name is resolved (a new module under mmreason/eval/ needs no entry here:
# `scorer: <name>` imports mmreason.eval.<name>).
VIDEO_READERS = ("qwen-vl-utils", "clip")
BUILTIN_MODULES = ("mmreason.eval.records_eval", "mmreason.eval.mathvista", "mmreason.eval.wemath")


@dataclass
class VideoInput:
    """A video input, read by one of two readers:

    * `reader="qwen-vl-utils"` (the official evals' reader, e.g. FutureBench): qwen-vl-utils reads the file and
      samples frames at `fps` (or `nframes` frames) within the pixel bounds. Its `video_start`/`video_end` cut
      keeps the frame AT `end`, so it is not used for cuts: a cut video must use the clip reader.
    * `reader="clip"` (training-format records): `mmreason.media.video.load_clip`, the loader SFT and GRPO use,
      with the cut start <= t < end (a past clip never shows the first future frame), frame lists and frame
      folders; unset settings take the training defaults (`mmreason.media.video.clip_config`).
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
    fill them in order (image paths or PIL images, `VideoInput`s)."""

    id: str
    messages: list[dict[str, Any]]
    media: list[Any] = field(default_factory=list)

    def backend_input(self) -> tuple[list[dict[str, Any]], list[Any]]:
        """(messages, images) for `mmreason.generation`: videos go into their placeholders here, images stay
        for the backend to fill (with the run's pixel bounds)."""
        videos = [m for m in self.media if isinstance(m, VideoInput)]
        images = [m for m in self.media if not isinstance(m, VideoInput)]
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
        """Image paths / PIL images and `VideoInput`s, in placeholder order."""
        return []

    def messages(self, text: str, media: list[Any], system: str | None) -> list[dict[str, Any]]:
        """The chat: optional system message, then the user turn (`mmreason.chat.chat_messages`: media where the
        text's placeholders stand, else before the text)."""
        n_images = sum(not isinstance(m, VideoInput) for m in media)
        n_videos = len(media) - n_images
        if n_videos <= 1:  # `<image>` / `<video>` placeholders placed where they stand (mmreason.chat)
            return chat_messages(text, n_images, system, video=n_videos == 1)
        msgs = chat_messages(text, n_images, system)
        if n_videos:  # several videos: after the images
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
    return json.dumps(row, sort_keys=True, default=str)


def load_json_array(path: Path, text: str) -> list[Any]:
    """A predictions file that starts with '[' must be one JSON array (the official output), not JSONL."""
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
    """id -> row of a predictions file, the first row per id (repeats counted in `Predictions`). Read: our
    predictions JSONL ({"id", "response", ...}), a JSON list of such rows, or lmms-eval's `--log_samples` JSONL
    ({"doc_id", "doc", "resps", "filtered_resps"}: id = doc["id"], else doc_id; response = filtered_resps[0]).
    A bad line, or a row without an id or a response, is an error naming file and line (a file of `prediction`
    rows would otherwise score 0 for every item)."""
    out = Predictions()
    text = read_text(path)
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not a JSON list ({e.msg} at line {e.lineno})") from None
        located = [(f"{path}[{i}]", row) for i, row in enumerate(rows)]
    else:
        located = []
        for lineno, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:
                located.append((f"{path}:{lineno}", json.loads(line)))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not a JSON line ({e.msg})") from None
    for where, row in located:
        if isinstance(row, dict) and "doc_id" in row and ("filtered_resps" in row or "resps" in row):
            row = lmms_eval_row(row)
        if not isinstance(row, dict) or "id" not in row:
            raise ValueError(f"{where}: a prediction needs an 'id' field")
        if "response" not in row:
            raise ValueError(f"{where}: a prediction needs a 'response' field (the row has {sorted(row)})")
        out.add(str(row["id"]), row, where)
    return out


def lmms_eval_row(row: dict[str, Any]) -> dict[str, Any]:
    """An lmms-eval `--log_samples` row as a prediction: the item id from its doc, the filtered response."""
    doc = row.get("doc") if isinstance(row.get("doc"), dict) else {}
    resp = row.get("filtered_resps") or row.get("resps") or [None]
    while isinstance(resp, list):
        resp = resp[0] if resp else None
    return {"id": doc.get("id", row["doc_id"]), "response": resp, "doc_id": row["doc_id"], "source": "lmms-eval"}


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


def builtin_benchmarks() -> dict[str, type[Benchmark]]:
    """name -> class of every built-in benchmark (importing each module of mmreason/eval/ registers its own)."""
    discover("mmreason.eval")
    return dict(BENCHMARKS)


def benchmark_class(spec: BenchmarkSpec) -> type[Benchmark]:
    """The plugin class named by `spec.scorer` (see the module doc)."""
    base = Path(spec.source).parent if spec.source else None
    try:
        cls = resolve_plugin(spec.scorer, "benchmark scorer", builtin_benchmarks(), base,
                             check=lambda c: isinstance(c, type) and issubclass(c, Benchmark),
                             expected="a mmreason.eval.benchmark.Benchmark subclass")
    except PluginError as e:
        raise PluginError(f"{spec.where()}: {e}") from e
    if not cls.name:
        cls.name = cls.__name__
    return cls


def resolve(benchmark: str | Path, data_format: dict | None = None) -> tuple[BenchmarkSpec, Benchmark]:
    """`--benchmark` -> (spec, plugin): a data file a plugin reads directly (e.g. a records .jsonl), a spec
    YAML, a repo spec name (eval/<name>.yaml) or a built-in preset. `data_format` (layout options, `eval run
    --data-format ...`): `benchmark` is a data file or folder read as records in that layout, not detected."""
    if data_format:
        if Path(benchmark).suffix in (".yaml", ".yml"):
            raise UsageError(f"--benchmark {benchmark}: a spec; --data-format and the key flags read a data file or "
                             "folder (a spec sets them in its data_format mapping)")
        if not Path(benchmark).exists():
            raise UsageError(f"--benchmark {benchmark}: no such file or folder (--data-format and the key flags read "
                             "a data file or folder as records)")
        records = builtin_benchmarks()["records"]
        spec = records.spec_for(Path(benchmark))
        spec.data_format = dict(data_format)
        return spec, records(spec)
    spec = None
    for cls in builtin_benchmarks().values():
        spec = cls.detect(Path(benchmark))
        if spec is not None:
            break
    spec = spec or load_spec(benchmark)
    return spec, benchmark_class(spec)(spec)
