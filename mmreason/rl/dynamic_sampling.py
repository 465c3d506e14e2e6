"""Dynamic sampling (DAPO): the groups of a generation batch whose rewards are all equal carry no learning signal.
`mask` keeps their rows out of the loss; `refill` generates further rounds of fresh prompts and puts their groups
with signal in their place (mmreason/rl/refill.py merges the rounds). The state of one batch is the output dict
itself: its `group_mask` row column, which the loss folds into TRL's tool_mask."""

from __future__ import annotations

import torch

from mmreason.rl import metrics as M
from mmreason.rl.refill import merge_groups, refill_rows

GROUP_MASK = "group_mask"  # [B] float, 0 for the rows of the groups dynamic sampling keeps out of the loss


def zero_variance_groups(rewards: torch.Tensor, num_generations: int) -> torch.Tensor:
    """rewards [G * num_generations] (NaN = unscorable, ignored) -> bool [G]: groups whose finite rewards are
    all equal (or that have fewer than two finite rewards)."""
    grouped = rewards.view(-1, num_generations)
    finite = torch.isfinite(grouped)
    hi = torch.where(finite, grouped, torch.full_like(grouped, -torch.inf)).amax(dim=1)
    lo = torch.where(finite, grouped, torch.full_like(grouped, torch.inf)).amin(dim=1)
    return (finite.sum(dim=1) < 2) | torch.isclose(hi, lo)


class DynamicSamplingMixin:
    """GRPOTrainer mixin: `_dynamic_sampling(output, rewards, mode)` after each generation round; the trainer's
    `_generate_round(rows, mode) -> (output, gathered rewards)` makes the refill rounds."""

    def _check_dynamic_sampling(self) -> None:
        name = self.args.dynamic_sampling_reward
        if self.args.dynamic_sampling != "off" and name is not None and name not in self.reward_func_names:
            raise ValueError(
                f"dynamic_sampling_reward={name!r} is not one of the reward functions {self.reward_func_names}"
            )
        if self.args.dynamic_sampling == "refill":
            local = self.args.per_device_train_batch_size * self.args.steps_per_generation
            if local % self.num_generations:
                raise ValueError(
                    f"dynamic_sampling 'refill' replaces whole groups on each process: per_device_train_batch_size * "
                    f"steps_per_generation ({local}) must be a multiple of num_generations ({self.num_generations})"
                )
            if not hasattr(self.train_dataset, "__getitem__"):
                raise ValueError("dynamic_sampling 'refill' draws extra prompts by index: needs a map-style train_dataset")

    def _dynamic_sampling(self, output, rewards, mode: str):
        """`output` (one generation batch, this process's rows) with the groups without reward variance replaced
        (refill, training) or kept out of the loss (mask); unchanged with dynamic_sampling off."""
        if self.args.dynamic_sampling == "off":
            return output
        num_generations = self.num_generations if mode == "train" else self.num_generations_eval
        dead = zero_variance_groups(self._signal_rewards(rewards), num_generations)
        if self.args.dynamic_sampling == "refill" and mode == "train":
            output, dead = self._refill(output, dead, num_generations)
        else:
            local = output["completion_ids"].size(0)
            proc = self.accelerator.process_index
            dead = dead.repeat_interleave(num_generations)[proc * local : (proc + 1) * local]
        return self._mask_rows(output, dead, mode)

    def _mask_rows(self, output, dead_rows: torch.Tensor, mode: str):
        """Keep the rows of zero-variance groups out of the loss: `group_mask` (0 on them) enters the loss mask
        and `num_items_in_batch` (TRL's count of loss tokens over the generation batch, all processes)."""
        keep = (~dead_rows).to(output["completion_mask"].device, torch.float32)
        output[GROUP_MASK] = keep
        output["num_items_in_batch"] = self.accelerator.gather(self._loss_mask(output).sum()).sum()
        num_generations = self.num_generations if mode == "train" else self.num_generations_eval
        counts = self.accelerator.reduce(
            torch.tensor([float(dead_rows.sum()), float(dead_rows.numel())], device=keep.device), reduction="sum"
        )
        self._metrics[mode][M.DS_DROPPED_GROUPS].append(float(counts[0]) / num_generations)
        self._metrics[mode][M.DS_DROPPED_FRAC].append(float(counts[0] / counts[1].clamp(min=1.0)))
        return output

    def _refill(self, output, dead: torch.Tensor, num_generations: int):
        """DAPO's dynamic sampling: while some group of the batch has no reward variance (all processes, a
        reduced count, so every process runs the same rounds) and fewer than dynamic_sampling_max_rounds extra
        rounds ran, generate one more generation batch of fresh prompts and put its groups with signal in place
        of this process's zero-variance groups. Returns the merged output and its still-dead rows."""
        G = num_generations
        n_local = output["completion_ids"].size(0) // G
        proc = self.accelerator.process_index
        local_dead = dead[proc * n_local : (proc + 1) * n_local].tolist()
        rounds_out, picks = [output], [(0, s) for s in range(n_local)]
        rounds = refilled = 0
        device = output["completion_mask"].device

        def remaining() -> int:
            return int(self.accelerator.reduce(torch.tensor(float(sum(local_dead)), device=device), reduction="sum"))

        while remaining() > 0 and rounds < self.args.dynamic_sampling_max_rounds:
            rounds += 1
            rows = refill_rows(self.train_dataset, n_local * self.accelerator.num_processes, G, proc, n_local,
                               seed=self.args.seed, step=self._step, round_=rounds)
            out_r, rewards_r = self._generate_round(rows, "train")
            alive_r = (~zero_variance_groups(self._signal_rewards(rewards_r), G))[proc * n_local : (proc + 1) * n_local]
            spare = [j for j in range(n_local) if alive_r[j]]
            used = False
            for s in range(n_local):
                if local_dead[s] and spare:
                    picks[s] = (len(rounds_out), spare.pop(0))
                    local_dead[s] = False
                    refilled += 1
                    used = True
            if used:  # a round none of whose groups is taken is not kept (its images can be large)
                rounds_out.append(out_r)
        left = remaining()
        totals = self.accelerator.reduce(torch.tensor(float(refilled), device=device), reduction="sum")
        self._metrics["train"][M.DS_REFILL_ROUNDS].append(float(rounds))
        self._metrics["train"][M.DS_REFILLED_GROUPS].append(float(totals))
        self._metrics["train"][M.DS_REFILL_CAP_HIT].append(float(left > 0))
        merged = output
        if len(rounds_out) > 1:
            merged = merge_groups(rounds_out, picks, G, pad_token_id=self._tokenizer.pad_token_id,
                                  pad_to_multiple_of=self.pad_to_multiple_of)
        dead_rows = torch.tensor(local_dead, dtype=torch.bool, device=device).repeat_interleave(G)
        return merged, dead_rows

    def _signal_rewards(self, rewards_per_func: torch.Tensor) -> torch.Tensor:
        name = self.args.dynamic_sampling_reward
        if name is not None:
            return rewards_per_func[:, self.reward_func_names.index(name)]
        weights = self.reward_weights.to(rewards_per_func.device)
        total = (rewards_per_func * weights).nansum(dim=1)
        total[torch.isnan(rewards_per_func).all(dim=1)] = torch.nan
        return total

    def _loss_mask(self, inputs) -> torch.Tensor:
        """TRL's loss mask (completion_mask x tool_mask) x our group_mask."""
        mask = inputs["completion_mask"]
        if "tool_mask" in inputs:
            mask = mask * inputs["tool_mask"]
        if GROUP_MASK in inputs:
            mask = mask * inputs[GROUP_MASK].unsqueeze(1).to(mask.dtype)
        return mask

    def _with_group_mask(self, inputs):
        """TRL's loss takes its mask from completion_mask x tool_mask only (and the attention mask from
        completion_mask): tool_mask is the one hook that removes the rows dynamic sampling drops from TRL's loss
        without changing the forward pass. num_items_in_batch already counts the kept tokens only."""
        if GROUP_MASK not in inputs:
            return inputs
        tool = inputs.get("tool_mask", torch.ones_like(inputs["completion_mask"]))
        return {**inputs, "tool_mask": tool * inputs[GROUP_MASK].unsqueeze(1).to(tool.dtype)}
