"""Video GRPO on the tiny Qwen2.5-VL: the video reaches generation, the old / reference log-probs, the loss (every
loss path) and the batch split, which stock TRL 1.16 does not do (it computes the loss from token ids alone)."""

import json
import sys
from pathlib import Path

import pytest
import torch
from video_fixtures import write_coded_mp4

REPO = Path(__file__).resolve().parents[1]
NUM_GEN = 4
CHOICES = ["It bounces back.", "It stops.", "It passes through.", "It jumps."]


def varying_reward(completions, **kwargs):
    """Position-in-group reward: always varies within a group, deterministic."""
    return [float(i % NUM_GEN) for i in range(len(completions))]


def accuracy(completions, record_id, **kwargs):
    """Constant for the records whose id ends in 0 (zero-variance groups), varying for the others."""
    return [1.0 if r.endswith("0") else float(i % NUM_GEN) for i, r in enumerate(record_id)]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from PIL import Image

    d = tmp_path_factory.mktemp("video_grpo")
    # a and b: same size and length, other pixels; c: twice as long (cut to 2 s = 8 frames at 4 fps)
    write_coded_mp4(d / "a.mp4", n=8, fps=4, size=56, tint=0)
    write_coded_mp4(d / "b.mp4", n=8, fps=4, size=56, tint=250)
    write_coded_mp4(d / "c.mp4", n=16, fps=4, size=56, tint=120)
    Image.new("RGB", (56, 56), (200, 30, 30)).save(d / "red.png")

    def rec(rid, **kw):
        return {"id": rid, "question": "The ball rolls toward the wall. What happens next?", "choices": CHOICES,
                "answer": "A", "answer_type": "choice", **kw}

    rows = [rec("v0", video={"path": "a.mp4"}), rec("v1", video={"path": "b.mp4"}),
            rec("v2", video={"path": "c.mp4", "start": 0.0, "end": 2.0}), rec("v3", video={"path": "c.mp4"}),
            rec("i4", images=["red.png"], question="What colour is the square?")]
    (d / "mixed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "video.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:4]))
    return d


@pytest.fixture(scope="module")
def processor(tiny_model_dir):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_model_dir, padding_side="left")


def video_cfg():
    from mmreason.video.media import VideoConfig

    return VideoConfig(video_fps=4.0, video_min_frames=2, video_max_frames=8, video_min_pixels=3136,
                       video_max_pixels=3136)


@pytest.fixture(scope="module")
def dataset(data_dir, processor):
    from mmreason.rl.data import build_grpo_dataset

    ds, report = build_grpo_dataset(data_dir / "mixed.jsonl", processor=processor, video_cfg=video_cfg())
    assert report.videos == 4 and report.kept == 5
    return ds


def common_args(tmp_path, **kw):
    args = dict(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=2 * NUM_GEN, num_generations=NUM_GEN,
        max_completion_length=10, bf16=False, gradient_checkpointing=False, report_to="none", logging_steps=1,
        save_strategy="no", learning_rate=1e-2, seed=0, temperature=1.0,
    )
    args.update(kw)
    return args


def ours(tiny_model_dir, dataset, processor, tmp_path, reward=varying_reward, **kw):
    from mmreason.rl.config import MMReasonGRPOConfig
    from mmreason.rl.trainer import MMReasonGRPOTrainer

    t = MMReasonGRPOTrainer(model=str(tiny_model_dir), reward_funcs=[reward],
                            args=MMReasonGRPOConfig(**common_args(tmp_path, **kw)), train_dataset=dataset,
                            processing_class=processor, video_config=video_cfg())
    t.model.train()
    t.current_gradient_accumulation_steps = 1
    return t


def rows_of(dataset, ids):
    return [dataset[i] for i in ids for _ in range(NUM_GEN)]


def with_clip_of(out, other, rows):
    """`out` with the video pixels of `rows` taken from rollout `other` (same token ids, other frames)."""
    swapped = dict(out)
    swapped["pixel_values_videos"] = [other["pixel_values_videos"][i] if i in rows else t
                                      for i, t in enumerate(out["pixel_values_videos"])]
    return swapped


class ForwardSpy:
    """Records the keyword arguments of every forward call of a model."""

    def __init__(self, model):
        self.calls = []
        self.handle = model.register_forward_pre_hook(self.hook, with_kwargs=True)

    def hook(self, module, args, kwargs):
        self.calls.append({k: v for k, v in kwargs.items()})

    def close(self):
        self.handle.remove()


# ---------------------------------------------------------------- the video reaches the loss


def test_only_the_frames_change_and_the_loss_changes(tiny_model_dir, dataset, processor, tmp_path):
    from trl import GRPOConfig, GRPOTrainer

    t = ours(tiny_model_dir, dataset, processor, tmp_path, beta=0.04)
    torch.manual_seed(0)
    out_a = t._generate_and_score_completions(rows_of(dataset, [0]))
    out_b = t._generate_and_score_completions(rows_of(dataset, [1]))
    assert out_a["video_grid_thw"][0].tolist() == [[4, 4, 4]] and "ref_per_token_logps" in out_a
    swapped = with_clip_of(out_a, out_b, range(NUM_GEN))
    assert not torch.equal(swapped["pixel_values_videos"][0], out_a["pixel_values_videos"][0])
    spy = ForwardSpy(t.model)
    loss_a = t._compute_loss(t.model, out_a).item()
    loss_b = t._compute_loss(t.model, swapped).item()
    spy.close()
    assert abs(loss_a - loss_b) > 1e-7  # same tokens, advantages and masks: only the frames differ
    assert all("pixel_values_videos" in c and "mm_token_type_ids" in c for c in spy.calls)
    # TRL's own loss path (an option only TRL implements: entropy_coef) sees the video too
    t.args.entropy_coef = t.entropy_coef = 1e-3
    t._trl_owns_loss = True
    trl_a, trl_b = t._compute_loss(t.model, out_a).item(), t._compute_loss(t.model, swapped).item()
    assert abs(trl_a - trl_b) > 1e-7
    # stock TRL on the same batch: its loss forward takes token ids only, so the frames do not change its loss
    stock = GRPOTrainer(model=str(tiny_model_dir), reward_funcs=[varying_reward],
                        args=GRPOConfig(**common_args(tmp_path, beta=0.04)), processing_class=processor,
                        train_dataset=dataset.remove_columns(["video"]))
    stock.model.train()
    stock.current_gradient_accumulation_steps = 1
    drop = ("pixel_values", "image_grid_thw", "num_images")  # empty here; the video keys stay (TRL ignores them)
    s_a = stock._compute_loss(stock.model, {k: v for k, v in out_a.items() if k not in drop}).item()
    s_b = stock._compute_loss(stock.model, {k: v for k, v in swapped.items() if k not in drop}).item()
    assert s_a == s_b
