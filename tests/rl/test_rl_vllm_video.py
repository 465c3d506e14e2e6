"""Video GRPO rollouts through vLLM (colocate) under a stand-in engine with vLLM's interface (tests/fake_vllm.py: the
real one needs CUDA). The engine processes each request's media itself, as vLLM does with a token prompt, and checks
the prompt's placeholder runs against them; here its view of every request must equal the HF path's (the rollout the
loss forward uses): prompt token ids, frame count, video_grid_thw, second_per_grid_ts and the pixels."""

import json
import sys
from pathlib import Path

import pytest
import torch
import trl_hooks
from ports import free_port, two_process_views
from video_fixtures import ball_record as rec, write_coded_mp4

import fake_vllm

REPO = Path(__file__).resolve().parents[2]
NUM_GEN = 4


def varying_reward(completions, **kwargs):
    return [float(i % NUM_GEN) for i in range(len(completions))]


def video_cfg():
    from mmreason.media.video import VideoConfig

    # 28x28 frames: below the tiny checkpoint's default 56x56 minimum, so an engine given no bounds would upscale them
    return VideoConfig(video_fps=4.0, video_min_frames=2, video_max_frames=8, video_min_pixels=784,
                       video_max_pixels=784)


def write_records(d: Path) -> Path:
    from PIL import Image

    write_coded_mp4(d / "a.mp4", n=8, fps=4, size=56, tint=0)
    write_coded_mp4(d / "c.mp4", n=16, fps=4, size=56, tint=120)
    Image.new("RGB", (56, 56), (200, 30, 30)).save(d / "red.png")

    rows = [rec("v0", video={"path": "a.mp4"}), rec("v1", video={"path": "c.mp4", "start": 0.0, "end": 1.0}),
            rec("i2", images=["red.png"], question="What colour is the square?"),
            rec("t3", question="Which comes next?")]
    (d / "mixed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d / "mixed.jsonl"


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    return write_records(tmp_path_factory.mktemp("vllm_video"))


@pytest.fixture(scope="module")
def processor(tiny_model_dir):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_model_dir, padding_side="left")


@pytest.fixture(scope="module")
def dataset(records, processor):
    from mmreason.rl.data import build_grpo_dataset

    ds, report = build_grpo_dataset(records, processor=processor, video_cfg=video_cfg())
    assert report.videos == 2 and report.kept == 4
    return ds


@pytest.fixture
def engine(monkeypatch):
    """The stand-in vLLM, and the variables TRL's colocate setup writes into the environment, undone after."""
    fake_vllm.install((monkeypatch.setitem, monkeypatch.setattr))
    for k, v in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                 "MASTER_PORT": str(free_port())}.items():
        monkeypatch.setenv(k, v)
    fake_vllm.FakeLLM.instances.clear()
    return fake_vllm.FakeLLM.instances


def trainer(tiny_model_dir, dataset, processor, tmp_path, **kw):
    from mmreason.rl.config import MMReasonGRPOConfig
    from mmreason.rl.trainer import MMReasonGRPOTrainer

    args = dict(output_dir=str(tmp_path / "out"), per_device_train_batch_size=2 * NUM_GEN, num_generations=NUM_GEN,
                max_completion_length=6, bf16=False, gradient_checkpointing=False, report_to="none", logging_steps=1,
                save_strategy="no", learning_rate=1e-2, seed=0, temperature=1.0, use_cpu=True, use_vllm=True,
                vllm_mode="colocate")
    args.update(kw)
    t = MMReasonGRPOTrainer(model=str(tiny_model_dir), reward_funcs=[varying_reward], args=MMReasonGRPOConfig(**args),
                            train_dataset=dataset, processing_class=processor, video_config=video_cfg())
    t.model.train()
    t.current_gradient_accumulation_steps = 1
    return t


def rows_of(dataset, ids):
    return [dataset[i] for i in ids for _ in range(NUM_GEN)]


def test_engine_sees_the_hf_prompt_ids_and_video_grid(engine, tiny_model_dir, dataset, processor, tmp_path):
    from mmreason.rl.video import load_row_media

    t = trainer(tiny_model_dir, dataset, processor, tmp_path)
    (llm,) = engine
    assert llm.kwargs["distributed_executor_backend"] == "external_launcher"  # built by TRL's own colocate setup
    for pair in ([0, 1], [2, 0], [3, 1]):  # video + video (other lengths), image + video, text + video
        llm.served.clear()
        rows = rows_of(dataset, pair)
        out = trl_hooks.generate(t, rows)
        assert len(llm.served) == len(rows)
        clips = load_row_media(rows, video_cfg(), lambda ims: ims)
        for i, served in enumerate(llm.served):
            hf_ids = out["prompt_ids"][i][out["prompt_mask"][i].bool()].tolist()
            assert served.prompt_token_ids == hf_ids, f"row {i}"
            assert served.frames == [len(c.frames) for c in clips[i].clips]
            assert served.video_grid_thw == out["video_grid_thw"][i].tolist()
            assert served.second_per_grid_ts == pytest.approx(out["second_per_grid_ts"][i].tolist())
            if served.video_grid_thw:
                assert served.second_per_grid_ts == [pytest.approx(2 / 4.0)]  # temporal patch 2 at 4 fps sampled
                assert torch.allclose(served.pixel_values_videos, out["pixel_values_videos"][i])
            n_images = out["num_images"][i]
            assert len(served.image_grid_thw) == n_images
            # the completions the loss scores are the engine's samples
            completion = out["completion_ids"][i][out["completion_mask"][i].bool()].tolist()
            assert completion == served.completion
        # the engine's log-probs are the loss forward's up to the placeholder tokens' mass the engine's logit_bias
        # removes (two tokens of the tiny vocabulary: ~3e-3); a forward on other frames or positions is further off
        assert trl_hooks.metrics(t)["sampling/sampling_logp_difference/max"][-1] < 1e-2
    assert sum(len(g) for g in out["video_grid_thw"]) > 0
    bias = t.vllm_generation.generation_kwargs["logit_bias"]
    assert bias == {processor.image_token_id: -100.0, processor.video_token_id: -100.0}


def test_without_the_pixel_bounds_the_engine_would_count_other_tokens(engine, tiny_model_dir, dataset, processor,
                                                                      tmp_path):
    """The control: the same request with no `size` in its processor kwargs makes the engine upscale the 28x28
    frames to the checkpoint's minimum, and the prompt's placeholder run no longer fits (vLLM raises there)."""
    t = trainer(tiny_model_dir, dataset, processor, tmp_path)
    (llm,) = engine
    trl_hooks.generate(t, rows_of(dataset, [0]))
    req = llm.requests[0]  # the request the engine got for the batch's first row
    assert req["mm_processor_kwargs"]["size"] and len(llm.served[0].video_grid_thw) == 1
    llm.process(req)  # fits
    unbounded = {**req, "mm_processor_kwargs": {k: v for k, v in req["mm_processor_kwargs"].items() if k != "size"}}
    with pytest.raises(ValueError, match="placeholder runs"):
        llm.process(unbounded)


def test_video_grpo_trains_with_vllm_colocate(engine, tiny_model_dir, dataset, processor, tmp_path):
    t = trainer(tiny_model_dir, dataset, processor, tmp_path, max_steps=2, per_device_train_batch_size=NUM_GEN)
    before = {n: p.detach().clone() for n, p in t.model.named_parameters()}
    t.train()
    assert t.state.global_step == 2
    (llm,) = engine
    assert any(s.video_grid_thw for s in llm.served)
    # the second step's rollouts ran on the weights of the first update (TRL's sync_weights reached the engine)
    diffs = [h["sampling/sampling_logp_difference/max"] for h in t.state.log_history if "loss" in h]
    assert len(diffs) == 2 and max(diffs) < 1e-2
    changed = [n for n, p in t.model.named_parameters() if not torch.equal(before[n], p.detach())]
    assert any(n.startswith("model.visual") for n in changed)
    engine_params = dict(llm.model.named_parameters())
    assert any(not torch.equal(engine_params[n], before[n]) for n in changed)  # the engine holds updated weights


def test_sampling_parameters_are_trls_with_the_placeholders_biased_out():
    import types

    from mmreason.rl.vllm_video import SUPPRESS_BIAS, bias_out_placeholders, sampling_kwargs

    user = {"seed": 3, "logit_bias": {7: 1.5}}
    vg = types.SimpleNamespace(repetition_penalty=1.1, temperature=0.7, top_p=0.9, top_k=5, min_p=None,
                               max_completion_length=12, logprobs=0, structured_outputs_regex=None,
                               generation_kwargs=user)
    bias_out_placeholders(vg, [11, 12])
    assert user == {"seed": 3, "logit_bias": {7: 1.5}}  # the config's own dict is left as it was
    kw = sampling_kwargs(vg)
    assert kw == {"n": 1, "repetition_penalty": 1.1, "temperature": 0.7, "top_p": 0.9, "top_k": 5, "min_p": 0.0,
                  "max_tokens": 12, "logprobs": 0, "seed": 3, "logit_bias": {7: 1.5, 11: SUPPRESS_BIAS,
                                                                                12: SUPPRESS_BIAS}}
    fake_vllm.SamplingParams(**kw)  # vLLM's keyword names


def test_server_mode_with_video_is_a_one_line_error(dataset, tmp_path):
    from mmreason.rl.config import MMReasonGRPOConfig
    from mmreason.rl.trainer import MMReasonGRPOTrainer

    args = MMReasonGRPOConfig(output_dir=str(tmp_path / "o"), per_device_train_batch_size=NUM_GEN,
                              num_generations=NUM_GEN, bf16=False, report_to="none", use_vllm=True, vllm_mode="server")
    with pytest.raises(ValueError, match="needs vllm_mode: colocate") as e:
        MMReasonGRPOTrainer(model="unused", reward_funcs=[varying_reward], args=args, train_dataset=dataset)
    assert "\n" not in str(e.value)
    assert "vllm" not in sys.modules


@pytest.mark.slow
def test_video_grpo_with_vllm_stays_in_step_on_two_processes(tiny_model_dir, records, tmp_path):
    """2 processes (gloo), vllm_tensor_parallel_size 2: both ranks' engines form one tensor-parallel group, so each
    gathers both ranks' requests (rows with videos, images, both, none) and must receive the same batch; the
    ranks keep their own slices and their weights stay equal."""
    views = two_process_views("vllm_video_worker.py", [tiny_model_dir, records], tmp_path / "view", timeout=600)
    assert views[0]["steps"] == views[1]["steps"] == 2
    assert views[0]["digest"] == views[1]["digest"]
    assert views[0]["served"] == views[1]["served"]  # one TP group: the same gathered requests on both engines
    assert all(len(batch) == 2 * 8 for batch in views[0]["served"])  # both ranks' 8 rows
    assert any(grid for batch in views[0]["served"] for _, grid in batch)
    # each rank trained on its own slice of the group's completions
    assert views[0]["own_completions"] != views[1]["own_completions"]
