"""vLLM video requests (fake engine: the real one needs CUDA): the frames, their metadata and the processor
kwargs reach `LLM.generate`, and replaying a recorded request through the tiny model's HF processor the way
vLLM's Qwen2.5-VL path calls it (its parser drops a tuple's metadata) gives the same inputs as the HF backend."""

import dataclasses
import json
import sys
import types

import pytest
import torch
from video_fixtures import write_coded_mp4

from mmreason.eval.benchmark import Item
from mmreason.eval.records_eval import RecordsBenchmark
from mmreason.generation import GenerationSettings, HFBackend, load_backend


@pytest.fixture
def fake_vllm(monkeypatch):
    made = {"calls": []}

    class LLM:
        def __init__(self, **kw):
            made["engine"] = kw

        def generate(self, reqs, params, use_tqdm, lora_request):
            made["calls"].append(reqs)
            return [types.SimpleNamespace(outputs=[types.SimpleNamespace(text="A")]) for _ in reqs]

    class SamplingParams:
        def __init__(self, **kw):
            self.kw = kw

    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = LLM, SamplingParams
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    return made


def _video_item(tmp_path):
    """A records-benchmark item whose clip is cut at 1.5 s, frames bounded to 28x28 (below the tiny processor's
    default 56x56 minimum, so an unbounded processor would upscale them)."""
    write_coded_mp4(tmp_path / "v.mp4", n=24, fps=8)
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"id": "r0", "question": "What next?", "answer": "x", "answer_type": "text",
                                "video": {"path": "v.mp4", "start": 0.0, "end": 1.5}}) + "\n")
    spec = dataclasses.replace(RecordsBenchmark.detect(path), video_fps=4.0, video_min_pixels=784,
                               video_max_pixels=784)
    bench = RecordsBenchmark(spec)
    rec = bench.load(path, spec.split)[0]
    media = bench.media(rec)
    return Item(rec.id, bench.messages("What next?", media, None), media).backend_input()


def test_vllm_request_carries_video_metadata_and_matches_hf_inputs(fake_vllm, tiny_model_dir, tmp_path):
    item = _video_item(tmp_path)
    be = load_backend(str(tiny_model_dir), "vllm", GenerationSettings(max_new_tokens=4))
    assert be.generate([item], progress=False) == ["A"]
    (req,) = fake_vllm["calls"][0]
    assert fake_vllm["engine"]["limit_mm_per_prompt"]["video"] == 1
    assert req["prompt"].count("<|video_pad|>") == 1  # vLLM expands the placeholder itself
    ((frames, meta),) = req["multi_modal_data"]["video"]
    assert frames.shape == (6, 28, 28, 3) and frames.dtype.name == "uint8"  # 12 past frames at 4 fps
    assert meta == {"fps": pytest.approx(8.0), "total_num_frames": 12, "frames_indices": [0, 2, 4, 7, 9, 11]}
    kw = req["mm_processor_kwargs"]
    assert kw["do_sample_frames"] is False and kw["video_metadata"] == [meta]
    assert kw["size"] == {"shortest_edge": 784, "longest_edge": 784}

    hf = HFBackend(str(tiny_model_dir), GenerationSettings(max_new_tokens=4))
    want = hf.encode([item])
    # vLLM's Qwen2.5-VL path: the parser keeps only the frames, the HF processor gets the prompt + kwargs
    got = hf.processor(text=[req["prompt"]], videos=[frames], return_tensors="pt", **kw)
    for key in ("video_grid_thw", "second_per_grid_ts", "input_ids", "mm_token_type_ids"):
        assert torch.equal(torch.as_tensor(got[key]), torch.as_tensor(want[key])), key
    assert torch.allclose(got["pixel_values_videos"], want["pixel_values_videos"])
    assert float(got["second_per_grid_ts"][0]) == pytest.approx(2 / 4.0)  # temporal patch 2 at 4 fps sampled

    # why the metadata goes in the kwargs: a scalar fps alone is ignored here and the timing falls back to 24 fps
    fps_only = hf.processor(text=[req["prompt"]], videos=[frames], return_tensors="pt", do_sample_frames=False,
                            fps=4.0, size=kw["size"])
    assert float(fps_only["second_per_grid_ts"][0]) == pytest.approx(2 / 24)


def test_vllm_request_without_video_has_no_video_kwargs(fake_vllm, tiny_model_dir):
    be = load_backend(str(tiny_model_dir), "vllm", GenerationSettings(max_new_tokens=4))
    be.generate([([{"role": "user", "content": [{"type": "text", "text": "hi"}]}], [])], progress=False)
    (req,) = fake_vllm["calls"][0]
    assert set(req) == {"prompt"}


def test_vllm_request_with_an_image_and_a_video_matches_hf_inputs(fake_vllm, tiny_model_dir):
    """One prompt with an image (56x56) and a clip (28x28 frames): the processor bounds of the request span both
    media's own pixel counts, so the engine's processor leaves each as the HF backend encodes it (the checkpoint's
    default minimum would upscale the frames)."""
    from PIL import Image

    from mmreason.generation.vllm_requests import vllm_request
    from video_fixtures import coded_frames

    frames = coded_frames(4, size=28)
    meta = {"fps": 4.0, "total_num_frames": 4, "frames_indices": [0, 1, 2, 3]}
    image = Image.new("RGB", (56, 56), (200, 30, 30))
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "video", "video": frames, "video_metadata": meta},
                                         {"type": "text", "text": "What next?"}]}]
    be = load_backend(str(tiny_model_dir), "vllm", GenerationSettings(max_new_tokens=4))
    req = be.request(msgs, [image])
    kw = req["mm_processor_kwargs"]
    assert kw["size"] == {"shortest_edge": 28 * 28, "longest_edge": 56 * 56}
    assert len(req["multi_modal_data"]["image"]) == 1 and req["multi_modal_data"]["video"][0][1] == meta

    hf = HFBackend(str(tiny_model_dir), GenerationSettings(max_new_tokens=4))
    want = hf.encode([(msgs, [image])])
    ((arr, _),) = req["multi_modal_data"]["video"]
    got = hf.processor(text=[req["prompt"]], images=req["multi_modal_data"]["image"], videos=[arr],
                       return_tensors="pt", **kw)
    for key in ("image_grid_thw", "video_grid_thw", "second_per_grid_ts", "input_ids", "mm_token_type_ids"):
        assert torch.equal(torch.as_tensor(got[key]), torch.as_tensor(want[key])), key
    assert torch.allclose(got["pixel_values"], want["pixel_values"])
    assert torch.allclose(got["pixel_values_videos"], want["pixel_values_videos"])

    # the same prompt as token ids (GRPO's rollouts) carries the same media
    by_ids = vllm_request(want["input_ids"][0].tolist(), {"images": [image], "videos": [frames],
                                                          "video_metadata": [meta]})
    assert by_ids["prompt_token_ids"] == want["input_ids"][0].tolist() and by_ids["mm_processor_kwargs"] == kw
    with pytest.raises(ValueError, match="needs its metadata"):
        vllm_request("p", {"videos": [frames], "video_metadata": []})
