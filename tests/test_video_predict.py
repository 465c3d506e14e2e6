"""`mmreason nep predict` on the tiny model: FutureBench-style predictions for held-out synthetic
clips, video inputs with metadata, resume after a partial run, then scoring."""

import json

import torch

from mmreason.cli import main as cli_main
from mmreason.eval.futurebench import load_annotations, official_messages, official_video_inputs
from mmreason.video.generate import _placeholders
from mmreason.video.synth import generate


def test_predict_resume_and_score(tmp_path, tiny_model_dir):
    data = tmp_path / "synth"
    generate(str(data), n=2, n_test=3, seed=0)
    ann = data / "test_futurebench.json"
    docs = load_annotations(ann)
    out = tmp_path / "pred.jsonl"
    argv = ["nep", "predict", "--model", str(tiny_model_dir), "--annotations", str(ann), "--video-root", str(data),
            "--output", str(out), "--batch-size", "2"]
    assert cli_main(argv + ["--limit", "1"]) == 0
    assert len(out.read_text().splitlines()) == 1
    assert cli_main(argv) == 0  # resumes: only the 2 missing ids are generated
    rows = [json.loads(l) for l in out.read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == sorted(d["id"] for d in docs) and all(isinstance(r["response"], str) for r in rows)
    assert cli_main(argv) == 0 and len(out.read_text().splitlines()) == 3  # nothing left to do
    scores = tmp_path / "scores.json"
    assert cli_main(["nep", "score", "--predictions", str(out), "--annotations", str(ann), "--output", str(scores)]) == 0
    s = json.loads(scores.read_text())
    assert s["total"] == 3 and not s["missing"]


def test_video_reaches_the_generation_inputs(tmp_path, tiny_model_dir):
    from transformers import AutoProcessor

    from mmreason.video.predict import META_KEYS, PROCESSOR_MAX_PIXELS, PROCESSOR_MIN_PIXELS
    from mmreason.video.media import set_video_pixels

    data = tmp_path / "synth"
    generate(str(data), n=1, n_test=1, seed=0)
    doc = load_annotations(data / "test_futurebench.json")[0]
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    set_video_pixels(processor, PROCESSOR_MIN_PIXELS, PROCESSOR_MAX_PIXELS)
    frames, meta = official_video_inputs(doc, data)
    msgs = _placeholders(official_messages(doc, data))
    text = processor.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|vision_start|>")
    assert text.endswith("\nAnswer with the option's letter from the given choices directly.<|im_end|>\n<|im_start|>assistant\n")
    b = processor(text=[text], videos=[frames], video_metadata=[{k: meta[k] for k in META_KEYS}],
                  do_sample_frames=False, return_tensors="pt")
    t = frames.shape[0]
    assert b["video_grid_thw"].tolist() == [[(t + 1) // 2, frames.shape[2] // 14, frames.shape[3] // 14]]
    spg = float(b["second_per_grid_ts"][0])
    assert abs(spg - 2 / (len(meta["frames_indices"]) / meta["total_num_frames"] * meta["fps"])) < 1e-6
    assert torch.count_nonzero(b["mm_token_type_ids"] == 2) == b["video_grid_thw"].prod() // 4
