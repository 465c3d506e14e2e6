"""GRPO checkpoints carry TRL's micro-step and, inside a generation window, the buffered rollouts
(mmreason/rl/generation_state.py); the end-to-end proof is the GRPO kill test in tests/faults/test_faults_kills.py."""

import logging
from types import SimpleNamespace

import torch
import trl_hooks

from mmreason.rl.generation_state import GenerationStateMixin


class Trainer(GenerationStateMixin):
    def __init__(self, world_size=1, rank=0, steps_per_generation=2, num_iterations=1):
        self.args = SimpleNamespace(world_size=world_size, process_index=rank,
                                    steps_per_generation=steps_per_generation)
        self.num_iterations = num_iterations
        # what accelerate reports for a CPU process of a distributed run: torch.load's map_location rejects it
        self.accelerator = SimpleNamespace(device=torch.device("cpu", rank))
        trl_hooks.set_generation_state(self, 0, None)


def batches():
    return [{"completion_ids": torch.arange(6).view(2, 3), "num_images": [1, 1],
             "num_items_in_batch": torch.tensor(4.0)},
            {"completion_ids": torch.arange(6, 12).view(2, 3), "num_images": [1, 0], "num_items_in_batch": None}]


def test_a_resume_inside_a_generation_window_gets_the_rollouts_back(tmp_path):
    for world_size, rank, name in ((1, 0, "grpo_generation_state.pt"), (2, 1, "grpo_generation_state_1.pt")):
        killed = Trainer(world_size, rank)
        trl_hooks.set_generation_state(killed, 3, batches())  # step 3 of a 2-step window: the next step reuses it
        killed.save_extra_state(str(tmp_path))
        assert (tmp_path / name).is_file()
        resumed = Trainer(world_size, rank)
        resumed.load_extra_state(str(tmp_path))
        step, buffered = trl_hooks.generation_state(resumed)
        assert step == 3 and len(buffered) == 2
        for got, want in zip(buffered, batches()):
            assert got.keys() == want.keys() and torch.equal(got["completion_ids"], want["completion_ids"])
            assert got["num_images"] == want["num_images"]


def test_at_a_window_end_only_the_step_is_saved(tmp_path):
    t = Trainer(steps_per_generation=2, num_iterations=2)
    trl_hooks.set_generation_state(t, 4, batches())  # 4 % (2 * 2) == 0: the next step generates afresh
    t.save_extra_state(str(tmp_path))
    state = torch.load(tmp_path / "grpo_generation_state.pt", weights_only=True)
    assert state == {"step": 4, "buffer": None}


def test_a_checkpoint_without_the_file_resumes_as_trl_does_with_a_warning(tmp_path, caplog):
    t = Trainer()
    with caplog.at_level(logging.WARNING):
        t.load_extra_state(str(tmp_path))
    assert trl_hooks.generation_state(t) == (0, None) and "no grpo_generation_state.pt" in caplog.text


def test_the_grpo_trainer_saves_its_generation_state_through_the_checkpoint_hooks():
    """GenerationStateMixin must come before CheckpointWeightsMixin in the bases, or the latter's empty hooks win
    and checkpoints silently lose the generation state."""
    from mmreason.resume import CheckpointWeightsMixin
    from mmreason.rl.trainer import MMReasonGRPOTrainer

    assert issubclass(MMReasonGRPOTrainer, CheckpointWeightsMixin)
    assert MMReasonGRPOTrainer.save_extra_state is GenerationStateMixin.save_extra_state
    assert MMReasonGRPOTrainer.load_extra_state is GenerationStateMixin.load_extra_state
