"""The stage runner the demos and the papers' miniatures share: each stage is the real one (`mmreason sft` /
`mmreason grpo` / `mmreason eval run`), run in-process; a stage whose output folder is finished (weights or a LoRA
adapter) is reused when it was made with the same argv, and refused when it was made with other settings."""

from __future__ import annotations

import hashlib
import json
import signal
import sys
import time
from pathlib import Path
from typing import Callable, Mapping

from mmreason.eval.paired import compare_items, item_scores, paired_json, paired_table
from mmreason.eval.run import run_benchmark
from mmreason.rl.run import main as grpo_main
from mmreason.sft.run import main as sft_main
from mmreason.tiny import build_tiny_model

REPO = Path(__file__).resolve().parents[2]
STAGE_FILE = "demo_stage.json"  # the argv and code a finished stage was made with
PREEMPTED = 128 + signal.SIGTERM  # a stage stopped by SIGTERM saved a checkpoint (mmreason.preemption.EXIT_CODE)


def code_identity(*files: Path) -> str:
    """SHA-256 of the code a demo's numbers depend on (every mmreason module) and of `files` (the stage configs): a
    stage made by other code is refused, not reused (a folder left by an older version printed an older table)."""
    h = hashlib.sha256()
    for f in [*sorted((REPO / "mmreason").rglob("*.py")), *files]:
        h.update(str(f.resolve().relative_to(REPO) if f.resolve().is_relative_to(REPO) else f).encode() + b"\0"
                 + f.read_bytes() + b"\0")
    return h.hexdigest()


def log(who: str, msg: str) -> None:
    print(f"\n[{who} {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def check_same(path: Path, settings: dict, who: str = "demo") -> None:
    """Reuse a finished stage only if it was made with the same settings; record them the first time."""
    if path.is_file():
        old = json.loads(path.read_text())
        if old != settings:
            diff = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v}
            raise SystemExit(f"{who}: {path.parent} was made with other settings {diff} (old, new): "
                             "rerun with --fresh or another --out")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings, indent=1))


def finished(folder: Path) -> bool:
    """A stage's output holds full weights or a LoRA adapter."""
    return (folder / "model.safetensors").is_file() or (folder / "adapter_model.safetensors").is_file()


def base_model(out: Path, size: str, seed: int, who: str = "demo") -> Path:
    """OUT/base_model: the tiny Qwen2.5-VL checkpoint, built offline unless it is there."""
    base = out / "base_model"
    if not (base / "model.safetensors").is_file():
        log(who, f"building the {size} Qwen2.5-VL checkpoint offline -> {base}")
        build_tiny_model(base, size=size, seed=seed)
    return base


def run_stage(label: str, stage_main: Callable[[list[str]], int], argv: list[str], dst: Path,
              who: str = "demo") -> Path:
    """Run a stage's CLI main in-process unless `dst` already holds its finished output (same argv, same code and
    config files); a stage stopped by SIGTERM exits 143 (its checkpoint resumes on the same command)."""
    settings = {"argv": argv, "code": code_identity(*(Path(a) for a in argv if a.endswith((".yaml", ".yml"))))}
    if (dst / STAGE_FILE).is_file() or finished(dst):
        check_same(dst / STAGE_FILE, settings, who)  # before training: other settings or code are refused
    if finished(dst):
        return dst
    log(who, f"{label} -> {dst}")
    rc = stage_main(argv)
    if rc == PREEMPTED:
        print(f"{who}: the {label} stage stopped on SIGTERM with a checkpoint; the same command resumes it",
              file=sys.stderr)
        raise SystemExit(PREEMPTED)
    if rc:
        raise SystemExit(f"{who}: the {label} stage failed (see above)")
    check_same(dst / STAGE_FILE, settings, who)
    return dst


def run_sft(config: Path, model: Path, train_files: list[Path], dst: Path, seed: int, steps: int | None = None,
            extra: list[str] = (), label: str = "SFT", who: str = "demo") -> Path:
    """`mmreason sft --config CONFIG` from `model` on `train_files` into `dst` (`steps` overrides max_steps)."""
    argv = ["--config", str(config), "--model_name_or_path", str(model), "--train_files", *map(str, train_files),
            "--output_dir", str(dst), "--seed", str(seed), *(["--max_steps", str(steps)] if steps else []), *extra]
    return run_stage(f"{label} ({config.name})", sft_main, argv, dst, who)


def run_grpo(config: Path, model: Path, train_files: list[Path], dst: Path, seed: int, steps: int | None = None,
             extra: list[str] = (), eval_file: Path | None = None, label: str = "GRPO", who: str = "demo") -> Path:
    """`mmreason grpo --config CONFIG` from `model` on `train_files` into `dst` (`eval_file`: the held-out
    questions scored during training)."""
    argv = ["--config", str(config), "--model_name_or_path", str(model), "--train_files", *map(str, train_files),
            *(["--eval_file", str(eval_file)] if eval_file else []), "--output_dir", str(dst), "--seed", str(seed),
            *(["--max_steps", str(steps)] if steps else []), *extra]
    return run_stage(f"{label} ({config.name}) from {model.name}", grpo_main, argv, dst, who)


def evaluate(model: Path, benchmark: str | Path, dst: Path, label: str, who: str = "demo", **options) -> dict:
    """`mmreason eval run` of `model` on `benchmark` (a records file or a benchmark name) into `dst`: its summary."""
    log(who, f"evaluating {label} -> {dst}")
    return run_benchmark(str(model), str(benchmark), dst, **options)


PAIRED_HEAD = ("Paired tests on the same held-out questions (B − A; exact McNemar p on the questions only one of the "
               "two got right, seeded paired bootstrap 95% CI of 2,000 resamples; per task below each overall row):")


def paired_section(rows: list[tuple[str, dict]], pairs: list[tuple[str, str]], groups: Mapping[str, str] | None,
                   seed: int = 0) -> tuple[list[str], list[dict]]:
    """The markdown table and JSON rows of paired tests `B vs A` for each (A, B) in `pairs` (row names), overall
    and per group (item id -> task), from the evals' per-item correctness (`mmreason.eval.paired`)."""
    by_name = dict(rows)
    comparisons = [(a, b, compare_items(item_scores(by_name[a], a), item_scores(by_name[b], b), groups, seed, (a, b)))
                   for a, b in pairs]
    return [PAIRED_HEAD, "", *paired_table(comparisons)], paired_json(comparisons)
