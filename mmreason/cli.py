"""`mmreason` command line: each sub-command lives in its capability's module and is
imported only when called, so `mmreason --help` stays fast and optional parts
(vLLM, DeepSpeed) are never imported unless used."""

from __future__ import annotations

import importlib
import sys

# command -> (module, function taking argv, one-line help)
COMMANDS = {
    "tiny-model": ("mmreason.tiny_cli", "main", "write an offline tiny Qwen2.5-VL checkpoint folder"),
    "data": ("mmreason.data.cli", "main", "synthetic tasks (synth) and cold-start CoT sets (build)"),
    "sft": ("mmreason.sft.run", "main", "cold-start SFT stage (TRL SFTTrainer)"),
    "grpo": ("mmreason.rl.run", "main", "GRPO stage with verifiable rewards and entropy-aware losses"),
    "export": ("mmreason.export", "main", "consolidate a sharded DeepSpeed checkpoint into a loadable HF folder"),
    "eval": ("mmreason.eval.cli", "main", "generate and score: synthetic records, MathVista, We-Math"),
    "plot": ("mmreason.rl.plot", "main", "entropy / reward / covariance curves and the entropy-performance fit"),
    "demo": ("mmreason.demo", "main", "the embedded end-to-end demo (tiny model, synthetic tasks, CPU)"),
    "env": ("mmreason.env", "main", "print versions and hardware facts"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: mmreason COMMAND [args...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, _, help_) in COMMANDS.items()]
    lines += ["", "`mmreason COMMAND --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"mmreason: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module, func, _ = COMMANDS[name]
    result = getattr(importlib.import_module(module), func)(rest)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
