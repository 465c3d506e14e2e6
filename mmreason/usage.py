"""Usage mistakes and "nothing usable": the error types every entry point raises before work starts, and the
checks behind them (counts, output paths, a model path, the stage config file).

`mmreason.cli` turns these (and the usual OSError/ValueError raised by our own checks) into one line on stderr
and exit 2; `MMREASON_DEBUG=1` shows the traceback instead."""

from __future__ import annotations

import argparse
import os
import re
import sys
from functools import partial
from pathlib import Path
from typing import Any


class UsageError(ValueError):
    """A wrong flag, file or config value: the message names it and says what to do."""


class NothingUsable(ValueError):
    """A stage had no usable item (empty input, everything skipped, predictions matching no annotation): the
    message carries the counts."""


def check_count(value: Any, flag: str, minimum: int = 1, allowed: tuple = ()) -> None:
    """`value` is None, one of `allowed`, or an int >= `minimum` (no Python-slicing surprises with negatives)."""
    if value is None or value in allowed:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        extra = f" (or {', '.join(map(str, allowed))})" if allowed else ""
        raise UsageError(f"{flag} must be an integer >= {minimum}{extra}, got {value!r}")


def positive_int(text: str) -> int:
    """argparse `type=` for counts: an int >= 1 (argparse then prints one usage line and exits 2)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def check_training_counts(args: Any) -> None:
    """The counts of a TRL/transformers TrainingArguments that would otherwise mean something surprising:
    max_steps -5 silently trains `num_train_epochs` epochs (only -1, TRL's "not set", means that)."""
    check_count(args.max_steps, "max_steps", 1, allowed=(-1,))
    if args.max_steps == -1 and not args.num_train_epochs > 0:
        raise UsageError(f"num_train_epochs must be > 0 when max_steps is not set, got {args.num_train_epochs!r}")
    for name in ("per_device_train_batch_size", "gradient_accumulation_steps"):
        check_count(getattr(args, name, None), name, 1)
    for name in ("save_steps", "logging_steps", "eval_steps"):
        v = getattr(args, name, None)
        if v is not None and not v > 0:
            raise UsageError(f"{name} must be > 0, got {v!r}")


def check_output_dir(path: str | os.PathLike, flag: str) -> Path:
    """An output folder that exists as a folder (created here) and is writable — checked before any work."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UsageError(f"{flag} {p} is a file, not a folder: give a folder path")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{flag} {p}: cannot create the folder ({e.strerror}): give a writable location") from None
    if not os.access(p, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {p} is not writable: give a writable folder")
    return p


def check_output_file(path: str | os.PathLike, flag: str) -> Path:
    """An output file path: not a folder, its folder creatable and writable."""
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{flag} {p} is a folder: give a file path (e.g. {p / 'scores.json'})")
    check_output_dir(p.parent, f"the folder of {flag}")
    return p


def looks_local(name: str) -> bool:
    """A model name that can only be a local path (a Hub id is `name` or `org/name`)."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep != "/" and os.sep in name


def check_model_path(name: str | os.PathLike | None, flag: str) -> None:
    """A local checkpoint path that does not exist is named as such (the Hub would say 'Repo id must be in the
    form ...'). With the Hub offline (HF_HUB_OFFLINE=1), any missing name is local."""
    if name is None:
        return
    name = str(name)
    if Path(name).expanduser().exists():
        return
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    if looks_local(name) or offline:
        hint = " (and the Hub is offline)" if offline and not looks_local(name) else ""
        raise UsageError(f"{flag} {name}: no such checkpoint folder{hint}: give a model folder or a Hub id")


def yaml_problem(e: Exception) -> str:
    """A PyYAML error in one line: what and where (its own message spans several lines with a code excerpt)."""
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    mark = getattr(e, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    hint = "; only plain YAML is read: tags such as !!python/... are refused, never executed" if "tag" in problem else ""
    return f"{problem}{where}{hint}"


def parse_stage_args(parser: Any, argv: list[str] | None, prog: str):
    """TrlParser.parse_args_and_config with one-line errors: `--config` naming a missing file, a YAML key that
    is no field (the file is named), a YAML file that is not a mapping."""
    args = list(sys.argv[1:] if argv is None else argv)
    config = None
    for i, a in enumerate(args):
        if a == "--config":
            if i + 1 >= len(args) or args[i + 1].startswith("--"):
                raise UsageError(f"--config needs a YAML file path (e.g. configs/sft/tiny_demo.yaml)")
            config = args[i + 1]
    if config is not None:
        if not Path(config).is_file():
            raise UsageError(f"--config {config}: no such file")
        import yaml  # lazy: imported by the CLI at start: no third-party imports

        try:
            data = yaml.safe_load(Path(config).read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise UsageError(f"--config {config}: not valid YAML ({yaml_problem(e)})") from None
        if data is None:
            raise UsageError(f"--config {config}: the file is empty (or only comments): give `field: value` lines "
                             "(e.g. configs/sft/tiny_demo.yaml)")
        if not isinstance(data, dict):
            raise UsageError(f"--config {config}: expected a mapping of field: value, got {type(data).__name__}")
        known = {f for dc in parser.dataclass_types for f in dc.__dataclass_fields__} | {"env"}
        unknown = sorted(set(data or {}) - known)
        if unknown:
            raise UsageError(f"--config {config}: unknown key(s) {unknown}; `{prog} --help` lists the fields")
    elif not args:
        raise UsageError(f"no arguments: give --config FILE.yaml (see configs/) and/or --field value")
    # not a 160-line usage dump: values given on the command line win over the file's, so only others name it
    on_line = {a[2:].split("=", 1)[0].replace("-", "_") for a in args if a.startswith("--")}
    from_file = {k: v for k, v in (data or {}).items() if k not in on_line} if config is not None else {}
    parser.error = partial(_value_error, config, from_file)
    return parser.parse_args_and_config(args)


def _value_error(config: str | None, data: dict, message: str):
    """argparse's error hook for a stage parser: one UsageError naming the config file and key (TRL passes the
    YAML values through argparse, so `max_steps: ten` arrives as "argument --max_steps: invalid int value")."""
    m = re.match(r"argument --([\w.-]+)", message)
    key = m.group(1) if m else None
    if key is not None and key.replace("-", "_") in data:
        detail = message.split(": ", 1)[1] if ": " in message else message
        raise UsageError(f"--config {config}: key '{key.replace('-', '_')}': {detail}")
    raise UsageError(message)
