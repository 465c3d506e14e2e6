"""`mmreason nep synth ...` (synthetic verifiable video tasks) and `mmreason nep build ...`
(NEP training records from the released V1-33K layout), `mmreason nep predict ...` and
`mmreason nep score ...` (FutureBench generation and scoring, until it is an `mmreason eval` plugin)."""

from __future__ import annotations

import sys

from mmreason.subcommands import dispatch

SUBCOMMANDS = {
    "synth": ("mmreason.video.synth", "main", "render synthetic video tasks with a known future to records"),
    "build": ("mmreason.video.nep", "main", "NEP records (sft|cft|distill|mix|mcq) from V1-33K's json + past clips"),
    "predict": ("mmreason.video.predict", "main", "FutureBench predictions from a checkpoint (official settings)"),
    "score": ("mmreason.eval.futurebench", "main", "score FutureBench predictions (official rules or corrected)"),
}


def main(argv: list[str]) -> int:
    return dispatch("nep", SUBCOMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
