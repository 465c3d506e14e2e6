"""`mmreason data synth ...` (synthetic verifiable tasks) and `mmreason data build ...`
(cold-start CoT sets from a teacher)."""

from __future__ import annotations

import sys

from mmreason.subcommands import dispatch

SUBCOMMANDS = {
    "synth": ("mmreason.data.synth", "main", "render synthetic verifiable visual tasks to records"),
    "build": ("mmreason.data.build", "main", "build a cold-start CoT set from a recipe and a teacher"),
    "convert": ("mmreason.data.convert", "main", "write any released data layout as records JSONL + media + stats"),
}


def main(argv: list[str]) -> int:
    return dispatch("data", SUBCOMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
