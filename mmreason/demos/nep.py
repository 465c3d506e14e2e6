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
stage is the real one, in-process; a finished stage is reused on rerun (same settings), `--fresh` starts over;
step counts and seeds are fixed, and torch runs on one thread with AVX2 kernels whatever the machine
(`mmreason.demos.kernels`), so the same command prints the same table (docs/reliability.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from PIL import Image

from mmreason.demos import runner
from mmreason.demos.kernels import pin_isa, pin_threads
from mmreason.demos.runner import REPO, check_same, code_identity, paired_section
from mmreason.eval.futurebench import build_prompt
from mmreason.eval.stats import binomial_se
from mmreason.media.writer import write_mp4
from mmreason.records import load_records, write_records
from mmreason.video.synth import generate
from mmreason.video.synth_scenes import BACKGROUND, FPS

SFT_CONFIG = REPO / "configs" / "sft" / "tiny_nep.yaml"
GRPO_CONFIG = REPO / "configs" / "grpo" / "tiny_nep_demo.yaml"
FB_SYSTEM = "You are a helpful assistant."
FRAME_SIZE = 56
# --sft-data: the train files of each choice
SFT_DATA = {"mcq": ["train_fb_mcq.jsonl"], "sft+mcq": ["train_fb_mcq.jsonl", "train_sft.jsonl"],
            "mix+mcq": ["train_fb_mcq.jsonl", "train_mix.jsonl"]}
# (A, B) of the paired tests `B vs A` under the table
PAIRS = (("base", "SFT"), ("SFT", "SFT+GRPO"))


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


WHO = "nep-demo"


def _log(msg: str) -> None:
    runner.log(WHO, msg)


def futurebench_sft_records(data: Path) -> int:
    """train_fb_mcq.jsonl: the train MCQs (all option-order variants) with FutureBench's official prompt as the
    question (system prompt "You are a helpful assistant.", no instruction) and the gold letter as the SFT target.
    They stay multiple choice (answer = the letter, choices kept) so GRPO's `answer_letter` scores them; the
    stage template "{{ question }}" renders the question alone, exactly the user text the eval sends."""
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
    settings = {k: getattr(args, k) for k in ("size", "n_train", "n_test", "train_families", "mcq_variants",
                                              "option_order", "seed")}
    check_same(out / "demo_data.json", {**settings, "code": code_identity(SFT_CONFIG, GRPO_CONFIG)}, WHO)
    base = runner.base_model(out, args.size, args.seed, WHO)
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


def run_sft(args, base: Path, data: Path, out: Path) -> Path:
    return runner.run_sft(SFT_CONFIG, base, [data / f for f in SFT_DATA[args.sft_data]], out / "sft", args.seed,
                          args.sft_steps, list(args.sft_arg), label="video SFT", who=WHO)


def run_grpo(args, sft: Path, data: Path, out: Path) -> Path:
    """Video GRPO from the SFT checkpoint on the FutureBench-prompt train MCQs; the prompt spec (system message,
    template, instruction) comes from the SFT's prompt.json (the config sets none)."""
    return runner.run_grpo(GRPO_CONFIG, sft, [data / "train_fb_mcq.jsonl"], out / "grpo", args.seed,
                           args.grpo_steps, list(args.grpo_arg), label="video GRPO", who=WHO)


def evaluate(args, model: Path, annotations: Path, out: Path, name: str) -> dict:
    return runner.evaluate(model, "futurebench", out / "eval" / name, f"{name} (FutureBench-style)", WHO,
                           data_dir=str(annotations), batch_size=args.eval_batch_size, progress=False)


def table(rows: list[tuple[str, dict]]) -> str:
    hops = [h for h in rows[0][1]["per_hop"] if any(s["per_hop_counts"][h]["total"] for _, s in rows)]
    head = "| model | " + " | ".join(f"{h} (n={rows[0][1]['per_hop_counts'][h]['total']})" for h in hops)
    lines = [head + f" | overall (n={rows[0][1]['total']}) |", "|---|" + "---|" * (len(hops) + 1)]
    for name, s in rows:
        cells = [f"{s['per_hop'][h]:.1f}" for h in hops]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {s['overall']:.1f} ± {100 * binomial_se(s['overall'] / 100, s['total']):.1f} |")
    return "\n".join(lines)


def report(rows: list[tuple[str, dict]], blank: list[tuple[str, dict]], wall: float, stage_seconds: dict,
           out: Path, groups: dict[str, str] | None = None, seed: int = 0) -> tuple[str, dict]:
    """The table text (rows, paired tests overall and per group of `groups` (item id -> family), blanked-frames
    control, wall time) and the summary dict; pure. The paired tests are the runner's (`paired_section`)."""
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
    pin_isa()  # `mmreason nep demo` pinned the kernels before torch loaded; in-process callers are warned here
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
    families = {r.id: r.metadata["family"] for r in load_records(data / "test_mcq.jsonl")[0]}
    text, summary = report(rows, blank, time.time() - t0, seconds, out, families, args.seed)
    (out / "nep_demo_table.md").write_text(text + "\n")
    (out / "nep_demo_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print("\n" + text)
    return 0
