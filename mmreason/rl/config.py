"""`MMReasonGRPOConfig`: TRL's GRPOConfig plus the entropy-aware losses, dynamic sampling and the prompt
budgets (tokens and characters). Every other GRPO knob (num_generations, temperature, top_p,
max_completion_length, beta, epsilon, epsilon_high, loss_type, steps_per_generation, num_iterations, use_vllm,
vllm_mode, vllm_gpu_memory_utilization, vllm_tensor_parallel_size, reward_weights, ...) is TRL's own field."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

from trl import GRPOConfig

from mmreason.prompts import MAX_TEXT_CHARS
from mmreason.rl.losses import LOSSES, load_loss_plugins
from mmreason.usage import check_count

logger = logging.getLogger(__name__)

DYNAMIC_SAMPLING_MODES = ("off", "mask", "refill")
# TRL loss types whose objective is the clipped ratio surrogate the registry's losses replace, aggregated as TRL does.
COV_LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")


@dataclass
class MMReasonGRPOConfig(GRPOConfig):
    """GRPOConfig + `cov_mode` (a loss registry name: none | clip_cov | kl_cov | a plugin's) and its
    hyper-parameters, `clip_ratio_c` (dual-clip), `dynamic_sampling`, `max_prompt_length`, `max_prompt_chars`.
    With cov_mode none and no dual-clip the loss is stock TRL's, bit for bit."""

    cov_mode: str = field(
        default="none",
        metadata={
            "help": "Policy loss, by its name in the loss registry (mmreason/rl/losses.py; built in: "
            + ", ".join(sorted(LOSSES))
            + "). 'none': TRL's clipped surrogate (stock TRL's loss, bit for bit). 'clip_cov': PPO-clipped loss "
            "with a random clip_cov_ratio fraction of the high-covariance tokens (clip_cov_lb < cov < clip_cov_ub, "
            "not already clipped) detached. 'kl_cov': unclipped -A*ratio plus ppo_kl_coef*|logp - old_logp| on the "
            "top kl_cov_ratio fraction of tokens by covariance. Any other name must be registered by a file listed "
            "in `loss_plugins`. Aggregation follows `loss_type` (grpo, bnpo, dr_grpo or dapo)."
        },
    )
    loss_plugins: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Loss plugins 'path/to/my_loss.py:NAME' (relative to the working directory) or "
            "'package.module:NAME', loaded before `cov_mode` is looked up: NAME is a function "
            "fn(logp, old_logp, advantages, mask, cfg, ctx) -> (per_token_loss, stats), registered as NAME unless "
            "it carries @mmreason.rl.losses.register_loss('name'). Then `cov_mode: name` selects it - no other "
            "file changes. The old whole-file form 'path/to/my_loss.py' still works, with a deprecation warning."
        },
    )
    kl_cov_ratio: float = field(
        default=2e-3,
        metadata={"help": "KL-Cov: fraction of valid tokens (top by covariance, at least 1) that get the penalty."},
    )
    ppo_kl_coef: float = field(
        default=1.0, metadata={"help": "KL-Cov: coefficient of the |logp - old_logp| penalty."}
    )
    clip_cov_ratio: float = field(
        default=2e-4,
        metadata={"help": "Clip-Cov: fraction of valid tokens (at least 1, at most #candidates) to detach."},
    )
    clip_cov_lb: float = field(
        default=1.0, metadata={"help": "Clip-Cov: candidate tokens have covariance strictly above this."}
    )
    clip_cov_ub: float = field(
        default=5.0, metadata={"help": "Clip-Cov: candidate tokens have covariance strictly below this."}
    )
    clip_ratio_c: float | None = field(
        default=None,
        metadata={
            "help": "Dual-clip constant (verl's clip_ratio_c; the RL-with-Cold-Start runs use 3.0). For tokens "
            "with a negative advantage the per-token loss is capped at -A * clip_ratio_c, i.e. min(max(pg1, pg2), "
            "-A * clip_ratio_c) for the clipped surrogate, as in verl's compute_policy_loss; applied to the output "
            "of whichever `cov_mode` loss is selected. Must be > 1. null: off (the loss is then TRL's, bit for bit, "
            "with cov_mode none)."
        },
    )
    dynamic_sampling: str = field(
        default="off",
        metadata={
            "help": "Groups (the num_generations completions of one prompt) whose `dynamic_sampling_reward` values "
            "are all equal carry no learning signal but dilute the token normalisation. 'off': keep them. "
            "'mask': drop them from the loss (cheap; the batch shrinks; counted as dynamic_sampling/dropped_groups). "
            "Exact with loss_type dapo or bnpo, whose denominators count loss tokens; grpo and dr_grpo divide by "
            "the number of sequences (times the max length for dr_grpo), which still includes the dropped ones, so "
            "there the update is scaled down by the kept fraction (a warning says so). 'refill': DAPO's dynamic "
            "sampling - generate further generation batches of fresh prompts (drawn from train_dataset by a generator "
            "seeded from seed and step) and put their groups with signal in place of this process's zero-variance "
            "groups until every group of the batch has signal, at most `dynamic_sampling_max_rounds` extra rounds "
            "(all processes run the same rounds); groups still without signal after the cap are masked as in 'mask'. "
            "Logged: dynamic_sampling/refill_rounds, refilled_groups, refill_cap_hit. Training batches only (eval "
            "batches are masked). Each group keeps the advantages of the round it was generated in, exact with "
            "scale_rewards group or none. Needs per_device_train_batch_size * steps_per_generation to be a multiple "
            "of num_generations. YAML/CLI booleans are accepted: true = 'mask', false = 'off'."
        },
    )
    dynamic_sampling_max_rounds: int = field(
        default=4,
        metadata={
            "help": "dynamic_sampling 'refill': cap on the extra generation rounds per generation batch (each round "
            "generates one generation batch of fresh prompts)."
        },
    )
    dynamic_sampling_reward: str | None = field(
        default="accuracy",
        metadata={
            "help": "Name of the reward function whose per-group equality decides dynamic sampling; null uses "
            "the weighted total reward."
        },
    )
    max_prompt_length: int | None = field(
        default=None,
        metadata={
            "help": "Prompt budget in tokens, image tokens included, counted with the real processor. TRL 1.16 "
            "has no prompt truncation (and truncating through image tokens breaks Qwen2.5-VL with 'image "
            "features and image tokens do not match'), so longer prompts are dropped before training and "
            "counted in the log. null: no limit."
        },
    )
    max_prompt_chars: int | None = field(
        default=MAX_TEXT_CHARS,
        metadata={
            "help": "Drop (counted in the build report, naming the record id) a prompt whose text (system message, "
            "question, choices, instruction) is longer than this many characters. Checked before anything "
            "tokenises the prompt or decodes its video: a 1 MB question would otherwise exhaust memory inside the "
            "tokenizer after minutes, naming no record. The same limit as SFT's max_text_chars and eval's "
            "--max-prompt-chars. null: no limit."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        check_count(self.max_prompt_chars, "max_prompt_chars", 1)
        load_loss_plugins(self.loss_plugins)
        if self.cov_mode not in LOSSES:
            raise ValueError(
                f"cov_mode must be a registered loss, one of {sorted(LOSSES)} (others via loss_plugins), got "
                f"{self.cov_mode!r}"
            )
        if self.max_prompt_length is not None and self.max_prompt_length <= 0:
            raise ValueError(f"max_prompt_length must be positive or null, got {self.max_prompt_length}")
        self.dynamic_sampling = _dynamic_sampling_mode(self.dynamic_sampling)
        if self.dynamic_sampling_max_rounds < 0:
            raise ValueError(f"dynamic_sampling_max_rounds must be >= 0, got {self.dynamic_sampling_max_rounds}")
        if self.clip_ratio_c is not None and not self.clip_ratio_c > 1:
            raise ValueError(f"clip_ratio_c must be > 1 (or null for off), got {self.clip_ratio_c}")
        if self.dynamic_sampling != "off" and self.loss_type in ("grpo", "dr_grpo"):
            warnings.warn(
                f"dynamic_sampling with loss_type={self.loss_type!r}: dropped groups still count in this loss's "
                "per-sequence denominator, so each update shrinks with the fraction of groups dropped; "
                "loss_type 'dapo' or 'bnpo' normalise by the kept tokens only.",
                stacklevel=2,
            )
        if self.cov_mode == "none" and self.clip_ratio_c is None:
            return  # TRL's own loss; the trainer hands options the registry does not cover to TRL
        bad = self.registry_conflicts()
        if bad:
            raise ValueError(
                f"cov_mode={self.cov_mode!r} / clip_ratio_c={self.clip_ratio_c} (the loss registry) supports loss_type "
                f"in {list(COV_LOSS_TYPES)}, token-level importance sampling, and no delta / off_policy_mask_threshold "
                f"/ entropy bonus; conflicting: {bad}"
            )
        if self.kl_cov_ratio <= 0 or self.clip_cov_ratio <= 0:
            raise ValueError("kl_cov_ratio and clip_cov_ratio must be > 0")
        if self.clip_cov_lb >= self.clip_cov_ub:
            raise ValueError(f"clip_cov_lb ({self.clip_cov_lb}) must be below clip_cov_ub ({self.clip_cov_ub})")
        if self.cov_mode == "kl_cov" and self.is_on_policy():
            msg = (
                "cov_mode='kl_cov' with one update per generation (num_iterations=1 and steps_per_generation <= "
                "gradient_accumulation_steps): logp == old_logp at every update, so |logp - old_logp| = 0 and the "
                "KL-Cov penalty does NOTHING (the loss reduces to -A*ratio). Set num_iterations > 1 or "
                "steps_per_generation > gradient_accumulation_steps to make it act."
            )
            warnings.warn(msg, stacklevel=2)
            logger.warning("!" * 20 + " " + msg)

    def registry_conflicts(self) -> list[str]:
        """The set options the loss registry's path does not implement (TRL's `_compute_loss` does)."""
        unsupported = {
            "loss_type": self.loss_type not in COV_LOSS_TYPES,
            "importance_sampling_level": self.importance_sampling_level != "token",
            "delta": self.delta is not None,
            "off_policy_mask_threshold": self.off_policy_mask_threshold is not None,
            "entropy_coef / use_adaptive_entropy": self.entropy_coef != 0.0 or self.use_adaptive_entropy,
        }
        return [k for k, v in unsupported.items() if v]

    def is_on_policy(self) -> bool:
        """True when every update uses completions sampled by the very same weights."""
        return self.num_iterations == 1 and self.steps_per_generation <= self.gradient_accumulation_steps


def _dynamic_sampling_mode(value) -> str:
    """'off' | 'mask' | 'refill'; the booleans of older configs (YAML true/false, CLI "true"/"false") mean mask/off."""
    if isinstance(value, bool) or value is None:
        return "mask" if value else "off"
    mode = str(value).strip().lower()
    mode = {"true": "mask", "false": "off", "yes": "mask", "no": "off", "on": "mask"}.get(mode, mode)
    if mode not in DYNAMIC_SAMPLING_MODES:
        raise ValueError(f"dynamic_sampling must be one of {list(DYNAMIC_SAMPLING_MODES)} (or true/false), got {value!r}")
    return mode
