"""Reward registry: rewards are picked in YAML (`reward_funcs: [accuracy, format]`) by a built-in name, or as a
plugin `path/to/file.py:NAME` / `package.module:NAME` (`mmreason.plugins.resolve`).

A built-in is one module of this package whose function carries `@register("name")`: the package scan
(`plugins.discover`) finds it, so adding a file adds a reward. Every reward has TRL's reward signature
`f(prompts, completions, completion_ids, **dataset_columns, trainer_state, log_extra, log_metric) -> list[float | None]`.
`build_reward_funcs` turns the entries into callables ready for `GRPOTrainer(reward_funcs=...)`, with their
`reward_options` bound (plugins get theirs too).
"""

from __future__ import annotations

import inspect
import logging
import typing
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

from mmreason.plugins import discover, is_reference, resolve
from mmreason.rewards.columns import emit_metric

logger = logging.getLogger("mmreason.rewards")


@dataclass
class RewardSpec:
    func: Callable[..., list]
    group_aware: bool = False  # needs `num_generations` (consecutive blocks form one prompt's group)
    doc: str = ""


REWARDS: dict[str, RewardSpec] = {}


def register(name: str, group_aware: bool = False):
    """Decorator: `@register("accuracy")` adds a reward function to `REWARDS` under `name`."""

    def deco(func):
        if name in REWARDS and REWARDS[name].func is not func:
            raise ValueError(f"reward {name!r} is already registered ({REWARDS[name].func.__module__})")
        REWARDS[name] = RewardSpec(func, group_aware, (func.__doc__ or "").strip().split("\n")[0])
        return func

    return deco


def never_raises(name: str):
    """Decorator: a reward that hits a bug returns zeros for the batch (logged, counted as
    `<name>/internal_errors`) instead of crashing the run."""

    def deco(func):
        def wrapper(prompts=None, completions=None, *args, **kwargs):
            n = len(completions) if isinstance(completions, (list, tuple)) else 0
            try:
                return func(prompts, completions, *args, **kwargs)
            except Exception:  # noqa: BLE001
                logger.exception("reward %s failed on a batch of %d; giving 0.0", name, n)
                emit_metric(kwargs.get("log_metric"), f"{name}/internal_errors", 1)
                return [0.0] * n

        wrapper.__name__ = func.__name__
        wrapper.__qualname__ = func.__qualname__
        wrapper.__doc__ = func.__doc__
        wrapper.__wrapped__ = func
        return wrapper

    return deco


def builtin_rewards() -> dict[str, RewardSpec]:
    """name -> spec of every built-in reward (importing each module of this package registers its rewards)."""
    discover(__package__)
    return dict(REWARDS)


@dataclass
class NamedReward:
    """A registered reward with its options bound. `__name__` is the registry name, which TRL uses in
    its logs (`rewards/<name>/mean`). Picklable when `func` is a module-level function."""

    name: str
    func: Callable[..., list]
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def __name__(self) -> str:  # noqa: A003 - TRL's get_callable_name reads this
        return self.name

    def __call__(self, *args, **kwargs):
        return self.func(*args, **{**kwargs, **self.options})


def reward_spec(entry: str) -> tuple[str, RewardSpec]:
    """(log name, spec) of one `reward_funcs` entry: a built-in name, `file.py:NAME` or `package.module:NAME`
    (a plugin is group-aware when it takes `num_generations`). The old dotted form `package.module.function`
    still works, with a deprecation warning."""
    registry = builtin_rewards()
    if entry in registry:
        return entry, registry[entry]
    if isinstance(entry, str) and not is_reference(entry) and "." in entry and not entry.endswith(".py"):
        module, _, attr = entry.rpartition(".")
        warnings.warn(f"reward_funcs: {entry!r} is the old dotted form; write {module}:{attr}", DeprecationWarning,
                      stacklevel=3)
        entry = f"{module}:{attr}"
    func = resolve(entry, "reward", registry, check=callable, expected="a reward function")
    if isinstance(func, RewardSpec):
        return entry, func
    takes = inspect.signature(func).parameters
    return getattr(func, "__name__", entry), RewardSpec(func, "num_generations" in takes, (func.__doc__ or "").strip())


def build_reward_funcs(
    names: list[str],
    num_generations: int,
    options: dict[str, dict[str, Any]] | None = None,
    **common: Any,
) -> list[NamedReward]:
    """Reward callables for `names` (built-in names or plugin references), in order. Group-aware rewards get
    `num_generations` bound.

    options: per-reward keyword options keyed by the `names` entry, e.g. {"accuracy": {"single_box": False}}.
    common: options given to every reward that accepts them, e.g. `stop_token_ids` (eos/pad ids,
    used to spot truncated completions) — a reward ignores keys it does not take.
    """
    options = options or {}
    unknown = [n for n in options if n not in names]
    if unknown:
        raise ValueError(f"reward option(s) for {unknown}, which are not among the rewards {list(names)}")
    out = []
    for entry in names:
        name, spec = reward_spec(entry)
        params = {k for k, p in inspect.signature(spec.func).parameters.items() if p.kind is not p.VAR_KEYWORD}
        bound = {k: v for k, v in common.items() if k in params}
        bound.update(options.get(entry, {}))
        bad = [k for k in options.get(entry, {}) if k not in params]
        if bad:
            raise ValueError(f"reward {entry!r} has no option(s) {bad}")
        _check_choices(name, spec.func, options.get(entry, {}))
        if spec.group_aware:
            if not isinstance(num_generations, int) or num_generations < 1:
                raise ValueError(f"reward {entry!r} needs num_generations >= 1, got {num_generations!r}")
            bound["num_generations"] = num_generations
        out.append(NamedReward(name, spec.func, bound))
    return out


def _check_choices(name: str, func, options: dict) -> None:
    """An option annotated `Literal[...]` must be one of its values: a typo is a config error, not a run of zeros."""
    try:
        hints = typing.get_type_hints(inspect.unwrap(func))
    except Exception:  # noqa: BLE001 - unresolvable annotations: nothing to check
        return
    for key, value in options.items():
        hint = hints.get(key)
        if typing.get_origin(hint) is typing.Literal and value not in typing.get_args(hint):
            raise ValueError(f"reward {name!r}: option {key}={value!r} is not one of {list(typing.get_args(hint))}")
