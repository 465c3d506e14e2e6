"""`mmreason data synth ...` (synthetic verifiable tasks) and `mmreason data build ...`
(cold-start CoT sets from a teacher)."""

from __future__ import annotations

import importlib
import sys

SUBCOMMANDS = {
    "synth": ("mmreason.data.synth", "main", "render synthetic verifiable visual tasks to records"),
    "build": ("mmreason.data.build", "main", "build a cold-start CoT set from a recipe and a teacher"),
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in SUBCOMMANDS:
        print("usage: mmreason data {synth|build} [args...]")
        for name, (_, _, h) in SUBCOMMANDS.items():
            print(f"  {name:<6} {h}")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    module, func, _ = SUBCOMMANDS[argv[0]]
    from mmreason.offline import offline_defaults

    offline_defaults()
    return int(getattr(importlib.import_module(module), func)(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
