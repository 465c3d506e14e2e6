"""`mmreason tiny-model OUT_DIR [--size tiny|small] [--seed S]`."""

from __future__ import annotations

import argparse

from mmreason.offline import offline_defaults
from mmreason.tiny import SIZES


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="mmreason tiny-model", description=__doc__)
    p.add_argument("out_dir", help="folder to write the checkpoint to")
    p.add_argument("--size", choices=sorted(SIZES), default="tiny", help="tiny (~0.25M params) or small (~0.9M)")
    p.add_argument("--seed", type=int, default=0, help="same seed -> byte-identical files")
    args = p.parse_args(argv)
    offline_defaults()
    from mmreason.tiny import build_tiny_model

    out = build_tiny_model(args.out_dir, size=args.size, seed=args.seed)
    print(f"wrote {args.size} Qwen2.5-VL checkpoint to {out}")
    return 0
