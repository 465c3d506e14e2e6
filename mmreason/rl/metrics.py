"""Metric names the GRPO trainer logs (into trainer_state.json log_history via TRL's metrics) and the
plot reads back. One place, so the writer and the reader cannot drift apart."""

ENTROPY_TOKEN_MEAN = "entropy/token_mean"  # mean over all valid completion tokens of the rollouts
ENTROPY_SEQ_MEAN = "entropy/seq_mean"  # mean over sequences of each sequence's token-mean entropy
COV_MEAN = "cov/mean"  # mean of (A - mean A)(logp - mean logp) over valid tokens
COV_MAX = "cov/max"
COV_FRAC_SELECTED = "cov/frac_selected"  # fraction of tokens detached (clip_cov) or penalised (kl_cov)
DS_DROPPED_GROUPS = "dynamic_sampling/dropped_groups"  # groups with all-equal signal reward, per generation
DS_DROPPED_FRAC = "dynamic_sampling/dropped_frac"
DS_REFILL_ROUNDS = "dynamic_sampling/refill_rounds"  # extra generation rounds run for one generation batch
DS_REFILLED_GROUPS = "dynamic_sampling/refilled_groups"  # zero-variance groups replaced by groups with signal
DS_REFILL_CAP_HIT = "dynamic_sampling/refill_cap_hit"  # 1: dynamic_sampling_max_rounds ran out with groups left
DUAL_CLIP_FRAC = "clip_ratio/dual_mean"  # fraction of loss tokens the dual-clip (clip_ratio_c) capped
REWARD = "reward"  # TRL's weighted total


def reward_key(func_name: str) -> str:
    """TRL's per-reward-function mean."""
    return f"rewards/{func_name}/mean"


def source_reward_prefix(func_name: str) -> str:
    return f"rewards_by_source/{func_name}/"


def source_reward_key(func_name: str, source: str) -> str:
    """Mean of one reward function over the rollouts of one record `source` (e.g. synth/compare) in a step:
    a mixed batch's mean reward moves with the mix of sources it happens to draw, a source's does not."""
    return source_reward_prefix(func_name) + (source or "unknown")
