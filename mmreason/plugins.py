"""Importing a plugin given as a `.py` file (a loss, a benchmark, a recipe kind): once per resolved path, under a
module name derived from it, and never left half-imported in `sys.modules` when its code raises."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType


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
