"""Policy losses: the registry (`registry.py`) and one file per built-in loss (`none.py`, `clip_cov.py`,
`kl_cov.py`), with the covariance statistics they share (`covariance.py`). Every loss has one signature (the shape
of verl's core_algos policy losses):

    fn(logp, old_logp, advantages, mask, cfg, ctx) -> (per_token_loss, stats)

- logp, old_logp, mask: [B, T] (mask: the tokens the loss acts on); advantages: [B], [B, 1] or [B, T];
- cfg: the MMReasonGRPOConfig (or any object with the fields the loss reads);
- ctx: a `LossContext` (the trainer's resolved epsilons, a seeded generator, the entropies, ...);
- per_token_loss: [B, T]; the trainer aggregates it over `mask` per `loss_type` (token-mean, seq-mean, ...)
  after adding the KL term, so a loss never normalises itself;
- stats: {metric name: float}. A value is a mean over this call's `mask` tokens, combined across processes
  weighted by token count, unless its name ends in "/max" or "/min" (combined by max / min).

`policy_loss: <name>` in the config selects a loss; `policy_loss()` is the registry's one entry point (the loss,
then the dual-clip `clip_ratio_c` / `delta` on A < 0 tokens). The trainer calls it where a loss replaces TRL's policy
term (plugins, KL-Cov in the paper's form); Clip-Cov and KL-Cov on top of TRL's own objective use the selection
kernels (`clip_cov.clip_cov_selection`, `kl_cov.kl_cov_selection`).

A built-in is one module of this package whose function carries `@register_loss("name")`: the package scan
(`builtin_losses`, `plugins.discover`) finds it, so adding a file adds a loss. A plugin is one file anywhere, listed
in the config's `loss_plugins` as `file.py:NAME` (registered under NAME unless it carries `@register_loss(...)`);
its own hyper-parameters come from the config's `loss_options` as `ctx.options`.

Here: the plugin author's API. The built-in modules are not imported here; the scan imports them.
"""

from mmreason.rl.losses.registry import (
    LossContext,
    builtin_losses,
    get_loss,
    load_loss_plugins,
    policy_loss,
    register_loss,
)

__all__ = ["LossContext", "builtin_losses", "get_loss", "load_loss_plugins", "policy_loss", "register_loss"]
