"""mmreason.modeling: the one loader of SFT, GRPO and the HF backend (kwargs from trl.ModelConfig, LoRA adapter
folders merged into their base, image bounds on the processor)."""

import json

import pytest
import torch


def _adapter(tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    peft_model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj"], init_lora_weights=False))
    folder = tmp_path / "adapter"
    peft_model.save_pretrained(folder)
    merged = {k: v.clone() for k, v in peft_model.merge_and_unload().state_dict().items()}
    return folder, merged


def test_model_load_from_trl_model_config(tiny_model_dir, tmp_path):
    from trl import ModelConfig

    from mmreason.modeling import ModelLoad

    load = ModelLoad.from_trl(ModelConfig(model_name_or_path=str(tiny_model_dir), dtype="bfloat16",
                                          attn_implementation="eager"), model_init_kwargs={"use_cache": False})
    assert load.model_kwargs() == {"revision": "main", "trust_remote_code": False, "attn_implementation": "eager",
                                   "dtype": "bfloat16", "use_safetensors": True, "use_cache": False}
    json.dumps(load.model_kwargs())  # TRL keeps them in its (serialised) config
    assert load.adapter is None and load.base == str(tiny_model_dir)
    with pytest.raises(ValueError, match="model_name_or_path is required"):
        ModelLoad.from_trl(ModelConfig())


def test_adapter_folder_loads_merged_with_the_processor_and_bounds(tiny_model_dir, tmp_path):
    from mmreason.modeling import ModelLoad, load_model, load_processor

    folder, merged = _adapter(tiny_model_dir, tmp_path)
    load = ModelLoad(str(folder), dtype="float32")
    assert load.adapter == str(folder) and load.base == str(tiny_model_dir) and load.model_kwargs()["revision"] is None
    model = load_model(load)
    sd = model.state_dict()
    assert not any("lora" in k for k in sd) and all(torch.equal(sd[k], merged[k]) for k in merged)
    proc = load_processor(load, min_pixels=28 * 28, max_pixels=56 * 56)  # no processor files: the base's
    assert (proc.image_processor.size["shortest_edge"], proc.image_processor.size["longest_edge"]) == (784, 3136)
    with pytest.raises(ValueError, match="min_pixels 3136 > max_pixels 784"):
        load_processor(load, min_pixels=56 * 56, max_pixels=28 * 28)


def test_grpo_from_an_adapter_folder_trains_the_merged_model(tiny_model_dir, tmp_path):
    from PIL import Image

    from mmreason.rl.run import build_trainer, make_parser

    folder, merged = _adapter(tiny_model_dir, tmp_path)
    Image.new("RGB", (28, 28)).save(tmp_path / "a.png")
    rows = [{"id": f"q{i}", "question": "q?", "answer": "1", "answer_type": "integer", "images": ["a.png"]}
            for i in range(4)]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    argv = ["--model_name_or_path", str(folder), "--train_files", str(tmp_path / "t.jsonl"), "--output_dir",
            str(tmp_path / "o"), "--bf16", "false", "--per_device_train_batch_size", "4", "--num_generations", "4",
            "--report_to", "none", "--gradient_checkpointing", "false"]
    trainer = build_trainer(*make_parser().parse_args_and_config(args=argv))
    sd = trainer.model.state_dict()
    assert not any("lora" in k for k in sd) and all(torch.equal(sd[k], merged[k]) for k in merged)
    with pytest.raises(ValueError, match="LoRA adapter folder"):
        build_trainer(*make_parser().parse_args_and_config(args=[*argv, "--beta", "0.04"]))
