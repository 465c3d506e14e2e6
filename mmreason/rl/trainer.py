"""`MMReasonGRPOTrainer`: TRL's GRPOTrainer with Clip-Cov / KL-Cov losses, entropy and covariance
instrumentation and dynamic sampling, extended the way trl/experimental/gmpo does (a config subclass and
an overridden `_compute_loss`). With cov_mode 'none' the loss is the parent's, unchanged."""

from __future__ import annotations

import torch
from accelerate.utils import gather_object
from trl import GRPOTrainer

from mmreason.rl import metrics as M
from mmreason.rl.config import MMReasonGRPOConfig
from mmreason.rl.data import fit_images
from mmreason.rl.losses import covariance_stats, get_loss


def zero_variance_groups(rewards: torch.Tensor, num_generations: int) -> torch.Tensor:
    """rewards [G * num_generations] (NaN = unscorable, ignored) -> bool [G]: groups whose finite rewards are
    all equal (or that have fewer than two finite rewards)."""
    grouped = rewards.view(-1, num_generations)
    finite = torch.isfinite(grouped)
    hi = torch.where(finite, grouped, torch.full_like(grouped, -torch.inf)).amax(dim=1)
    lo = torch.where(finite, grouped, torch.full_like(grouped, torch.inf)).amin(dim=1)
    return (finite.sum(dim=1) < 2) | torch.isclose(hi, lo)


class MMReasonGRPOTrainer(GRPOTrainer):
    _tag_names = ["trl", "grpo", "mmreason"]

    def __init__(self, model, reward_funcs, args: MMReasonGRPOConfig | None = None, **kwargs):
        if args is None:
            args = MMReasonGRPOConfig("mmreason-grpo")
        super().__init__(model, reward_funcs, args=args, **kwargs)
        if not isinstance(self.args, MMReasonGRPOConfig):
            raise TypeError(f"args must be a MMReasonGRPOConfig, got {type(self.args).__name__}")
        if self.args.cov_mode != "none" and self.aux_loss_enabled:
            raise ValueError("cov_mode clip_cov/kl_cov does not support the MoE router aux loss")
        name = self.args.dynamic_sampling_reward
        if self.args.dynamic_sampling == "refill":
            raise NotImplementedError("dynamic_sampling 'refill' is not implemented yet; use 'mask'")
        if self.args.dynamic_sampling != "off" and name is not None and name not in self.reward_func_names:
            raise ValueError(
                f"dynamic_sampling_reward={name!r} is not one of the reward functions {self.reward_func_names}"
            )
        self._last_rewards_per_func = None
        self._last_entropies = self._last_logps = None

    # ---------------------------------------------------------------- rollouts: dynamic sampling

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._last_rewards_per_func = rewards_per_func  # gathered over all processes
        return rewards_per_func

    def _generate_and_score_completions(self, inputs):
        if inputs and "images" in inputs[0]:
            inputs = [{**x, "images": fit_images(x["images"], self.processing_class)} for x in inputs]
        output = super()._generate_and_score_completions(inputs)
        mode = "train" if self.model.training else "eval"
        if inputs and "source" in inputs[0]:
            self._log_rewards_by_source(mode, [x["source"] for x in inputs])
        if self.args.dynamic_sampling == "off":
            return output
        num_generations = self.num_generations if mode == "train" else self.num_generations_eval
        signal = self._signal_rewards(self._last_rewards_per_func)
        dropped = zero_variance_groups(signal, num_generations)
        keep = (~dropped).repeat_interleave(num_generations)
        local_batch = output["completion_ids"].size(0)
        proc = self.accelerator.process_index
        keep = keep[proc * local_batch : (proc + 1) * local_batch].to(output["completion_mask"])
        # TRL multiplies an optional per-token `tool_mask` into the loss mask (not the attention mask) and
        # counts `num_items_in_batch` from it: dropping a group is zeroing its rows there.
        loss_keep = keep.unsqueeze(1).expand_as(output["completion_mask"]).clone()
        if "tool_mask" in output:
            loss_keep = loss_keep * output["tool_mask"]
        output["tool_mask"] = loss_keep
        output["num_items_in_batch"] = self.accelerator.gather((output["completion_mask"] * loss_keep).sum()).sum()
        self._metrics[mode][M.DS_DROPPED_GROUPS].append(float(dropped.sum()))
        self._metrics[mode][M.DS_DROPPED_FRAC].append(float(dropped.float().mean()))
        return output

    def _log_rewards_by_source(self, mode: str, local_sources: list[str]) -> None:
        """Every reward function's values on this generation batch (all processes), logged per source."""
        local_sources = [s or "unknown" for s in local_sources]
        sources = gather_object(local_sources) if self.accelerator.num_processes > 1 else local_sources
        rewards = self._last_rewards_per_func
        if rewards is None or len(sources) != rewards.size(0):
            return
        for src in dict.fromkeys(sources):
            rows = torch.tensor([s == src for s in sources], device=rewards.device)
            for i, name in enumerate(self.reward_func_names):
                values = rewards[rows, i]
                # One entry per scored rollout (NaN: the function did not score it): TRL's `log` averages
                # each metric's list unweighted, so this makes the logged value the mean over rollouts,
                # not a mean of per-batch means, however many batches a logging or eval window holds.
                scored = values[~torch.isnan(values)].tolist()
                if scored:  # an all-unscored source logs nothing (TRL's `log` would divide by zero)
                    self._metrics[mode][M.source_reward_key(name, src)].extend(scored)

    def _signal_rewards(self, rewards_per_func: torch.Tensor) -> torch.Tensor:
        name = self.args.dynamic_sampling_reward
        if name is not None:
            return rewards_per_func[:, self.reward_func_names.index(name)]
        weights = self.reward_weights.to(rewards_per_func.device)
        total = (rewards_per_func * weights).nansum(dim=1)
        total[torch.isnan(rewards_per_func).all(dim=1)] = torch.nan
        return total

    # ---------------------------------------------------------------- loss

    def _get_per_token_logps_and_entropies(self, *args, **kwargs):
        logps, entropies, aux = super()._get_per_token_logps_and_entropies(*args, **kwargs)
        if kwargs.get("compute_entropy"):  # the policy pass inside _compute_loss
            self._last_entropies, self._last_logps = entropies.detach(), logps.detach()
        return logps, entropies, aux

    def _compute_loss(self, model, inputs):
        if self.args.cov_mode == "none":
            self._last_entropies = self._last_logps = None
            loss = super()._compute_loss(model, inputs)
            if self._last_entropies is not None:
                self._log_entropy(inputs, self._last_entropies)
                self._log_cov(covariance_stats(self._last_logps, inputs["advantages"], self._loss_mask(inputs)))
            return loss
        return self._compute_cov_loss(model, inputs)

    def _loss_mask(self, inputs) -> torch.Tensor:
        mask = inputs["completion_mask"]
        return mask if "tool_mask" not in inputs else mask * inputs["tool_mask"]

    def _log_entropy(self, inputs, entropies: torch.Tensor) -> None:
        mode = "train" if self.model.training else "eval"
        # all rollout tokens, including groups dynamic sampling keeps out of the loss
        mask = inputs["completion_mask"].to(entropies.dtype)
        tok = torch.stack([(entropies * mask).sum(), mask.sum()])
        per_seq = (entropies * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)
        has_tokens = (mask.sum(-1) > 0).to(entropies.dtype)
        seq = torch.stack([(per_seq * has_tokens).sum(), has_tokens.sum()])
        tok, seq = self.accelerator.reduce(torch.stack([tok, seq]), reduction="sum")
        self._metrics[mode][M.ENTROPY_TOKEN_MEAN].append((tok[0] / tok[1].clamp(min=1.0)).item())
        self._metrics[mode][M.ENTROPY_SEQ_MEAN].append((seq[0] / seq[1].clamp(min=1.0)).item())

    def _log_cov(self, stats) -> None:
        mode = "train" if self.model.training else "eval"
        t = torch.tensor([stats.cov_mean * stats.num_valid, stats.num_valid, stats.num_selected],
                         dtype=torch.float64, device=self.accelerator.device)
        t = self.accelerator.reduce(t, reduction="sum")
        cov_max = self.accelerator.gather(
            torch.tensor([stats.cov_max], dtype=torch.float64, device=self.accelerator.device)
        ).max()
        n = max(float(t[1]), 1.0)
        self._metrics[mode][M.COV_MEAN].append(float(t[0]) / n)
        self._metrics[mode][M.COV_MAX].append(float(cov_max))
        self._metrics[mode][M.COV_FRAC_SELECTED].append(float(t[2]) / n)

    def _cov_generator(self) -> torch.Generator:
        # Seeded from (seed, micro-step): reproducible, and identical after a resume.
        return torch.Generator().manual_seed(self.args.seed * 1_000_003 + self._step * 101 + self.accelerator.process_index)

    def _compute_cov_loss(self, model, inputs):
        """Clip-Cov / KL-Cov. Mirrors the parent's `_compute_loss` for the supported options (loss_type
        grpo/bnpo/dr_grpo/dapo, beta KL, top_entropy_quantile, vLLM importance-sampling correction); the
        config rejects the rest."""
        args = self.args
        prompt_ids, prompt_mask = inputs["prompt_ids"], inputs["prompt_mask"]
        completion_ids, completion_mask = inputs["completion_ids"], inputs["completion_mask"]
        input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
        attention_mask = torch.cat([prompt_mask, completion_mask], dim=1)
        logits_to_keep = completion_ids.size(1)
        mask = self._loss_mask(inputs)

        per_token_logps, entropies, _ = self._get_per_token_logps_and_entropies(
            model,
            input_ids,
            attention_mask,
            logits_to_keep,
            compute_entropy=True,
            pixel_values=inputs.get("pixel_values"),
            image_grid_thw=inputs.get("image_grid_thw"),
            num_images=inputs.get("num_images"),
            pixel_attention_mask=inputs.get("pixel_attention_mask"),
            spatial_shapes=inputs.get("spatial_shapes"),
            num_tiles=inputs.get("num_tiles"),
            image_sizes=inputs.get("image_sizes"),
            token_type_ids=inputs.get("token_type_ids"),
            mm_token_type_ids=inputs.get("mm_token_type_ids"),
            image_position_ids=inputs.get("image_position_ids"),
        )
        old = inputs.get("old_per_token_logps")
        old = per_token_logps.detach() if old is None else old
        advantages = inputs["advantages"]

        loss_mask = mask
        if self.top_entropy_quantile < 1.0:
            loss_mask = mask * self.get_high_entropy_mask(entropies, mask, 1 - self.top_entropy_quantile)

        if args.cov_mode == "kl_cov":
            per_token_loss, stats = get_loss("kl_cov")(
                per_token_logps, old, advantages, loss_mask,
                kl_cov_ratio=args.kl_cov_ratio, ppo_kl_coef=args.ppo_kl_coef, return_stats=True,
            )
        else:
            per_token_loss, stats = get_loss("clip_cov")(
                per_token_logps, old, advantages, loss_mask,
                epsilon_low=self.epsilon_low, epsilon_high=self.epsilon_high,
                clip_cov_ratio=args.clip_cov_ratio, clip_cov_lb=args.clip_cov_lb, clip_cov_ub=args.clip_cov_ub,
                generator=self._cov_generator(), return_stats=True,
            )
        if loss_mask is not mask:
            per_token_loss = per_token_loss * loss_mask
        if self.use_vllm and self.vllm_importance_sampling_correction:
            per_token_loss = per_token_loss * inputs["importance_sampling_ratio"]
        if self.beta != 0.0:
            ref = inputs["ref_per_token_logps"]
            per_token_kl = torch.exp(ref - per_token_logps) - (ref - per_token_logps) - 1
            if args.use_bias_correction_kl:
                per_token_kl = per_token_kl * torch.exp(per_token_logps - old)
            per_token_loss = per_token_loss + self.beta * per_token_kl

        loss = self._aggregate(per_token_loss, mask, inputs)

        mode = "train" if self.model.training else "eval"
        mask_f = mask.float()
        if self.beta != 0.0:
            self._metrics[mode]["kl"].append(self._global_masked_mean(per_token_kl, mask_f))
        self._metrics[mode]["entropy"].append(self._global_masked_mean(entropies, mask_f))
        self._log_entropy(inputs, entropies.detach())
        self._log_cov(stats)
        return loss

    def _global_masked_mean(self, x, mask) -> float:
        totals = self.accelerator.reduce(torch.stack([(x * mask).sum(), mask.sum()]), reduction="sum")
        return (totals[0] / totals[1].clamp(min=1.0)).item()

    def _aggregate(self, per_token_loss, mask, inputs):
        """The parent's aggregation for loss_type grpo / bnpo / dr_grpo / dapo."""
        mode = "train" if self.model.training else "eval"
        accum = self.current_gradient_accumulation_steps if mode == "train" else 1.0
        if self.loss_type == "grpo":
            return ((per_token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean() / accum
        if self.loss_type == "bnpo":
            return (per_token_loss * mask).sum() / mask.sum().clamp(min=1.0) / accum
        if self.loss_type == "dr_grpo":
            return (per_token_loss * mask).sum() / (per_token_loss.size(0) * self.max_completion_length) / accum
        if self.loss_type == "dapo":
            normalizer = inputs["num_items_in_batch"].clamp(min=1.0) / self.accelerator.num_processes
            if mode == "train":
                normalizer = normalizer * self.current_gradient_accumulation_steps / self.args.steps_per_generation
            return (per_token_loss * mask).sum() / normalizer
        raise ValueError(f"cov_mode {self.args.cov_mode!r} does not support loss_type {self.loss_type!r}")
