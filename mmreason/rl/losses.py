"""Entropy-aware policy losses as pure tensor functions, registered by name.

Clip-Cov and KL-Cov come from "The Entropy Mechanism of Reinforcement Learning for Reasoning Language
Models" (Cui et al., 2025; reference code: PRIME-RL/Entropy-Mechanism-of-RL, verl core_algos). Policy
entropy collapses because the tokens whose log-probability co-varies most with the advantage dominate the
update; both losses act on a small fraction of those high-covariance tokens:

- KL-Cov adds |logp - old_logp| (a KL-like penalty) to the top-k covariance tokens, no PPO clipping;
- Clip-Cov detaches (zero loss, hence zero gradient) a random subset of the tokens whose covariance lies in
  (clip_cov_lb, clip_cov_ub) and that PPO's clip does not already cut, on top of the usual clipped loss.

All functions take logp, old_logp, mask of shape [B, T] and advantages of shape [B], [B, 1] or [B, T], and
return the per-token loss [B, T] (zero where mask is 0) that the trainer aggregates (token-mean, seq-mean...).
With `return_stats=True` they return `(loss, CovStats)` for logging.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import torch

LOSSES: dict[str, Callable[..., torch.Tensor]] = {}


def register_loss(name: str):
    def deco(fn):
        if name in LOSSES:
            raise ValueError(f"loss {name!r} registered twice")
        LOSSES[name] = fn
        return fn

    return deco


def get_loss(name: str) -> Callable[..., torch.Tensor]:
    if name not in LOSSES:
        raise KeyError(f"unknown loss {name!r}; registered: {sorted(LOSSES)}")
    return LOSSES[name]


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


def _stats(cov, valid, selected, num_candidates) -> CovStats:
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
    """Covariance statistics alone (no token selected): what cov_mode 'none' logs."""
    valid = mask.bool()
    return _stats(token_covariance(logp, advantages, mask), valid, torch.zeros_like(valid), 0)


@register_loss("kl_cov")
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
    cov = token_covariance(logp, adv, mask)
    selected = torch.zeros_like(valid)
    n = int(valid.sum())
    if n > 0:
        k = max(1, int(n * kl_cov_ratio))
        flat_valid = valid.reshape(-1).nonzero(as_tuple=True)[0]
        top = torch.topk(cov.reshape(-1)[flat_valid], k, largest=True).indices
        selected.view(-1)[flat_valid[top]] = True
    loss = torch.where(selected, pg1 + ppo_kl_coef * log_ratio.abs(), pg1)
    loss = torch.where(valid, loss, torch.zeros_like(loss))
    if return_stats:
        return loss, _stats(cov, valid, selected, n)
    return loss


@register_loss("clip_cov")
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
    clipped_by_ppo = pg2 > pg1
    cov = token_covariance(logp, adv, mask)
    candidates = valid & ~clipped_by_ppo & (cov > clip_cov_lb) & (cov < clip_cov_ub)
    cand_idx = candidates.reshape(-1).nonzero(as_tuple=True)[0]
    n = int(valid.sum())
    selected = torch.zeros_like(valid)
    if cand_idx.numel() > 0:
        k = min(max(1, int(n * clip_cov_ratio)), cand_idx.numel())
        perm = torch.randperm(cand_idx.numel(), generator=generator)[:k].to(cand_idx.device)
        selected.view(-1)[cand_idx[perm]] = True
    loss = torch.maximum(pg1, pg2)
    loss = torch.where(valid & ~selected, loss, torch.zeros_like(loss))
    if return_stats:
        return loss, _stats(cov, valid, selected, int(cand_idx.numel()))
    return loss
