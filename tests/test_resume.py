"""resume_from_checkpoint means the same in both stages (the configs write `true` for SFT, `auto` for GRPO)."""

import json

import pytest

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
