"""Benchmark specs (`eval/*.yaml`): where the data is, how prompts are built, how answers are
scored and how to generate. Field `help` metadata is the documentation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmreason.records import BOXED_SUFFIX

SPEC_DIR = Path(__file__).resolve().parents[2] / "eval"  # the repo's eval/ folder


@dataclass
class BenchmarkSpec:
    name: str = field(metadata={"help": "Benchmark name (used in outputs)."})
    scorer: str = field(metadata={"help": "mathvista | wemath | records."})
    data_dir: str | None = field(default=None, metadata={
        "help": "Local folder in the official layout (<split>.json + images); relative paths resolve against "
                "the spec file. null: load `hub_id` from the Hugging Face Hub (online)."})
    hub_id: str | None = field(default=None, metadata={"help": "Hub dataset id used when data_dir is null."})
    split: str = field(default="testmini", metadata={"help": "Split / file stem (<data_dir>/<split>.json)."})
    system_prompt: str | None = field(default="You are a helpful assistant.", metadata={"help": "System message."})
    prompt_template: str = field(default="{query}\n{instruction}", metadata={
        "help": "User text. Fields: {query} (the benchmark's official prompt: MathVista query.json text, "
                "We-Math official template), {question}, {choices} (MathVista) / {option} (We-Math), "
                "{instruction}."})
    instruction: str = field(default=BOXED_SUFFIX, metadata={"help": "Value of {instruction}."})
    mode: str = field(default="boxed", metadata={
        "help": "Scoring: mathvista official|judge|boxed; wemath official|boxed; records: boxed."})
    knowledge_nodes: str | None = field(default=None, metadata={
        "help": "We-Math knowledge tree JSON (per-domain scores); relative to data_dir."})
    max_new_tokens: int = field(default=16384, metadata={"help": "New tokens per answer on GPU."})
    max_new_tokens_cpu: int = field(default=512, metadata={"help": "New tokens per answer without a GPU."})
    temperature: float = field(default=0.2, metadata={"help": "0 = greedy."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus mass when sampling."})
    batch_size: int = field(default=16, metadata={"help": "Prompts per HF generate() call."})
    min_pixels: int | None = field(default=None, metadata={"help": "Per-image min pixels (qwen-vl-utils)."})
    max_pixels: int | None = field(default=None, metadata={"help": "Per-image max pixels (qwen-vl-utils)."})
    judge_model: str | None = field(default=None, metadata={"help": "Judge model id for mode 'judge'."})
    source: str | None = field(default=None, repr=False, metadata={"help": "(set by the loader) spec file."})

    def resolved_data_dir(self) -> Path | None:
        if self.data_dir is None:
            return None
        p = Path(self.data_dir).expanduser()
        if not p.is_absolute() and self.source:
            p = Path(self.source).parent / p
        return p


PRESETS: dict[str, dict[str, Any]] = {
    "mathvista": {"name": "mathvista", "scorer": "mathvista", "hub_id": "AI4Math/MathVista", "mode": "boxed"},
    "wemath": {"name": "wemath", "scorer": "wemath", "hub_id": "We-Math/We-Math", "mode": "boxed",
               "prompt_template": "Question: {question}\nOption: {option}\n{instruction}",
               "knowledge_nodes": "knowledge_structure_nodes.json"},
}


def load_spec(path_or_name: str | Path) -> BenchmarkSpec:
    """A spec from a YAML file, or by name: eval/<name>.yaml in the repo, else the built-in preset."""
    import yaml

    p = Path(path_or_name)
    if p.suffix not in (".yaml", ".yml"):
        candidate = SPEC_DIR / f"{path_or_name}.yaml"
        if candidate.is_file():
            p = candidate
        elif str(path_or_name) in PRESETS:
            return BenchmarkSpec(**PRESETS[str(path_or_name)])
        else:
            raise ValueError(f"unknown benchmark {path_or_name!r}: use mathvista, wemath, a spec .yaml or a records .jsonl")
    if not p.is_file():
        raise FileNotFoundError(f"benchmark spec not found: {p}")
    data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{p}: a spec must be a mapping of fields")
    known = {f.name for f in dataclasses.fields(BenchmarkSpec)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{p}: unknown field(s) {unknown}; known: {sorted(known - {'source'})}")
    for req in ("name", "scorer"):
        if req not in data:
            raise ValueError(f"{p}: missing required field '{req}'")
    return BenchmarkSpec(**data, source=str(p))
