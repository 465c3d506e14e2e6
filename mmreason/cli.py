"""`mmreason` command line: each command (and each sub-command of `data` and `nep`) lives in its capability's
module and is imported only when called, so `mmreason --help` stays fast and optional parts (vLLM, DeepSpeed)
are never imported unless used."""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from pathlib import Path

from mmreason.demos.kernels import pin_isa
from mmreason.errors import RecordError
from mmreason.offline import offline_defaults
from mmreason.usage import NothingUsable, UsageError

# `mmreason data synth|build`, `mmreason nep synth|build|demo`: name -> (module, function taking argv, one-line help)
DATA = {
    "synth": ("mmreason.data.synth", "main", "render synthetic verifiable visual tasks to records"),
    "build": ("mmreason.data.build", "main", "build a cold-start CoT set from a recipe and a teacher"),
    "convert": ("mmreason.data.convert", "main", "write any released data layout as records JSONL + media + stats"),
}
NEP = {
    "synth": ("mmreason.video.synth", "main", "render synthetic video tasks with a known future to records"),
    "build": ("mmreason.video.nep", "main", "NEP records (sft|cft|distill|mix|mcq) from V1-33K's json + past clips"),
    "demo": ("mmreason.demos.nep", "main", "tiny model -> video SFT -> video GRPO -> FutureBench-style eval, a per-hop table"),
}
# command -> (module, function taking argv, one-line help), or (sub-command table, None, help)
COMMANDS = {
    "tiny-model": ("mmreason.tiny", "main", "write an offline tiny Qwen2.5-VL checkpoint folder"),
    "data": (DATA, None, "synthetic tasks (synth) and cold-start CoT sets (build)"),
    "nep": (NEP, None, "video next-event prediction: synthetic clips (synth), V1-33K records (build), the CPU demo "
                       "(demo); FutureBench generation and scoring are the `futurebench` plugin of `mmreason eval`"),
    "sft": ("mmreason.sft.run", "main", "cold-start SFT stage (TRL SFTTrainer)"),
    "grpo": ("mmreason.rl.run", "main", "GRPO stage with verifiable rewards and entropy-aware losses"),
    "export": ("mmreason.export", "main", "consolidate a sharded DeepSpeed checkpoint into a loadable HF folder"),
    "eval": ("mmreason.eval.cli", "main", "generate and score: synthetic records, MathVista, We-Math, FutureBench"),
    "plot": ("mmreason.rl.plot", "main", "entropy / reward / covariance curves and the entropy-performance fit"),
    "demo": ("mmreason.demos.image", "main", "the embedded end-to-end demo (tiny model, synthetic tasks, CPU)"),
    "papers": ("mmreason.papers.run", "main", "each paper's headline claim as a miniature with paired tests and verdicts"),
    "env": ("mmreason.env", "main", "print versions and hardware facts"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: mmreason COMMAND [args...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, _, help_) in COMMANDS.items()]
    lines += ["", "`mmreason COMMAND --help` for a command's options."]
    return "\n".join(lines)


def subcommand_usage(command: str, subcommands: dict[str, tuple[str, str, str]]) -> str:
    width = max(map(len, subcommands))
    lines = [f"usage: mmreason {command} {{{'|'.join(subcommands)}}} [args...]"]
    lines += [f"  {name:<{width + 2}}{h}" for name, (_, _, h) in subcommands.items()]
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
    if isinstance(module, dict):
        if not rest or rest[0] in ("-h", "--help") or rest[0] not in module:
            print(subcommand_usage(name, module))
            return 0 if rest and rest[0] in ("-h", "--help") else 2
        (module, func, _), rest = module[rest[0]], rest[1:]
    offline_defaults()  # before a command module imports huggingface_hub / transformers, which read it at import
    if module == NEP["demo"][0]:
        pin_isa()  # the demo's CPU kernels are chosen when torch loads, which importing the demo does
    try:
        result = getattr(importlib.import_module(module), func)(rest)
    except Exception as e:
        if os.environ.get("MMREASON_DEBUG", "") not in ("", "0") or not _ours(e):
            raise
        print(f"mmreason {name}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    return int(result or 0)


_PACKAGE = str(Path(__file__).resolve().parent)
# Raised by libraries on the arguments we pass them before any work starts.
_LIBRARY_USAGE = ("Some keys are not used by the HfArgumentParser", "Repo id must be in the form",
                  "Your setup doesn't support bf16/gpu")


def _ours(e: BaseException) -> bool:
    """A usage mistake or bad input this project detected (our error types, or an OSError/ValueError raised in
    our own code): one line. Anything else (a bug, a library failing mid-work) keeps its traceback."""
    if isinstance(e, (UsageError, NothingUsable, RecordError)):
        return True
    if not isinstance(e, (OSError, ValueError)):
        return False
    if any(s in str(e) for s in _LIBRARY_USAGE):
        return True
    tb = traceback.extract_tb(e.__traceback__)
    return bool(tb) and str(Path(tb[-1].filename).resolve()).startswith(_PACKAGE)


def _one_line(e: BaseException) -> str:
    return str(e) or type(e).__name__


if __name__ == "__main__":
    sys.exit(main())
