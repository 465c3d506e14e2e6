"""`mmreason nep synth ...` (synthetic verifiable video tasks), `mmreason nep build ...` (NEP training records
from the released V1-33K layout) and `mmreason nep demo` (the CPU end-to-end demo). FutureBench generation and
scoring are the `futurebench` plugin of `mmreason eval run | score`."""

from __future__ import annotations

import sys

from mmreason.subcommands import dispatch

SUBCOMMANDS = {
    "synth": ("mmreason.video.synth", "main", "render synthetic video tasks with a known future to records"),
    "build": ("mmreason.video.nep", "main", "NEP records (sft|cft|distill|mix|mcq) from V1-33K's json + past clips"),
    "demo": ("mmreason.video.demo", "main", "tiny model -> video SFT -> video GRPO -> FutureBench-style eval, a per-hop table"),
}


def main(argv: list[str]) -> int:
    return dispatch("nep", SUBCOMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
