"""The prompt spec travels with the model: SFT writes prompt.json (final folder and every checkpoint-N), GRPO
continuing from that checkpoint builds its prompts from it without any flag and writes it again; an explicit
config value wins with a loud warning. Also the option resolution and the deprecated stage option names."""

import json
import logging
import warnings

import pytest

from mmreason.prompts import BOXED_INSTRUCTION, PROMPT_FILE, PromptSpec, load_prompt_spec, save_prompt_spec

CUSTOM_SYSTEM = "You count shapes. Answer in \\boxed{}."


# ---------------------------------------------------------------- option resolution (fast)


def _grpo_args(*argv):
    from mmreason.rl.run import make_parser

    return make_parser().parse_args_and_config(args=[*argv, "--output_dir", "unused", "--bf16", "false"])


def test_unset_options_come_from_the_checkpoint_and_set_ones_win_loudly(tmp_path, caplog):
    ckpt = tmp_path / "ckpt"
    saved = PromptSpec(system="S", instruction="I", max_pixels=3136)
    save_prompt_spec(ckpt, saved)
    script, _, _ = _grpo_args("--train_files", "x.jsonl")
    assert script.explicit() == {}
    with caplog.at_level(logging.WARNING):
        assert script.prompt_spec(ckpt, "grpo") == saved
    assert "!!!" not in caplog.text
    script, _, _ = _grpo_args("--train_files", "x.jsonl", "--instruction", "Other.", "--max_pixels", "3136")
    with caplog.at_level(logging.WARNING):
        spec = script.prompt_spec(ckpt, "grpo")
    assert (spec.system, spec.instruction, spec.max_pixels) == ("S", "Other.", 3136)
    assert "!!! grpo" in caplog.text and "'instruction'" in caplog.text and "max_pixels" not in caplog.text
    # no prompt.json (a base model / Hub id): the defaults
    script, _, _ = _grpo_args("--train_files", "x.jsonl")
    assert script.prompt_spec(tmp_path / "base", "grpo") == PromptSpec() and PromptSpec().instruction == BOXED_INSTRUCTION
    # empty string = explicitly none, even over a checkpoint that has one
    script, _, _ = _grpo_args("--train_files", "x.jsonl", "--system_prompt", "")
    assert script.prompt_spec(ckpt, "grpo").system is None


def test_template_from_a_file_is_saved_as_text(tmp_path):
    from mmreason.sft.run import make_parser

    tpl = tmp_path / "p.jinja"
    tpl.write_text("Q: {{ question }} \\boxed{}{{ instruction }}")
    script, _, _, _ = make_parser().parse_args_and_config(["--prompt_template", str(tpl), "--instruction", "!",
                                                         "--output_dir", str(tmp_path / "o")])
    spec = script.prompt_spec(tmp_path / "none", "sft")
    assert spec.template == tpl.read_text() and spec.user_text("2+2?") == "Q: 2+2? \\boxed{}!"
    save_prompt_spec(tmp_path / "out", spec)
    assert load_prompt_spec(tmp_path / "out") == spec
    script.prompt_template = str(tmp_path / "missing.jinja")
    with pytest.raises(FileNotFoundError, match="missing.jinja"):
        script.prompt_spec(tmp_path / "none", "sft")


def test_old_option_names_work_with_a_deprecation_warning(tmp_path):
    cfg = tmp_path / "old.yaml"
    cfg.write_text("train_file: a.jsonl\n")
    with pytest.warns(FutureWarning, match="`train_file` is deprecated"):
        script, _, _ = _grpo_args("--config", str(cfg))
    assert script.train_files == ["a.jsonl"]
    with pytest.warns(FutureWarning, match="train_file"):
        script, _, _ = _grpo_args("--train_file", "b.jsonl")
    assert script.train_files == ["b.jsonl"]
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*deprecated and will be removed in the next release")  # ours only
        script, _, _ = _grpo_args("--train_files", "a.jsonl", "b.jsonl", "--instruction", "New.")
    assert script.train_files == ["a.jsonl", "b.jsonl"]


def test_prompt_suffix_is_gone(tmp_path):
    """`prompt_suffix` (the old name of `instruction`) was a one-release shim; it is now an unknown option."""
    from mmreason.sft.run import make_parser

    with pytest.raises(ValueError, match="prompt_suffix"):
        make_parser().parse_args_and_config(["--prompt_suffix", "", "--output_dir", str(tmp_path)])


def test_grpo_train_files_concatenate(tmp_path):
    from PIL import Image

    from mmreason.rl.data import build_grpo_dataset

    paths = []
    for k in range(2):
        d = tmp_path / f"part{k}"
        d.mkdir()
        Image.new("RGB", (28, 28)).save(d / "a.png")
        rows = [{"id": f"p{k}-{i}", "question": "q?", "answer": "1", "answer_type": "integer", "images": ["a.png"]}
                for i in range(3)]
        (d / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        paths.append(str(d / "t.jsonl"))
    ds, report = build_grpo_dataset(paths)
    assert ds["record_id"] == ["p0-0", "p0-1", "p0-2", "p1-0", "p1-1", "p1-2"] and report.loaded == 6
    from datasets import Image as HFImage
    from datasets import List

    raw = ds.cast_column("images", List(HFImage(decode=False)))["images"]
    assert [r[0]["path"] for r in raw] == [str(tmp_path / f"part{k}" / "a.png") for k in (0, 1) for _ in range(3)]


# ---------------------------------------------------------------- SFT -> GRPO on the tiny model (acceptance)


@pytest.mark.slow
def test_sft_checkpoint_carries_its_prompt_into_grpo(tiny_model_dir, tmp_path, caplog):
    from mmreason.data.synth import synthesize
    from mmreason.rl.run import build_trainer
    from mmreason.rl.run import main as grpo_main
    from mmreason.rl.run import make_parser as grpo_parser
    from mmreason.sft.run import make_parser as sft_parser
    from mmreason.sft.run import train

    data = tmp_path / "data"
    synthesize(data, n_train=8, n_test=2, seed=0, tasks=["count"], difficulty="easy", progress=False)
    sft_out = tmp_path / "sft"
    train(*sft_parser().parse_args_and_config([
        "--model_name_or_path", str(tiny_model_dir), "--train_files", str(data / "train.jsonl"),
        "--output_dir", str(sft_out), "--per_device_train_batch_size", "4", "--max_steps", "2",
        "--save_strategy", "steps", "--save_steps", "1", "--activation_checkpointing", "false",
        "--report_to", "none", "--system_prompt", CUSTOM_SYSTEM, "--max_pixels", "12544",
    ]))  # fmt: skip
    want = PromptSpec(system=CUSTOM_SYSTEM, max_pixels=12544)
    for folder in (sft_out, sft_out / "checkpoint-1", sft_out / "checkpoint-2"):
        assert load_prompt_spec(folder) == want, folder
    assert json.loads((sft_out / PROMPT_FILE).read_text())["system"] == CUSTOM_SYSTEM

    grpo_out = tmp_path / "grpo"
    common = ["--model_name_or_path", str(sft_out), "--train_files", str(data / "train.jsonl"),
              "--output_dir", str(grpo_out), "--per_device_train_batch_size", "4", "--num_generations", "4",
              "--max_completion_length", "4", "--max_steps", "1", "--bf16", "false", "--report_to", "none",
              "--gradient_checkpointing", "false", "--save_strategy", "steps", "--save_steps", "1"]
    # no prompt flag: the checkpoint's spec, in the trainer and in every dataset prompt
    trainer = build_trainer(*grpo_parser().parse_args_and_config(args=common))
    assert trainer.prompt_spec == want
    prompts = trainer.train_dataset["prompt"]
    assert all(p[0] == {"role": "system", "content": [{"type": "text", "text": CUSTOM_SYSTEM}]} for p in prompts)
    assert all(p[1]["content"][-1]["text"].endswith(BOXED_INSTRUCTION) for p in prompts)
    assert trainer.processing_class.image_processor.size["longest_edge"] == 12544
    del trainer
    assert grpo_main(common) == 0
    assert load_prompt_spec(grpo_out) == want and load_prompt_spec(grpo_out / "checkpoint-1") == want
    # an explicit different value wins, with a loud warning naming the field
    with caplog.at_level(logging.WARNING):
        trainer = build_trainer(*grpo_parser().parse_args_and_config(
            args=[*common, "--system_prompt", "Other.", "--output_dir", str(tmp_path / "g2")]))
    assert trainer.prompt_spec.system == "Other." and trainer.prompt_spec.max_pixels == 12544
    assert trainer.train_dataset["prompt"][0][0]["content"][0]["text"] == "Other."
    assert "!!! grpo" in caplog.text and "You count shapes." in caplog.text and "Other." in caplog.text
