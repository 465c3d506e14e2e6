"""`mmreason papers`: each paper's headline claim as a miniature on the embedded default (tiny Qwen2.5-VL,
synthetic tasks, CPU), with fixed step counts and seeds. Writes OUT/summary.md, OUT/summary.json and one
PNG per claim; every verdict ("reproduced / not reproduced / inconclusive at toy scale") is computed from
paired statistics on the held-out questions, never written in advance.

  rlcs     base / SFT / SFT+GRPO / GRPO-from-base, paired tests SFT+GRPO vs SFT and vs GRPO-only, per task
  entropy  GRPO vs Clip-Cov vs KL-Cov from the same SFT checkpoint (off-policy updates), entropy curves,
           held-out accuracy, the entropy-performance fit per method
  mmupt    the premise (maj@G vs one sample vs greedy, per task), then label-free GRPO from SFT, before/after
           paired test, pseudo-label accuracy per source, collapse signals
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import torch

from mmreason.demos import image as image_demo
from mmreason.offline import offline_defaults
from mmreason.papers import claims as C
from mmreason.papers.summary import write_summary

CLAIMS = ("rlcs", "entropy", "mmupt")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmreason papers", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--out", default="runs/papers", help="run folder (shared base model, data and SFT; one folder per claim)")
    p.add_argument("--claims", default=",".join(CLAIMS), help=f"comma-separated subset of {','.join(CLAIMS)}")
    p.add_argument("--size", default="small", choices=["tiny", "small"], help="tiny-model size (as `mmreason demo`)")
    p.add_argument("--n-train", type=int, default=3000)
    p.add_argument("--n-test", type=int, default=300, help="held-out questions: the paired tests run on these")
    p.add_argument("--tasks", default="color,bars,compare")
    p.add_argument("--difficulty", default="easy", choices=["easy", "medium", "hard"])
    p.add_argument("--sft-steps", type=int, default=None, help="default: configs/sft/tiny_demo.yaml's max_steps")
    p.add_argument("--rlcs-steps", type=int, default=80, help="GRPO steps of each RLCS run (from SFT, from base)")
    p.add_argument("--entropy-steps", type=int, default=40, help="GRPO steps of each entropy-mechanism run")
    p.add_argument("--steps-per-generation", type=int, default=2,
                   help="entropy runs: > gradient_accumulation_steps (1), so updates are off-policy and KL-Cov acts")
    p.add_argument("--mmupt-steps", type=int, default=None,
                   help="label-free GRPO steps; default: max_steps of configs/grpo/tiny_unsupervised.yaml (the "
                        "embedded default `make grpo-unsupervised` runs)")
    p.add_argument("--premise-n", type=int, default=150, help="held-out questions for the maj@G premise")
    p.add_argument("--premise-g", type=int, default=10, help="samples per question for maj@G (the config's num_generations)")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--eval-batch-size", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fresh", action="store_true", help="delete --out first")
    p.add_argument("--sft-arg", action="append", default=[], help="extra `mmreason sft` override")
    p.add_argument("--grpo-arg", action="append", default=[], help="extra override for every GRPO run")
    return p


def demo_args(args) -> argparse.Namespace:
    argv = ["--out", args.out, "--size", args.size, "--n-train", str(args.n_train), "--n-test", str(args.n_test),
            "--tasks", args.tasks, "--difficulty", args.difficulty, "--max-new-tokens", str(args.max_new_tokens),
            "--eval-batch-size", str(args.eval_batch_size), "--seed", str(args.seed)]
    if args.sft_steps:
        argv += ["--sft-steps", str(args.sft_steps)]
    argv += [f"--sft-arg={a}" for a in args.sft_arg] + [f"--grpo-arg={a}" for a in args.grpo_arg]
    return image_demo.build_parser().parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    offline_defaults()
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # see mmreason.demos.image.main
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    args = build_parser().parse_args(argv)
    wanted = [c.strip() for c in args.claims.split(",") if c.strip()]
    bad = [c for c in wanted if c not in CLAIMS]
    if bad or not wanted:
        raise SystemExit(f"mmreason papers: unknown claim(s) {bad or wanted}; choose from {list(CLAIMS)}")
    out = Path(args.out)
    if args.fresh and out.exists():
        shutil.rmtree(out)
    t0 = time.time()
    ctx = C.Context(demo_args(args), out)
    results = []
    for name in wanted:
        if name == "rlcs":
            results.append(C.rlcs(ctx, args.rlcs_steps, args.seed))
        elif name == "entropy":
            results.append(C.entropy_mechanism(ctx, args.entropy_steps, args.seed, args.steps_per_generation))
        else:
            results.append(C.mmupt(ctx, args.mmupt_steps, args.seed, args.premise_n, args.premise_g))
    header = [f"Embedded default: {args.size} model, {args.n_train} train / {args.n_test} held-out records "
              f"({args.tasks}, {args.difficulty}), seed {args.seed}; wall time {time.time() - t0:.0f} s on "
              f"{os.cpu_count()} cores. Paired tests on the same held-out questions: McNemar exact p and a "
              "seeded paired bootstrap 95% CI (2,000 resamples); curves: bootstrap over logged steps."]
    text = write_summary(out, results, header)
    print(text)
    return 0
