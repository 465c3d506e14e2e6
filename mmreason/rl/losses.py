"""Policy losses, registered by name with one signature (the shape of verl's core_algos policy losses):

    fn(logp, old_logp, advantages, mask, cfg, ctx) -> (per_token_loss, stats)

- logp, old_logp, mask: [B, T] (mask: the tokens the loss acts on); advantages: [B], [B, 1] or [B, T];
- cfg: the MMReasonGRPOConfig (or any object with the fields the loss reads);
- ctx: a `LossContext` (the trainer's resolved epsilons, a seeded generator, the entropies, ...);
- per_token_loss: [B, T]; the trainer aggregates it over `mask` per `loss_type` (token-mean, seq-mean, ...)
  after adding the KL term, so a loss never normalises itself;
- stats: {metric name: float}. A value is a mean over this call's `mask` tokens, combined across processes
  weighted by token count, unless its name ends in "/max" or "/min" (combined by max / min).

`policy_loss: <name>` in the config selects a loss; `policy_loss()` here is the registry's one entry point (the loss,
then the dual-clip `clip_ratio_c` / `delta` on A < 0 tokens). The trainer calls it where a loss replaces TRL's policy
term (plugins, KL-Cov in the paper's form); Clip-Cov and KL-Cov on top of TRL's own objective use the selection
kernels (`clip_cov_selection`, `kl_cov_selection`). Adding a loss is one new file that calls
`@register_loss("my_loss")` (or a plain function), listed in the config's `loss_plugins` as `file.py:NAME`; its own
hyper-parameters come from the config's `loss_options` as `ctx.options`.

Clip-Cov and KL-Cov come from "The Entropy Mechanism of Reinforcement Learning for Reasoning Language
Models" (Cui et al., 2025; reference code: PRIME-RL/Entropy-Mechanism-of-RL, verl core_algos). Policy
entropy collapses because the tokens whose log-probability co-varies most with the advantage dominate the
update; both losses act on a small fraction of those high-covariance tokens:

- KL-Cov adds |logp - old_logp| (a KL-like penalty) to the top-k covariance tokens, no PPO clipping;
- Clip-Cov detaches (zero loss, hence zero gradient) a random subset of the tokens whose covariance lies in
  (clip_cov_lb, clip_cov_ub) and that PPO's clip does not already cut, on top of the usual clipped loss.

`kl_cov_loss` and `clip_cov_loss` are the tensor kernels (keyword hyper-parameters, `return_stats=True` gives
a `CovStats`); the registered `kl_cov` / `clip_cov` read those hyper-parameters from cfg and ctx.
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from mmreason.plugins import import_file, is_reference, resolve
from mmreason.rl import metrics as M

LossFn = Callable[..., tuple[torch.Tensor, dict[str, float]]]
LOSSES: dict[str, LossFn] = {}
BUILTIN_LOSSES = ("none", "clip_cov", "kl_cov")
_ORIGINS: dict[str, str] = {}  # name -> the module that registered it, for the "registered twice" error


def register_loss(name: str):
    def deco(fn):
        if name in LOSSES:
            raise ValueError(f"loss {name!r} registered twice: by {_ORIGINS[name]} and by {fn.__module__}")
        LOSSES[name] = fn
        _ORIGINS[name] = fn.__module__
        return fn

    return deco


def get_loss(name: str) -> LossFn:
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


@dataclass
class CovStats:
    """Per-call statistics over the valid tokens of the batch."""

    cov_mean: float
    cov_max: float
    frac_selected: float  # fraction of valid tokens penalised (KL-Cov) or detached (Clip-Cov)
    num_selected: int
    num_candidates: int  # Clip-Cov: tokens eligible for detaching; KL-Cov: all valid tokens
    num_valid: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    def metrics(self) -> dict[str, float]:
        """The logged names (see mmreason.rl.metrics), in the registry's stats convention."""
        return {M.COV_MEAN: self.cov_mean, M.COV_MAX: self.cov_max, M.COV_FRAC_SELECTED: self.frac_selected}


def broadcast_advantages(advantages: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """[B], [B, 1] or [B, T] -> [B, T]."""
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(1)
    if advantages.dim() != 2 or advantages.size(0) != like.size(0):
        raise ValueError(f"advantages of shape {tuple(advantages.shape)} do not fit logp {tuple(like.shape)}")
    return advantages.expand_as(like)


def token_covariance(logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """cov = (A - mean A) * (logp - mean logp), means over the valid tokens, logp detached.
    Returns [B, T]; entries where mask is 0 are meaningless (callers mask them)."""
    valid = mask.bool()
    adv = broadcast_advantages(advantages, logp).detach().to(logp.dtype)
    lp = logp.detach()
    n = valid.sum().clamp(min=1)
    adv_mean = (adv * valid).sum() / n
    lp_mean = (lp * valid).sum() / n
    return (adv - adv_mean) * (lp - lp_mean)


def cov_stats(cov, valid, selected, num_candidates) -> CovStats:
    n = int(valid.sum())
    vals = cov[valid]
    k = int(selected.sum())
    return CovStats(
        cov_mean=float(vals.mean()) if n else 0.0,
        cov_max=float(vals.max()) if n else 0.0,
        frac_selected=k / n if n else 0.0,
        num_selected=k,
        num_candidates=num_candidates,
        num_valid=n,
    )


def covariance_stats(logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor) -> CovStats:
    """Covariance statistics alone (no token selected): what policy_loss 'none' logs."""
    valid = mask.bool()
    return cov_stats(token_covariance(logp, advantages, mask), valid, torch.zeros_like(valid), 0)


def clip_ratio_stats(ratio: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, ctx: LossContext):
    """TRL's clip_ratio/* metrics for a PPO-clipped loss (token means, and the extreme per-sequence means)."""
    adv = broadcast_advantages(advantages, ratio)
    valid = mask.bool()
    n = valid.sum().clamp(min=1)
    low = (ratio < 1 - ctx.epsilon_low) & (adv < 0) & valid
    high = (ratio > 1 + ctx.epsilon_high) & (adv > 0) & valid
    per_seq = valid.sum(-1)
    has = per_seq > 0
    low_seq = low.sum(-1)[has] / per_seq[has]
    high_seq = high.sum(-1)[has] / per_seq[has]
    return {
        "clip_ratio/low_mean": float(low.sum() / n),
        "clip_ratio/high_mean": float(high.sum() / n),
        "clip_ratio/region_mean": float((low | high).sum() / n),
        "clip_ratio/low_min": float(low_seq.min()) if has.any() else float("nan"),
        "clip_ratio/high_max": float(high_seq.max()) if has.any() else float("nan"),
    }


# ---------------------------------------------------------------- the registered losses


@register_loss("none")
def trl_clipped_surrogate(logp, old_logp, advantages, mask, cfg, ctx: LossContext):
    """TRL's GRPO loss for loss_type grpo / bnpo / dr_grpo / dapo at token-level importance sampling:
    -min(r * A, clip(r, 1 - eps_low, 1 + eps_high) * A), computed with TRL's operations in TRL's order so
    the result is bit-identical to GRPOTrainer._compute_loss (tested). Its stats are TRL's clip_ratio/* over
    `mask` (with top_entropy_quantile < 1 that is the high-entropy tokens the loss acts on; TRL counts all loss
    tokens) and the covariance statistics."""
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(1)
    coef_1 = torch.exp(logp - old_logp)
    coef_2 = torch.clamp(coef_1, 1 - ctx.epsilon_low, 1 + ctx.epsilon_high)
    per_token_loss = -torch.min(coef_1 * advantages, coef_2 * advantages)
    with torch.no_grad():
        stats = {**covariance_stats(logp, advantages, mask).metrics(),
                 **clip_ratio_stats(coef_1.detach(), advantages, mask, ctx)}
    return per_token_loss, stats


@register_loss("kl_cov")
def kl_cov(logp, old_logp, advantages, mask, cfg, ctx: LossContext):
    loss, st = kl_cov_loss(logp, old_logp, advantages, mask, kl_cov_ratio=cfg.kl_cov_ratio,
                           ppo_kl_coef=cfg.ppo_kl_coef, return_stats=True)
    return loss, st.metrics()


@register_loss("clip_cov")
def clip_cov(logp, old_logp, advantages, mask, cfg, ctx: LossContext):
    loss, st = clip_cov_loss(logp, old_logp, advantages, mask, epsilon_low=ctx.epsilon_low,
                             epsilon_high=ctx.epsilon_high, clip_cov_ratio=cfg.clip_cov_ratio,
                             clip_cov_lb=cfg.clip_cov_lb, clip_cov_ub=cfg.clip_cov_ub, generator=ctx.generator,
                             return_stats=True)
    with torch.no_grad():
        ratio = torch.exp(logp.detach() - old_logp)
        return loss, {**st.metrics(), **clip_ratio_stats(ratio, advantages, mask, ctx)}


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


# ---------------------------------------------------------------- the covariance kernels


def kl_cov_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    kl_cov_ratio: float = 2e-3,
    ppo_kl_coef: float = 1.0,
    return_stats: bool = False,
):
    """KL-Cov: every valid token gets -A * ratio; the k = max(1, int(N * kl_cov_ratio)) valid tokens with the
    largest covariance get, in addition, ppo_kl_coef * |logp - old_logp|."""
    if kl_cov_ratio <= 0:
        raise ValueError(f"kl_cov_ratio must be > 0, got {kl_cov_ratio}")
    valid = mask.bool()
    adv = broadcast_advantages(advantages, logp)
    log_ratio = logp - old_logp
    pg1 = -adv * torch.exp(log_ratio)
    selected, cov = kl_cov_selection(logp, adv, mask, kl_cov_ratio)
    loss = torch.where(selected, pg1 + ppo_kl_coef * log_ratio.abs(), pg1)
    loss = torch.where(valid, loss, torch.zeros_like(loss))
    if return_stats:
        return loss, cov_stats(cov, valid, selected, int(valid.sum()))
    return loss


def kl_cov_selection(logp, advantages, mask, kl_cov_ratio: float):
    """KL-Cov's tokens: the k = max(1, int(N * kl_cov_ratio)) valid tokens with the largest covariance.
    Returns (selected bool [B, T], cov [B, T])."""
    valid = mask.bool()
    cov = token_covariance(logp, advantages, mask)
    selected = torch.zeros_like(valid)
    n = int(valid.sum())
    if n > 0:
        k = max(1, int(n * kl_cov_ratio))
        flat_valid = valid.reshape(-1).nonzero(as_tuple=True)[0]
        top = torch.topk(cov.reshape(-1)[flat_valid], k, largest=True).indices
        selected.view(-1)[flat_valid[top]] = True
    return selected, cov


def clip_cov_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    epsilon_low: float = 0.2,
    epsilon_high: float = 0.2,
    clip_cov_ratio: float = 2e-4,
    clip_cov_lb: float = 1.0,
    clip_cov_ub: float = 5.0,
    generator: torch.Generator | None = None,
    return_stats: bool = False,
):
    """Clip-Cov: the PPO loss max(pg1, pg2), with a random subset of min(max(1, int(N * clip_cov_ratio)),
    #candidates) candidate tokens detached (loss times 0). Candidates: valid, not already clipped by PPO
    (pg2 > pg1), and clip_cov_lb < cov < clip_cov_ub. `generator` (a CPU torch.Generator) makes the choice
    reproducible."""
    if clip_cov_ratio <= 0:
        raise ValueError(f"clip_cov_ratio must be > 0, got {clip_cov_ratio}")
    valid = mask.bool()
    adv = broadcast_advantages(advantages, logp)
    ratio = torch.exp(logp - old_logp)
    pg1 = -adv * ratio
    pg2 = -adv * torch.clamp(ratio, 1 - epsilon_low, 1 + epsilon_high)
    selected, cov, num_candidates = clip_cov_selection(logp, adv, mask, pg2 > pg1, clip_cov_ratio, clip_cov_lb,
                                                       clip_cov_ub, generator)
    loss = torch.maximum(pg1, pg2)
    loss = torch.where(valid & ~selected, loss, torch.zeros_like(loss))
    if return_stats:
        return loss, cov_stats(cov, valid, selected, num_candidates)
    return loss


def clip_cov_selection(logp, advantages, mask, clipped, clip_cov_ratio: float, clip_cov_lb: float,
                       clip_cov_ub: float, generator: torch.Generator | None = None):
    """Clip-Cov's tokens: a random subset of min(max(1, int(N * clip_cov_ratio)), #candidates) candidates, those
    valid, not `clipped` (bool [B, T] or [B, 1]: the ratio clip already cuts them) and with clip_cov_lb < cov <
    clip_cov_ub. Returns (selected bool [B, T], cov [B, T], #candidates)."""
    if clip_cov_ratio <= 0:
        raise ValueError(f"clip_cov_ratio must be > 0, got {clip_cov_ratio}")
    valid = mask.bool()
    cov = token_covariance(logp, advantages, mask)
    candidates = valid & ~clipped & (cov > clip_cov_lb) & (cov < clip_cov_ub)
    cand_idx = candidates.reshape(-1).nonzero(as_tuple=True)[0]
    n = int(valid.sum())
    selected = torch.zeros_like(valid)
    if cand_idx.numel() > 0:
        k = min(max(1, int(n * clip_cov_ratio)), cand_idx.numel())
        perm = torch.randperm(cand_idx.numel(), generator=generator)[:k].to(cand_idx.device)
        selected.view(-1)[cand_idx[perm]] = True
    return selected, cov, int(cand_idx.numel())
