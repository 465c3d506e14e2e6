"""Recipe kinds as plugins: one `RecipeKind` declaration per kind.

A kind declares the prompt templates it reads (with the placeholders each may use), which of them a recipe
must give, whether its output records are unlabeled questions, and its run function. The built-in kinds
are the modules of this package that define `KIND` (one file each: adding a file adds a kind). A recipe
can also name a kind outside the package: `kind: path/to/file.py:NAME` (a relative path resolves against the
recipe file's folder; `:NAME` defaults to `KIND`) or `kind: package.module:NAME`; NAME must be a `RecipeKind`.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping

from mmreason.data.kinds.runner import RECORD_FIELDS
from mmreason.plugins import import_file

if TYPE_CHECKING:
    from mmreason.data.kinds.runner import Outcome, Runner, Target
    from mmreason.data.recipe import Recipe
    from mmreason.records import Record

# Modules of this package that hold the machinery, not a kind.
_INFRASTRUCTURE = {"registry", "runner", "questions"}


class KindError(ValueError):
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
_plugins: dict[tuple[str, str], RecipeKind] = {}


def builtin_kinds() -> dict[str, RecipeKind]:
    """name -> kind for every module of this package that defines `KIND`."""
    with _lock:
        if not _builtin:
            import mmreason.data.kinds as pkg

            found = {}
            for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
                if info.name in _INFRASTRUCTURE or info.name.startswith("_"):
                    continue
                kind = getattr(importlib.import_module(f"{pkg.__name__}.{info.name}"), "KIND", None)
                if isinstance(kind, RecipeKind):
                    if kind.name in found:
                        raise KindError(f"two built-in kinds are named {kind.name!r}")
                    found[kind.name] = kind
            _builtin.update(found)
        return dict(_builtin)


def _load_file(path: Path) -> object:
    try:
        return import_file(path, "mmreason_recipe_kind")
    except Exception as e:
        raise KindError(f"importing {path} failed: {type(e).__name__}: {e}") from e


def resolve_kind(spec: str, recipe_path: str | Path | None = None) -> RecipeKind:
    """A built-in kind name, `file.py[:NAME]` (relative to the recipe file's folder) or `module:NAME`."""
    if not isinstance(spec, str) or not spec:
        raise KindError(f"{spec!r} is not a kind name; built-in kinds: {sorted(builtin_kinds())}")
    kinds = builtin_kinds()
    if spec in kinds:
        return kinds[spec]
    target, _, attr = spec.rpartition(":") if ":" in spec else (spec, "", "")
    attr = attr or "KIND"
    if target.endswith(".py"):
        path = Path(target).expanduser()
        if not path.is_absolute() and recipe_path is not None:
            path = Path(recipe_path).parent / path
        path = path.resolve()
        if not path.is_file():
            raise KindError(f"kind plugin file not found: {path}")
        key = (str(path), attr)
        load = lambda: _load_file(path)  # noqa: E731
    elif ":" in spec:
        key = (target, attr)
        load = lambda: importlib.import_module(target)  # noqa: E731
    else:
        raise KindError(f"{spec!r} is not a built-in kind ({' | '.join(sorted(kinds))}) "
                        "nor a plugin reference path/to/file.py:NAME or package.module:NAME")
    with _lock:
        if key in _plugins:
            return _plugins[key]
    try:
        module = load()
    except ImportError as e:
        raise KindError(f"cannot import {target}: {e}") from e
    kind = getattr(module, attr, None)
    if not isinstance(kind, RecipeKind):
        what = "missing" if kind is None else f"a {type(kind).__name__}"
        raise KindError(f"{target}:{attr} must be a mmreason.data.kinds.RecipeKind, it is {what}")
    with _lock:
        _plugins[key] = kind
    return kind


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

