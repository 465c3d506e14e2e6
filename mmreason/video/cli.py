"""`mmreason nep synth ...` (synthetic verifiable video tasks) and `mmreason nep build ...`
(NEP training records from the released V1-33K layout), `mmreason nep predict ...` and
`mmreason nep score ...` (FutureBench generation and scoring, until it is an `mmreason eval` plugin)."""

from __future__ import annotations

import importlib
import sys

SUBCOMMANDS = {
    "synth": ("mmreason.video.synth", "main", "render synthetic video tasks with a known future to records"),
    "build": ("mmreason.video.nep", "main", "NEP records (sft|cft|distill|mix|mcq) from V1-33K's json + past clips"),
    "predict": ("mmreason.video.predict", "main", "FutureBench predictions from a checkpoint (official settings)"),
    "score": ("mmreason.eval.futurebench", "main", "score FutureBench predictions (official rules or corrected)"),
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in SUBCOMMANDS:
        print("usage: mmreason nep {synth|build|predict|score} [args...]")
        for name, (_, _, h) in SUBCOMMANDS.items():
            print(f"  {name:<8} {h}")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    module, func, _ = SUBCOMMANDS[argv[0]]
    from mmreason.offline import offline_defaults

    offline_defaults()
    return int(getattr(importlib.import_module(module), func)(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
