"""TRL's and transformers' private hooks and state, as white-box tests of the GRPO trainer reach them: the one module
in tests/ that names them (tests/test_test_layout.py fails on a private attribute anywhere else in tests/).

`MMReasonGRPOTrainer` (mmreason/rl/trainer.py) is a TRL 1.16 GRPOTrainer subclass extended the way
trl/experimental/gmpo does, by overriding TRL's private hooks, so its tests check it at those hooks ("our loss is
TRL's bit for bit on this rollout batch"). TRL 1.16 has no public per-round API for them: no call that generates and
scores one batch, none that scores log-probs, and no reading of the metric values one call logged (`state.log_history`
holds only the averages `log()` takes). The loss itself has a public route, `trainer.compute_loss(model, inputs)`,
which tests use directly. When TRL or transformers renames a hook or a field, this file is the one to update."""

from __future__ import annotations

import inspect

import torch
from trl import GRPOTrainer

# ---------------------------------------------------------------- one generation round


def generate(trainer, rows: list[dict]) -> dict:
    """One generation + scoring of `rows` (this process's rows, num_generations copies per prompt): the rollout
    batch the loss takes (`GRPOTrainer._generate_and_score_completions`, which ours overrides)."""
    return trainer._generate_and_score_completions(rows)


def watch_generation(trainer, seen) -> None:
    """Call `seen(output)` on every rollout batch `trainer` generates from now on (training included)."""
    original = trainer._generate_and_score_completions

    def generate_and_watch(rows):
        output = original(rows)
        seen(output)
        return output

    trainer._generate_and_score_completions = generate_and_watch


def prepare_inputs(trainer, rows: list[dict]) -> dict:
    """TRL's per-micro-step batch (`_prepare_inputs`): generates a whole generation batch when the micro-step starts
    a generation window (then split into `steps_per_generation` buffered batches), else serves the buffer."""
    return trainer._prepare_inputs(rows)


def tokenize_prompts(trainer, prompts: list):
    """TRL's prompt tokenization (`_tokenize_prompts`) -> (prompt ids, ..., multimodal fields)."""
    return trainer._tokenize_prompts(prompts)


def calculate_rewards(trainer, inputs, prompts, completions, completion_ids_list) -> torch.Tensor:
    """TRL's reward call (`_calculate_rewards`) -> rewards per function, gathered over processes."""
    return trainer._calculate_rewards(inputs, prompts, completions, completion_ids_list)


# ---------------------------------------------------------------- log-probs


def token_logps(trainer, batch: dict, **kwargs):
    """The policy's per-token log-probs of a rollout batch's completions with `trainer.model`
    (`_get_per_token_logps_and_entropies` on prompt + completion, `kwargs` passed on) -> (logps, entropies, aux)."""
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
    mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
    return trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, batch["completion_ids"].size(1),
                                                      **kwargs)


def replace_token_logps(monkeypatch, trainer, fake) -> None:
    """Make the log-prob pass of `trainer` (an instance, or a class: TRL's `GRPOTrainer` replaces the pass our
    override wraps) `fake(*args, **kwargs) -> (logps, entropies, aux)` until the test ends."""
    monkeypatch.setattr(trainer, "_get_per_token_logps_and_entropies", fake)


# ---------------------------------------------------------------- metrics


def metrics(trainer, mode: str = "train") -> dict[str, list[float]]:
    """Every value logged since the last `log()` (`_metrics[mode]`: one list per key, one entry per call), which
    `log()` averages into `state.log_history` and then clears."""
    return trainer._metrics[mode]


def reward_function_metrics(trainer) -> dict[str, list[float]]:
    """What reward functions logged through TRL's `log_metric` kwarg since the last log (`_pending_metrics`)."""
    return trainer._pending_metrics


def reward_function_columns(trainer) -> dict[str, list]:
    """The completion-table columns reward functions logged through TRL's `log_extra` kwarg (`_pending_extra_logs`)."""
    return trainer._pending_extra_logs


# ---------------------------------------------------------------- state TRL keeps between micro-steps


def generation_state(trainer) -> tuple[int, list | None]:
    """(TRL's micro-step counter `_step`, the buffered rollout batches `_buffered_inputs` of its generation window)."""
    return trainer._step, trainer._buffered_inputs


def set_generation_state(trainer, step: int, buffered: list | None) -> None:
    trainer._step, trainer._buffered_inputs = step, buffered


def entropy_bonus_enabled(trainer) -> bool:
    """Whether TRL's `_compute_loss` adds its entropy bonus (`_entropy_bonus_enabled`, fixed at construction from
    entropy_coef / use_adaptive_entropy)."""
    return trainer._entropy_bonus_enabled


def set_entropy_bonus(trainer, enabled: bool) -> None:
    trainer._entropy_bonus_enabled = enabled


def restart_adaptive_entropy(trainer, last_world_entropy: float) -> None:
    """Restart TRL's adaptive-entropy controller: the entropy it measured last (`_last_world_entropy`) and an empty
    accumulation window (`_entropy_window_stats`)."""
    trainer._last_world_entropy, trainer._entropy_window_stats = last_world_entropy, None


# ---------------------------------------------------------------- checkpoints (transformers' Trainer)


def save_checkpoint_rng(trainer, folder: str) -> None:
    """transformers' `_save_rng_state`: where a checkpoint's RNG state (and, in our trainers, the extra state, the
    fingerprint and the rank barrier) is written."""
    trainer._save_rng_state(folder)


def load_checkpoint_weights(trainer, folder: str) -> None:
    """transformers' `_load_from_checkpoint` (resume's weight loading)."""
    trainer._load_from_checkpoint(folder)


def load_best_model(trainer) -> None:
    """transformers' `_load_best_model` (load_best_model_at_end)."""
    trainer._load_best_model()


# ---------------------------------------------------------------- TRL's source


def loss_source() -> str:
    """The source of `GRPOTrainer._compute_loss` (TRL's loss and its per-loss_type aggregation)."""
    return inspect.getsource(GRPOTrainer._compute_loss)
