"""The policy-loss registry: `LOSSES` (name -> loss function, one signature: see the package docstring),
`register_loss`, `get_loss`, the plugin loader `load_loss_plugins`, the `LossContext` a loss receives, and
`policy_loss`, the one entry point (the selected loss, then the dual-clip).

The built-in losses are the modules of this package (one file each, `none.py`, `clip_cov.py`, `kl_cov.py`), found
by `builtin_losses()` scanning the package (`plugins.discover`): there is no list of names to edit. `get_loss` and
the config's validation scan before they look a name up, so a built-in is there without anyone importing it.
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from mmreason.plugins import discover, import_file, is_reference, resolve
from mmreason.rl import metrics as M
from mmreason.rl.losses.covariance import broadcast_advantages

LossFn = Callable[..., tuple[torch.Tensor, dict[str, float]]]
LOSSES: dict[str, LossFn] = {}
PACKAGE = __name__.rpartition(".")[0]  # mmreason.rl.losses: the built-ins' folder


def register_loss(name: str):
    """Decorator: `@register_loss("my_loss")` adds a loss function to `LOSSES` under `name`; a name registered twice
    is an error naming both modules."""

    def deco(fn):
        if name in LOSSES:
            raise ValueError(f"loss {name!r} registered twice: by {LOSSES[name].__module__} and by {fn.__module__}")
        LOSSES[name] = fn
        return fn

    return deco


def builtin_losses() -> tuple[str, ...]:
    """The names of the built-in losses, sorted: those registered by the modules of this package (importing each
    one registers its losses)."""
    modules = {m.__name__ for m in discover(PACKAGE)}
    return tuple(sorted(name for name, fn in LOSSES.items() if fn.__module__ in modules))


def get_loss(name: str) -> LossFn:
    if name not in LOSSES:
        builtin_losses()
    if name not in LOSSES:
        raise KeyError(f"unknown loss {name!r}; registered: {sorted(LOSSES)} (add one with `loss_plugins`)")
    return LOSSES[name]


def load_loss_plugins(plugins: list[str] | None) -> None:
    """Each entry `path/to/file.py:NAME` (relative to the working directory) or `package.module:NAME`: the loss
    function NAME, registered under NAME unless its own `@register_loss(...)` already registered it (a file is
    imported once). The old form, a whole `file.py` or `package.module` imported for its decorators, still works
    with a deprecation warning."""
    for plugin in plugins or []:
        if is_reference(plugin):
            fn = resolve(plugin, "loss plugin", check=callable, expected="a loss function")
            if not any(f is fn for f in LOSSES.values()):
                register_loss(plugin.rpartition(":")[2])(fn)
            continue
        warnings.warn(f"loss_plugins: {plugin!r} is the old whole-file form; write {plugin}:NAME (NAME the loss "
                      "function)", DeprecationWarning, stacklevel=2)
        if plugin.endswith(".py"):
            path = Path(plugin).expanduser().resolve()
            if not path.is_file():
                raise FileNotFoundError(f"loss_plugins: {plugin}: no such file")
            import_file(path, "mmreason_loss_plugin")
        else:
            importlib.import_module(plugin)


@dataclass(frozen=True)
class LossContext:
    """What a loss may need beyond the tensors and the config, as the trainer resolved it for this call."""

    epsilon_low: float
    epsilon_high: float
    generator: torch.Generator | None = None  # CPU generator seeded from (seed, micro-step, process)
    entropies: torch.Tensor | None = None  # [B, T] per-token policy entropy (detached)
    step: int = 0  # the trainer's micro-step counter
    options: dict = field(default_factory=dict)  # the config's loss_options (a plugin's own hyper-parameters)


def dual_clip(per_token_loss: torch.Tensor, advantages: torch.Tensor, clip_ratio_c: float):
    """Dual-clip PPO (Ye et al. 2020, arXiv 1912.09729; verl/EasyR1 compute_policy_loss): for A < 0 the loss
    is min(loss, -A * clip_ratio_c), so a token whose ratio has grown far above 1 stops pushing. Returns the
    clipped loss and the bool mask of the tokens it capped (verl's pg_clipfrac_lower)."""
    adv = broadcast_advantages(advantages, per_token_loss)
    cap = -adv * clip_ratio_c
    negative = adv < 0
    capped = negative & (per_token_loss > cap)
    return torch.where(negative, torch.min(per_token_loss, cap), per_token_loss), capped


def policy_loss(logp, old_logp, advantages, mask, cfg, ctx: LossContext):
    """The selected loss (`cfg.policy_loss`), then the dual-clip when `cfg.clip_ratio_c` (or TRL's `delta`, the
    same cap on the clipped surrogate) is set."""
    per_token_loss, stats = get_loss(cfg.policy_loss)(logp, old_logp, advantages, mask, cfg, ctx)
    c = getattr(cfg, "clip_ratio_c", None)
    c = getattr(cfg, "delta", None) if c is None else c
    if c is not None:
        per_token_loss, capped = dual_clip(per_token_loss, advantages, c)
        valid = mask.bool()
        stats = {**stats, M.DUAL_CLIP_FRAC: float((capped & valid).sum() / valid.sum().clamp(min=1))}
    return per_token_loss, stats
