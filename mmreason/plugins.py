"""The one plugin resolver (rewards, losses, benchmarks, recipe kinds) and the package scan that lets a folder of
built-ins list itself.

A reference is a built-in name, `path/to/file.py:NAME` (a relative path resolves against `base_dir`, e.g. the
YAML file's folder, else the working directory) or `package.module:NAME`. A `.py` file is imported once per
resolved path, under a module name derived from it, and never left half-imported in `sys.modules` when its code
raises."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import pkgutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Mapping, TypeVar

from mmreason.errors import PluginError

T = TypeVar("T")
FORMS = "a built-in name, path/to/file.py:NAME or package.module:NAME"


def import_file(path: str | Path, prefix: str) -> ModuleType:
    """The module of the file at `path` (which must exist), imported on the first call and reused after."""
    path = Path(path).resolve()
    name = f"{prefix}_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:12]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def is_reference(spec: str) -> bool:
    """`file.py:NAME` or `package.module:NAME` (as opposed to a built-in name)."""
    return isinstance(spec, str) and ":" in spec


def resolve(spec: str, what: str, registry: Mapping[str, T] | None = None, base_dir: str | Path | None = None,
            check: Callable[[Any], bool] | None = None, expected: str = "", default_name: str | None = None) -> T:
    """The object `spec` names: `registry[spec]` for a built-in name, else NAME from a `.py` file or an importable
    module. `check(obj)` (optional) must hold, else the error says the object is not `expected`. `default_name`:
    the NAME a reference without `:NAME` means (e.g. `file.py` -> its `KIND`); without one, NAME is required.
    Raises `PluginError` naming `spec` and `what` for an unknown name, a missing file, a module that cannot be
    imported, a missing NAME or an object of the wrong kind."""
    builtins = f"; built-in: {', '.join(sorted(registry))}" if registry else ""
    if not isinstance(spec, str) or not spec.strip():
        raise PluginError(f"{what} {spec!r}: expected {FORMS}{builtins}")
    if registry is not None and spec in registry:
        return registry[spec]
    target, sep, name = spec.rpartition(":")
    if not sep:
        target, name = spec, default_name or ""
        if not target.endswith(".py") or not name:
            raise PluginError(f"unknown {what} {spec!r}: expected {FORMS}{builtins}")
    if not target or not name or not name.isidentifier():
        raise PluginError(f"{what} {spec!r}: expected {FORMS} (NAME a Python identifier){builtins}")
    if target.endswith(".py"):
        path = Path(target).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
        if not path.is_file():
            raise PluginError(f"{what} {spec!r}: file not found: {path.resolve()}")
        try:
            module = import_file(path, "mmreason_plugin")
        except Exception as e:
            raise PluginError(f"{what} {spec!r}: importing {path} failed: {type(e).__name__}: {e}") from e
    else:
        try:
            module = importlib.import_module(target)
        except Exception as e:
            raise PluginError(f"{what} {spec!r}: cannot import module {target!r}: {type(e).__name__}: {e}") from e
    if not hasattr(module, name):
        raise PluginError(f"{what} {spec!r}: {target} has no {name!r}")
    obj = getattr(module, name)
    if check is not None and not check(obj):
        raise PluginError(f"{what} {spec!r}: {target}:{name} is a {type(obj).__name__}, expected {expected or what}")
    return obj


def discover(package: str) -> list[ModuleType]:
    """Import every module of `package` (not `_private` ones, not sub-packages) in name order: the built-ins of a
    registry folder register themselves when imported, so adding a file adds a built-in."""
    pkg = importlib.import_module(package)
    infos = sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name)
    return [importlib.import_module(f"{package}.{m.name}") for m in infos if not m.ispkg and not m.name.startswith("_")]
