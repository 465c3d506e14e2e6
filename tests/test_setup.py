"""`make setup`: each clone gets its own `.venv/bin/mmreason` over the one shared pinned venv, and two clones
set up one after the other each keep running their own code, from any folder."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SKIP = {".git", ".venv", ".venv-gpupins", "runs", "outputs", ".pytest_cache", "__pycache__"}


def _env():
    # a `make test` above us must not pass its flags or jobserver to the clones' make
    return {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "VIRTUAL_ENV")}


def _shared_venv() -> Path:
    out = subprocess.run(["make", "-s", "--no-print-directory", "venv-path"], cwd=REPO, env=_env(),
                         capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def _clone(dst: Path, name: str) -> Path:
    shutil.copytree(REPO, dst, ignore=lambda d, names: [n for n in names if n in SKIP or n.endswith(".egg-info")])
    # a line only this copy has: its package says which clone it is when asked
    with open(dst / "mmreason" / "__init__.py", "a") as f:
        f.write(f"\nif __import__('os').environ.get('MMREASON_WHICH_CLONE'):\n"
                f"    print('clone={name}', file=__import__('sys').stderr)\n")
    return dst


def _which(clone: Path, *cmd: str) -> str:
    out = subprocess.run([str(clone / ".venv" / "bin" / cmd[0]), *cmd[1:]], cwd="/", capture_output=True, text=True,
                         env=dict(_env(), MMREASON_WHICH_CLONE="1"), timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return [line for line in out.stderr.splitlines() if line.startswith("clone=")][0]


def _setup(clone: Path) -> None:
    out = subprocess.run(["make", "-s", "setup"], cwd=clone, env=_env(), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]


@pytest.mark.slow
def test_two_clones_each_run_their_own_code(tmp_path):
    shared = _shared_venv()
    if not (shared / ".complete").is_file():
        pytest.skip(f"the shared venv {shared} is not built (make setup builds it)")
    site = next((shared / "lib").glob("python3.*")) / "site-packages"
    before = sorted(os.listdir(site))
    a, b = _clone(tmp_path / "a", "a"), _clone(tmp_path / "b", "b")
    _setup(a)
    assert _which(a, "mmreason", "--help") == "clone=a"
    _setup(b)
    assert _which(b, "mmreason", "--help") == "clone=b"
    assert _which(a, "mmreason", "--help") == "clone=a"  # b's setup did not take a's command over
    # commands copied from the shared venv (launchers start processes that import the package) run this clone too
    assert _which(a, "python", "-c", "import mmreason") == "clone=a"
    head = (a / ".venv" / "bin" / "accelerate").read_text().splitlines()[0]
    assert head == f"#!{a / '.venv' / 'bin' / 'python'}"
    assert (a / ".venv" / "bin" / "activate").is_file()
    assert sorted(os.listdir(site)) == before  # nothing was installed into the shared venv
    # a second setup with nothing changed is a no-op; a moved clone is set up again
    stamp = (a / ".venv" / ".mmreason-clone-venv").stat().st_mtime_ns
    _setup(a)
    assert (a / ".venv" / ".mmreason-clone-venv").stat().st_mtime_ns == stamp
    moved = a.rename(tmp_path / "a_moved")
    _setup(moved)
    assert _which(moved, "mmreason", "--help") == "clone=a"
    assert str(moved) in (moved / ".venv" / ".mmreason-clone-venv").read_text()
