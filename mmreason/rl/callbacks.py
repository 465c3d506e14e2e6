"""Trainer callbacks of the GRPO stage. `CollapseWarningCallback` warns when label-free GRPO (MM-UPT) is
collapsing onto a wrong consensus: the logged pseudo-label accuracy (only when the records carry answers)
stays below a threshold, or the majority-vote cluster entropy falls early in the run to a small fraction of
where it started (every group agrees before the policy has learnt anything: measured on the embedded
default, cluster entropy 0.33 -> 0.04 while pseudo-label accuracy fell 0.63 -> 0.50)."""

from __future__ import annotations

import logging

from transformers import TrainerCallback

logger = logging.getLogger("mmreason.grpo")

PSEUDO_LABEL_ACCURACY = "majority_vote/pseudo_label_accuracy"
CLUSTER_ENTROPY = "majority_vote/cluster_entropy"


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


class CollapseWarningCallback(TrainerCallback):
    """on_log: one warning per signal per run (kept in `self.warnings` as (step, message)).

    - pseudo-label accuracy: the mean of the last `window` logged values is below `min_pseudo_label_accuracy`;
    - cluster entropy: within the first `early_fraction` of max_steps, the mean of the last `window` values
      is below `entropy_collapse_ratio` x the mean of the first `window` values.
    """

    def __init__(self, min_pseudo_label_accuracy: float = 0.5, entropy_collapse_ratio: float = 0.25,
                 early_fraction: float = 0.5, window: int = 5):
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.min_acc = min_pseudo_label_accuracy
        self.ratio = entropy_collapse_ratio
        self.early_fraction = early_fraction
        self.window = window
        self.acc: list[float] = []
        self.ent: list[float] = []
        self.warnings: list[tuple[int, str]] = []
        self._warned: set[str] = set()

    def _warn(self, key: str, step: int, msg: str) -> None:
        if key in self._warned:
            return
        self._warned.add(key)
        self.warnings.append((step, msg))
        logger.warning("!" * 20 + " step %d: %s", step, msg)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        step = int(getattr(state, "global_step", 0) or 0)
        k = self.window
        if isinstance(logs.get(PSEUDO_LABEL_ACCURACY), (int, float)):
            self.acc.append(float(logs[PSEUDO_LABEL_ACCURACY]))
            if len(self.acc) >= k and (m := _mean(self.acc[-k:])) < self.min_acc:
                self._warn("pseudo_label", step,
                           f"pseudo-label accuracy {m:.2f} (mean of the last {k} logs) is below "
                           f"{self.min_acc:g}: the majority vote is rewarding wrong answers")
        if isinstance(logs.get(CLUSTER_ENTROPY), (int, float)):
            self.ent.append(float(logs[CLUSTER_ENTROPY]))
            max_steps = int(getattr(state, "max_steps", 0) or 0)
            early = max_steps <= 0 or step <= self.early_fraction * max_steps
            if early and len(self.ent) >= 2 * k:
                start, now = _mean(self.ent[:k]), _mean(self.ent[-k:])
                if start > 0 and now < self.ratio * start:
                    self._warn("cluster_entropy", step,
                               f"majority-vote cluster entropy fell from {start:.3f} to {now:.3f} (mean of the "
                               f"first / last {k} logs) before {self.early_fraction:.0%} of max_steps: the "
                               "groups agree on one answer early (collapse onto a consensus)")
        return control
