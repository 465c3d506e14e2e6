"""`mmreason nep synth ...` (synthetic verifiable video tasks), `mmreason nep build ...` (NEP training records
from the released V1-33K layout) and `mmreason nep demo` (the CPU end-to-end demo). FutureBench generation and
scoring are the `futurebench` plugin of `mmreason eval run | score`."""

from __future__ import annotations

import importlib
import sys

SUBCOMMANDS = {
    "synth": ("mmreason.video.synth", "main", "render synthetic video tasks with a known future to records"),
    "build": ("mmreason.video.nep", "main", "NEP records (sft|cft|distill|mix|mcq) from V1-33K's json + past clips"),
    "demo": ("mmreason.video.demo", "main", "tiny model -> video SFT -> FutureBench-style eval, a per-hop table"),
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in SUBCOMMANDS:
        print("usage: mmreason nep {synth|build|demo} [args...]")
        for name, (_, _, h) in SUBCOMMANDS.items():
            print(f"  {name:<8} {h}")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    module, func, _ = SUBCOMMANDS[argv[0]]
    from mmreason.offline import offline_defaults

    offline_defaults()
    return int(getattr(importlib.import_module(module), func)(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
