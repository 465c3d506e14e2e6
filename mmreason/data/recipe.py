"""Data-builder recipes: documented dataclasses parsed from `data_recipes/*.yaml`.

A recipe names the source questions, the teacher, the sampling settings, the filters, the
decontamination settings and the prompt templates. Every field below is a YAML key; its
`help` is its documentation (`mmreason data build --help-recipe` prints it). Any field can be
overridden from the command line: `--set teacher.model=X` or the dotted flag `--teacher.model X`
(text fields such as templates take the text as is; other values are parsed as YAML: `--set sampling.k=8`,
`--set source.mapping={question: problem}`, `--set teacher.base_url=null`).

Prompt templates are jinja2 (`mmreason.prompts.render`): placeholders are `{{ name }}`, everything else
(LaTeX like `\\boxed{}`) is plain text. Each kind declares which templates it reads and the placeholders
each may use (mmreason/data/kinds/<kind>.py; `--help-recipe` lists them); a placeholder a template may
not use is an error at load time naming the recipe file, the template and the allowed names. A
single-brace `{name}` (the old recipe syntax; LaTeX groups such as `\\text{cm}`, `\\frac{a}{b}`, `x^{n}` are
not one) is an error too, with the `{{ name }}` spelling to use; other literal braces around a word go in
`{% raw %}{word}{% endraw %}`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import jinja2
import yaml
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

from mmreason.formats.options import LAYOUT_NAMES
from mmreason.usage import yaml_problem

# A `{name}` in the old recipe syntax. LaTeX groups are not: after a backslash or a letter (`\text{cm}`),
# a closing brace (`\frac{a}{b}`) or `^` (`x^{n}`).
OLD_PLACEHOLDER = re.compile(r"(?<![\\\w}^])\{([A-Za-z_][A-Za-z0-9_]*)\}")


class RecipeError(ValueError):
    """A bad recipe: names the recipe file and the field."""

    def __init__(self, path: str | Path, fieldname: str, reason: str):
        super().__init__(f"{path}: field '{fieldname}': {reason}")
        self.path, self.field, self.reason = str(path), fieldname, reason


def _f(default: Any = dataclasses.MISSING, help: str = "", factory: Any = None) -> Any:
    if factory is not None:
        return field(default_factory=factory, metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class SourceConfig:
    path: str = _f(None, "Source questions: a records JSONL file, a datasets.save_to_disk folder, a parquet/json file "
                         "or folder, or a Hub dataset id (online only). Relative paths resolve against the working directory.")
    format: str = _f("auto", "records | hf | auto | a layout of mmreason.formats (easyr1, swift, messages, sharegpt, "
                             "verl, nep_video). auto: *.jsonl is records; without preset/mapping, the layout is "
                             "detected from the columns (docs/data.md, 'Outside data layouts'); with them, `hf`.")
    split: str = _f("train", "Split to read for HF sources (ignored for records JSONL).")
    preset: str | None = _f(None, "Ready column mapping for an HF source: geometry3k | geoqa | coldstart_rl "
                                  "(see mmreason/data/sources.py PRESETS). `mapping` entries override it.")
    mapping: dict[str, str] = _f(help="HF column -> record field mapping, record field as key: "
                                      "{id, question, answer, images, choices, answer_type, precision, unit, solution}. "
                                      "`images` may name an Image column or a list-of-images column.", factory=dict)
    answer_type: str = _f("text", "answer_type for HF rows whose mapping has no answer_type column "
                                  "(integer | float | text | choice | list).")
    id_prefix: str | None = _f(None, "Prefix for ids of HF rows without an id column (default: the dataset folder name).")
    limit: int | None = _f(None, "Read at most this many source questions (the CLI --limit overrides).")


@dataclass
class TeacherConfig:
    backend: str = _f("openai", "openai (any OpenAI-compatible chat-completions server, e.g. `vllm serve`) | "
                                "vllm (offline engine, GPU only) | hf (local transformers generation, CPU-capable) | "
                                "none (no teacher: only kinds with a teacherless fallback, e.g. nep_split).")
    model: str = _f(None, "Model name sent to the server (openai) or checkpoint path / Hub id (vllm, hf).")
    base_url: str | None = _f(None, "Server base URL, e.g. http://127.0.0.1:8000/v1. Default: $OPENAI_BASE_URL, "
                                    "then https://api.openai.com/v1.")
    api_key_env: str = _f("OPENAI_API_KEY", "Environment variable holding the API key (never logged, never in recipes).")
    concurrency: int = _f(8, "Parallel requests (openai); the HTTP connection pool is sized to it. hf/vllm batch instead.")
    timeout: float = _f(120.0, "Deadline of one request attempt in seconds (openai): connect, headers and the whole "
                               "reply body, however slowly it arrives.")
    deadline: float | None = _f(None, "Total seconds one request may take with all its retries and waits (openai); a "
                                      "Retry-After that reaches past it ends the request. Default: "
                                      "(max_retries + 1) * timeout + backoff_max.")
    max_retries: int = _f(4, "Retries of a failed request (connection error, timeout, HTTP 429/5xx, malformed JSON); "
                             "a Retry-After header (seconds or HTTP date) sets the least wait before the next one.")
    max_failed_questions: int = _f(20, "Stop the build when this many consecutive questions got nothing but transport "
                                       "failures (connection error, timeout, HTTP 429/5xx after retries): the server "
                                       "is down. Those questions are not committed, so a rerun retries them.")
    backoff_base: float = _f(0.5, "Exponential backoff: attempt a waits uniform(0, min(backoff_max, backoff_base*2^a)) s.")
    backoff_max: float = _f(20.0, "Cap of one backoff wait in seconds.")
    batch_size: int = _f(8, "Sequences generated per forward batch (hf).")
    dtype: str = _f("auto", "Model dtype (hf, vllm): auto | float32 | bfloat16 | float16.")
    tensor_parallel_size: int = _f(1, "vLLM tensor parallel size.")
    gpu_memory_utilization: float = _f(0.9, "vLLM GPU memory fraction.")
    trust_remote_code: bool = _f(False, "Allow model repo code (hf, vllm). Off unless you trust the checkpoint.")
    extra_body: dict[str, Any] = _f(help="Extra JSON fields sent with every chat-completions request "
                                         "(e.g. {top_k: 20, repetition_penalty: 1.05} for vLLM).", factory=dict)


@dataclass
class SamplingConfig:
    k: int = _f(4, "Teacher samples per question (each a separate request with its own seed).")
    temperature: float = _f(0.8, "Sampling temperature.")
    top_p: float = _f(0.95, "Nucleus sampling.")
    max_tokens: int = _f(2048, "Max new tokens per reply; a reply that hits it (finish_reason=length) is dropped as truncated.")
    seed: int = _f(0, "Base seed; sample i of question q uses a stable hash of (seed, q, i, stage).")
    aux_temperature: float = _f(0.3, "Temperature of auxiliary calls (caption, critique, revise, reflect).")


@dataclass
class FilterConfig:
    keep_per_question: int = _f(1, "Keep at most m accepted targets per question (the first m in sample order).")
    min_chars: int = _f(1, "Drop targets shorter than this.")
    max_chars: int = _f(20000, "Drop targets longer than this.")
    require_single_final_box: bool = _f(True, "The SFT target must contain exactly one \\boxed{} (the final answer): "
                                               "boxes of intermediate parts (a wrong attempt, a draft) are unboxed first.")
    min_caption_chars: int = _f(20, "caption: drop when the description is shorter than this.")
    verify_timeout: float = _f(10.0, "Hard timeout in seconds for one answer verification (when a verify pool is available).")
    dedupe_ngram: int = _f(3, "synth_questions: word n-gram size for near-duplicate detection against source and kept questions.")
    dedupe_threshold: float = _f(0.7, "synth_questions: drop a new question whose n-gram Jaccard with any source/kept question "
                                      "of the same image is >= this.")


@dataclass
class DecontamConfig:
    enabled: bool = _f(True, "Drop source questions that overlap the eval benchmarks (MathVista testmini, We-Math).")
    benchmarks_dir: str | None = _f(None, "Folder with mathvista/testmini.json and wemath/testmini.json + images. "
                                          "Default: $MMREASON_BENCHMARKS, then ../shared/benchmarks beside the checkout.")
    ngram: int = _f(8, "Word n-gram size on normalised question text (lower-case, alphanumerics only).")
    threshold: float = _f(0.5, "Contaminated when >= this fraction of the question's n-grams occur in one benchmark question.")
    min_exact_tokens: int = _f(8, "Questions shorter than `ngram` words match only by exact normalised text, and only "
                                  "when they have at least this many words. The default (= ngram) never flags short "
                                  "questions by text: a generic 'What is the perimeter of the rectangle?' is also a "
                                  "MathVista question, and without MathVista's images there is no evidence of a leak. "
                                  "Lower it (e.g. 4) to be stricter.")
    image_hash: str = _f("both", "exact (sha256 of the bytes) | dhash (64-bit perceptual difference hash) | both | none.")
    max_hamming: int = _f(4, "dhash: contaminated when the Hamming distance to a benchmark image is <= this.")
    cache_dir: str | None = _f(None, "Where the benchmark index is cached (default ~/.cache/mmreason/decontam).")


@dataclass
class OutputConfig:
    file: str = _f("train.jsonl", "Records file name inside --out.")
    copy_images: bool = _f(True, "Copy source images into OUT/images/ (true) or reference them by a path relative "
                                 "to the output JSONL (false).")


@dataclass
class Recipe:
    kind: str = _f(None, "Target kind: a built-in kind (one module each in mmreason/data/kinds/, listed below) or "
                         "a kind plugin `path/to/file.py:NAME` (a relative path resolves against the recipe file's "
                         "folder; NAME, default KIND, is a mmreason.data.kinds.RecipeKind: adding a kind is one file) "
                         "or `package.module:NAME`. The file is imported as Python code.")
    name: str = _f(None, "Recipe name: part of every record id (source id + name + sample index) and of the provenance.")
    source: SourceConfig = _f(help="Source questions.", factory=SourceConfig)
    teacher: TeacherConfig = _f(help="Teacher backend.", factory=TeacherConfig)
    sampling: SamplingConfig = _f(help="Sampling.", factory=SamplingConfig)
    filters: FilterConfig = _f(help="Filters.", factory=FilterConfig)
    decontam: DecontamConfig = _f(help="Decontamination against the eval benchmarks.", factory=DecontamConfig)
    output: OutputConfig = _f(help="Output layout.", factory=OutputConfig)
    prompts: dict[str, str] = _f(help="Prompt templates (jinja2, `{{ name }}` placeholders): system (optional) plus the "
                                      "ones the kind reads (user, caption, reason_from_caption, critique, revise, "
                                      "reflect, target; listed per kind below). A value ending in .jinja / .j2 is a "
                                      "template file, relative to the recipe file's folder.", factory=dict)
    reflection_mode: str = _f("assemble", "reflection: assemble (a wrong sample + `transition` + a correct sample of the "
                                          "same question) | prompt (the teacher continues a wrong sample with the "
                                          "`reflect` template; the continuation must reach the verified answer).")
    transition: str = _f("Wait, let me re-check this. The answer above does not hold up, so let me redo it carefully.",
                         "reflection: the text joining the wrong attempt and the correction ({{ transition }} in `target`).")
    nep_fallback_ratio: float = _f(0.5, "nep_split without a teacher and without timestamps in the caption: the past "
                                         "part is this fraction of the clip, and of the caption's sentences.")
    path: str = field(default="<recipe>", metadata={"help": "(set by the loader) the recipe file"})

    def prompt_version(self) -> str:
        """Short hash of everything that shapes the targets' text (templates, transition, kind)."""
        blob = json.dumps({"kind": self.kind, "prompts": self.prompts, "transition": self.transition,
                           "mode": self.reflection_mode}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def fingerprint(self) -> str:
        """Hash of every setting that changes the output (a resumed build must use the same)."""
        d = to_dict(self)
        d.pop("path", None)
        d["source"].pop("limit", None)
        d["teacher"] = {k: d["teacher"][k] for k in ("backend", "model")}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def to_dict(obj: Any) -> Any:
    return dataclasses.asdict(obj)



def help_text(cls: type = Recipe, prefix: str = "") -> str:
    """All recipe fields with their documentation, dotted."""
    lines = []
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name == "path" and cls is Recipe:
            continue
        if dataclasses.is_dataclass(hints[f.name]):
            lines.append(f"{prefix}{f.name}:  {f.metadata.get('help', '')}")
            lines.append(help_text(hints[f.name], prefix + f.name + "."))
        else:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            lines.append(f"{prefix}{f.name} (default {default!r}):  {f.metadata.get('help', '')}")
    return "\n".join(lines)


def _check_type(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return any(_check_type(value, a) for a in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is dict:
        return isinstance(value, dict)
    if origin is list:
        return isinstance(value, list)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is Any:
        return True
    return isinstance(value, hint)


def _build(cls: type, data: Any, path: str, where: str) -> Any:
    if not isinstance(data, dict):
        raise RecipeError(path, where or "<top>", f"expected a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)} - ({"path"} if cls is Recipe else set())
    unknown = sorted(set(data) - names)
    if unknown:
        raise RecipeError(path, f"{where}{unknown[0]}", f"unknown field; known fields here: {sorted(names)}")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value or {}, path, f"{where}{name}.")
            continue
        if not _check_type(value, hint):
            raise RecipeError(path, f"{where}{name}", f"expected {getattr(hint, '__name__', str(hint))}, got {value!r}")
        kwargs[name] = float(value) if hint is float else value
    return cls(**kwargs)


def set_dotted(data: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    cur = data
    for k in keys[:-1]:
        if not isinstance(cur.get(k), dict):
            cur[k] = {}
        cur = cur[k]
    cur[keys[-1]] = value


def parse_overrides(items: list[str]) -> list[tuple[str, str]]:
    """`key.sub=value` strings -> (dotted key, raw value); `load_recipe` types the value by the field."""
    out = []
    for item in items:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key.sub=value")
        key, raw = item.split("=", 1)
        out.append((key.strip(), raw))
    return out


def _field_hint(dotted: str) -> Any:
    cls: Any = Recipe
    parts = dotted.split(".")
    for i, name in enumerate(parts):
        hints = get_type_hints(cls) if dataclasses.is_dataclass(cls) else {}
        if name not in hints:
            return None
        cls = hints[name]
        if not dataclasses.is_dataclass(cls) and i < len(parts) - 1:
            return str if dotted.startswith("prompts.") else None  # prompts.<name> is a template string
    return cls


def override_value(dotted: str, value: Any) -> Any:
    """Raw CLI text -> value: kept as text for string fields (templates, paths, names), parsed as YAML
    otherwise (numbers, booleans, null, mappings)."""
    if not isinstance(value, str):
        return value
    hint = _field_hint(dotted)
    if hint is str:
        return value
    if hint == (str | None) and value.strip() not in ("null", "~", "None"):
        return value
    try:
        return yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        return value


def read_recipe(path: str | Path, overrides: list[tuple[str, Any]] = ()) -> Recipe:
    """Read a recipe YAML and apply dotted overrides (a string value is typed by its field, see `override_value`).
    Errors name the file and field. The kind-aware checks are `kinds.registry.validate` (`load_recipe` does
    both)."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(path, "<file>", "recipe file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise RecipeError(path, "<file>", f"invalid YAML: {yaml_problem(e)}") from None
    if data is None:
        raise RecipeError(path, "<file>", "the file is empty (or only comments): see data_recipes/ for recipes")
    for key, value in overrides:
        set_dotted(data, key, override_value(key, value))
    recipe = _build(Recipe, data, str(path), "")
    recipe.path = str(path)
    recipe.prompts = {name: read_template_file(path, name, text) for name, text in recipe.prompts.items()}
    return recipe


def read_template_file(recipe_path: Path, name: str, value: Any) -> Any:
    """A prompt given as a .jinja / .j2 file name (relative to the recipe's folder) -> the file's text."""
    if not isinstance(value, str) or not value.strip().endswith((".jinja", ".j2")) or "\n" in value.strip():
        return value
    file = Path(value.strip()).expanduser()
    file = file if file.is_absolute() else recipe_path.parent / file
    if not file.is_file():
        raise RecipeError(recipe_path, f"prompts.{name}", f"template file not found: {file}")
    return file.read_text(encoding="utf-8")


def check_template(path: str, name: str, text: str, allowed: tuple[str, ...]) -> None:
    """A jinja2 template that uses only `allowed` placeholders and no old single-brace `{name}`."""
    where = f"prompts.{name}"
    env = SandboxedEnvironment()
    try:
        in_raw = False
        for lineno, token, value in env.lex(text):
            in_raw = token == "raw_begin" or (in_raw and token != "raw_end")
            old = OLD_PLACEHOLDER.search(value) if token == "data" and not in_raw else None
            if old:
                ph = old.group(1)
                what = (f"single-brace {{{ph}}} is the old placeholder syntax: write {{{{ {ph} }}}}" if ph in allowed
                        else f"single-brace {{{ph}}} is not a placeholder (templates are jinja2: {{{{ name }}}}; "
                             f"literal braces: {{% raw %}}{{{ph}}}{{% endraw %}})")
                line = lineno + value[: old.start()].count("\n")
                raise RecipeError(path, where, f"template line {line}: {what}; allowed placeholders: {list(allowed)}")
        used = meta.find_undeclared_variables(env.parse(text)) - set(env.globals)
    except jinja2.TemplateSyntaxError as e:
        raise RecipeError(path, where, f"template line {e.lineno}: jinja2 syntax error: {e.message}") from None
    unknown = sorted(used - set(allowed))
    if unknown:
        raise RecipeError(path, where, f"unknown placeholder {{{{ {unknown[0]} }}}}; allowed: {list(allowed)}")
