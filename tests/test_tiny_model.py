import filecmp
import json

import torch

from mmreason.tiny import SPECIAL_TOKENS, build_tiny_model


def test_loads_with_auto_classes_offline(tiny_model_dir):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    proc = AutoProcessor.from_pretrained(tiny_model_dir)
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert type(proc).__name__ == "Qwen2_5_VLProcessor"
    assert (tiny_model_dir / "model.safetensors").is_file()
    assert not list(tiny_model_dir.glob("*.bin"))
    cfg = json.loads((tiny_model_dir / "config.json").read_text())
    head_dim = cfg["text_config"]["hidden_size"] // cfg["text_config"]["num_attention_heads"]
    assert sum(cfg["text_config"]["rope_parameters"]["mrope_section"]) == head_dim // 2
    for tok in SPECIAL_TOKENS:
        tid = proc.tokenizer.convert_tokens_to_ids(tok)
        assert tid is not None and proc.tokenizer.convert_ids_to_tokens(tid) == tok
    assert model.config.image_token_id == proc.tokenizer.convert_tokens_to_ids("<|image_pad|>")


def test_image_forward_and_generate(tiny_model_dir):
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    proc = AutoProcessor.from_pretrained(tiny_model_dir)
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many?"}]}]
    text = proc.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>")
    enc = proc(text=[text], images=[Image.new("RGB", (56, 56), "red")], return_tensors="pt")
    assert "mm_token_type_ids" in enc
    n_img_tokens = int((enc["input_ids"] == model.config.image_token_id).sum())
    assert n_img_tokens == int(enc["image_grid_thw"].prod()) // 4
    out = model.generate(**enc, max_new_tokens=4, do_sample=False)
    n_in = enc["input_ids"].shape[1]
    assert n_in < out.shape[1] <= n_in + 4
    assert torch.equal(out[0, :n_in], enc["input_ids"][0])


def test_token_ids_identical_after_reload(tiny_model_dir, tmp_path):
    from transformers import AutoProcessor

    proc = AutoProcessor.from_pretrained(tiny_model_dir)
    text = "Héllo wörld!  3/4 = 0.75 \\boxed{\\frac{3}{4}} <|im_start|>user\n日本語 <|image_pad|>\t\n"
    ids = proc.tokenizer(text)["input_ids"]
    proc.save_pretrained(tmp_path)
    again = AutoProcessor.from_pretrained(tmp_path).tokenizer(text)["input_ids"]
    assert ids == again
    assert proc.tokenizer.decode(ids) == text


def test_same_seed_identical_files(tmp_path):
    a = build_tiny_model(tmp_path / "a", seed=3)
    b = build_tiny_model(tmp_path / "b", seed=3)
    c = build_tiny_model(tmp_path / "c", seed=4)
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    match, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    assert not mismatch and not errors, mismatch
    wa = (a / "model.safetensors").read_bytes()
    assert wa != (c / "model.safetensors").read_bytes()
