"""resume_from_checkpoint means the same in both stages (the configs write `true` for SFT, `auto` for GRPO)."""

import json

import pytest
import trl_hooks

from mmreason.resume import resolve_resume
from mmreason.rl.run import resolve_resume as grpo_resume
from mmreason.sft.run import resolve_resume as sft_resume


def _complete(folder, step):
    """What transformers leaves after a finished save: weights, then trainer_state.json last."""
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))


@pytest.fixture
def out(tmp_path):
    for step in (2, 10, 9):  # newest by step number, not by name or creation order
        _complete(tmp_path / f"checkpoint-{step}", step)
    (tmp_path / "checkpoint-11.txt").write_text("not a folder")
    return tmp_path


def test_both_stages_share_one_reading():
    assert sft_resume is resolve_resume and grpo_resume is resolve_resume


@pytest.mark.parametrize("value", [True, "true", "True", "auto", "last", "yes", "1"])
def test_last_checkpoint(out, value):
    assert resolve_resume(value, str(out)) == str(out / "checkpoint-10")


@pytest.mark.parametrize("value", [True, "auto"])
def test_fresh_start_when_nothing_saved_yet(tmp_path, value):
    assert resolve_resume(value, str(tmp_path / "not-yet")) is None
    assert resolve_resume(value, str(tmp_path)) is None


@pytest.mark.parametrize("value", [None, False, "", "false", "False", "none", "no", "0"])
def test_no_resume(out, value):
    assert resolve_resume(value, str(out)) is None


def test_explicit_folder_and_missing_folder(out):
    assert resolve_resume(str(out / "checkpoint-2"), str(out)) == str(out / "checkpoint-2")
    with pytest.raises(FileNotFoundError, match="checkpoint-99"):
        resolve_resume(str(out / "checkpoint-99"), str(out))


@pytest.mark.parametrize("damage", ["no_state", "torn_state", "no_weights"])
def test_incomplete_newest_is_moved_aside_and_the_previous_one_used(out, damage, caplog):
    newest = out / "checkpoint-12"
    _complete(newest, 12)
    if damage == "no_state":
        (newest / "trainer_state.json").unlink()
    elif damage == "torn_state":
        (newest / "trainer_state.json").write_text('{"global_st')
    else:
        (newest / "model.safetensors").unlink()
    with caplog.at_level("WARNING", logger="mmreason.resume"):
        assert resolve_resume("auto", str(out)) == str(out / "checkpoint-10")
    assert not newest.exists(), "the incomplete folder must not stay where transformers looks for checkpoints"
    assert [p.name.startswith("incomplete-checkpoint-12-") for p in out.iterdir()].count(True) == 1
    assert "incomplete" in caplog.text and "checkpoint-12" in caplog.text
    assert resolve_resume("auto", str(out)) == str(out / "checkpoint-10")  # the next run sees the same


def test_explicit_incomplete_checkpoint_is_an_error(out):
    (out / "checkpoint-10" / "trainer_state.json").unlink()
    with pytest.raises(ValueError, match="checkpoint-10 is incomplete: no trainer_state.json"):
        resolve_resume(str(out / "checkpoint-10"), str(out))


def test_only_incomplete_checkpoints_start_fresh(tmp_path):
    (tmp_path / "checkpoint-3").mkdir()
    assert resolve_resume(True, str(tmp_path)) is None


def test_saved_keys_map_back_to_the_model(tiny_model_dir):
    """Qwen2.5-VL is saved under its original key names (model.embed_tokens, visual.*): each maps to one model key."""
    from transformers import AutoModelForImageTextToText

    from mmreason.resume import saved_key_mapping

    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    mapping = saved_key_mapping(model)
    assert mapping is not None and sorted(mapping.values()) == sorted(model.state_dict())
    assert mapping["model.embed_tokens.weight"] == "model.language_model.embed_tokens.weight"
    assert any(k.startswith("visual.") for k in mapping) and all(not v.startswith("visual.") for v in mapping.values())


@pytest.mark.slow
def test_resumed_sft_equals_the_uninterrupted_run(tiny_model_dir, tmp_path):
    """transformers 5.23 resumed Qwen2.5-VL with only lm_head restored (the saved key names match nothing else under
    load_state_dict): step 2's loss differed after a resume from checkpoint-1. Now resume is bit-identical."""
    import shutil

    import torch
    from safetensors.torch import load_file

    from mmreason.data.synth import synthesize
    from mmreason.sft.run import make_parser, train

    data = tmp_path / "data"
    synthesize(data, n_train=8, n_test=2, seed=0, tasks=["count"], difficulty="easy", progress=False)

    def run(out):
        argv = ["--model_name_or_path", str(tiny_model_dir), "--train_files", str(data / "train.jsonl"),
                "--output_dir", str(out), "--per_device_train_batch_size", "8", "--learning_rate", "1e-2",
                "--max_steps", "3", "--save_strategy", "steps", "--save_steps", "1", "--logging_steps", "1",
                "--activation_checkpointing", "false", "--seed", "0", "--resume_from_checkpoint", "true",
                "--report_to", "none"]
        return train(*make_parser().parse_args_and_config(argv))

    whole = run(tmp_path / "whole")
    (tmp_path / "resumed").mkdir()
    shutil.copytree(tmp_path / "whole" / "checkpoint-1", tmp_path / "resumed" / "checkpoint-1")
    resumed = run(tmp_path / "resumed")
    losses = [[h["loss"] for h in t.state.log_history if "loss" in h] for t in (whole, resumed)]
    assert losses[0] == losses[1] and len(losses[0]) == 3
    a, b = load_file(tmp_path / "whole" / "model.safetensors"), load_file(tmp_path / "resumed" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_grpo_resume_restores_every_weight(tiny_model_dir, tmp_path):
    """The GRPO trainer loads a checkpoint's weights under the model's key names too (the stock loading restored
    only lm_head of a Qwen2.5-VL)."""
    import torch
    from PIL import Image

    from mmreason.rl.run import build_trainer, make_parser

    (tmp_path / "a.png").write_bytes(b"")
    Image.new("RGB", (56, 56), (200, 0, 0)).save(tmp_path / "a.png")
    rec = tmp_path / "train.jsonl"
    rec.write_text(json.dumps({"id": "q", "question": "How many?", "answer": "1", "answer_type": "integer",
                               "images": ["a.png"]}) + "\n")
    argv = ["--model_name_or_path", str(tiny_model_dir), "--train_files", str(rec), "--output_dir", str(tmp_path / "o"),
            "--per_device_train_batch_size", "2", "--num_generations", "2", "--max_completion_length", "4",
            "--bf16", "false", "--report_to", "none", "--reward_funcs", "accuracy"]
    trainer = build_trainer(*make_parser().parse_args_and_config(argv))
    from mmreason.disk_full import DiskFullSaveMixin

    # its checkpoint saves name a full disk like SFT's (tests/faults/test_faults_disk.py)
    assert isinstance(trainer, DiskFullSaveMixin) and type(trainer).__mro__.index(DiskFullSaveMixin) < \
        [c.__name__ for c in type(trainer).__mro__].index("GRPOTrainer")
    model = trainer.model
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5)
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    model.save_pretrained(tmp_path / "checkpoint-1")
    with torch.no_grad():
        for p in model.parameters():
            p.sub_(0.5)
    trl_hooks.load_checkpoint_weights(trainer, str(tmp_path / "checkpoint-1"))
    now = model.state_dict()
    assert [k for k in expected if not torch.equal(expected[k], now[k])] == []
    with torch.no_grad():  # load_best_model_at_end reads a checkpoint the same way
        for p in model.parameters():
            p.sub_(0.5)
    trainer.state.best_model_checkpoint = str(tmp_path / "checkpoint-1")
    trl_hooks.load_best_model(trainer)
    now = model.state_dict()
    assert [k for k in expected if not torch.equal(expected[k], now[k])] == []


def test_every_rank_has_saved_before_rank0_marks_the_checkpoint_complete(tmp_path):
    """The barrier sits between each rank's RNG file and rank 0's trainer_state.json (transformers has none there),
    so a rank dying mid-save cannot leave a checkpoint that resume takes for complete."""
    from types import SimpleNamespace

    from mmreason.resume import CheckpointWeightsMixin

    calls = []

    class Base:
        def _save_rng_state(self, output_dir):
            calls.append(("rng", output_dir))

    class Trainer(CheckpointWeightsMixin, Base):
        def __init__(self, world_size):
            self.args = SimpleNamespace(world_size=world_size)
            self.accelerator = SimpleNamespace(wait_for_everyone=lambda: calls.append(("barrier",)))

        def save_extra_state(self, output_dir):
            calls.append(("extra", output_dir))

    trl_hooks.save_checkpoint_rng(Trainer(2), "ck")
    assert calls == [("rng", "ck"), ("extra", "ck"), ("barrier",)]
    calls.clear()
    trl_hooks.save_checkpoint_rng(Trainer(1), "ck")
    assert calls == [("rng", "ck"), ("extra", "ck")]
