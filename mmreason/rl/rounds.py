"""`Round`: one generation round, i.e. TRL's `_generate_and_score_completions` on one batch of rows, and what our
hooks inside that call (`_tokenize_prompts`, `_calculate_rewards`) hand back to the call that started it."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Round:
    media: list | None = None  # video batches: each row's decoded images / clips (mmreason.rl.video.RowMedia)
    encoded: object | None = None  # ... and their processor encoding (mmreason.rl.video.Encoded)
    rewards: torch.Tensor | None = None  # rewards_per_func, gathered over all processes
