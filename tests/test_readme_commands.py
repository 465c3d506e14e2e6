"""Every `mmreason ...` and `make ...` command that README.md and docs/*.md show (code blocks, and inline code
that starts with one) still exists: each mmreason command path answers `--help` under its own name and lists
every flag shown with it; each make command dry-runs (`make -n`). Every relative link and every repository path
the pages name points at a file that exists; README.md stays at most 200 lines; each stage page opens with its
commands; each results section says when it was measured. The checkers run on a planted page too, to show they
report what they should."""

import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
README_MAX_LINES = 200
# The pages that open with `## Commands` (a page another part of the project adds need not).
COMMAND_PAGES = ["data", "sft", "grpo", "eval", "video", "reproducing", "distributed", "reliability", "extending",
                 "results"]
BOX = "─│▶┴┬┼└┘┌┐"
SHELL_LANGS = {"", "bash", "sh", "shell", "console"}
# `mmreason` as a command word: not part of a path, module, package spec or option value
MM = re.compile(r"(?<![\w./\-\[\"'=])mmreason(?![\w./\-\[\]])")
FLAG = re.compile(r"(?<![\w-])--[A-Za-z][\w-]*")
TRL_PARSED = {("sft",), ("grpo",)}
SUBCOMMANDS = re.compile(r"\{([a-z][a-z-]*(?:[,|][a-z][a-z-]*)+)\}")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", flags=re.S | re.M)


def rel(page: Path) -> str:
    return str(page.relative_to(REPO)) if page.is_relative_to(REPO) else page.name


def snippets(page: Path) -> list[str]:
    """Shell text shown in a page: each shell block's lines (continuations joined, comments cut) and each
    inline code span that starts with `mmreason` or `make`. Blocks in another language (json, yaml, python)
    are not commands."""
    text = page.read_text(encoding="utf-8")
    out = []
    for lang, body in FENCE.findall(text):
        if lang not in SHELL_LANGS:
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


def mmreason_commands(pages=PAGES) -> list[tuple[str, list[str]]]:
    """(page: snippet, words after `mmreason`) for every mmreason command in the pages."""
    found = []
    for page in pages:
        for s in snippets(page):
            for part in re.split(r"&&|\|\||;|\|(?=\s)", s):
                m = MM.search(part)
                if m:
                    found.append((f"{rel(page)}: {part.strip()}", part[m.end():].split()))
    return found


def make_commands(pages=PAGES) -> list[tuple[str, list[str]]]:
    found = []
    for page in pages:
        for s in snippets(page):
            for part in re.split(r"&&|\|\||;", s):
                try:
                    words = shlex.split(part)
                except ValueError:
                    words = part.split()
                while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):  # VAR=value before the command
                    words = words[1:]
                if words and words[0] == "make":
                    found.append((f"{rel(page)}: {part.strip()}", words[1:]))
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


def mmreason_problems(pages) -> list[str]:
    problems = []
    commands = mmreason_commands(pages)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:  # each --help is a process: fill the cache
        list(pool.map(help_text, {command_path(words) for _, words in commands}))
    for snippet, words in commands:
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
    return problems


def make_problems(pages) -> list[str]:
    problems = []
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    for snippet, words in sorted(set((s, tuple(w)) for s, w in make_commands(pages))):
        out = subprocess.run(["make", "-n", *words], cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
        if out.returncode != 0:
            problems.append(f"{snippet!r}: make -n {' '.join(words)} exited {out.returncode}: {out.stderr.strip()[-300:]}")
    return problems


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (but - and _), spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {slug(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def link_problems(pages) -> list[str]:
    """Every relative markdown link `[text](path)` or `[text](path#anchor)` names an existing file (relative
    to the page), and its anchor a heading of that file."""
    problems = []
    for page in pages:
        text = FENCE.sub("", page.read_text(encoding="utf-8"))
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
                continue
            file, _, anchor = target.partition("#")
            dest = (page.parent / file).resolve() if file else page
            if not dest.exists():
                problems.append(f"{rel(page)}: link ({target}) points at a missing file")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                problems.append(f"{rel(page)}: link ({target}): no heading #{anchor} in {dest.name}")
    return problems


# A path into the repository as the pages write it: a top-level folder of the project, then a file or folder.
REPO_PATH = re.compile(r"(?<![\w./-])((?:mmreason|configs|data_recipes|eval|scripts|tests|bench|requirements)/"
                       r"[\w./{},*-]*[\w/}*])")


def path_problems(pages) -> list[str]:
    """Every repository path a page shows in inline code or a shell block (`configs/grpo/tiny_demo.yaml`,
    `mmreason/rl/losses/registry.py`, `configs/sft/qwen2_5_vl_{3b,7b}.yaml`) exists. Placeholders (`<name>`, `NAME`,
    `...`) are not paths."""
    problems = []
    for page in pages:
        full = page.read_text(encoding="utf-8")
        shell = [line for lang, body in FENCE.findall(full) if lang in SHELL_LANGS for line in body.splitlines()]
        for span in re.findall(r"`([^`]+)`", FENCE.sub("", full)) + shell:
            for path in REPO_PATH.findall(span):
                if "<" in span or "..." in path or re.search(r"\b[A-Z]{3,}\b", path):
                    continue
                expanded = [path]
                while any("{" in p for p in expanded):
                    p = next(p for p in expanded if "{" in p)
                    m = re.search(r"\{([^{}]*)\}", p)
                    expanded.remove(p)
                    expanded += [p[:m.start()] + alt + p[m.end():] for alt in m.group(1).split(",")]
                for p in expanded:
                    if not list(REPO.glob(p.rstrip("/"))):
                        problems.append(f"{rel(page)}: `{span}` names {p}, which does not exist")
    return problems


def test_pages_show_commands():
    """The extraction finds what the pages are known to show (so the checks below are not vacuous)."""
    paths = {command_path(w) for _, w in mmreason_commands()}
    assert {("eval", "run"), ("eval", "score"), ("eval", "compare"), ("sft",), ("grpo",), ("data", "build"),
            ("data", "synth"), ("nep", "synth"), ("nep", "build"), ("plot",), ("papers",), ("export",)} <= paths
    assert {w[0] for _, w in make_commands() if w} >= {"demo", "test", "sft", "grpo", "eval", "papers", "nep-demo",
                                                      "bench", "faults"}
    readme_paths = {command_path(w) for s, w in mmreason_commands([README])}
    assert {("data", "build"), ("sft",), ("grpo",), ("eval", "run")} <= readme_paths  # one command per stage
    assert {rel(p) for p in PAGES} >= {"README.md", *(f"docs/{name}.md" for name in COMMAND_PAGES)}


@pytest.mark.slow
def test_every_mmreason_command_and_flag_exists():
    problems = mmreason_problems(PAGES)
    assert problems == [], "\n".join(problems)


def test_every_make_command_exists():
    problems = make_problems(PAGES)
    assert problems == [], "\n".join(problems)


def test_every_link_and_path_exists():
    problems = link_problems(PAGES) + path_problems(PAGES)
    assert problems == [], "\n".join(problems)


def length_problems(readme: Path) -> list[str]:
    lines = len(readme.read_text(encoding="utf-8").splitlines())
    return [f"{rel(readme)} has {lines} lines (at most {README_MAX_LINES}: the rest goes in docs/)"] \
        if lines > README_MAX_LINES else []


def test_readme_is_short():
    problems = length_problems(README)
    assert problems == [], problems[0] if problems else ""


@pytest.mark.parametrize("name", COMMAND_PAGES)
def test_stage_pages_open_with_their_commands(name):
    text = (REPO / "docs" / f"{name}.md").read_text(encoding="utf-8")
    sections = re.findall(r"^## (.+)$", text, flags=re.M)
    assert sections and sections[0] == "Commands", f"docs/{name}.md: the first section is {sections[:1]}, not Commands"
    first = text[text.index("## Commands"):]
    first = first[: first.find("\n## ", 1) if "\n## " in first[1:] else len(first)]
    assert FENCE.search(first), f"docs/{name}.md: no command block under ## Commands"


def test_results_say_when():
    """Each measured section of docs/results.md names the date of its measurement."""
    text = (REPO / "docs" / "results.md").read_text(encoding="utf-8")
    sections = re.split(r"^## ", text, flags=re.M)[1:]
    undated = [s.splitlines()[0] for s in sections
               if not s.startswith("Commands") and not re.search(r"\b20\d\d-\d\d-\d\d\b", s)]
    assert undated == [], f"docs/results.md sections without a measurement date: {undated}"


@pytest.mark.slow
def test_the_checkers_report_a_planted_page(tmp_path):
    """A page with a flag that does not exist, a make target that does not exist, a link to a missing file or
    heading and a missing config is reported, each by its checker."""
    (tmp_path / "other.md").write_text("# Other\n\n## A heading\n")
    page = tmp_path / "planted.md"
    page.write_text(
        "# Planted\n\n## Commands\n\n```bash\n"
        "mmreason eval run --model m --benchmark b --output-dir o --no-such-flag\n"
        "make no-such-target\n"
        "mmreason sft --config configs/sft/gone.yaml\n"
        "```\n\n"
        "Fine: `make test`, [other](other.md#a-heading). Not: [gone](gone.md), [other](other.md#no-heading), "
        "`configs/grpo/no_such_config.yaml`, `configs/sft/qwen2_5_vl_{7b,9b}.yaml`.\n")
    assert mmreason_problems([page]) == ["'planted.md: mmreason eval run --model m --benchmark b --output-dir o "
                                         "--no-such-flag': `mmreason eval run` has no flag --no-such-flag"]
    made = make_problems([page])
    assert len(made) == 1 and "make -n no-such-target exited" in made[0]
    assert link_problems([page]) == ["planted.md: link (gone.md) points at a missing file",
                                     "planted.md: link (other.md#no-heading): no heading #no-heading in other.md"]
    assert path_problems([page]) == [
        "planted.md: `configs/grpo/no_such_config.yaml` names configs/grpo/no_such_config.yaml, which does not exist",
        "planted.md: `configs/sft/qwen2_5_vl_{7b,9b}.yaml` names configs/sft/qwen2_5_vl_9b.yaml, which does not exist",
        "planted.md: `mmreason sft --config configs/sft/gone.yaml` names configs/sft/gone.yaml, which does not exist"]
    long_readme = tmp_path / "README.md"
    long_readme.write_text("line\n" * README_MAX_LINES)
    assert length_problems(long_readme) == []
    long_readme.write_text("line\n" * (README_MAX_LINES + 1))
    assert length_problems(long_readme) == [f"README.md has {README_MAX_LINES + 1} lines (at most "
                                            f"{README_MAX_LINES}: the rest goes in docs/)"]
