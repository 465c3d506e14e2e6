"""The dispatcher of a command with sub-commands (`mmreason data synth|build`, `mmreason nep ...`): each
sub-command lives in its own module, imported only when called, after the offline defaults are set."""

from __future__ import annotations

import importlib


def dispatch(command: str, subcommands: dict[str, tuple[str, str, str]], argv: list[str]) -> int:
    """`subcommands`: name -> (module, function taking argv, one-line help)."""
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in subcommands:
        width = max(map(len, subcommands))
        print(f"usage: mmreason {command} {{{'|'.join(subcommands)}}} [args...]")
        for name, (_, _, h) in subcommands.items():
            print(f"  {name:<{width + 2}}{h}")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    module, func, _ = subcommands[argv[0]]
    from mmreason.offline import offline_defaults

    offline_defaults()
    return int(getattr(importlib.import_module(module), func)(argv[1:]) or 0)
