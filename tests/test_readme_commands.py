"""Every `mmreason ...` and `make ...` command the README shows (code blocks, and inline code that starts
with one) still exists: each mmreason command path answers `--help` under its own name and lists every
flag shown with it; each make command dry-runs (`make -n`)."""

import os
import re
import shlex
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
BOX = "─│▶┴┬┼└┘┌┐"
# `mmreason` as a command word: not part of a path, module, package spec or option value
MM = re.compile(r"(?<![\w./\-\[\"'=])mmreason(?![\w./\-\[\]])")
FLAG = re.compile(r"(?<![\w-])--[A-Za-z][\w-]*")
TRL_PARSED = {("sft",), ("grpo",)}
SUBCOMMANDS = re.compile(r"\{([a-z][a-z-]*(?:[,|][a-z][a-z-]*)+)\}")


def snippets() -> list[str]:
    """Shell text shown in the README: each fenced block's lines (continuations joined, comments cut) and
    each inline code span that starts with `mmreason` or `make`."""
    text = README.read_text(encoding="utf-8")
    out = []
    for lang, body in re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M):
        if lang == "json":
            continue
        for line in body.replace("\\\n", " ").splitlines():
            if any(c in line for c in BOX):  # a diagram: commands sit between the arrows
                out += [seg.strip() for seg in re.split(f"[{BOX}]+", line) if MM.match(seg.strip())]
            else:
                out.append(re.sub(r"(^|\s)#.*$", "", line).strip())
    text_wo_blocks = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    spans = [s.replace("\n", " ") for s in re.findall(r"`([^`]+)`", text_wo_blocks) if "\n\n" not in s]
    out += [s for s in spans if re.match(r"(mmreason|make)(\s|$)", s)]
    return [s for s in out if s]


def mmreason_commands() -> list[tuple[str, list[str]]]:
    """(snippet, words after `mmreason`) for every mmreason command in the README."""
    found = []
    for s in snippets():
        for part in re.split(r"&&|\|\||;|\|(?=\s)", s):
            m = MM.search(part)
            if m:
                found.append((part.strip(), part[m.end():].split()))
    return found


def make_commands() -> list[tuple[str, list[str]]]:
    found = []
    for s in snippets():
        for part in re.split(r"&&|\|\||;", s):
            try:
                words = shlex.split(part)
            except ValueError:
                words = part.split()
            while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):  # VAR=value before the command
                words = words[1:]
            if words and words[0] == "make":
                found.append((part.strip(), words[1:]))
    return found


@lru_cache(maxsize=None)
def help_text(path: tuple[str, ...]) -> tuple[int, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), MMREASON_OFFLINE="1")
    out = subprocess.run([sys.executable, "-m", "mmreason", *path, "--help"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    return out.returncode, out.stdout + out.stderr


def command_path(words: list[str]) -> tuple[str, ...]:
    """The sub-command words at the front of `words` (`eval run`, `data synth`, `tiny-model`)."""
    path: tuple[str, ...] = ()
    for w in words:
        if w.startswith("-") or not re.fullmatch(r"[a-z][a-z-]*", w):
            break
        if path:
            usage = help_text(path)[1].split("\n\n")[0]
            m = SUBCOMMANDS.search(usage)
            if not m or w not in re.split(r"[,|]", m.group(1)):
                break
        path += (w,)
    return path


def test_readme_shows_commands():
    """The extraction finds what the README is known to show (so the checks below are not vacuous)."""
    paths = {command_path(w) for _, w in mmreason_commands()}
    assert {("eval", "run"), ("eval", "score"), ("sft",), ("grpo",), ("data", "build"), ("plot",)} <= paths
    assert {w[0] for _, w in make_commands() if w} >= {"demo", "test", "sft", "grpo", "eval"}


@pytest.mark.slow
def test_every_mmreason_command_and_flag_exists():
    problems = []
    for snippet, words in mmreason_commands():
        path = command_path(words)
        rc, text = help_text(path)
        name = " ".join(("mmreason",) + path)
        if rc != 0:
            problems.append(f"{snippet!r}: `{name} --help` exited {rc}: {text.strip()[-300:]}")
            continue
        if path and not text.lstrip().startswith(f"usage: {name}"):
            problems.append(f"{snippet!r}: `{name} --help` does not print `usage: {name}`: {text.splitlines()[0]!r}")
        shown = set(FLAG.findall(" ".join(words[len(path):])))
        known = set(FLAG.findall(text))
        if path in TRL_PARSED:
            known.add("--config")  # TrlParser reads `--config FILE.yaml` before argparse: it is not in --help
        problems += [f"{snippet!r}: `{name}` has no flag {f}" for f in sorted(shown - known)]
    assert problems == [], "\n".join(problems)


def test_every_make_command_exists():
    problems = []
    for snippet, words in sorted(set((s, tuple(w)) for s, w in make_commands())):
        out = subprocess.run(["make", "-n", *words], cwd=REPO, capture_output=True, text=True, timeout=120,
                             env={k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")})
        if out.returncode != 0:
            problems.append(f"{snippet!r}: make -n {' '.join(words)} exited {out.returncode}: {out.stderr.strip()[-300:]}")
    assert problems == [], "\n".join(problems)
