"""`mmreason nep demo` (`make nep-demo`): next-event prediction end to end on CPU.

tiny Qwen2.5-VL (offline) -> synthetic NEP clips (`nep synth`: train / held-out test) -> FutureBench-style eval
of the base model -> video SFT (`mmreason sft`, configs/sft/tiny_nep.yaml) -> the same eval -> video GRPO from
the SFT checkpoint (`mmreason grpo`, configs/grpo/tiny_nep_demo.yaml) -> the same eval -> a per-hop table with
paired tests (SFT vs base, SFT+GRPO vs SFT on the same held-out items) and a blanked-frames control.

SFT data: the train MCQs written in FutureBench's prompt (official system prompt and user text, answered with the
bare letter); by default the train scenes are ball-heavy (`--train-families`, the held-out ones alternate ball and
sequence) and the options are in alphabetical order (`--option-order sorted`: a ball clip's four options are then
always the same lines, so the letter names the outcome; with `drawn` the letter has to be found by reading the
options, which the tiny model did not learn in 1,500 steps); `--mcq-variants` writes each in more option orders;
`--sft-data` adds the NEP SFT-strategy or Mix records (SFT + CFT + Distill, each with its own system prompt).
GRPO: the same FutureBench-prompt MCQs, prompts built from the SFT's prompt.json (so they are exactly what the
eval sends), reward `answer_letter` in mode `futurebench` (FutureBench's official letter extraction). Eval:
`mmreason eval run --benchmark futurebench` (official prompt, video settings and letter extraction) on the
held-out scenes' `test_futurebench.json`, and on a copy whose past clips are blank (`blank_test_clips`). Every
stage is the real one, in-process; a finished stage is reused on rerun (same settings and same code: a folder made
by another version is refused), `--fresh` starts over; step counts and seeds are fixed, and torch runs on
DEMO_THREADS threads whatever the machine, so the same command prints the same table (docs/reliability.md).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import sys
import time
from pathlib import Path

PREEMPTED = 128 + signal.SIGTERM  # a stage stopped by SIGTERM (mmreason.preemption.EXIT_CODE; kept torch-free here)
# The CPU's vector width picks other float kernels (ATen's, MKL's, oneDNN's) and so other weights: on one machine
# an AVX2 run, a default-width run and an MKL "compatible" run trained three different SFT checkpoints in 10 steps.
# The demo computes as an AVX2 machine does on every x86 CPU that has AVX2 (read when torch loads: `pin_isa`).
DEMO_ISA = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}

REPO = Path(__file__).resolve().parents[2]
SFT_CONFIG = REPO / "configs" / "sft" / "tiny_nep.yaml"
GRPO_CONFIG = REPO / "configs" / "grpo" / "tiny_nep_demo.yaml"
FB_SYSTEM = "You are a helpful assistant."
FRAME_SIZE = 56
# --sft-data: the train files of each choice
SFT_DATA = {"mcq": ["train_fb_mcq.jsonl"], "sft+mcq": ["train_fb_mcq.jsonl", "train_sft.jsonl"],
            "mix+mcq": ["train_fb_mcq.jsonl", "train_mix.jsonl"]}
# (A, B) of the paired tests `B vs A` under the table
PAIRS = (("base", "SFT"), ("SFT", "SFT+GRPO"))
# CPU threads of every stage: float sums are ordered by the thread count, and 1,200 SFT steps at lr 1e-3 turn a
# last-bit difference into another table (1 vs 2 threads already give other weights after 10 steps)
DEMO_THREADS = 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmreason nep demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/nep-demo", help="run folder (model, data, checkpoints, evals, table)")
    p.add_argument("--size", default="tiny", choices=["tiny", "small"], help="tiny-model size")
    p.add_argument("--n-train", type=int, default=240, help="synthetic train scenes")
    p.add_argument("--n-test", type=int, default=60, help="held-out synthetic test scenes (FutureBench layout)")
    p.add_argument("--train-families", default="ball,ball,ball,sequence",
                   help="train scene families in turn (a family named twice gets twice the scenes: ball,ball,sequence); "
                   "the held-out scenes alternate ball and sequence")
    p.add_argument("--mcq-variants", type=int, default=1, help="option orders per train MCQ (1-4; the gold letter "
                   "takes a new position in each, the options rotated)")
    p.add_argument("--option-order", default="sorted", choices=["sorted", "drawn"],
                   help="MCQ options (train and held-out): alphabetical (a ball clip's letter then names its outcome), "
                   "or the gold letter cycling A-D with the distractors in a drawn order (the letter must be found "
                   "by reading the options)")
    p.add_argument("--sft-data", default="mcq", choices=list(SFT_DATA),
                   help="SFT records: the FutureBench-prompt MCQs, plus the NEP SFT-strategy records (past clip -> "
                   "caption of the future) or the NEP Mix records (SFT + CFT + Distill)")
    p.add_argument("--sft-steps", type=int, default=None, help="default: max_steps of configs/sft/tiny_nep.yaml")
    p.add_argument("--grpo-steps", type=int, default=None, help="default: max_steps of configs/grpo/tiny_nep_demo.yaml; "
                   "0 skips GRPO")
    p.add_argument("--no-blank-control", dest="blank_control", action="store_false",
                   help="skip the blanked-frames evals")
    p.add_argument("--eval-batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fresh", action="store_true", help="delete --out first")
    p.add_argument("--prepare-only", action="store_true", help="only build the base model and the synthetic data")
    p.add_argument("--sft-arg", action="append", default=[], help="extra `mmreason sft` override")
    p.add_argument("--grpo-arg", action="append", default=[], help="extra `mmreason grpo` override")
    return p


def _log(msg: str) -> None:
    print(f"\n[nep-demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def code_identity() -> str:
    """SHA-256 of the code and configs a demo table depends on (every mmreason module, the two stage configs): a
    stage made by other code is not reused (a folder left by an older version printed an older table)."""
    import hashlib

    h = hashlib.sha256()
    pkg = REPO / "mmreason"
    for f in [*sorted(pkg.rglob("*.py")), SFT_CONFIG, GRPO_CONFIG]:
        h.update(str(f.relative_to(REPO)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def pin_isa() -> bool:
    """Set DEMO_ISA before torch loads (True); inside a process that has loaded torch already it cannot apply, and
    the demo says so unless that process was started with it (False)."""
    if "torch" not in sys.modules:
        os.environ.update(DEMO_ISA)
        return True
    if any(os.environ.get(k) != v for k, v in DEMO_ISA.items()):
        print("nep demo: torch was loaded before the demo could pin its CPU kernels (DEMO_ISA): the table may differ "
              "from another machine's; run `mmreason nep demo` in its own process", file=sys.stderr)
    return False


def pin_threads(n: int = DEMO_THREADS) -> None:
    """The same float reduction order on every machine, whatever OMP_NUM_THREADS or the core count says."""
    import torch

    torch.set_num_threads(n)


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
    """train_fb_mcq.jsonl: the train MCQs (all option-order variants) with FutureBench's official prompt as the
    question (system prompt "You are a helpful assistant.", no instruction) and the gold letter as the SFT target.
    They stay multiple choice (answer = the letter, choices kept) so GRPO's `answer_letter` scores them; the
    stage template "{{ question }}" renders the question alone, exactly the user text the eval sends."""
    from mmreason.eval.futurebench import build_prompt
    from mmreason.records import load_records, write_records

    recs, _ = load_records(data / "train_mcq.jsonl")
    out = []
    for r in recs:
        doc = {"qa": {"Question": r.question, "Options": dict(zip("ABCD", r.choices)), "Answer": r.answer}}
        r.question, r.solution = build_prompt(doc), r.answer
        r.id = r.id.replace("-mcq", "-fbmcq")
        r.metadata = {**r.metadata, "strategy": "futurebench-mcq", "system_prompt": FB_SYSTEM, "prompt_suffix": ""}
        out.append(r)
    return write_records(data / "train_fb_mcq.jsonl", out)


def blank_test_clips(data: Path) -> int:
    """data/blank/: the held-out FutureBench items with every past-clip frame replaced by the empty background
    (same frame count, size and fps): the control that says whether a score comes from the frames."""
    from PIL import Image

    from mmreason.records import load_records
    from mmreason.video.synth_scenes import BACKGROUND, FPS
    from mmreason.video.writer import write_mp4

    items = json.loads((data / "test_futurebench.json").read_text())
    recs = {r.id: r for r in load_records(data / "test_mcq.jsonl")[0]}
    dst = data / "blank"
    for item in items:
        meta = recs[item["id"]].metadata
        frames = [Image.new("RGB", (FRAME_SIZE, FRAME_SIZE), BACKGROUND)] * round(meta["t_split"] * FPS)
        write_mp4(frames, dst / item["video_path"].split("video_dataset/")[1], FPS)
    (dst / "test_futurebench.json").write_text(json.dumps(items, indent=1) + "\n")
    return len(items)


def prepare(args, out: Path) -> tuple[Path, Path]:
    from mmreason.tiny import build_tiny_model
    from mmreason.video.synth import generate

    _same(out / "demo_data.json", {**{k: getattr(args, k) for k in ("size", "n_train", "n_test", "train_families",
                                                                     "mcq_variants", "option_order", "seed")},
                                   "code": code_identity()})
    base = out / "base_model"
    if not (base / "model.safetensors").is_file():
        _log(f"building the {args.size} Qwen2.5-VL checkpoint offline -> {base}")
        build_tiny_model(base, size=args.size, seed=args.seed)
    data = out / "data"
    if not (data / "blank" / "test_futurebench.json").is_file():
        _log(f"rendering {args.n_train} train / {args.n_test} held-out synthetic scenes -> {data}")
        counts = generate(str(data), args.n_train, args.n_test, seed=args.seed, size=FRAME_SIZE,
                          mcq_variants_k=args.mcq_variants,
                          train_families=[f for f in args.train_families.split(",") if f],
                          option_order=args.option_order)
        counts["train_fb_mcq"] = futurebench_sft_records(data)
        counts["blank_test"] = blank_test_clips(data)
        print(", ".join(f"{k} {v}" for k, v in counts.items()))
    return base, data


def _stage(main, argv: list[str], dst: Path, what: str) -> None:
    """Run a training stage's main unless `dst` already holds its weights; record its argv and code for reuse
    checks (before training: a stage made by other code or settings is refused, not reused)."""
    settings = {"argv": argv, "code": code_identity()}
    if (dst / "demo_stage.json").is_file():
        _same(dst / "demo_stage.json", settings)
    if not (dst / "model.safetensors").is_file():
        _log(f"{what} -> {dst}")
        rc = main(argv)
        if rc == PREEMPTED:
            print(f"nep demo: the {what} stage stopped on SIGTERM with a checkpoint; the same command resumes it",
                  file=sys.stderr)
            raise SystemExit(PREEMPTED)
        if rc:
            raise SystemExit(f"nep demo: the {what} stage failed (see above)")
    _same(dst / "demo_stage.json", settings)


def run_sft(args, base: Path, data: Path, out: Path) -> Path:
    from mmreason.sft.run import main as sft_main

    dst = out / "sft"
    files = [str(data / f) for f in SFT_DATA[args.sft_data]]
    argv = ["--config", str(SFT_CONFIG), "--model_name_or_path", str(base), "--train_files", *files,
            "--output_dir", str(dst), "--seed", str(args.seed),
            *(["--max_steps", str(args.sft_steps)] if args.sft_steps else []), *args.sft_arg]
    _stage(sft_main, argv, dst, f"video SFT ({SFT_CONFIG.name})")
    return dst


def run_grpo(args, sft: Path, data: Path, out: Path) -> Path:
    """Video GRPO from the SFT checkpoint on the FutureBench-prompt train MCQs; the prompt spec (system message,
    template, instruction) comes from the SFT's prompt.json (the config sets none)."""
    from mmreason.rl.run import main as grpo_main

    dst = out / "grpo"
    argv = ["--config", str(GRPO_CONFIG), "--model_name_or_path", str(sft), "--train_files",
            str(data / "train_fb_mcq.jsonl"), "--output_dir", str(dst), "--seed", str(args.seed),
            *(["--max_steps", str(args.grpo_steps)] if args.grpo_steps else []), *args.grpo_arg]
    _stage(grpo_main, argv, dst, f"video GRPO ({GRPO_CONFIG.name})")
    return dst


def evaluate(args, model: Path, annotations: Path, out: Path, name: str) -> dict:
    from mmreason.eval.run import run_benchmark

    dst = out / "eval" / name
    _log(f"FutureBench-style eval of {name} -> {dst}")
    return run_benchmark(str(model), "futurebench", dst, data_dir=str(annotations),
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


def report(rows: list[tuple[str, dict]], blank: list[tuple[str, dict]], wall: float, stage_seconds: dict,
           out: Path, groups: dict[str, str] | None = None, seed: int = 0) -> tuple[str, dict]:
    """The table text (rows, paired tests overall and per group of `groups` (item id -> family), blanked-frames
    control, wall time) and the summary dict; pure. The paired tests are `mmreason demo`'s (`paired_section`)."""
    from mmreason.demo import paired_section

    keep = ("overall", "per_hop", "per_hop_counts", "total", "correct")
    names = [n for n, _ in rows]
    paired_md, paired_rows = paired_section(rows, [(a, b) for a, b in PAIRS if a in names and b in names], groups, seed)
    parts = ["FutureBench-style accuracy (%, official letter extraction) on the held-out synthetic clips "
             "(± one standard error; a uniform guess scores 25%):", "", table(rows), "", *paired_md]
    if blank:
        parts += ["", "Control: the same items with every past-clip frame blanked (what the model scores without "
                  "seeing the clip):", "", table(blank)]
    times = ", ".join(f"{k} {v:.0f} s" for k, v in stage_seconds.items())
    parts += ["", f"wall time {wall:.0f} s on this machine ({times}); run folder {out}"]
    summary = {"rows": {n: {k: s[k] for k in keep} for n, s in rows},
               "blank_frames": {n: {k: s[k] for k in keep} for n, s in blank},
               "paired": paired_rows, "wall_seconds": round(wall, 1),
               "stage_seconds": {k: round(v, 1) for k, v in stage_seconds.items()}}
    return "\n".join(parts), summary


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    if args.fresh and out.exists():
        shutil.rmtree(out)
    pin_isa()
    pin_threads()
    t0 = time.time()
    base, data = prepare(args, out)
    if args.prepare_only:
        print(f"prepared {base} and {data}")
        return 0
    held_out, blanked = data / "test_futurebench.json", data / "blank" / "test_futurebench.json"
    rows = [("base", evaluate(args, base, held_out, out, "base"))]
    blank = []
    t = time.time()
    sft = run_sft(args, base, data, out)
    seconds = {"SFT": time.time() - t}
    rows.append(("SFT", evaluate(args, sft, held_out, out, "sft")))
    if args.blank_control:
        blank.append(("SFT, frames blanked", evaluate(args, sft, blanked, out, "sft_blank")))
    if args.grpo_steps != 0:
        t = time.time()
        grpo = run_grpo(args, sft, data, out)
        seconds["GRPO"] = time.time() - t
        rows.append(("SFT+GRPO", evaluate(args, grpo, held_out, out, "grpo")))
        if args.blank_control:
            blank.append(("SFT+GRPO, frames blanked", evaluate(args, grpo, blanked, out, "grpo_blank")))
    from mmreason.records import load_records

    families = {r.id: r.metadata["family"] for r in load_records(data / "test_mcq.jsonl")[0]}
    text, summary = report(rows, blank, time.time() - t0, seconds, out, families, args.seed)
    (out / "nep_demo_table.md").write_text(text + "\n")
    (out / "nep_demo_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print("\n" + text)
    return 0
