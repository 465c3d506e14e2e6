"""Fault injection (issue 25): usage mistakes a hostile but realistic user makes, each through the real CLI: one line
on stderr, exit 2, the config file and key named, no usage dump, no traceback (MMREASON_DEBUG=1 keeps it)."""

from __future__ import annotations

import json
import shutil

import pytest

from mmreason.cli import main as cli
from mmreason.errors import RecordError
from mmreason.records import load_records


def _records(path, **extra):
    path.write_text(json.dumps({"id": "r0", "question": "q0", "answer": "1", "answer_type": "integer",
                                "solution": "\\boxed{1}", **extra}) + "\n")
    return path


def one_line_error(capsys, argv, *, expect: str) -> str:
    rc = cli(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err and "usage:" not in err and expect in err, err
    lines = [line for line in err.splitlines() if line.startswith("mmreason")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("text", ["", "# only a comment\n\n"])
def test_empty_or_comment_only_yaml(tmp_path, capsys, text, fault_log):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    for stage in ("sft", "grpo"):
        one_line_error(capsys, [stage, "--config", str(cfg)], expect=f"--config {cfg}: the file is empty")
    one_line_error(capsys, ["data", "build", "--recipe", str(cfg), "--out", str(tmp_path / "o")],
                   expect=f"{cfg}: field '<file>': the file is empty")
    one_line_error(capsys, ["eval", "run", "--model", str(tmp_path), "--benchmark", str(cfg), "--output-dir",
                            str(tmp_path / "o")], expect=f"{cfg}: the spec file is empty")
    fault_log.record("fault", f"{'comment-only' if text else 'empty'} YAML (sft, grpo, recipe, eval spec)",
                     "one line, exit 2", area="usage")


def test_a_bad_value_in_the_config_names_file_and_key_without_a_usage_dump(tmp_path, capsys, monkeypatch, fault_log):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("output_dir: x\nmax_steps: ten\n")
    for stage in ("sft", "grpo"):
        line = one_line_error(capsys, [stage, "--config", str(cfg)],
                              expect=f"--config {cfg}: key 'max_steps': invalid int value: 'ten'")
    # the same mistake on the command line is named as the flag it is
    line = one_line_error(capsys, ["sft", "--config", str(cfg), "--max_steps", "x"], expect="--max_steps")
    assert "invalid int value: 'x'" in line and str(cfg) not in line
    monkeypatch.setenv("MMREASON_DEBUG", "1")  # the traceback stays available
    with pytest.raises(ValueError, match="key 'max_steps'"):
        cli(["sft", "--config", str(cfg)])
    fault_log.record("fault", "max_steps: ten in a stage config", "one line naming file and key (was 160 lines)",
                     area="usage")


def test_unsafe_yaml_tag_in_an_eval_spec_is_refused_in_one_line(tmp_path, capsys, fault_log):
    marker = tmp_path / "pwned"
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"name: x\nscorer: !!python/object/apply:os.system ['touch {marker}']\n")
    one_line_error(capsys, ["eval", "run", "--model", str(tmp_path), "--benchmark", str(spec), "--output-dir",
                            str(tmp_path / "o")], expect=f"{spec}: not a valid spec YAML")
    assert not marker.exists()
    fault_log.record("fault", "unsafe YAML tag in an eval spec", "refused, never executed; one line", area="usage")


def test_eval_run_on_a_model_folder_without_processor_files(tmp_path, capsys, tiny_model_dir, fault_log):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_model_dir / name, bare / name)
    recs = _records(tmp_path / "test.jsonl")
    one_line_error(capsys, ["eval", "run", "--model", str(bare), "--benchmark", str(recs), "--output-dir",
                            str(tmp_path / "o"), "--no-progress"], expect=f"{bare}: no processor files")
    fault_log.record("fault", "eval run on a model folder without processor files", "one line, before the weights load",
                     area="usage")


def test_lora_adapter_whose_base_is_gone(tmp_path, capsys, fault_log):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    gone = tmp_path / "moved" / "sft"
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(gone), "peft_type": "LORA"}))
    recs = _records(tmp_path / "test.jsonl")
    line = one_line_error(capsys, ["eval", "run", "--model", str(adapter), "--benchmark", str(recs), "--output-dir",
                                   str(tmp_path / "o"), "--no-progress"],
                          expect=f"base_model_name_or_path {gone}: no such checkpoint folder")
    assert "adapter's base model is gone" in line and "Repo id" not in line
    fault_log.record("fault", "LoRA adapter whose base path is gone", "one line naming adapter_config.json",
                     area="usage")


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/x.png", "https://example.org/a.jpg", "file:///etc/passwd"])
def test_an_image_url_is_refused_at_load(tmp_path, capsys, url, fault_log):
    path = _records(tmp_path / "test.jsonl", images=[url])
    with pytest.raises(RecordError, match="URLs are not fetched") as e:
        load_records(path)
    assert e.value.where == f"{path}:1"
    one_line_error(capsys, ["sft", "--model_name_or_path", str(tmp_path), "--train_files", str(path),
                            "--output_dir", str(tmp_path / "o")], expect="is a URL")
    fault_log.record("fault", f"image given as a URL ({url.split(':')[0]})", "refused at load, never fetched",
                     area="usage")
