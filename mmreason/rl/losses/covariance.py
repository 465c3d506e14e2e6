"""What the built-in losses share: the per-token covariance of log-probability and advantage that Clip-Cov and
KL-Cov select tokens by, its statistics (`CovStats`, logged as cov/*), and TRL's clip_ratio/* metrics for a
PPO-clipped loss. Registers no loss.

The covariance comes from "The Entropy Mechanism of Reinforcement Learning for Reasoning Language Models" (Cui et
al., 2025; reference code: PRIME-RL/Entropy-Mechanism-of-RL, verl core_algos): policy entropy collapses because
the tokens whose log-probability co-varies most with the advantage dominate the update.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch

from mmreason.rl import metrics as M

if TYPE_CHECKING:
    from mmreason.rl.losses.registry import LossContext


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
