"""`MMReasonGRPOConfig`: TRL's GRPOConfig plus the policy losses, dynamic sampling and the prompt
budgets (tokens and characters). Every other GRPO knob (num_generations, temperature, top_p,
max_completion_length, beta, epsilon, epsilon_high, loss_type, steps_per_generation, num_iterations, use_vllm,
vllm_mode, vllm_gpu_memory_utilization, vllm_tensor_parallel_size, reward_weights, ...) is TRL's own field."""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass, field, fields

from trl import GRPOConfig

from mmreason.prompts import MAX_TEXT_CHARS
from mmreason.rl.losses.registry import LOSSES, builtin_losses, load_loss_plugins
from mmreason.usage import check_count

logger = logging.getLogger(__name__)

DYNAMIC_SAMPLING_MODES = ("off", "mask", "refill")


# TRL 1.16's loss types, by the shape of their per-token objective.
CLIPPED_LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo", "luspo")  # -min(r*A, clip(r)*A)
UNCLIPPED_LOSS_TYPES = ("cispo", "sapo", "vespo")  # no ratio*A surrogate with a hard clip


@dataclass
class MMReasonGRPOConfig(GRPOConfig):
    """GRPOConfig + `policy_loss` (a loss registry name: none | clip_cov | kl_cov | a plugin's) with its
    hyper-parameters and `loss_options`, `clip_ratio_c` (dual-clip), `dynamic_sampling`, `max_prompt_length`,
    `max_prompt_chars`. Every default is TRL's behaviour: with policy_loss none the loss is stock TRL's, bit for bit."""

    policy_loss: str = field(
        default="none",
        metadata={
            "help": "Policy loss, by its name in the loss registry (mmreason/rl/losses/, one file per built-in: "
            + ", ".join(builtin_losses())
            + "). 'none': TRL's own objective for `loss_type`, bit for bit. "
            "'clip_cov' (Cui et al. 2025): a random clip_cov_ratio fraction of the tokens whose covariance "
            "cov = (A - mean A)(logp - mean logp) lies in (clip_cov_lb, clip_cov_ub) and that the ratio clip does not "
            "already cut get advantage 0, i.e. no loss and no gradient; TRL then computes its objective for every "
            "`loss_type` (the clip test uses TRL's ratio: per token, or per sequence with importance_sampling_level "
            "sequence, capped by delta; cispo / sapo / vespo have no hard clip, so every token in the band is a "
            "candidate) and every option (delta, off-policy mask, top_entropy_quantile, entropy bonus, beta KL, MoE "
            "aux loss) acts as in TRL. "
            "'kl_cov': ppo_kl_coef * |logp - old_logp| on the top kl_cov_ratio fraction of tokens by covariance. With "
            "loss_type grpo / bnpo / dr_grpo / dapo / luspo at token-level importance sampling it is the paper's "
            "objective, -A*r unclipped plus the penalty (the penalty replaces the ratio clip; delta / clip_ratio_c "
            "then cap A < 0 tokens at -A*delta); with sequence-level importance sampling (GSPO's clip is on the "
            "sequence ratio, which a per-token penalty does not replace) and with cispo / sapo / vespo (their own "
            "trust regions) the penalty is added to TRL's objective. The penalty gets TRL's token weights (off-policy "
            "mask, top_entropy_quantile mask, vLLM importance-sampling ratio) and the loss_type's aggregation; the "
            "entropy bonus, beta KL and MoE aux loss are TRL's. "
            "Any other name must be registered by a file in `loss_plugins`: its per-token loss replaces TRL's policy "
            "term (token-level log-probs; loss_type picks the aggregation), with the same token weights, KL, entropy "
            "bonus and aux loss."
        },
    )
    cov_mode: str | None = field(
        default=None,
        metadata={"help": "Deprecated alias of `policy_loss` (warns once); null: unset."},
    )
    loss_plugins: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Loss plugins 'path/to/my_loss.py:NAME' (relative to the working directory) or "
            "'package.module:NAME', loaded before `policy_loss` is looked up: NAME is a function "
            "fn(logp, old_logp, advantages, mask, cfg, ctx) -> (per_token_loss, stats), registered as NAME unless "
            "it carries @mmreason.rl.losses.register_loss('name'). Then `policy_loss: name` selects it - no other "
            "file changes. The old whole-file form 'path/to/my_loss.py' still works, with a deprecation warning."
        },
    )
    loss_options: dict | str | None = field(
        default=None,
        metadata={
            "help": "The selected loss's own hyper-parameters, as a dict ({scale: 2.0} in YAML, '{\"scale\": 2.0}' "
            "on the command line); a loss reads them from ctx.options. Built-in losses take theirs as fields "
            "(kl_cov_ratio, ...) and refuse loss_options."
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
            "help": "Dual-clip constant (verl's clip_ratio_c; the RL-with-Cold-Start runs use 3.0): tokens with a "
            "negative advantage have their loss capped at -A * clip_ratio_c, min(max(pg1, pg2), -A * c) as in verl's "
            "compute_policy_loss. On TRL's clipped surrogate that is exactly TRL's `delta` (two-sided clipping caps the "
            "ratio at delta, which for A > 0 never binds above 1 + epsilon_high), so it sets delta (both set and "
            "different: an error) and composes with everything delta does. Must be > 1 + epsilon_high (below, delta "
            "would also cut A > 0 tokens, which dual-clip never does). Refused with loss_type cispo / sapo / vespo: "
            "their objectives have no -r*A branch to cap (cispo's weight is a detached clamped ratio times logp, "
            "sapo's soft gate is already bounded by 4/tau, vespo's gamma weight by its maximum at w = 1), and TRL "
            "ignores delta there. null: off."
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
        if self.cov_mode is not None:  # shown once per place that sets it (Python's default for a FutureWarning)
            warnings.warn("cov_mode is renamed policy_loss; cov_mode still works as an alias", FutureWarning,
                          stacklevel=2)
            self.policy_loss, self.cov_mode = self.cov_mode, None
        super().__post_init__()
        check_count(self.max_prompt_chars, "max_prompt_chars", 1)
        load_loss_plugins(self.loss_plugins)
        builtin = builtin_losses()
        if self.policy_loss not in LOSSES:
            raise ValueError(
                f"policy_loss must be a registered loss, one of {sorted(LOSSES)} (others via loss_plugins), got "
                f"{self.policy_loss!r}"
            )
        self.loss_options = _options_dict(self.loss_options, "loss_options")
        if self.loss_options and self.policy_loss in builtin:
            raise ValueError(f"loss_options are for plugin losses; policy_loss {self.policy_loss!r} takes its "
                             f"hyper-parameters as fields (kl_cov_ratio, clip_cov_ratio, ...), got {self.loss_options}")
        if self.max_prompt_length is not None and self.max_prompt_length <= 0:
            raise ValueError(f"max_prompt_length must be positive or null, got {self.max_prompt_length}")
        self.dynamic_sampling = _dynamic_sampling_mode(self.dynamic_sampling)
        if self.dynamic_sampling_max_rounds < 0:
            raise ValueError(f"dynamic_sampling_max_rounds must be >= 0, got {self.dynamic_sampling_max_rounds}")
        if self.clip_ratio_c is not None:
            self._set_dual_clip()
        if self.dynamic_sampling != "off" and self.loss_type in ("grpo", "dr_grpo"):
            warnings.warn(
                f"dynamic_sampling with loss_type={self.loss_type!r}: dropped groups still count in this loss's "
                "per-sequence denominator, so each update shrinks with the fraction of groups dropped; "
                "loss_type 'dapo' or 'bnpo' normalise by the kept tokens only.",
                stacklevel=2,
            )
        if self.policy_loss == "none":
            return
        if self.kl_cov_ratio <= 0 or self.clip_cov_ratio <= 0:
            raise ValueError("kl_cov_ratio and clip_cov_ratio must be > 0")
        if self.clip_cov_lb >= self.clip_cov_ub:
            raise ValueError(f"clip_cov_lb ({self.clip_cov_lb}) must be below clip_cov_ub ({self.clip_cov_ub})")
        if self.policy_loss == "kl_cov" and self.is_on_policy():
            msg = (
                "policy_loss='kl_cov' with one update per generation (num_iterations=1 and steps_per_generation <= "
                "gradient_accumulation_steps): logp == old_logp at every update, so |logp - old_logp| = 0 and the "
                "KL-Cov penalty does NOTHING. Set num_iterations > 1 or steps_per_generation > "
                "gradient_accumulation_steps to make it act."
            )
            warnings.warn(msg, stacklevel=2)
            logger.warning("!" * 20 + " " + msg)

    def _set_dual_clip(self) -> None:
        c = self.clip_ratio_c
        if self.loss_type in UNCLIPPED_LOSS_TYPES:
            raise ValueError(f"clip_ratio_c (dual-clip) with loss_type {self.loss_type!r}: that objective has no "
                             "-ratio*A branch to cap (see the clip_ratio_c help); use loss_type grpo / bnpo / dr_grpo / "
                             "dapo / luspo or clip_ratio_c: null")
        eps_high = self.epsilon if self.epsilon_high is None else self.epsilon_high
        if not c > 1 + eps_high:
            raise ValueError(f"clip_ratio_c must be > 1 + epsilon_high ({1 + eps_high}), got {c}")
        if self.delta is not None and self.delta != c:
            raise ValueError(f"clip_ratio_c ({c}) and delta ({self.delta}) are the same cap on TRL's clipped "
                             "surrogate: set one")
        self.delta = c

    def uses_paper_kl_cov(self) -> bool:
        """KL-Cov as the paper defines it (unclipped -A*r plus the penalty) rather than a penalty on TRL's objective."""
        return self.loss_type in CLIPPED_LOSS_TYPES and self.importance_sampling_level == "token"

    def is_on_policy(self) -> bool:
        """True when every update uses completions sampled by the very same weights."""
        return self.num_iterations == 1 and self.steps_per_generation <= self.gradient_accumulation_steps

    @classmethod
    def from_grpo_config(cls, args: GRPOConfig) -> "MMReasonGRPOConfig":
        """A stock GRPOConfig as ours: every TRL field as the user set it, ours at their defaults (TRL's
        behaviour). The values TRL's __post_init__ derived (generation_batch_size, ...) are passed back as given."""
        if isinstance(args, cls):
            return args
        if not isinstance(args, GRPOConfig):
            raise TypeError(f"args must be a GRPOConfig (or MMReasonGRPOConfig), got {type(args).__name__}")
        values = {f.name: getattr(args, f.name) for f in fields(GRPOConfig) if f.init}
        # TRL's __post_init__ fills one of the two from the other and refuses both set by the user
        if args.generation_batch_size is not None and args.steps_per_generation is not None:
            values["generation_batch_size"] = None
        return cls(**values)


def _options_dict(value, name: str) -> dict:
    """A dict from YAML, or from JSON text on the command line."""
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise ValueError(f"{name}: not JSON ({e}): {value!r}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a mapping, got {value!r}")
    return value


def _dynamic_sampling_mode(value) -> str:
    """'off' | 'mask' | 'refill'; the booleans of older configs (YAML true/false, CLI "true"/"false") mean mask/off."""
    if isinstance(value, bool) or value is None:
        return "mask" if value else "off"
    mode = str(value).strip().lower()
    mode = {"true": "mask", "false": "off", "yes": "mask", "no": "off", "on": "mask"}.get(mode, mode)
    if mode not in DYNAMIC_SAMPLING_MODES:
        raise ValueError(f"dynamic_sampling must be one of {list(DYNAMIC_SAMPLING_MODES)} (or true/false), got {value!r}")
    return mode
