"""Recipe kinds as plugins: one `RecipeKind` declaration per kind.

A kind declares the prompt templates it reads (with the placeholders each may use), which of them a recipe
must give, whether its output records are unlabeled questions, and its run function. The built-in kinds
are the modules of this package that define `KIND` (one file each: adding a file adds a kind). A recipe
can also name a kind outside the package: `kind: path/to/file.py:NAME` (a relative path resolves against the
recipe file's folder; `:NAME` defaults to `KIND`) or `kind: package.module:NAME`; NAME must be a `RecipeKind`.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from mmreason.data.recipe import Recipe, RecipeError, check_template, help_text, read_recipe
from mmreason.errors import PluginError
from mmreason.formats.options import LAYOUT_NAMES
from mmreason.plugins import discover, resolve

if TYPE_CHECKING:  # the run functions' argument types; runner.py imports this module
    from mmreason.data.kinds.runner import Outcome, Runner, Target
    from mmreason.records import Record

# Placeholders every template gets from the source record (see `runner.fields_of`).
RECORD_FIELDS = ("question", "question_with_choices", "answer", "choices", "answer_type")


class KindError(PluginError):
    """A kind name or plugin reference that cannot be resolved."""


@dataclass(frozen=True)
class RecipeKind:
    name: str
    run: Callable[["Runner", "Record"], "Outcome"]
    # Every template the kind reads -> the placeholders it may use besides the record fields (RECORD_FIELDS).
    # `system` (optional, record fields only) is available to every kind.
    prompts: Mapping[str, tuple[str, ...]]
    # Templates a recipe must give, and templates it must give only when a condition on the recipe holds.
    required: tuple[str, ...] = ()
    required_when: Mapping[str, Callable[["Recipe"], bool]] = field(default_factory=dict)
    # Output records are new questions about the source image: the target text becomes the question,
    # answer/solution are null, and source questions need no gold answer.
    unlabeled: bool = False
    # Extra per-question input check: a drop reason (counted in stats.json) or None.
    skip: Callable[["Record"], str | None] | None = None
    help: str = ""
    # Source records carry a video the kind reads (the builder checks it opens; otherwise a video record is
    # dropped as video_not_supported); source records need no gold answer; the kind can run without a teacher
    # (`teacher.backend: none`; the run function then gets `ctx.teacher is None`).
    video: bool = False
    needs_gold: bool = True
    teacherless: bool = False
    # The kind builds its output records itself: output(source record, target, output folder) -> Record
    # (validated by the builder like any records line). Default: the source record with the target as solution.
    output: Callable[["Record", "Target", Path], "Record"] | None = None
    all_prompts: Mapping[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "all_prompts", {"system": (), **self.prompts})

    def required_prompts(self, recipe: "Recipe") -> tuple[str, ...]:
        return tuple(self.required) + tuple(p for p, when in self.required_when.items() if when(recipe))

    def placeholders(self, prompt: str) -> tuple[str, ...]:
        return RECORD_FIELDS + tuple(self.all_prompts[prompt])

    def skip_reason(self, rec: "Record") -> str | None:
        if not self.unlabeled and self.needs_gold and rec.answer is None:
            return "no_gold_answer"
        return self.skip(rec) if self.skip else None


_lock = threading.Lock()
_builtin: dict[str, RecipeKind] = {}


def builtin_kinds(rescan: bool = False) -> dict[str, RecipeKind]:
    """name -> kind for every module of this package that defines `KIND` (one file per kind); scanned once, again
    with `rescan`."""
    with _lock:
        if rescan:
            _builtin.clear()
        if not _builtin:
            found = {}
            for module in discover(__package__):
                kind = getattr(module, "KIND", None)
                if isinstance(kind, RecipeKind):
                    if kind.name in found:
                        raise KindError(f"two built-in kinds are named {kind.name!r}")
                    found[kind.name] = kind
            _builtin.update(found)
        return dict(_builtin)


def resolve_kind(spec: str, recipe_path: str | Path | None = None) -> RecipeKind:
    """A built-in kind name, `file.py[:NAME]` (relative to the recipe file's folder; NAME defaults to `KIND`) or
    `package.module:NAME`."""
    try:
        return resolve(spec, "recipe kind", builtin_kinds(), Path(recipe_path).parent if recipe_path else None,
                       check=lambda k: isinstance(k, RecipeKind), expected="a RecipeKind", default_name="KIND")
    except PluginError as e:
        raise KindError(str(e)) from e


def kind_of(recipe: "Recipe") -> RecipeKind:
    return resolve_kind(recipe.kind, recipe.path)


def kinds_help() -> str:
    """The built-in kinds with their templates and placeholders (for --help-recipe)."""
    lines = [f"Record-field placeholders of every template: {', '.join(RECORD_FIELDS)}."]
    for name, kind in sorted(builtin_kinds().items()):
        lines.append(f"kind {name}{' (unlabeled: new questions)' if kind.unlabeled else ''}: {kind.help}")
        for prompt, extra in kind.all_prompts.items():
            req = "required" if prompt in kind.required else "required in some modes" if prompt in kind.required_when else "optional"
            lines.append(f"  prompts.{prompt} ({req}){': + ' + ', '.join(extra) if extra else ''}")
    return "\n".join(lines)



def recipe_help() -> str:
    """Every recipe field with its documentation, then the kinds with their templates (--help-recipe)."""
    return help_text() + "\n\n" + kinds_help()


def load_recipe(path: str | Path, overrides: list[tuple[str, Any]] = ()) -> Recipe:
    """`recipe.read_recipe` (YAML, dotted overrides typed by their field), then `validate`. Errors name the file
    and field."""
    recipe = read_recipe(path, overrides)
    validate(recipe)
    return recipe


def validate(r: Recipe) -> None:
    """The recipe against its kind (templates, placeholders, teacher) and the field rules: `RecipeError` naming
    the file and field."""
    p = r.path
    try:
        kind = resolve_kind(r.kind, p)
    except KindError as e:
        raise RecipeError(p, "kind", str(e)) from None
    if not r.name or not re.fullmatch(r"[A-Za-z0-9_.-]+", r.name):
        raise RecipeError(p, "name", "required; letters, digits, '_', '-', '.' only (it is part of record ids)")
    if not r.source.path:
        raise RecipeError(p, "source.path", "required: a records JSONL, a dataset folder/file or a Hub id")
    if r.source.format not in ("auto", "records", "hf", *LAYOUT_NAMES):
        raise RecipeError(p, "source.format", f"{r.source.format!r} is not auto | records | hf | "
                                              + " | ".join(LAYOUT_NAMES))
    if r.teacher.backend not in ("openai", "vllm", "hf", "none"):
        raise RecipeError(p, "teacher.backend", f"{r.teacher.backend!r} is not openai | vllm | hf | none")
    if r.teacher.backend == "none" and not kind.teacherless:
        raise RecipeError(p, "teacher.backend", f"kind {kind.name!r} needs a teacher (none is for kinds with a "
                                                "teacherless fallback)")
    if not r.teacher.model and r.teacher.backend != "none":
        raise RecipeError(p, "teacher.model", "required")
    if not 0.0 < r.nep_fallback_ratio < 1.0:
        raise RecipeError(p, "nep_fallback_ratio", "must be strictly between 0 and 1")
    for name in ("concurrency", "batch_size"):
        if getattr(r.teacher, name) < 1:
            raise RecipeError(p, f"teacher.{name}", "must be >= 1")
    for name in ("timeout", "deadline"):
        value = getattr(r.teacher, name)
        if value is not None and not value > 0:
            raise RecipeError(p, f"teacher.{name}", f"must be > 0 seconds, got {value!r}")
    if r.teacher.max_retries < 0:
        raise RecipeError(p, "teacher.max_retries", "must be >= 0")
    if r.sampling.k < 1:
        raise RecipeError(p, "sampling.k", "must be >= 1")
    if r.filters.keep_per_question < 1:
        raise RecipeError(p, "filters.keep_per_question", "must be >= 1")
    if r.decontam.image_hash not in ("exact", "dhash", "both", "none"):
        raise RecipeError(p, "decontam.image_hash", f"{r.decontam.image_hash!r} is not exact | dhash | both | none")
    if r.reflection_mode not in ("assemble", "prompt"):
        raise RecipeError(p, "reflection_mode", f"{r.reflection_mode!r} is not assemble | prompt")
    for name in kind.required_prompts(r):
        if not isinstance(r.prompts.get(name), str) or not r.prompts[name].strip():
            raise RecipeError(p, f"prompts.{name}", f"required for kind {kind.name!r}")
    for name, text in r.prompts.items():
        if name not in kind.all_prompts:
            raise RecipeError(p, f"prompts.{name}", f"not a template of kind {kind.name!r}; its templates: "
                                                    f"{sorted(kind.all_prompts)}")
        if not isinstance(text, str):
            raise RecipeError(p, f"prompts.{name}", "must be a string")
        check_template(p, name, text, kind.placeholders(name))
