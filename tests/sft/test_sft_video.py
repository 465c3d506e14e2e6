"""Video SFT through `mmreason sft` on the tiny model: synthetic NEP records (video) and image records train
with the video collator; the vision tower / merger / language model train or stay frozen as configured; the
checkpoint has prompt.json; a bad video names its file:line before any model is loaded, or is a counted skip."""

import json

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from mmreason.prompts import PromptSpec, load_prompt_spec
from mmreason.records import Record, load_records, write_records
from mmreason.sft.run import main as sft_main
from mmreason.sft.run import make_parser, train
from mmreason.video.synth import generate

VIDEO_FLAGS = ["--video_fps", "2.0", "--video_max_frames", "4", "--video_min_frames", "2",
               "--video_min_pixels", "3136", "--video_max_pixels", "3136"]


@pytest.fixture(scope="module")
def nep(tmp_path_factory):
    data = tmp_path_factory.mktemp("nep")
    generate(str(data), n=4, n_test=1, seed=0)
    Image.new("RGB", (56, 56), (200, 30, 30)).save(data / "red.png")
    write_records(data / "images.jsonl", [Record(id="img", question="What colour?", answer="red",
                                                 solution="Red. \\boxed{red}", images=["red.png"])])
    return data


def _argv(model, data, out, *extra):
    return ["--model_name_or_path", str(model), "--train_files", str(data / "train_mix.jsonl"), str(data / "images.jsonl"),
            "--output_dir", str(out), "--per_device_train_batch_size", "3", "--max_steps", "2", "--learning_rate", "1e-2",
            "--save_strategy", "steps", "--save_steps", "2", "--activation_checkpointing", "false", "--report_to", "none",
            "--logging_steps", "1", "--seed", "0", "--system_prompt", "Stage system.", *VIDEO_FLAGS, *extra]


def _parts(state):
    tower = {k for k in state if ".visual." in f".{k}" and ".merger." not in k}
    merger = {k for k in state if ".merger." in k}
    lm = {k for k in state if "language_model" in k or k.startswith("lm_head")}
    return tower, merger, lm


@pytest.mark.parametrize("freeze_tower,freeze_merger", [(True, True), (False, False)])
def test_video_and_image_records_train_with_the_video_collator(tiny_model_dir, nep, tmp_path, freeze_tower, freeze_merger):
    out = tmp_path / "sft"
    parsed = make_parser().parse_args_and_config(_argv(tiny_model_dir, nep, out, "--freeze_vision_tower",
                                                       str(freeze_tower).lower(), "--freeze_merger",
                                                       str(freeze_merger).lower()))
    assert parsed[3].video_max_frames == 4
    trainer = train(*parsed)
    assert trainer.state.global_step == 2 and trainer.args.remove_unused_columns is False
    collate = trainer.data_collator
    assert type(collate).__name__ == "VideoSFTCollator" and collate.video.video_max_pixels == 3136
    rows = [trainer.train_dataset[i] for i in range(len(trainer.train_dataset))]
    batch = collate([next(r for r in rows if r["video"]), next(r for r in rows if r["images"])])
    assert batch["video_grid_thw"].tolist() == [[2, 4, 4]] and "pixel_values" in batch  # 4 frames of 56x56
    assert 2 in batch["mm_token_type_ids"][0].tolist() and 1 in batch["mm_token_type_ids"][1].tolist()
    # the prompts: the stage's spec, under the NEP records' own system prompt / no instruction
    recs = {r.id: r for r in load_records(nep / "train_mix.jsonl")[0]}
    for row in rows:
        msgs = row["messages"]
        if row["video"]:
            rec = next(r for r in recs.values() if row["messages"][-1]["content"][0]["text"] == r.solution)
            system = rec.metadata["system_prompt"]
            assert (msgs[0]["content"][0]["text"] if msgs[0]["role"] == "system" else None) == system
            assert [p for p in msgs[-2]["content"] if p["type"] == "text"][0]["text"] == rec.question
        else:
            assert msgs[0]["content"][0]["text"] == "Stage system."
            assert msgs[1]["content"][-1]["text"].endswith("\\boxed{}.")  # the default instruction
    before, after = load_file(tiny_model_dir / "model.safetensors"), load_file(out / "model.safetensors")
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    tower, merger, lm = _parts(before)
    assert len(changed & lm) > len(lm) // 2
    assert (not changed & tower) if freeze_tower else len(changed & tower) > len(tower) // 2
    assert (not changed & merger) if freeze_merger else bool(changed & merger)
    want = PromptSpec(system="Stage system.")
    assert load_prompt_spec(out) == want and load_prompt_spec(out / "checkpoint-2") == want


def test_bad_video_is_named_before_training_or_skipped(tiny_model_dir, nep, tmp_path, capsys):
    recs, _ = load_records(nep / "train_sft.jsonl")
    bad = recs[1]
    bad.video.path = "videos/broken.mp4"  # exists (the record loader passes it), does not decode
    data = tmp_path / "d"
    (data / "videos").mkdir(parents=True)
    for f in (nep / "videos").iterdir():
        (data / "videos" / f.name).symlink_to(f)
    (data / "videos" / "broken.mp4").write_bytes(b"not a video" * 100)
    write_records(data / "train.jsonl", recs)
    argv = _argv(tiny_model_dir, nep, tmp_path / "out", "--max_steps", "1")
    argv[argv.index("--train_files") + 1 : argv.index("--train_files") + 3] = [str(data / "train.jsonl")]
    assert sft_main(argv) == 2
    assert "train.jsonl:2: undecodable video" in capsys.readouterr().err
    assert not (tmp_path / "out" / "model.safetensors").exists()
    assert sft_main(argv + ["--lenient", "true"]) == 0
    report = json.loads((tmp_path / "out" / "sft_data_report.json").read_text())
    assert report["loaded"] == len(recs) - 1 and "undecodable video" in report["skipped"][0]["reason"]
    assert report["skipped"][0]["where"].endswith("train.jsonl:2")


def _nep_sft():
    """The official NEP SFT run: github.com/sail-sg/Video-Next-Event-Prediction qwen2_5vl_7B_full_sft_5K.yaml
    (LLaMA-Factory) and LLaMA-Factory's defaults for what it leaves unset (checked like tests/test_paper_configs.py)."""
    from test_paper_configs import Paper

    return Paper(
        "sft", ("qwen2_5vl_7B_full_sft_5K.yaml",),
        1,  # the official yaml fixes no GPU count: the per-device numbers are checked
        {
            "model_name_or_path": ("Qwen/Qwen2.5-VL-7B-Instruct", "NEP model_name_or_path"),
            "use_peft": (False, "finetuning_type: full"),
            "freeze_vision_tower": (True, "freeze_vision_tower: true"),
            "freeze_merger": (True, "freeze_multi_modal_projector: true"),
            "max_pixels": (262144, "image_max_pixels: 262144"),
            "min_pixels": (1024, "LLaMA-Factory image_min_pixels default 32*32"),
            "video_max_pixels": (16384, "video_max_pixels: 16384"),
            "video_min_pixels": (256, "LLaMA-Factory video_min_pixels default 16*16"),
            "video_fps": (2.0, "LLaMA-Factory video_fps default 2.0"),
            "video_max_frames": (128, "LLaMA-Factory video_maxlen default 128"),
            "max_samples": (5000, "max_samples: 5000"),
            "system_prompt": (None, "template qwen2_vl: its default system message; CFT/Distill records carry theirs"),
            "instruction": ("", "the NEP prompts are the question only"),
            "num_train_epochs": (3, "num_train_epochs: 3.0"),
            "learning_rate": (1e-5, "learning_rate: 1.0e-5"),
            "lr_scheduler_type": ("cosine", "lr_scheduler_type: cosine"),
            "warmup_steps": (0.1, "warmup_ratio: 0.1"),
            "weight_decay": (0.0, "transformers default"),
            "per_device_train_batch_size": (1, "per_device_train_batch_size: 1"),
            "gradient_accumulation_steps": (2, "gradient_accumulation_steps: 2"),
            "assistant_only_loss": (True, "train_on_prompt false (LLaMA-Factory default)"),
            "gradient_checkpointing": (True, "LLaMA-Factory default (disable_gradient_checkpointing false)"),
            "seed": (42, "LLaMA-Factory / transformers default seed 42"),
            "save_steps": (20000, "save_steps: 20000"),
            "logging_steps": (10, "logging_steps: 10"),
        },
        {"effective_batch": 2},
    )


def test_nep_sft_config_matches_the_official_run():
    import yaml
    from test_paper_configs import REPO, YAML_FIELDS, mismatches, parse

    name = "sft/qwen2_5_vl_7b_nep"
    paper = _nep_sft()
    paper.fields["train_files"] = (["data/video_fp_sft_data.json"], "dataset: video_fp_sft_data (the SFT strategy)")
    paper.fields["media_dir"] = ("data", "LLaMA-Factory dataset_dir: video paths are relative to it")
    text = (REPO / "configs" / f"{name}.yaml").read_text()
    header = text[: text.index("\nmodel_name_or_path:")]
    assert "Official source:" in header and "Not matched, and why:" in header and paper.sources[0] in header
    raw = yaml.safe_load(text)
    assert {k: raw.get(k) for k in YAML_FIELDS} == YAML_FIELDS
    bad = mismatches(name, paper, parse(name))
    assert not bad, "\n".join(bad)
    assert mismatches(name, paper, parse(name, "--video_max_pixels", "12544"))  # the checker sees a change
    assert "deepspeed_zero3.yaml" in header


def test_nep_mix_config_says_it_is_ours_and_differs_only_in_its_data():
    from test_paper_configs import REPO, mismatches, parse

    text = (REPO / "configs" / "sft" / "qwen2_5_vl_7b_nep_mix.yaml").read_text()
    header = text[: text.index("\nmodel_name_or_path:")]
    assert "OURS, not the official run" in header and "video_fp_sft_data" in header
    bad = mismatches("sft/qwen2_5_vl_7b_nep_mix", _nep_sft(), parse("sft/qwen2_5_vl_7b_nep_mix"))
    assert not bad, "\n".join(bad)
    official, mix = parse("sft/qwen2_5_vl_7b_nep"), parse("sft/qwen2_5_vl_7b_nep_mix")
    assert official[0].train_files != mix[0].train_files and official[0].media_dir == "data"
