"""The GRPO trainer's generation state in every checkpoint, so a resumed run continues the very rollouts the
killed one was using.

TRL's GRPOTrainer generates once per `steps_per_generation * num_iterations` micro-steps and serves the steps in
between from `_buffered_inputs`, indexed by its micro-step counter `_step`. Neither is checkpointed: a run resumed
from a checkpoint inside such a window starts `_step` at 0, generates new completions at a step where the
uninterrupted run reuses its buffer, and from then on generates on a shifted schedule (and our Clip-Cov generator,
seeded from `_step`, repeats its first seeds). Here both are saved beside `rng_state.pth` (before
`trainer_state.json`, the completeness marker of mmreason.resume) and restored when transformers restores the RNG
state on resume: the resumed run equals the uninterrupted one. The buffer is saved only inside a window (when the
next step would use it); at a window's end the file holds the step alone."""

from __future__ import annotations

import logging
import os

import torch

logger = logging.getLogger(__name__)

STATE_FILE = "grpo_generation_state.pt"


class GenerationStateMixin:
    """GRPOTrainer mixin: `_step` and, inside a generation window, `_buffered_inputs` go into each checkpoint, through
    the hooks `mmreason.resume.CheckpointWeightsMixin` calls from the one `_save_rng_state` / `_load_rng_state`
    (so this mixin comes before it in the trainer's bases)."""

    def _generation_state_file(self, folder: str) -> str:
        name = STATE_FILE if self.args.world_size <= 1 else STATE_FILE.replace(".pt", f"_{self.args.process_index}.pt")
        return os.path.join(folder, name)

    def save_extra_state(self, output_dir: str) -> None:
        every = self.args.steps_per_generation * self.num_iterations
        mid_window = self._step % every != 0 and self._buffered_inputs is not None
        buffer = _to(self._buffered_inputs, "cpu") if mid_window else None  # a device-free file
        torch.save({"step": self._step, "buffer": buffer}, self._generation_state_file(output_dir))

    def load_extra_state(self, checkpoint: str) -> None:
        path = self._generation_state_file(checkpoint)
        if not os.path.isfile(path):
            logger.warning("%s: no %s (a checkpoint from before it was saved): GRPO resumes at micro-step 0 and "
                           "generates afresh, not exactly as the uninterrupted run would", checkpoint,
                           os.path.basename(path))
            return
        try:
            state = torch.load(path, weights_only=True, map_location="cpu")
        except Exception as e:  # e.g. a buffer type the weights-only loader refuses: resume as TRL would
            logger.warning("%s: %s does not load (%s: %s): GRPO resumes at micro-step 0 and generates afresh, not "
                           "exactly as the uninterrupted run would", checkpoint, os.path.basename(path),
                           type(e).__name__, str(e)[:200])
            return
        self._step = state["step"]
        self._buffered_inputs = _to(state["buffer"], self.accelerator.device)


def _to(obj, device):
    """`obj` (the buffered generation batches: lists / dicts of tensors and plain values) with its tensors on
    `device`."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: _to(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to(v, device) for v in obj)
    return obj
