"""Built-in loss `kl_cov`: KL-Cov, from "The Entropy Mechanism of Reinforcement Learning for Reasoning Language
Models" (Cui et al., 2025, arXiv 2505.22617; reference code: PRIME-RL/Entropy-Mechanism-of-RL, verl core_algos).
Policy entropy collapses because the tokens whose log-probability co-varies most with the advantage dominate the
update; KL-Cov adds |logp - old_logp| (a KL-like penalty) to the top-k covariance tokens, with no PPO clipping.

`kl_cov_loss` is the tensor kernel (keyword hyper-parameters, `return_stats=True` gives a `CovStats`) and
`kl_cov_selection` the token choice alone (the trainer adds the penalty to TRL's own objective where the paper's
form does not apply); the registered `kl_cov` reads the hyper-parameters from cfg.
"""

from __future__ import annotations

import torch

from mmreason.rl.losses.covariance import broadcast_advantages, cov_stats, token_covariance
from mmreason.rl.losses.registry import LossContext, register_loss


@register_loss("kl_cov")
def kl_cov(logp, old_logp, advantages, mask, cfg, ctx: LossContext):
    loss, st = kl_cov_loss(logp, old_logp, advantages, mask, kl_cov_ratio=cfg.kl_cov_ratio,
                           ppo_kl_coef=cfg.ppo_kl_coef, return_stats=True)
    return loss, st.metrics()


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
