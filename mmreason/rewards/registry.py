"""Reward registry: rewards are picked by name in YAML (`reward_funcs: [accuracy, format]`).

Every registered function has TRL's reward signature
`f(prompts, completions, completion_ids, **dataset_columns, trainer_state, log_extra, log_metric) -> list[float | None]`
and never raises. `build_reward_funcs` turns names into callables ready for `GRPOTrainer(reward_funcs=...)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


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


def build_reward_funcs(
    names: list[str],
    num_generations: int,
    options: dict[str, dict[str, Any]] | None = None,
    **common: Any,
) -> list[NamedReward]:
    """Reward callables for `names`, in order. Group-aware rewards get `num_generations` bound.

    options: per-reward keyword options, e.g. {"accuracy": {"single_box": False}}.
    common: options given to every reward that accepts them, e.g. `stop_token_ids` (eos/pad ids,
    used to spot truncated completions) — a reward ignores keys it does not take.
    """
    import inspect

    import mmreason.rewards  # noqa: F401 - registers the built-in rewards

    options = options or {}
    unknown = [n for n in list(names) + list(options) if n not in REWARDS]
    if unknown:
        raise ValueError(f"unknown reward(s) {unknown}; registered: {sorted(REWARDS)}")
    out = []
    for name in names:
        spec = REWARDS[name]
        params = {k for k, p in inspect.signature(spec.func).parameters.items() if p.kind is not p.VAR_KEYWORD}
        bound = {k: v for k, v in common.items() if k in params}
        bound.update(options.get(name, {}))
        bad = [k for k in options.get(name, {}) if k not in params]
        if bad:
            raise ValueError(f"reward {name!r} has no option(s) {bad}")
        _check_choices(name, spec.func, options.get(name, {}))
        if spec.group_aware:
            if not isinstance(num_generations, int) or num_generations < 1:
                raise ValueError(f"reward {name!r} needs num_generations >= 1, got {num_generations!r}")
            bound["num_generations"] = num_generations
        out.append(NamedReward(name, spec.func, bound))
    return out


def _check_choices(name: str, func, options: dict) -> None:
    """An option annotated `Literal[...]` must be one of its values: a typo is a config error, not a run of zeros."""
    import inspect
    import typing

    try:
        hints = typing.get_type_hints(inspect.unwrap(func))
    except Exception:  # noqa: BLE001 - unresolvable annotations: nothing to check
        return
    for key, value in options.items():
        hint = hints.get(key)
        if typing.get_origin(hint) is typing.Literal and value not in typing.get_args(hint):
            raise ValueError(f"reward {name!r}: option {key}={value!r} is not one of {list(typing.get_args(hint))}")
