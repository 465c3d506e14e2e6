"""Built-in loss `none` (the default): TRL's own GRPO clipped surrogate, -min(r * A, clip(r, 1 - eps_low,
1 + eps_high) * A), written with TRL's operations in TRL's order so it is bit-identical to TRL 1.16's
`GRPOTrainer._compute_loss` (tested). It logs TRL's clip_ratio/* and the covariance statistics (cov/*).
"""

from __future__ import annotations

import torch

from mmreason.rl.losses.covariance import clip_ratio_stats, covariance_stats
from mmreason.rl.losses.registry import LossContext, register_loss


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
