"""resume_from_checkpoint means the same in both stages (the configs write `true` for SFT, `auto` for GRPO)."""

import pytest

from mmreason.resume import resolve_resume
from mmreason.rl.run import resolve_resume as grpo_resume
from mmreason.sft.run import resolve_resume as sft_resume


@pytest.fixture
def out(tmp_path):
    for step in (2, 10, 9):  # newest by step number, not by name or creation order
        (tmp_path / f"checkpoint-{step}").mkdir()
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
