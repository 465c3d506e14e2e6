"""Built-in loss `clip_cov`: Clip-Cov, from "The Entropy Mechanism of Reinforcement Learning for Reasoning Language
Models" (Cui et al., 2025, arXiv 2505.22617; reference code: PRIME-RL/Entropy-Mechanism-of-RL, verl core_algos).
Policy entropy collapses because the tokens whose log-probability co-varies most with the advantage dominate the
update; Clip-Cov detaches (zero loss, hence zero gradient) a random subset of the tokens whose covariance lies in
(clip_cov_lb, clip_cov_ub) and that PPO's clip does not already cut, on top of the usual clipped loss.

`clip_cov_loss` is the tensor kernel (keyword hyper-parameters, `return_stats=True` gives a `CovStats`) and
`clip_cov_selection` the token choice alone (the trainer applies it to TRL's own objective); the registered
`clip_cov` reads the hyper-parameters from cfg and ctx.
"""

from __future__ import annotations

import torch

from mmreason.rl.losses.covariance import broadcast_advantages, clip_ratio_stats, cov_stats, token_covariance
from mmreason.rl.losses.registry import LossContext, register_loss


@register_loss("clip_cov")
def clip_cov(logp, old_logp, advantages, mask, cfg, ctx: LossContext):
    loss, st = clip_cov_loss(logp, old_logp, advantages, mask, epsilon_low=ctx.epsilon_low,
                             epsilon_high=ctx.epsilon_high, clip_cov_ratio=cfg.clip_cov_ratio,
                             clip_cov_lb=cfg.clip_cov_lb, clip_cov_ub=cfg.clip_cov_ub, generator=ctx.generator,
                             return_stats=True)
    with torch.no_grad():
        ratio = torch.exp(logp.detach() - old_logp)
        return loss, {**st.metrics(), **clip_ratio_stats(ratio, advantages, mask, ctx)}


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
