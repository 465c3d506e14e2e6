"""Benchmark specs (`eval/*.yaml`): which benchmark plugin reads and scores it, where the data is, how
prompts are built (jinja2 templates) and how to generate. Field `help` metadata is the documentation."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mmreason.records import BOXED_SUFFIX
from mmreason.usage import UsageError, yaml_problem

SPEC_DIR = Path(__file__).resolve().parents[2] / "eval"  # the repo's eval/ folder
# The fields an explicit spec value overrides in a checkpoint's prompt.json (see mmreason.eval.prompting).
PROMPT_FIELDS = ("system_prompt", "instruction", "min_pixels", "max_pixels")


@dataclass
class BenchmarkSpec:
    name: str = field(metadata={"help": "Benchmark name (used in outputs)."})
    scorer: str = field(metadata={
        "help": "The benchmark plugin (mmreason.eval.benchmark): a registered name (mathvista | wemath | records, or "
                "<name> for a module mmreason/eval/<name>.py), `package.module:Class`, or `path/to/file.py:Class` "
                "(relative to this spec file)."})
    data_dir: str | None = field(default=None, metadata={
        "help": "Local folder in the official layout (<split>.json + images); relative paths resolve against "
                "the spec file. null: load `hub_id` from the Hugging Face Hub (online)."})
    hub_id: str | None = field(default=None, metadata={"help": "Hub dataset id used when data_dir is null."})
    split: str = field(default="testmini", metadata={"help": "Split / file stem (<data_dir>/<split>.json)."})
    system_prompt: str | None = field(default="You are a helpful assistant.", metadata={
        "help": "System message. When set in the spec it overrides the checkpoint's prompt.json (loudly, if they "
                "differ); when left out, the checkpoint's system prompt is used, else this default."})
    prompt_template: str = field(default="{{ query }}{% if instruction %}\n{{ instruction }}{% endif %}", metadata={
        "help": "User text, a jinja2 template (`\\boxed{}` is plain text). Fields: {{ query }} (the benchmark's "
                "official prompt: MathVista query.json text, We-Math official template), {{ question }}, "
                "{{ choices }} (MathVista, lettered lines) / {{ option }} (We-Math), {{ instruction }}; each plugin "
                "lists its fields."})
    instruction: str | None = field(default=BOXED_SUFFIX, metadata={
        "help": "Value of {{ instruction }}. Set in the spec it overrides the checkpoint's prompt.json; left out, "
                "the checkpoint's instruction is used, else this default."})
    mode: str = field(default="boxed", metadata={
        "help": "Scoring: mathvista official|judge|boxed; wemath official|boxed; records: boxed."})
    knowledge_nodes: str | None = field(default=None, metadata={
        "help": "We-Math knowledge tree JSON (per-domain scores); relative to data_dir."})
    max_new_tokens: int = field(default=16384, metadata={"help": "New tokens per answer on GPU."})
    max_new_tokens_cpu: int = field(default=512, metadata={"help": "New tokens per answer without a GPU."})
    temperature: float = field(default=0.2, metadata={"help": "0 = greedy."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus mass when sampling."})
    batch_size: int = field(default=16, metadata={"help": "Prompts per HF generate() call."})
    min_pixels: int | None = field(default=None, metadata={
        "help": "Per-image min pixels (qwen-vl-utils); left out: the checkpoint's prompt.json bound, if any."})
    max_pixels: int | None = field(default=None, metadata={
        "help": "Per-image max pixels (qwen-vl-utils); left out: the checkpoint's prompt.json bound, if any."})
    judge_model: str | None = field(default=None, metadata={"help": "Judge model id for mode 'judge'."})
    video_root: str | None = field(default=None, metadata={
        "help": "Folder the items' video paths resolve against (FutureBench: V1-33K/first_part_video, lmms-eval's "
                "cache_dir); relative to the spec file. null: the data folder (the annotations file's folder)."})
    video_fps: float | None = field(default=None, metadata={
        "help": "Frames sampled per second of each video (qwen-vl-utils; null: its default, 2)."})
    video_max_frames: int | None = field(default=None, metadata={
        "help": "Most frames sampled from one video (null: qwen-vl-utils' default)."})
    video_min_pixels: int | None = field(default=None, metadata={
        "help": "Per-frame min pixels (null: qwen-vl-utils' default, 128*28*28, which upscales small frames)."})
    video_max_pixels: int | None = field(default=None, metadata={
        "help": "Per-frame max pixels (null: from video_total_pixels / frames, capped at 768*28*28)."})
    video_total_pixels: int | None = field(default=None, metadata={
        "help": "Pixel budget of all frames of a video together (qwen-vl-utils `total_pixels`)."})
    data_format: dict = field(default_factory=dict, metadata={
        "help": "Records benchmarks (a data file or folder): how it is read (mmreason.formats), keys data_format "
                "(auto | records | easyr1 | swift | messages | sharegpt | verl | nep_video), prompt_key, answer_key, "
                "image_key, video_key, media_dir; `eval run --data-format ...` sets them. Empty: detected."})
    source: str | None = field(default=None, repr=False, metadata={"help": "(set by the loader) spec file."})
    explicit: frozenset = field(default=frozenset(), repr=False, compare=False, metadata={
        "help": "(set by the loader) the fields the spec file sets; they override a checkpoint's prompt.json."})

    def resolved_data_dir(self) -> Path | None:
        if self.data_dir is None:
            return None
        p = Path(self.data_dir).expanduser()
        if not p.is_absolute() and self.source:
            p = Path(self.source).parent / p
        return p

    def resolved_video_root(self) -> Path | None:
        if self.video_root is None:
            return None
        p = Path(self.video_root).expanduser()
        if not p.is_absolute() and self.source:
            p = Path(self.source).parent / p
        return p

    def video_part(self) -> dict[str, Any]:
        """The spec's video settings as `mmreason.eval.benchmark.VideoInput` keyword arguments (unset ones left out)."""
        pairs = (("fps", self.video_fps), ("max_frames", self.video_max_frames), ("min_pixels", self.video_min_pixels),
                 ("max_pixels", self.video_max_pixels), ("total_pixels", self.video_total_pixels))
        return {k: v for k, v in pairs if v is not None}

    def where(self) -> str:
        """How errors name this spec: its file, else its name."""
        return self.source or f"benchmark {self.name!r}"


PRESETS: dict[str, dict[str, Any]] = {
    "mathvista": {"name": "mathvista", "scorer": "mathvista", "hub_id": "AI4Math/MathVista", "mode": "boxed"},
    "wemath": {"name": "wemath", "scorer": "wemath", "hub_id": "We-Math/We-Math", "mode": "boxed",
               "prompt_template": "Question: {{ question }}\nOption: {{ option }}"
                                  "{% if instruction %}\n{{ instruction }}{% endif %}",
               "knowledge_nodes": "knowledge_structure_nodes.json"},
}

# `{name}` not glued to a LaTeX command (`\boxed{x}`), an escaped brace or a jinja `{{ }}`: an old
# str.format placeholder, which jinja2 would print as literal text.
_OLD_PLACEHOLDER = re.compile(r"(?<![\w{}\\])\{\s*([A-Za-z_]\w*)\s*\}(?!\})")


def check_template(template: str, where: str, fld: str = "prompt_template") -> None:
    """Refuse an old single-brace `{name}` template (it would render its placeholders as text)."""
    m = _OLD_PLACEHOLDER.search(template or "")
    if m:
        raise ValueError(f"{where}: {fld} uses the old placeholder {m.group(0)}; templates are jinja2 now: write "
                         f"{{{{ {m.group(1)} }}}} instead")


def _known_fields() -> set[str]:
    return {f.name for f in dataclasses.fields(BenchmarkSpec)} - {"explicit"}


def spec_from_dict(data: dict[str, Any], where: str, source: str | None = None) -> BenchmarkSpec:
    known = _known_fields()
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown}; known: {sorted(known - {'source'})}")
    for req in ("name", "scorer"):
        if req not in data:
            raise ValueError(f"{where}: missing required field '{req}'")
    if "prompt_template" in data:
        check_template(data["prompt_template"], where)
    return BenchmarkSpec(**data, source=source, explicit=frozenset(data))


def load_spec(path_or_name: str | Path) -> BenchmarkSpec:
    """A spec from a YAML file, or by name: eval/<name>.yaml in the repo, else the built-in preset."""
    p = Path(path_or_name)
    if p.suffix not in (".yaml", ".yml"):
        candidate = SPEC_DIR / f"{path_or_name}.yaml"
        if candidate.is_file():
            p = candidate
        elif str(path_or_name) in PRESETS:
            return spec_from_dict(PRESETS[str(path_or_name)], f"preset {path_or_name!r}")
        else:
            raise ValueError(f"unknown benchmark {path_or_name!r}: use mathvista, wemath, a spec .yaml or a records .jsonl")
    if not p.is_file():
        raise FileNotFoundError(f"benchmark spec not found: {p}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise UsageError(f"{p}: not a valid spec YAML ({yaml_problem(e)})") from None
    if data is None:
        raise UsageError(f"{p}: the spec file is empty (or only comments): see eval/*.yaml for specs")
    if not isinstance(data, dict):
        raise ValueError(f"{p}: a spec must be a mapping of fields")
    return spec_from_dict(data, str(p), source=str(p))
