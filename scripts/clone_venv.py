"""`make setup`'s last step: this clone's own small `.venv` on top of the shared pinned venv.

    <shared venv>/bin/python scripts/clone_venv.py SHARED_VENV CLONE_VENV

The pinned stack (~6 GB) lives once per machine in ~/.cache/mmreason/venv-<hash>, shared by every clone.
An editable install there would make `mmreason` run whichever clone installed last, so each clone gets
`.venv`: a venv without packages of its own whose site-packages adds the shared one
(`_mmreason_shared.pth`), plus this clone installed editable (`.venv/bin/mmreason`, `pip show mmreason`).
The shared venv's other commands (accelerate, torchrun, pytest, ...) are copied with this venv's python
in their first line, so processes they start import this clone too. Nothing is written to the shared venv.
Idempotent and quick when nothing changed; rebuilds when the shared venv or the clone's path changed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

MARKER = ".mmreason-clone-venv"


def _site_packages(prefix: Path) -> Path:
    return Path(sysconfig.get_path("purelib", vars={"base": str(prefix), "platbase": str(prefix)}))


def _runs_this_clone(python: Path, clone: Path) -> bool:
    """Does `python`, started outside the clone, import this clone's package?"""
    try:
        out = subprocess.run([str(python), "-c", "import mmreason; print(mmreason.__file__)"], cwd="/",
                             capture_output=True, text=True, timeout=120)
    except OSError:
        return False
    return out.returncode == 0 and Path(out.stdout.strip()) == clone / "mmreason" / "__init__.py"


def _copy_scripts(shared: Path, target: Path) -> int:
    """The shared venv's console scripts, with this venv's python in their first line."""
    old = [f"#!{shared / 'bin' / n}".encode() for n in ("python", "python3", f"python3.{sys.version_info[1]}")]
    new = f"#!{target / 'bin' / 'python'}".encode()
    n = 0
    for src in sorted((shared / "bin").iterdir()):
        dst = target / "bin" / src.name
        if not src.is_file() or dst.exists() or dst.is_symlink():
            continue
        head, sep, rest = src.read_bytes().partition(b"\n")
        if head.strip() not in old:
            continue
        dst.write_bytes(new + sep + rest)
        dst.chmod(0o755)
        n += 1
    return n


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    shared, target = Path(argv[0]).resolve(), Path(argv[1]).absolute()
    clone = Path.cwd().resolve()
    want = {"shared": str(shared), "clone": str(clone)}
    marker = target / MARKER
    if target.is_dir() and not target.is_symlink() and marker.is_file():
        if json.loads(marker.read_text()) == want and _runs_this_clone(target / "bin" / "python", clone):
            return 0
    if target.is_symlink() or target.is_file():
        target.unlink()  # the old layout: .venv -> the shared venv
    elif target.is_dir():
        if not marker.is_file():
            print(f"{target} is a directory that `make setup` did not create; move it away and rerun", file=sys.stderr)
            return 1
        shutil.rmtree(target)
    venv.EnvBuilder(with_pip=False, symlinks=True).create(target)
    site = _site_packages(target)
    # An `import` line in a .pth runs at startup: addsitedir also processes the shared venv's own .pth files.
    (site / "_mmreason_shared.pth").write_text(f"import site; site.addsitedir({str(_site_packages(shared))!r})\n")
    n = _copy_scripts(shared, target)
    py = target / "bin" / "python"
    pip = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                          "-e", str(clone)], capture_output=True, text=True, cwd="/")
    if pip.returncode:
        print(pip.stdout + pip.stderr + f"\npip install -e {clone} into {target} failed", file=sys.stderr)
        return 1
    if not _runs_this_clone(py, clone):
        print(f"{py} does not import {clone}/mmreason after the editable install", file=sys.stderr)
        return 1
    marker.write_text(json.dumps(want) + "\n")
    print(f"{target}: this clone ({clone}) over {shared}; {n} commands, {target / 'bin' / 'mmreason'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
