"""`mmreason nep demo` (`make nep-demo`): next-event prediction end to end on CPU.

tiny Qwen2.5-VL (offline) -> synthetic NEP clips (`nep synth`: train / held-out test) -> FutureBench-style eval
of the base model -> video SFT (`mmreason sft`, configs/sft/tiny_nep.yaml) -> the same eval -> a per-hop table.

The SFT data are the train scenes' NEP Mix records (SFT + CFT + Distill, each with its own system prompt) plus
the train MCQs written in FutureBench's prompt (official system prompt and user text, answered with the letter),
so the SFT model meets the eval's format; the eval is `mmreason eval run --benchmark futurebench` (official
prompt, video settings and letter extraction) on the held-out scenes' `test_futurebench.json`. Video GRPO is not
in this demo yet: its recipe (configs/grpo/tiny_nep.yaml: think/answer prompt, `answer_letter` on <answer> tags)
does not fit this SFT, which answers FutureBench's bare letter. Every stage is the real one, in-process; a finished stage is
reused on rerun (same settings), `--fresh` starts over; step counts are fixed.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SFT_CONFIG = REPO / "configs" / "sft" / "tiny_nep.yaml"
FB_SYSTEM = "You are a helpful assistant."


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmreason nep demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/nep-demo", help="run folder (model, data, checkpoints, evals, table)")
    p.add_argument("--size", default="tiny", choices=["tiny", "small"], help="tiny-model size")
    p.add_argument("--n-train", type=int, default=240, help="synthetic train scenes")
    p.add_argument("--n-test", type=int, default=60, help="held-out synthetic test scenes (FutureBench layout)")
    p.add_argument("--sft-steps", type=int, default=None, help="default: max_steps of configs/sft/tiny_nep.yaml")
    p.add_argument("--eval-batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fresh", action="store_true", help="delete --out first")
    p.add_argument("--prepare-only", action="store_true", help="only build the base model and the synthetic data")
    p.add_argument("--sft-arg", action="append", default=[], help="extra `mmreason sft` override")
    return p


def _log(msg: str) -> None:
    print(f"\n[nep-demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _same(path: Path, settings: dict) -> None:
    """Reuse a finished stage only if it was made with the same settings; record them the first time."""
    if path.is_file():
        old = json.loads(path.read_text())
        if old != settings:
            raise SystemExit(f"nep demo: {path.parent} was made with other settings ({old} vs {settings}): "
                             "rerun with --fresh or another --out")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings, indent=1))


def futurebench_sft_records(data: Path) -> int:
    """train_fb_mcq.jsonl: the train MCQs with FutureBench's official prompt as the question (system prompt
    "You are a helpful assistant.", no instruction) and the gold letter as the target."""
    from mmreason.eval.futurebench import build_prompt
    from mmreason.records import load_records, write_records

    recs, _ = load_records(data / "train_mcq.jsonl")
    out = []
    for r in recs:
        doc = {"qa": {"Question": r.question, "Options": dict(zip("ABCD", r.choices)), "Answer": r.answer}}
        r.question, r.choices, r.answer_type, r.solution = build_prompt(doc), None, "text", r.answer
        r.id = r.id.replace("-mcq", "-fbmcq")
        r.metadata = {**r.metadata, "strategy": "futurebench-mcq", "system_prompt": FB_SYSTEM, "prompt_suffix": ""}
        out.append(r)
    return write_records(data / "train_fb_mcq.jsonl", out)


def prepare(args, out: Path) -> tuple[Path, Path]:
    from mmreason.tiny import build_tiny_model
    from mmreason.video.synth import generate

    _same(out / "demo_data.json", {k: getattr(args, k) for k in ("size", "n_train", "n_test", "seed")})
    base = out / "base_model"
    if not (base / "model.safetensors").is_file():
        _log(f"building the {args.size} Qwen2.5-VL checkpoint offline -> {base}")
        build_tiny_model(base, size=args.size, seed=args.seed)
    data = out / "data"
    if not (data / "train_fb_mcq.jsonl").is_file():
        _log(f"rendering {args.n_train} train / {args.n_test} held-out synthetic scenes -> {data}")
        counts = generate(str(data), args.n_train, args.n_test, seed=args.seed)
        counts["train_fb_mcq"] = futurebench_sft_records(data)
        print(", ".join(f"{k} {v}" for k, v in counts.items()))
    return base, data


def run_sft(args, base: Path, data: Path, out: Path) -> Path:
    from mmreason.sft.run import main as sft_main

    dst = out / "sft"
    argv = ["--config", str(SFT_CONFIG), "--model_name_or_path", str(base), "--train_files",
            str(data / "train_mix.jsonl"), str(data / "train_fb_mcq.jsonl"), "--output_dir", str(dst),
            "--seed", str(args.seed), *(["--max_steps", str(args.sft_steps)] if args.sft_steps else []),
            *args.sft_arg]
    if not (dst / "model.safetensors").is_file():
        _log(f"video SFT ({SFT_CONFIG.name}) -> {dst}")
        if sft_main(argv):
            raise SystemExit("nep demo: the SFT stage failed (see above)")
    _same(dst / "demo_stage.json", {"argv": argv})
    return dst


def evaluate(args, model: Path, data: Path, out: Path, name: str) -> dict:
    from mmreason.eval.run import run_benchmark

    dst = out / "eval" / name
    _log(f"FutureBench-style eval of {name} on the held-out clips -> {dst}")
    return run_benchmark(str(model), "futurebench", dst, data_dir=str(data / "test_futurebench.json"),
                         batch_size=args.eval_batch_size, progress=False)


def _se(pct: float, n: int) -> float:
    p = pct / 100
    return 100 * math.sqrt(max(p * (1 - p), 0.0) / max(n, 1))


def table(rows: list[tuple[str, dict]]) -> str:
    hops = [h for h in rows[0][1]["per_hop"] if any(s["per_hop_counts"][h]["total"] for _, s in rows)]
    head = "| model | " + " | ".join(f"{h} (n={rows[0][1]['per_hop_counts'][h]['total']})" for h in hops)
    lines = [head + f" | overall (n={rows[0][1]['total']}) |", "|---|" + "---|" * (len(hops) + 1)]
    for name, s in rows:
        cells = [f"{s['per_hop'][h]:.1f}" for h in hops]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {s['overall']:.1f} ± {_se(s['overall'], s['total']):.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    if args.fresh and out.exists():
        shutil.rmtree(out)
    t0 = time.time()
    base, data = prepare(args, out)
    if args.prepare_only:
        print(f"prepared {base} and {data}")
        return 0
    rows = [("base", evaluate(args, base, data, out, "base"))]
    t_sft = time.time()
    sft = run_sft(args, base, data, out)
    sft_s = time.time() - t_sft
    rows.append(("SFT", evaluate(args, sft, data, out, "sft")))
    wall = time.time() - t0
    text = "\n".join([
        "FutureBench-style accuracy (%, official letter extraction) on the held-out synthetic clips "
        f"(± one standard error; chance 25%); no video GRPO row (not in this demo yet):", "",
        table(rows), "",
        f"wall time {wall:.0f} s on this machine (SFT {sft_s:.0f} s); run folder {out}"])
    (out / "nep_demo_table.md").write_text(text + "\n")
    (out / "nep_demo_summary.json").write_text(json.dumps({
        "rows": {n: {k: s[k] for k in ("overall", "per_hop", "per_hop_counts", "total", "correct")} for n, s in rows},
        "wall_seconds": round(wall, 1), "sft_seconds": round(sft_s, 1)}, indent=1) + "\n")
    print("\n" + text)
    return 0
