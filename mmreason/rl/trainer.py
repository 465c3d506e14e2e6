"""`MMReasonGRPOTrainer`: TRL's GRPOTrainer, a drop-in subclass (TRL's constructor, a stock GRPOConfig accepted),
with the policy losses (Clip-Cov, KL-Cov, plugins, dual-clip) acting through TRL's own `_compute_loss` for every TRL
loss option, entropy and covariance instrumentation and per-source reward logging; extended the way
trl/experimental/gmpo does (a config subclass and overridden hooks):

- `_compute_loss`: TRL's, always; the policy loss is chosen in one method, `_apply_policy_loss`, which acts on
  TRL's inputs between its policy forward and its loss;
- `_generate_and_score_completions`: one generation round (`_generate_round`), then dynamic sampling
  (mmreason/rl/dynamic_sampling.py);
- video: datasets with a `video` column take `_generate_video_round` (mmreason/rl/video_rollouts.py), so their
  videos reach generation, the old / reference log-probs, the loss and the batch split, which stock TRL 1.16 does
  not do; with use_vllm their rollouts go through vLLM with the same media (mmreason/rl/vllm_video.py, colocate).
  Image-only datasets take TRL's path unchanged;
- checkpoints: the generation state (micro-step, buffered rollouts) is saved and restored with the RNG state
  (mmreason/rl/generation_state.py), so a resumed run continues exactly as the uninterrupted one; resume loads a
  checkpoint's weights under the model's key names, a full disk is one line, and a run's fingerprint is written
  when `mmreason grpo` set one (mmreason.resume.CheckpointWeightsMixin)."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from accelerate.utils import gather_object
from datasets import IterableDataset
from trl import GRPOConfig, GRPOTrainer
from trl.trainer.utils import get_config_model_id

from mmreason.resume import CheckpointWeightsMixin
from mmreason.rl import metrics as M
from mmreason.rl.config import CLIPPED_LOSS_TYPES, MMReasonGRPOConfig
from mmreason.rl.data import fit_images
from mmreason.rl.dynamic_sampling import DynamicSamplingMixin
from mmreason.rl.generation_state import GenerationStateMixin
from mmreason.rl.losses import LossContext, policy_loss
from mmreason.rl.losses.clip_cov import clip_cov_selection
from mmreason.rl.losses.covariance import cov_stats, covariance_stats
from mmreason.rl.losses.kl_cov import kl_cov_selection
from mmreason.rl.rounds import Round
from mmreason.rl.video import VIDEO_COLUMN, is_video_batch
from mmreason.rl.video_rollouts import VideoRolloutMixin
from mmreason.rl.vllm_video import VLLMVideoMixin, check_vllm_video


@dataclass(eq=False)
class PolicyPass:
    """One `_compute_loss` call's policy loss, handed to TRL's `_compute_loss` in place of the model: TRL passes it
    on to `_get_per_token_logps_and_entropies`, where the trainer runs `model` and fills in the rest."""

    model: Any  # the model TRL's _compute_loss was called with
    inputs: dict  # the copy of the batch TRL reads (its `advantages` may be replaced after the forward)
    logps: torch.Tensor | None = None  # the policy forward's per-token log-probs (detached)
    entropies: torch.Tensor | None = None
    extra: torch.Tensor | None = None  # [B, T] a term to aggregate and add to TRL's loss
    stats: dict = field(default_factory=dict)


def _has_video(dataset) -> bool:
    """A dataset (or a dict of them) with a `video` column holding at least one video; for an iterable dataset,
    which cannot be scanned without consuming it, a `video` column."""
    if isinstance(dataset, dict):
        return any(_has_video(d) for d in dataset.values())
    names = getattr(dataset, "column_names", None) or []
    if VIDEO_COLUMN not in names:
        return False
    if isinstance(dataset, IterableDataset):
        return True
    return any(v is not None for v in dataset[VIDEO_COLUMN])


def _video_parts(prompt) -> bool:
    return isinstance(prompt, list) and any(
        isinstance(m, dict) and isinstance(m.get("content"), list)
        and any(isinstance(p, dict) and p.get("type") == "video" for p in m["content"])
        for m in prompt
    )


class MMReasonGRPOTrainer(GenerationStateMixin, CheckpointWeightsMixin, DynamicSamplingMixin, VideoRolloutMixin,
                          VLLMVideoMixin, GRPOTrainer):
    _tag_names = ["trl", "grpo", "mmreason"]

    def __init__(
        self,
        model,
        reward_funcs=None,
        args: GRPOConfig | None = None,
        train_dataset=None,
        eval_dataset=None,
        processing_class=None,
        reward_processing_classes=None,
        callbacks=None,
        optimizers=(None, None),
        quantization_config=None,
        peft_config=None,
        tools=None,
        rollout_func=None,
        environment_factory=None,
        *,
        video_config=None,
    ):
        """TRL's GRPOTrainer constructor, parameter for parameter; a stock GRPOConfig is taken as a
        MMReasonGRPOConfig with our fields at their defaults (TRL's behaviour), before any model loads.
        `video_config`: a mmreason.media.video.VideoConfig (frame sampling and pixel bounds) for datasets with a
        `video` column; default VideoConfig()."""
        if args is None:
            model_name = model if isinstance(model, str) else get_config_model_id(model.config)
            args = MMReasonGRPOConfig(f"{model_name.split('/')[-1]}-GRPO")
        args = MMReasonGRPOConfig.from_grpo_config(args)
        has_video = _has_video(train_dataset) or _has_video(eval_dataset)
        if has_video:  # vLLM video rollouts (mmreason/rl/vllm_video.py): refuse what they cannot do before the engine
            check_vllm_video(args)
        super().__init__(model, reward_funcs, args, train_dataset, eval_dataset, processing_class,
                         reward_processing_classes, callbacks, optimizers, quantization_config, peft_config, tools,
                         rollout_func, environment_factory)
        if has_video:
            self._setup_video(video_config)
        self._check_dynamic_sampling()

    # ---------------------------------------------------------------- rollouts

    def _generate_and_score_completions(self, inputs):
        mode = "train" if self.model.training else "eval"
        output, rewards = self._generate_round(inputs, mode)
        return self._dynamic_sampling(output, rewards, mode)

    def _generate_round(self, inputs, mode: str):
        """One TRL generation + scoring of `inputs` (this process's rows) -> (output, rewards_per_func gathered
        over all processes), with the rewards logged per record source. The round's state (`Round`) lives for this
        call only; TRL's output carries only the local advantages, and its completion log is a deque bounded by
        generation_batch_size that an eval batch can overflow, hence the rewards from `_calculate_rewards`."""
        if self.video_config is None and any(_video_parts(x.get("prompt")) for x in inputs):
            raise ValueError(
                "a prompt holds a {'type': 'video'} part but the dataset has no `video` column: TRL 1.16 would "
                "generate with that video and compute the loss without it. Give video records a `video` column "
                "(mmreason.rl.data.build_grpo_dataset does) and keep the messages' video parts as placeholders"
            )
        if self._round is not None:
            raise RuntimeError("a generation round started inside another")
        self._round = round_ = Round()
        try:
            if inputs and self.video_config is not None and VIDEO_COLUMN in inputs[0]:
                output = self._generate_video_round(inputs)
            else:
                if inputs and "images" in inputs[0]:
                    inputs = [{**x, "images": fit_images(x["images"], self.processing_class)} for x in inputs]
                with self._images_logged_on_every_rank(inputs):
                    output = super()._generate_and_score_completions(inputs)
        finally:
            self._round = None
        if inputs and "source" in inputs[0]:
            self.log_rewards_by_source(mode, [x["source"] for x in inputs], round_.rewards)
        return output, round_.rewards

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        if self._round is not None:
            self._round.rewards = rewards_per_func
        return rewards_per_func

    @contextmanager
    def _images_logged_on_every_rank(self, inputs):
        """TRL 1.16 gathers the batch's images for its completion log only on a process whose rows have an
        image (`if images is not None and self.log_multimodal: gather_object(images)`): with text-only prompts
        on one rank and image prompts on another, the ranks' collectives then pair wrongly (gloo: a list where
        a string was gathered, or a size mismatch; NCCL: a hang), on every engine. With several processes the
        gather is done here instead, on every rank, one entry per row ([] for a text-only one), which also keeps
        the log's image column aligned with its prompt rows. (Images a tool returns are not logged then.)"""
        if self.accelerator.num_processes == 1 or not self.log_multimodal:
            yield
            return
        self.log_multimodal = False
        try:
            yield
        finally:
            self.log_multimodal = True
        rows = gather_object([list(x.get("images") or []) for x in inputs])
        if any(rows):
            self._logs["images"].extend(rows)

    def log_rewards_by_source(self, mode: str, local_sources: list[str], rewards: torch.Tensor) -> None:
        """Every reward function's values on this generation batch (`rewards`: gathered over all processes,
        in gather order), logged per source (this process's `local_sources`, gathered here): one
        `rewards_by_source/<function>/<source>` entry per scored rollout. Each generation round calls it."""
        local_sources = [s or "unknown" for s in local_sources]
        sources = gather_object(local_sources) if self.accelerator.num_processes > 1 else local_sources
        if len(sources) != rewards.size(0):
            raise RuntimeError(f"{len(sources)} sources for {rewards.size(0)} rewards: the gather orders disagree")
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

    # ---------------------------------------------------------------- loss

    def _compute_loss(self, model, inputs):
        """TRL's `_compute_loss` always computes the loss (every loss_type,
        importance-sampling level, delta, off-policy mask, entropy mask and bonus, beta KL, MoE aux loss); the
        selected policy loss acts through a `PolicyPass` handed to it in place of the model, which TRL passes on to
        `_get_per_token_logps_and_entropies` only: after the policy forward, and before TRL reads the advantages,
        `_apply_policy_loss` changes them in the pass's copy of `inputs` and may leave a term to add."""
        inputs = self._with_group_mask(inputs)
        step = PolicyPass(model=model, inputs=dict(inputs))
        loss = super()._compute_loss(step, step.inputs)
        if step.logps is None:
            raise RuntimeError("TRL's _compute_loss ran no policy forward through _get_per_token_logps_and_entropies")
        mask = self._loss_mask(inputs)
        if step.extra is not None:
            loss = loss + self._aggregate(step.extra, mask, inputs)
        self._log_entropy(inputs, step.entropies)
        self._log_loss_stats(step.stats, mask)
        return loss

    def _apply_policy_loss(self, step: PolicyPass, logps: torch.Tensor, entropies: torch.Tensor) -> None:
        """The one place the policy loss is chosen: given the policy forward's log-probs, make `args.policy_loss`
        act on TRL's objective (see the config's policy_loss help):
        - none: nothing (stock TRL, bit for bit);
        - clip_cov: the selected tokens' advantages become 0: no loss, no gradient, for every TRL objective;
        - kl_cov on a clipped loss_type at token level (the paper's form), and plugin losses: TRL's policy term
          gets advantage 0 and the registry loss, with TRL's token weights, is left to add;
        - kl_cov elsewhere: the penalty, with TRL's token weights, is left to add to TRL's objective."""
        args, inputs = self.args, step.inputs
        step.logps, step.entropies = logps.detach(), entropies.detach()
        mask = self._loss_mask(inputs)
        old = inputs.get("old_per_token_logps")
        old = logps.detach() if old is None else old
        advantages = inputs["advantages"]
        adv = advantages.unsqueeze(1) if advantages.dim() == 1 else advantages
        name = args.policy_loss
        if name == "none":
            with torch.no_grad():
                step.stats = {**covariance_stats(logps, adv, mask).metrics(), **self._dual_clip_stats(logps, old, adv, mask)}
            return
        if name == "clip_cov":
            with torch.no_grad():
                selected, cov, n_cand = clip_cov_selection(
                    logps, adv.expand_as(logps), mask, self._ratio_clipped(logps, old, adv, mask),
                    args.clip_cov_ratio, args.clip_cov_lb, args.clip_cov_ub, self.cov_generator())
            if selected.any():  # else unchanged: a [B, T] copy would reorder GSPO's backward sums by an ulp
                inputs["advantages"] = torch.where(selected, torch.zeros_like(logps), adv)
            step.stats = {**cov_stats(cov, mask.bool(), selected, n_cand).metrics(),
                          **self._dual_clip_stats(logps, old, adv, mask)}
            return
        weights = self._trl_token_weights(inputs, logps, old, adv, mask, entropies)
        if name == "kl_cov" and not args.uses_paper_kl_cov():
            with torch.no_grad():
                selected, cov = kl_cov_selection(logps, adv, mask, args.kl_cov_ratio)
            penalty = args.ppo_kl_coef * (logps - old).abs()
            step.extra = torch.where(selected, penalty, torch.zeros_like(penalty)) * weights
            step.stats = {**cov_stats(cov, mask.bool(), selected, int(mask.sum())).metrics(),
                          **self._dual_clip_stats(logps, old, adv, mask)}
            return
        loss_mask = mask
        if self.top_entropy_quantile < 1.0:
            loss_mask = mask * self.get_high_entropy_mask(entropies, mask, 1 - self.top_entropy_quantile)
        ctx = LossContext(epsilon_low=self.epsilon_low, epsilon_high=self.epsilon_high, generator=self.cov_generator(),
                          entropies=entropies.detach(), step=self._step, options=dict(args.loss_options or {}))
        per_token_loss, step.stats = policy_loss(logps, old, advantages, loss_mask, args, ctx)
        inputs["advantages"] = torch.zeros_like(advantages)
        step.extra = per_token_loss * weights

    def _trl_ratio(self, logps, old, mask) -> torch.Tensor:
        """TRL's importance ratio: [B, T] per token, or [B, 1] per sequence (GSPO)."""
        log_ratio = (logps - old).detach()
        if self.importance_sampling_level == "sequence":
            log_ratio = ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).unsqueeze(-1)
        return torch.exp(log_ratio)

    def _dual_clip_stats(self, logps, old, adv, mask) -> dict[str, float]:
        """With delta (= clip_ratio_c) on TRL's clipped surrogate: the fraction of loss tokens it caps (A < 0 and
        ratio > delta: verl's pg_clipfrac_lower)."""
        if self.args.delta is None or self.loss_type not in CLIPPED_LOSS_TYPES:
            return {}
        capped = ((adv < 0) & (self._trl_ratio(logps, old, mask) > self.args.delta)).expand_as(logps) & mask.bool()
        return {M.DUAL_CLIP_FRAC: float(capped.sum() / mask.sum().clamp(min=1))}

    def _ratio_clipped(self, logps, old, adv, mask) -> torch.Tensor:
        """The tokens TRL's clipped surrogate already cuts (pg2 > pg1, with TRL's ratio: per token or per sequence,
        capped by delta); none for cispo / sapo / vespo, which have no hard clip."""
        if self.loss_type not in CLIPPED_LOSS_TYPES:
            return torch.zeros_like(mask, dtype=torch.bool)
        ratio = self._trl_ratio(logps, old, mask)
        r1 = ratio if self.args.delta is None else torch.clamp(ratio, max=self.args.delta)
        pg1 = -adv * r1
        pg2 = -adv * torch.clamp(ratio, 1 - self.epsilon_low, 1 + self.epsilon_high)
        return (pg2 > pg1).expand_as(logps)

    def _trl_token_weights(self, inputs, logps, old, adv, mask, entropies):
        """What TRL multiplies its per-token policy loss by: the off-policy sequence mask, the high-entropy mask
        (top_entropy_quantile) and the vLLM importance-sampling ratio."""
        weights = torch.ones_like(logps)
        if self.off_policy_mask_threshold is not None:
            weights = weights * self.get_off_policy_mask(adv, logps, inputs.get("sampling_per_token_logps", old),
                                                         mask, self.off_policy_mask_threshold)
        if self.top_entropy_quantile < 1.0:
            weights = weights * self.get_high_entropy_mask(entropies, mask, 1 - self.top_entropy_quantile)
        if self.use_vllm and self.vllm_importance_sampling_correction and self.loss_type != "vespo":
            weights = weights * inputs["importance_sampling_ratio"]
        return weights

    def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep, *args,
                                           video_inputs=None, **kwargs):
        """TRL's pass, or, for a batch with videos, `_video_logps` (the loss's batch, `video_inputs`, or the batch
        being generated for the old / reference log-probs). `model` is a `PolicyPass` for the policy forward of
        `_compute_loss`."""
        step = model if isinstance(model, PolicyPass) else None
        if step is not None:
            model = step.model
            video_inputs = step.inputs if is_video_batch(step.inputs) else None
        batch = self._video_batch(input_ids, logits_to_keep, video_inputs)
        if batch is None:
            logps, entropies, aux = super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, *args, **kwargs)
        else:
            if args:
                raise TypeError("pass the log-prob options by keyword with video inputs")
            logps, entropies, aux = self._video_logps(model, input_ids, attention_mask, logits_to_keep, batch,
                                                      batch_size=kwargs.get("batch_size"),
                                                      compute_entropy=kwargs.get("compute_entropy", False),
                                                      compute_aux_loss=kwargs.get("compute_aux_loss", False))
        if step is not None:
            self._apply_policy_loss(step, logps, entropies)
        return logps, entropies, aux

    def cov_generator(self) -> torch.Generator:
        """A fresh generator for this micro-step's policy loss (Clip-Cov's random pick of its selected tokens, a
        plugin loss's `ctx.generator`): seeded from (seed, micro-step, process), so reproducible, and identical
        after a resume."""
        return torch.Generator().manual_seed(self.args.seed * 1_000_003 + self._step * 101 + self.accelerator.process_index)

    def _aggregate(self, per_token_loss, mask, inputs):
        """TRL's aggregation of a per-token loss for `loss_type` (pinned to TRL's by a test), for the terms a
        policy loss adds to TRL's (linear in the per-token loss, so adding aggregates = aggregating the sum)."""
        mode = "train" if self.model.training else "eval"
        accum = self.current_gradient_accumulation_steps if mode == "train" else 1.0
        if self.loss_type in ("grpo", "sapo"):
            return ((per_token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean() / accum
        if self.loss_type == "bnpo":
            return (per_token_loss * mask).sum() / mask.sum().clamp(min=1.0) / accum
        if self.loss_type == "dr_grpo":
            return (per_token_loss * mask).sum() / (per_token_loss.size(0) * self.max_completion_length) / accum
        if self.loss_type == "luspo":
            return (per_token_loss * mask).sum(-1).mean() / accum
        if self.loss_type in ("cispo", "dapo", "vespo"):
            normalizer = inputs["num_items_in_batch"].clamp(min=1.0) / self.accelerator.num_processes
            if mode == "train":
                normalizer = normalizer * self.current_gradient_accumulation_steps / self.args.steps_per_generation
            return (per_token_loss * mask).sum() / normalizer
        raise ValueError(f"unknown loss_type {self.loss_type!r}")

    # ---------------------------------------------------------------- instrumentation

    def _global_masked_mean(self, x, mask) -> float:
        totals = self.accelerator.reduce(torch.stack([(x * mask).sum(), mask.sum()]), reduction="sum")
        return (totals[0] / totals[1].clamp(min=1.0)).item()

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

    def _log_loss_stats(self, stats: dict[str, float], mask: torch.Tensor) -> None:
        """A loss's stats, combined over processes as the registry's convention says: names ending in /max or
        /min by max / min, the others as means weighted by each process's number of mask tokens."""
        mode = "train" if self.model.training else "eval"
        device = self.accelerator.device
        keys = sorted(stats)  # the same order on every process
        means = [k for k in keys if not k.endswith(("/max", "/min"))]
        n = float(mask.sum())
        t = torch.tensor([n] + [stats[k] * n for k in means], dtype=torch.float64, device=device)
        t = self.accelerator.reduce(t, reduction="sum")
        for i, k in enumerate(means):
            self._metrics[mode][k].append(float(t[i + 1]) / max(float(t[0]), 1.0))
        for suffix, pick in (("/max", torch.max), ("/min", torch.min)):
            ks = [k for k in keys if k.endswith(suffix)]
            if ks:
                vals = self.accelerator.gather(torch.tensor([stats[k] for k in ks], dtype=torch.float64,
                                                            device=device)).view(-1, len(ks))
                for i, k in enumerate(ks):
                    col = vals[:, i][~torch.isnan(vals[:, i])]
                    self._metrics[mode][k].append(float(pick(col)) if col.numel() else float("nan"))

