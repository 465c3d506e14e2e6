"""Shared fixtures: everything offline, one tiny Qwen2.5-VL checkpoint per test session."""

import os
import sys

os.environ["MMREASON_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")

from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# Tests live in folders mirroring mmreason/ (tests/rl/, tests/eval/, ...); the helper modules they share by bare
# name (ports, video_fixtures, grpo_fixtures, fake_vllm, trl_hooks, test_build_common, test_paper_configs) and the
# worker scripts stay here in tests/, importable from every folder.
TESTS = str(Path(__file__).resolve().parent)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)
# Small copies of the benchmark data, in the layout of the full data (see tests/fixtures/README.md).
FIXTURES = REPO / "tests" / "fixtures" / "benchmarks"
FULL_DATA_ENV = "MMREASON_BENCHMARKS"
FULL_DATA_SKIP = f"full benchmark data: set {FULL_DATA_ENV}=DIR (mathvista/ and wemath/ as in tests/fixtures/README.md)"


@dataclass(frozen=True)
class Benchmarks:
    """A benchmark data folder and the sizes the tests expect of it."""

    root: Path
    full: bool
    mathvista_items: int
    wemath_rows: int
    wemath_composite: int
    wemath_domains: int


FIXTURE_DATA = Benchmarks(FIXTURES, False, mathvista_items=45, wemath_rows=33, wemath_composite=10, wemath_domains=9)
FULL_SIZES = dict(mathvista_items=1000, wemath_rows=1740, wemath_composite=525, wemath_domains=12)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A real Qwen2.5-VL checkpoint folder (~0.25M params), built once per session."""
    from mmreason.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_model"), size="tiny", seed=0)


@pytest.fixture(scope="session")
def benchmarks_dir() -> Path:
    """The committed fixture copy of the benchmark data (mathvista/, wemath/ in the official layout)."""
    return FIXTURES


@pytest.fixture(scope="session")
def full_benchmarks_dir() -> Path:
    """The full benchmark data named by $MMREASON_BENCHMARKS; the test is skipped when it is unset."""
    env = os.environ.get(FULL_DATA_ENV)
    if not env:
        pytest.skip(FULL_DATA_SKIP)
    path = Path(env)
    missing = [f for f in ("mathvista/testmini.json", "wemath/testmini.json") if not (path / f).is_file()]
    if missing:
        pytest.fail(f"{FULL_DATA_ENV}={env}: {', '.join(missing)} not found there")
    return path


@pytest.fixture(scope="module", params=["fixtures", "full"])
def benchmarks(request) -> Benchmarks:
    """Each data-dependent check runs on the fixtures, and again on the full data when it is given."""
    if request.param == "fixtures":
        return FIXTURE_DATA
    return Benchmarks(request.getfixturevalue("full_benchmarks_dir"), True, **FULL_SIZES)


@pytest.fixture(autouse=True)
def forget_modules_imported_from_tmp(tmp_path_factory):
    """A test that imports a module it wrote into its tmp folder (a reward or loss plugin by dotted name) leaves it
    in sys.modules under a plain name like `my_rewards`; another test's file of the same name would then get the
    first one. Drop such modules after each test."""
    before = set(sys.modules)
    yield
    base = str(tmp_path_factory.getbasetemp())
    for name in set(sys.modules) - before:
        if (getattr(sys.modules[name], "__file__", None) or "").startswith(base):
            del sys.modules[name]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Report every full-data skip under one location, so `-ra` prints it as one line with its count."""
    outcome = yield
    rep = outcome.get_result()
    if rep.skipped and isinstance(rep.longrepr, tuple) and rep.longrepr[2].endswith(FULL_DATA_SKIP):
        rep.longrepr = (__file__, 1, rep.longrepr[2])


def pytest_terminal_summary(terminalreporter):
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if FULL_DATA_SKIP in str(r.longrepr)]
    if skipped:
        terminalreporter.write_line(f"{len(skipped)} full-data tests skipped: {FULL_DATA_SKIP}", yellow=True)
    elif os.environ.get(FULL_DATA_ENV):
        terminalreporter.write_line(f"full-data tests ran on {FULL_DATA_ENV}={os.environ[FULL_DATA_ENV]}")
