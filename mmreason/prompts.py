r"""The prompt spec: how a model's prompts are built (system message, instruction and where it goes, the
user-text template, image pixel bounds). It is saved as `prompt.json` in every SFT and GRPO checkpoint so
the next stage and `eval run` build prompts the way the model was trained; a config or flag overrides it.

Templates are jinja2 (sandboxed, undefined names are errors), so `\boxed{}` in a template is plain text.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence, TypeVar

from mmreason.disk_full import write_text_atomic

logger = logging.getLogger(__name__)

PROMPT_FILE = "prompt.json"
# Default character limit of every stage's text (SFT max_text_chars, GRPO max_prompt_chars, eval
# --max-prompt-chars): far above any real question, far below what exhausts memory inside the tokenizer.
MAX_TEXT_CHARS = 65536
BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
# The user text of a record: question, lettered options for choice questions, then the instruction.
DEFAULT_TEMPLATE = (
    "{{ question }}"
    "{% if choices %}\nChoices:\n{{ choices }}{% endif %}"
    "{% if instruction %}\n{{ instruction }}{% endif %}"
)


@dataclass
class PromptSpec:
    """How prompts are built. Saved with checkpoints as prompt.json."""

    system: str | None = field(default=None, metadata={
        "help": "System message; null keeps the chat template's default system message."})
    instruction: str | None = field(default=BOXED_INSTRUCTION, metadata={
        "help": "Instruction placed as `{{ instruction }}` in the template (by default after the question)."})
    template: str = field(default=DEFAULT_TEMPLATE, metadata={
        "help": "jinja2 template of the user text. Fields: question, choices (lettered lines or empty), "
                "instruction, and any extra field the caller passes."})
    min_pixels: int | None = field(default=None, metadata={"help": "Per-image min pixels (null: processor's)."})
    max_pixels: int | None = field(default=None, metadata={"help": "Per-image max pixels (null: processor's)."})

    def __post_init__(self):
        # "" and None both mean "none"; one spelling keeps saved specs comparable.
        self.system = self.system or None
        self.instruction = self.instruction or None
        try:
            _compile(self.template)
        except Exception as e:  # jinja2.TemplateSyntaxError names the line
            raise ValueError(f"prompt template does not parse: {e}") from None

    def user_text(self, question: str, choices: str = "", **extra: Any) -> str:
        return render(self.template, question=question, choices=choices, instruction=self.instruction or "", **extra)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def differences(self, other: "PromptSpec") -> dict[str, tuple[Any, Any]]:
        """{field: (self value, other value)} for every field that differs."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b[k]) for k in a if a[k] != b[k]}


@lru_cache(maxsize=256)
def _compile(template: str):
    from jinja2 import StrictUndefined  # lazy: imported by verify workers: no third-party imports
    from jinja2.sandbox import SandboxedEnvironment  # lazy: imported by verify workers: no third-party imports

    env = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
    return env.from_string(template)


def render(template: str, **fields: Any) -> str:
    """Render a jinja2 template string; an undefined field raises jinja2.UndefinedError naming it."""
    return _compile(template).render(**fields)


def load_template(value: str) -> str:
    """A template given in a config: a path ending in .jinja / .j2 is read (relative to the working directory);
    anything else is the template text itself."""
    if value.endswith((".jinja", ".j2")):
        path = Path(value).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"prompt template file not found: {path}")
        return path.read_text(encoding="utf-8")
    return value


def save_prompt_spec(directory: str | os.PathLike, spec: PromptSpec) -> Path:
    path = Path(directory) / PROMPT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(spec.to_dict(), indent=2, ensure_ascii=False) + "\n")
    return path


def load_prompt_spec(model: str | os.PathLike) -> PromptSpec | None:
    """The spec saved in a checkpoint folder, or None (a Hub id, or a checkpoint made without one)."""
    path = Path(model) / PROMPT_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    known = {f.name for f in dataclasses.fields(PromptSpec)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{path}: unknown prompt-spec field(s) {unknown}; known: {sorted(known)}")
    return PromptSpec(**data)


def resolve_prompt_spec(
    model: str | os.PathLike, configured: PromptSpec | Mapping[str, Any] | None, what: str
) -> PromptSpec:
    """The spec a stage uses for `model`. `configured` is a whole spec (used as it is), or a mapping of the
    fields a config set explicitly (each overrides the checkpoint's field), or None (the checkpoint's spec). A
    checkpoint without prompt.json (a Hub id, a base model) starts from the default spec. Every configured value
    that differs from the checkpoint's saved one is logged loudly."""
    saved = load_prompt_spec(model) if Path(str(model)).is_dir() else None
    if configured is None:
        return saved or PromptSpec()
    if isinstance(configured, PromptSpec):
        spec = configured
    else:
        unknown = sorted(set(configured) - {f.name for f in dataclasses.fields(PromptSpec)})
        if unknown:
            raise ValueError(f"unknown prompt-spec field(s) {unknown}")
        spec = dataclasses.replace(saved or PromptSpec(), **configured)
    if saved is not None:
        diff = saved.differences(spec)
        if diff:
            logger.warning(
                "!!! %s: the configured prompt differs from the one %s was trained with (%s): %s",
                what, model, PROMPT_FILE, {k: {"checkpoint": a, "configured": b} for k, (a, b) in diff.items()},
            )
    return spec


def chat_chars(messages: Sequence[Mapping[str, Any]]) -> int:
    """Characters of a chat's text: every message's string content or text parts (images count 0)."""
    n = 0
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            n += len(content)
        elif isinstance(content, list):
            n += sum(len(p.get("text") or "") for p in content if isinstance(p, Mapping))
    return n


T = TypeVar("T")


def drop_long_chats(items: Sequence[T], ids: Sequence[str], chats: Sequence[Sequence[Mapping[str, Any]]],
                    max_chars: int | None, option: str) -> tuple[list[T], list[dict[str, Any]]]:
    """(kept items, [{"id", "chars"} dropped]): the items whose chat (`chats[i]`, `chat_chars`) is longer than
    `max_chars` characters are dropped before anything tokenises them (a 1 MB question exhausts memory inside
    the tokenizer, after minutes, naming no record); the drops are logged naming `option` and the record ids.
    `max_chars` None: nothing is dropped."""
    if max_chars is None:
        return list(items), []
    kept, dropped = [], []
    for item, rid, chat in zip(items, ids, chats, strict=True):
        n = chat_chars(chat)
        if n > max_chars:
            dropped.append({"id": rid, "chars": n})
        else:
            kept.append(item)
    if dropped:
        logger.warning("dropped %d of %d over %s=%d characters (before tokenisation): %s", len(dropped), len(items),
                       option, max_chars, ", ".join(f"{d['id']} ({d['chars']} chars)" for d in dropped[:5])
                       + (f" and {len(dropped) - 5} more" if len(dropped) > 5 else ""))
    return kept, dropped
