"""`mmreason demo`: the embedded end-to-end pipeline on CPU.

tiny Qwen2.5-VL (offline) -> synthetic train/test -> eval base -> cold-start SFT -> eval
-> GRPO from SFT -> eval [-> GRPO from base: the RL-only row] -> accuracy table, and under it the paired
tests (McNemar, paired bootstrap) of SFT vs base and SFT + GRPO vs SFT [GRPO only vs base], overall and per task.

Every stage is the real one (`mmreason sft` / `mmreason grpo` / `mmreason eval run`), run
in-process with the repo's demo configs plus overrides. Finished stages are reused on rerun
(their outputs are complete folders); `--fresh` starts over. Step counts are fixed, so a
rerun with the same seed reproduces the numbers up to CPU floating-point nondeterminism.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import torch

from mmreason.data.synth import synthesize
from mmreason.demos import runner
from mmreason.demos.runner import REPO, check_same, paired_section
from mmreason.eval.stats import binomial_se
from mmreason.offline import offline_defaults
from mmreason.records import load_records
from mmreason.rl.plot import eval_rewards, law_summary, load_history, plot_run, reward_trend

SFT_CONFIG = REPO / "configs" / "sft" / "tiny_demo.yaml"
GRPO_CONFIG = REPO / "configs" / "grpo" / "tiny_demo.yaml"
# the rows of the accuracy table
BASE, SFT, SFT_GRPO, RL_ONLY = "base", "SFT (cold start)", "SFT + GRPO", "GRPO only (no cold start)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmreason demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/demo", help="run folder (model, data, checkpoints, evals, summary)")
    p.add_argument("--size", default="small", choices=["tiny", "small"], help="tiny-model size")
    p.add_argument("--n-train", type=int, default=3000, help="synthetic train records (SFT and RL questions)")
    p.add_argument("--n-test", type=int, default=300, help="held-out synthetic test records")
    p.add_argument("--difficulty", default="easy", choices=["easy", "medium", "hard"])
    p.add_argument("--tasks", default="color,bars,compare",
                   help="comma-separated synthetic task subset ('all' for every family); three tasks fit the "
                        "10-minute CPU budget, all six need far more SFT steps")
    p.add_argument("--sft-samples", type=int, default=None,
                   help="use only this many train records for SFT (the cold start is small next to the RL pool)")
    p.add_argument("--sft-steps", type=int, default=None, help="default: max_steps of configs/sft/tiny_demo.yaml")
    p.add_argument("--grpo-steps", type=int, default=None, help="default: max_steps of configs/grpo/tiny_demo.yaml")
    p.add_argument("--rl-only", action="store_true", help="also run GRPO from the base model (the RL-only row)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="generation budget for evaluation")
    p.add_argument("--eval-batch-size", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fresh", action="store_true", help="delete --out first")
    p.add_argument("--prepare-only", action="store_true",
                   help="only build the base model and synthetic data (what `make sft` needs)")
    p.add_argument("--sft-arg", action="append", default=[], help="extra `mmreason sft` override, e.g. --sft-arg=--learning_rate=1e-4")
    p.add_argument("--grpo-arg", action="append", default=[], help="extra `mmreason grpo` override")
    return p


def _log(msg: str) -> None:
    runner.log("demo", msg)


def prepare(args, out: Path) -> tuple[Path, Path]:
    check_same(out / "demo_data.json", {k: getattr(args, k) for k in ("size", "n_train", "n_test", "difficulty",
                                                                      "tasks", "seed")})
    base = runner.base_model(out, args.size, args.seed)
    data = out / "data"
    if not (data / "test.jsonl").is_file():
        _log(f"synthesizing {args.n_train} train / {args.n_test} test records -> {data}")
        tasks = None if args.tasks in (None, "all") else args.tasks.split(",")
        synthesize(data, args.n_train, args.n_test, seed=args.seed, tasks=tasks, difficulty=args.difficulty)
    return base, data


def run_sft(args, base: Path, data: Path, out: Path) -> Path:
    extra = [*(["--max_samples", str(args.sft_samples)] if args.sft_samples else []), *args.sft_arg]
    return runner.run_sft(SFT_CONFIG, base, [data / "train.jsonl"], out / "sft", args.seed, args.sft_steps, extra,
                          label="cold-start SFT")


def run_grpo(args, start: Path, data: Path, dst: Path, config: Path = GRPO_CONFIG) -> Path:
    return runner.run_grpo(config, start, [data / "train.jsonl"], dst, args.seed, args.grpo_steps,
                           list(args.grpo_arg), eval_file=data / "test.jsonl")


def evaluate(args, model: Path, data: Path, out: Path, name: str) -> dict:
    return runner.evaluate(model, data / "test.jsonl", out / "eval" / name, f"{name} on the held-out test split",
                           batch_size=args.eval_batch_size, max_new_tokens=args.max_new_tokens, temperature=0.0)


def reward_lines(run: Path) -> tuple[list[str], dict]:
    """Markdown tables of the GRPO accuracy reward: on the fixed eval questions at each evaluation (per
    source), and on the training rollouts, first vs last window (see `reward_trend`)."""
    try:
        history = load_history(run)
    except FileNotFoundError:
        return [], {}
    trend = reward_trend(history)
    trend["eval"] = evals = eval_rewards(history)
    lines = []
    steps, values = evals["batch"]
    if steps:
        lines += ["GRPO accuracy reward on the fixed held-out questions evaluated during training "
                  "(sampled like the rollouts):", "",
                  "| questions | " + " | ".join(f"step {s}" for s in steps) + " |", "|---|" + "---|" * len(steps)]
        for name, (xs, ys) in [("all", (steps, values)), *evals["sources"].items()]:
            by_step = dict(zip(xs, ys))
            lines.append(f"| {name} | " + " | ".join(f"{by_step[s]:.3f}" if s in by_step else "-" for s in steps) + " |")
        lines.append("")
    if trend["batch"] is None:
        return lines, trend
    k = trend["window"]
    if trend["unit"] == "pass":
        head = (f"GRPO training accuracy reward on the sampled rollouts, first vs last complete pass over the "
                f"same questions ({trend['passes']} passes, {trend['steps']} logged steps):")
        cols, batch = ("first pass", "last pass"), "all questions"
    else:
        head = f"GRPO training accuracy reward on the sampled rollouts (first / last {k} of {trend['steps']} steps):"
        cols, batch = (f"first {k} steps", f"last {k} steps"), "batch mean (moves with each batch's task mix)"
    lines += [head, "", f"| rollouts | {cols[0]} | {cols[1]} | change |", "|---|---|---|---|"]
    rows = [(src, w) for src, w in trend["sources"].items()]
    if "macro" in trend:
        rows.append(("mean over sources", trend["macro"]))
    rows.append((batch, trend["batch"]))
    lines += [f"| {name} | {a:.3f} | {b:.3f} | {b - a:+.3f} |" for name, (a, b) in rows]
    return lines, trend


def law_lines(run: Path) -> tuple[list[str], dict]:
    """`mmreason plot` on the GRPO run: the PNGs, and the entropy-performance law fitted on the validation
    reward (the fixed held-out questions scored during training), as a line."""
    try:
        res = plot_run(run)
    except (FileNotFoundError, KeyError) as e:
        return [f"plots: not drawn ({e})"], {}
    lines = [f"Entropy-performance {law_summary(res)[len('entropy '):]}"]
    if "warning" in res:
        lines.append(f"({res['warning']})")
    files = ", ".join(Path(f).name for f in res["files"])
    keep = ("basis", "a", "b", "ceiling", "r2", "points")
    return [*lines, "", f"plots: {files} in {run}"], {k: res[k] for k in keep if k in res}


def table(rows: list[tuple[str, dict]]) -> str:
    sources = sorted({src for _, s in rows for src in s.get("per_source", {})})
    extra = "".join(f" {src} |" for src in sources) if len(sources) > 1 else ""
    lines = [f"| model | accuracy (held-out) | ± s.e. | correct / total |{extra}",
             "|---|---|---|---|" + "---|" * (len(sources) if extra else 0)]
    for name, s in rows:
        acc, n = s["accuracy"], s["total"]
        cells = "".join(f" {100 * s['per_source'][src]['accuracy']:.0f}% |" if src in s.get("per_source", {})
                        else " - |" for src in sources) if extra else ""
        lines.append(f"| {name} | {100 * acc:.1f}% | {100 * binomial_se(acc, n):.1f} | {s['correct']} / {n} |{cells}")
    return "\n".join(lines)


def record_sources(path: Path) -> dict[str, str]:
    recs, _ = load_records(path, strict=False)
    return {r.id: r.source or "unknown" for r in recs}


def main(argv: list[str] | None = None) -> int:
    offline_defaults()
    # One math thread: on a small shared CPU two torch threads thrash (measured up to 10x slower), and the
    # reward pool's verifier process needs the other core during GRPO.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))  # torch has loaded: the variable alone would not apply
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    if args.fresh and out.exists():
        shutil.rmtree(out)
    t0 = time.time()
    base, data = prepare(args, out)
    if args.prepare_only:
        print(f"embedded default ready: model {base}, data {data}")
        return 0
    rows = [(BASE, evaluate(args, base, data, out, "base"))]
    sft = run_sft(args, base, data, out)
    rows.append((SFT, evaluate(args, sft, data, out, "sft")))
    grpo = run_grpo(args, sft, data, out / "grpo")
    rows.append((SFT_GRPO, evaluate(args, grpo, data, out, "sft_grpo")))
    pairs = [(BASE, SFT), (SFT, SFT_GRPO)]
    if args.rl_only:
        rl = run_grpo(args, base, data, out / "grpo_from_base")
        rows.append((RL_ONLY, evaluate(args, rl, data, out, "grpo_only")))
        pairs.append((BASE, RL_ONLY))
    paired, paired_rows = paired_section(rows, pairs, record_sources(data / "test.jsonl"), args.seed)

    trend_lines, trend = reward_lines(grpo)
    law, fit = law_lines(grpo)
    md = [f"# mmreason demo ({time.time() - t0:.0f} s)", "", table(rows), "", *paired, "", *trend_lines, "", *law]
    summary = {name: {k: s[k] for k in ("accuracy", "correct", "total", "per_source") if k in s} for name, s in rows}
    summary["paired"] = paired_rows
    summary["grpo_reward_trend"] = trend
    summary["grpo_entropy_law"] = fit
    summary["seconds"] = round(time.time() - t0, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "summary.md").write_text("\n".join(md) + "\n")
    _log("done")
    print("\n".join(md))
    return 0
