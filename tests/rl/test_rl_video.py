"""Video GRPO on the tiny Qwen2.5-VL: the video reaches generation, the old / reference log-probs, the loss (every
loss path) and the batch split, which stock TRL 1.16 does not do (it computes the loss from token ids alone)."""

import json
import sys
from pathlib import Path

import pytest
import torch
import trl_hooks
from ports import two_process_views
from video_fixtures import ball_record as rec, write_coded_mp4

REPO = Path(__file__).resolve().parents[2]
NUM_GEN = 4


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
    # a and b: same size and length, other pixels; c: twice as long (v2 cuts its first second: 4 frames)
    write_coded_mp4(d / "a.mp4", n=8, fps=4, size=56, tint=0)
    write_coded_mp4(d / "b.mp4", n=8, fps=4, size=56, tint=250)
    write_coded_mp4(d / "c.mp4", n=16, fps=4, size=56, tint=120)
    Image.new("RGB", (56, 56), (200, 30, 30)).save(d / "red.png")

    rows = [rec("v0", video={"path": "a.mp4"}), rec("v1", video={"path": "b.mp4"}),
            rec("v2", video={"path": "c.mp4", "start": 0.0, "end": 1.0}), rec("v3", video={"path": "c.mp4"}),
            rec("i4", images=["red.png"], question="What colour is the square?")]
    (d / "mixed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "video.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:4]))
    return d


@pytest.fixture(scope="module")
def processor(tiny_model_dir):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_model_dir, padding_side="left")


def video_cfg():
    from mmreason.media.video import VideoConfig

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


def check_video_rows(pixel_values_videos: list, video_grid_thw: list) -> None:
    """Each row's video pixel rows match its grid (a batch split / shuffle / merge that lost rows fails here)."""
    assert len(pixel_values_videos) == len(video_grid_thw)
    for i, (pv, g) in enumerate(zip(pixel_values_videos, video_grid_thw)):
        assert pv.size(0) == int(g.prod(-1).sum()), (i, pv.size(0), g.tolist())


# ---------------------------------------------------------------- the video reaches the loss


def test_only_the_frames_change_and_the_loss_changes(tiny_model_dir, dataset, processor, tmp_path):
    from trl import GRPOConfig, GRPOTrainer

    t = ours(tiny_model_dir, dataset, processor, tmp_path, beta=0.04)
    torch.manual_seed(0)
    out_a = trl_hooks.generate(t, rows_of(dataset, [0]))
    out_b = trl_hooks.generate(t, rows_of(dataset, [1]))
    assert out_a["video_grid_thw"][0].tolist() == [[4, 4, 4]] and "ref_per_token_logps" in out_a
    # the reference log-probs (computed inside TRL's generation call) used the video: they equal the loss pass's
    with torch.no_grad():
        logps, _, _ = trl_hooks.token_logps(t, out_a, video_inputs=out_a)
        no_video, _, _ = trl_hooks.token_logps(t, out_a)
    cm = out_a["completion_mask"].float()
    assert torch.allclose(logps * cm, out_a["ref_per_token_logps"] * cm, atol=1e-5)
    assert not torch.allclose(no_video * cm, out_a["ref_per_token_logps"] * cm, atol=1e-5)
    swapped = with_clip_of(out_a, out_b, range(NUM_GEN))
    assert not torch.equal(swapped["pixel_values_videos"][0], out_a["pixel_values_videos"][0])
    spy = ForwardSpy(t.model)
    loss_a = t.compute_loss(t.model, out_a).item()
    loss_b = t.compute_loss(t.model, swapped).item()
    spy.close()
    assert abs(loss_a - loss_b) > 1e-7  # same tokens, advantages and masks: only the frames differ
    assert all("pixel_values_videos" in c and "mm_token_type_ids" in c for c in spy.calls)
    # with TRL's entropy bonus on, the video still reaches the loss
    t.args.entropy_coef = t.entropy_coef = 1e-3
    trl_hooks.set_entropy_bonus(t, True)
    trl_a, trl_b = t.compute_loss(t.model, out_a).item(), t.compute_loss(t.model, swapped).item()
    assert abs(trl_a - trl_b) > 1e-7
    # stock TRL on the same batch: its loss forward takes token ids only, so the frames do not change its loss
    stock = GRPOTrainer(model=str(tiny_model_dir), reward_funcs=[varying_reward],
                        args=GRPOConfig(**common_args(tmp_path, beta=0.04)), processing_class=processor,
                        train_dataset=dataset.remove_columns(["video"]))
    stock.model.train()
    stock.current_gradient_accumulation_steps = 1
    drop = ("pixel_values", "image_grid_thw", "num_images")  # empty here; the video keys stay (TRL ignores them)
    s_a = stock.compute_loss(stock.model, {k: v for k, v in out_a.items() if k not in drop}).item()
    s_b = stock.compute_loss(stock.model, {k: v for k, v in swapped.items() if k not in drop}).item()
    assert s_a == s_b


# ---------------------------------------------------------------- batched = one sample at a time


def select_rows(out, idx):
    """Rows `idx` of a rollout as a batch of their own (num_items_in_batch recounted)."""
    from mmreason.rl.video import forward_inputs

    sub = {}
    for k, v in out.items():
        if k in ("pixel_values", "image_grid_thw", "num_images", "num_items_in_batch"):
            continue
        if isinstance(v, list):
            sub[k] = [v[i] for i in idx]
        elif isinstance(v, torch.Tensor) and v.dim() > 0:
            sub[k] = v[idx]
    imgs = [forward_inputs(out, i, i + 1) for i in idx]
    pv = [m["pixel_values"] for m in imgs if "pixel_values" in m]
    sub["pixel_values"] = torch.cat(pv) if pv else out["pixel_values"][:0]
    grids = [m["image_grid_thw"] for m in imgs if "image_grid_thw" in m]
    sub["image_grid_thw"] = torch.cat(grids) if grids else out["image_grid_thw"][:0]
    sub["num_images"] = [out["num_images"][i] for i in idx]
    sub["num_items_in_batch"] = sub["completion_mask"].sum()
    return sub


def plain_messages(prompt):
    return [{"role": m["role"], "content": [{"type": p["type"], **({"text": p["text"]} if p["type"] == "text" else {})}
                                            for p in m["content"]]} for m in prompt]


def reference_logps(model, processor, row, out, i):
    """Row i of rollout `out` scored alone, with no trainer code: its clip decoded again, its prompt encoded by
    the processor, its completion appended, one plain forward, log-softmax."""
    from PIL import Image

    from mmreason.media.video import load_clip, set_video_pixels

    cfg = video_cfg()
    set_video_pixels(processor, cfg.video_min_pixels, cfg.video_max_pixels)
    text = processor.apply_chat_template(plain_messages(row["prompt"]), tokenize=False, add_generation_prompt=True)
    kw = {}
    if row.get("video"):
        v = row["video"]
        clip = load_clip(v["path"], cfg, v["start"], v["end"])
        kw.update(videos=[clip.frames], video_metadata=[clip.metadata()], do_sample_frames=False)
    if row["images"]:
        kw["images"] = [im if isinstance(im, Image.Image) else Image.open(im) for im in row["images"]]
    enc = processor(text=[text], return_tensors="pt", **kw)
    prompt = out["prompt_ids"][i][out["prompt_mask"][i].bool()]
    assert torch.equal(enc["input_ids"][0], prompt.cpu())  # the trainer's prompt is the processor's
    comp = out["completion_ids"][i][out["completion_mask"][i].bool()]
    ids = torch.cat([enc["input_ids"][0], comp]).unsqueeze(0)
    media = {k: v for k, v in enc.items() if k not in ("input_ids", "attention_mask", "mm_token_type_ids")}
    mm = torch.cat([enc["mm_token_type_ids"][0], torch.zeros_like(comp)]).unsqueeze(0)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), mm_token_type_ids=mm, **media).logits
    P = enc["input_ids"].size(1)
    logp = torch.log_softmax(logits[0, P - 1 : -1].float(), dim=-1)
    return logp.gather(-1, comp.unsqueeze(-1)).squeeze(-1)


def reference_dapo_loss(logps, old, advantages, mask, eps_low=0.2, eps_high=0.2):
    ratio = torch.exp(logps - old)
    a = advantages.unsqueeze(1)
    per_token = -torch.min(ratio * a, torch.clamp(ratio, 1 - eps_low, 1 + eps_high) * a)
    return (per_token * mask).sum() / mask.sum()


def check_batch_against_reference(t, processor, out, rows):
    """Per-token log-probs and the (off-policy, clipped) dapo loss of batch `out` equal their single-row
    references."""
    B, C = out["completion_ids"].shape
    with torch.no_grad():
        logps, _, _ = trl_hooks.token_logps(t, out, video_inputs=out)
    ref = torch.zeros(B, C)
    for i in range(B):
        r = reference_logps(t.model, processor, rows[i], out, i)
        ref[i, : r.numel()] = r
    cmask = out["completion_mask"].float()
    assert torch.allclose(logps * cmask, ref * cmask, atol=1e-5)
    # off-policy old log-probs (ratios away from 1, some clipped): the loss depends on the log-probs
    old = (ref + 0.3 * torch.sin(torch.arange(B * C, dtype=torch.float32)).view(B, C)) * cmask
    batch = {**out, "old_per_token_logps": old}
    loss = t.compute_loss(t.model, batch)
    expected = reference_dapo_loss(ref, old, out["advantages"], cmask)
    assert torch.allclose(loss.detach(), expected, atol=1e-6), (float(loss), float(expected))


def test_two_sample_batch_equals_single_sample_references(tiny_model_dir, dataset, processor, tmp_path):
    t = ours(tiny_model_dir, dataset, processor, tmp_path)
    torch.manual_seed(0)
    out = trl_hooks.generate(t, rows_of(dataset, [0, 2]))  # clips of 8 and 4 frames
    assert [g.tolist() for g in out["video_grid_thw"][:: NUM_GEN]] == [[[4, 4, 4]], [[2, 4, 4]]]
    two = select_rows(out, [0, NUM_GEN])
    assert two["advantages"].abs().sum() > 0
    check_batch_against_reference(t, processor, two, [dataset[0], dataset[2]])


def test_mixed_image_and_video_batch(tiny_model_dir, dataset, processor, tmp_path):
    t = ours(tiny_model_dir, dataset, processor, tmp_path)
    torch.manual_seed(1)
    out = trl_hooks.generate(t, rows_of(dataset, [4, 0]))  # an image prompt, then a video prompt
    assert out["num_images"] == [1] * NUM_GEN + [0] * NUM_GEN and out["pixel_values"].size(0) == NUM_GEN * 16
    assert [g.size(0) for g in out["video_grid_thw"]] == [0] * NUM_GEN + [1] * NUM_GEN
    spy = ForwardSpy(t.model)
    check_batch_against_reference(t, processor, out, rows_of(dataset, [4, 0]))
    spy.close()
    assert any("pixel_values" in c and "pixel_values_videos" in c for c in spy.calls)


def test_temporal_position_ids_are_not_constant(tiny_model_dir, dataset, processor, tmp_path, monkeypatch):
    """The fps trap: without the clip's metadata the processor assumes 24 fps and every temporal RoPE id of a
    short clip collapses to one value; the loss forward must get second_per_grid_ts and mm_token_type_ids."""
    t = ours(tiny_model_dir, dataset, processor, tmp_path)
    torch.manual_seed(0)
    out = trl_hooks.generate(t, rows_of(dataset, [0]))
    assert out["second_per_grid_ts"][0].tolist() == [0.5]  # 2 frames per temporal patch at 4 fps
    inner = t.model.model
    seen = []
    original = type(inner).get_rope_index

    def spy(self, input_ids, mm_token_type_ids, *a, **kw):
        pos, deltas = original(self, input_ids, mm_token_type_ids, *a, **kw)
        seen.append((pos, mm_token_type_ids))
        return pos, deltas

    monkeypatch.setattr(type(inner), "get_rope_index", spy)
    t.compute_loss(t.model, out)
    assert seen
    pos, types = seen[-1]
    temporal = pos[0][types == 2]
    assert temporal.numel() == NUM_GEN * 16 and temporal.unique().numel() == 4  # t = 4 temporal patches
    # the clip's own spacing: 0.5 s per temporal patch x tokens_per_second ids per second
    tps = t.model.config.vision_config.tokens_per_second
    rel = temporal.view(NUM_GEN, 16)[0] - temporal.view(NUM_GEN, 16)[0].min()
    assert rel.unique().tolist() == [int(i * 0.5 * tps) for i in range(4)]
    # the trap itself, for contrast: the same frames without metadata give one temporal id
    from mmreason.media.video import load_clip

    clip = load_clip(dataset[0]["video"]["path"], video_cfg())
    text = processor.apply_chat_template(plain_messages(dataset[0]["prompt"]), tokenize=False,
                                         add_generation_prompt=True)
    enc = processor(text=[text], videos=[clip.frames], do_sample_frames=False, return_tensors="pt")
    pos0, _ = original(inner, enc["input_ids"], enc["mm_token_type_ids"], video_grid_thw=enc["video_grid_thw"],
                       second_per_grid_ts=enc["second_per_grid_ts"], attention_mask=enc["attention_mask"])
    assert pos0[0][enc["mm_token_type_ids"] == 2].unique().numel() == 1


# ---------------------------------------------------------------- training steps, the batch split, refill


@pytest.fixture(scope="module")
def video_dataset(data_dir, processor):
    from mmreason.rl.data import build_grpo_dataset

    return build_grpo_dataset(data_dir / "video.jsonl", processor=processor, video_cfg=video_cfg())[0]


@pytest.mark.parametrize("loss", ["none", "clip_cov", "kl_cov", "trl_entropy"])
def test_a_training_step_with_video_changes_the_vision_tower(loss, tiny_model_dir, video_dataset, processor, tmp_path):
    """Video-only data: the vision tower gets a gradient only if the videos are in the loss forward."""
    kw = {"entropy_coef": 1e-3} if loss == "trl_entropy" else {"policy_loss": loss}
    if loss == "clip_cov":
        kw.update(clip_cov_lb=-1e9, clip_cov_ub=1e9, clip_cov_ratio=0.5)
    t = ours(tiny_model_dir, video_dataset, processor, tmp_path, max_steps=1, beta=0.04, **kw)
    before = {n: p.detach().clone() for n, p in t.model.named_parameters()}
    t.train()
    changed = {n for n, p in t.model.named_parameters() if not torch.equal(before[n], p.detach())}
    assert any(n.startswith("model.visual") for n in changed), loss
    assert any(n.startswith("model.language_model") for n in changed)
    assert t.state.log_history and "loss" in t.state.log_history[0]


def test_the_batch_split_and_shuffle_keep_every_samples_video_rows(tiny_model_dir, dataset, processor, tmp_path):
    """TRL's per-micro-step batching (_prepare_inputs) shuffles the generation batch and splits it into
    steps_per_generation batches: each row must keep its own video (a flat pixel_values_videos would keep only the
    first B rows)."""

    t = ours(tiny_model_dir, dataset, processor, tmp_path, per_device_train_batch_size=NUM_GEN,
             steps_per_generation=2)
    torch.manual_seed(3)
    rows = rows_of(dataset, [0, 2])  # 16 and 8 video tokens
    full = trl_hooks.generate(t, rows)
    by_t = {int(g[0, 0]): pv for g, pv in zip(full["video_grid_thw"], full["pixel_values_videos"])}
    torch.manual_seed(3)
    trl_hooks.set_generation_state(t, 0, None)
    first = trl_hooks.prepare_inputs(t, rows)
    _, batches = trl_hooks.generation_state(t)
    assert len(batches) == 2 and first is batches[0]
    kinds = []
    for b in batches:
        assert b["completion_ids"].size(0) == NUM_GEN and len(b["pixel_values_videos"]) == NUM_GEN
        check_video_rows(b["pixel_values_videos"], b["video_grid_thw"])
        for i in range(NUM_GEN):
            grid = b["video_grid_thw"][i]
            n_tokens = int((b["prompt_ids"][i] == processor.video_token_id).sum())
            assert n_tokens == int(grid.prod()) // 4  # the row's prompt matches its own video
            assert torch.equal(b["pixel_values_videos"][i], by_t[int(grid[0, 0])])
            assert int((b["mm_token_type_ids"][i] == 2).sum()) == n_tokens
            kinds.append(int(grid[0, 0]))
        t.compute_loss(t.model, b)  # a misplaced video would raise "video features and tokens do not match"
        # the old log-probs (computed inside TRL's generation call) used each row's video: same weights, same values
        with torch.no_grad():
            logps, _, _ = trl_hooks.token_logps(t, b, video_inputs=b)
        cm = b["completion_mask"].float()
        assert torch.allclose(logps * cm, b["old_per_token_logps"] * cm, atol=1e-5)
    assert sorted(kinds) == [2] * NUM_GEN + [4] * NUM_GEN
    assert kinds[:NUM_GEN] not in ([2] * NUM_GEN, [4] * NUM_GEN)  # the shuffle mixed the prompts


def test_refill_merges_video_rollouts_group_by_group(tiny_model_dir, dataset, processor, tmp_path):
    from mmreason.rl.refill import merge_groups

    t = ours(tiny_model_dir, dataset, processor, tmp_path)
    torch.manual_seed(0)
    r0 = trl_hooks.generate(t, rows_of(dataset, [0, 4]))  # video, image
    r1 = trl_hooks.generate(t, rows_of(dataset, [2, 3]))  # 4-frame and 8-frame clips of c
    merged = merge_groups([r0, r1], [(1, 1), (0, 1)], NUM_GEN, pad_token_id=processor.tokenizer.pad_token_id)
    check_video_rows(merged["pixel_values_videos"], merged["video_grid_thw"])
    for k in range(NUM_GEN):
        assert torch.equal(merged["pixel_values_videos"][k], r1["pixel_values_videos"][NUM_GEN + k])
        assert merged["video_grid_thw"][NUM_GEN + k].numel() == 0  # the image group has no video
    assert merged["num_images"] == [0] * NUM_GEN + [1] * NUM_GEN
    assert torch.equal(merged["pixel_values"], r0["pixel_values"])
    merged["num_items_in_batch"] = merged["completion_mask"].sum()
    check_batch_against_reference(t, processor, merged, rows_of(dataset, [3, 4]))


def test_dynamic_sampling_refill_step_with_video(tiny_model_dir, dataset, processor, tmp_path):
    t = ours(tiny_model_dir, dataset, processor, tmp_path, reward=accuracy, max_steps=1, dynamic_sampling="refill",
             dynamic_sampling_max_rounds=2, loss_type="dapo")
    from mmreason.rl.dynamic_sampling import GROUP_MASK

    torch.manual_seed(0)
    out = trl_hooks.generate(t, rows_of(dataset, [0, 1]))  # v0's group has no reward variance
    assert trl_hooks.metrics(t)["dynamic_sampling/refill_rounds"][-1] >= 1
    refilled = trl_hooks.metrics(t)["dynamic_sampling/refilled_groups"][-1]
    assert refilled >= 1 and out[GROUP_MASK][:NUM_GEN].sum() == NUM_GEN  # slot 0 now holds a group with signal
    check_video_rows(out["pixel_values_videos"], out["video_grid_thw"])
    n_pad = (out["prompt_ids"] == processor.video_token_id).sum(1)
    n_img = (out["prompt_ids"] == processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")).sum(1)
    assert n_pad.tolist() == [int(g.prod(-1).sum()) // 4 for g in out["video_grid_thw"]]
    assert n_img.tolist() == [4 * n for n in out["num_images"]]  # a 56x56 image: 16 patches, 4 tokens
    t.compute_loss(t.model, out)
    t.train()
    assert t.state.global_step == 1 and "dynamic_sampling/refill_rounds" in t.state.log_history[0]


def test_eval_batches_carry_the_video_and_a_video_outside_the_column_is_refused(tiny_model_dir, dataset, processor,
                                                                               tmp_path):
    t = ours(tiny_model_dir, dataset, processor, tmp_path)
    t.model.eval()
    torch.manual_seed(0)
    out_a = trl_hooks.generate(t, rows_of(dataset, [0]))
    out_b = trl_hooks.generate(t, rows_of(dataset, [1]))
    out_a["old_per_token_logps"] = torch.full_like(out_a["completion_mask"], -6.0, dtype=torch.float32)
    with torch.no_grad():  # (on policy the loss value is -mean(A) whatever the log-probs: compare off policy)
        la = t.compute_loss(t.model, out_a)
        lb = t.compute_loss(t.model, with_clip_of(out_a, out_b, range(NUM_GEN)))
    assert abs(float(la) - float(lb)) > 1e-7
    # a dataset whose videos sit only in the prompt messages (stock TRL's layout) would train without them
    text_only = ours(tiny_model_dir, dataset.remove_columns(["video"]), processor, tmp_path)
    with pytest.raises(ValueError, match="no `video` column"):
        trl_hooks.generate(text_only, rows_of(dataset.remove_columns(["video"]), [0]))


def test_video_with_vllm_server_is_a_clear_error(dataset, tmp_path):
    """Colocate vLLM rolls videos out (tests/rl/test_rl_vllm_video.py); TRL's server API cannot carry them."""
    from mmreason.rl.config import MMReasonGRPOConfig
    from mmreason.rl.trainer import MMReasonGRPOTrainer

    with pytest.raises(ValueError, match="video GRPO with use_vllm needs vllm_mode: colocate"):
        MMReasonGRPOTrainer(model="unused", reward_funcs=[varying_reward],
                            args=MMReasonGRPOConfig(**common_args(tmp_path, use_vllm=True, vllm_mode="server")),
                            train_dataset=dataset)
    assert "vllm" not in sys.modules


# ---------------------------------------------------------------- data, configs, the stage script


def test_grpo_data_keeps_video_records_checks_them_and_counts_their_tokens(data_dir, processor, tmp_path):
    from mmreason.errors import RecordError
    from mmreason.rl.data import build_grpo_dataset, prompt_length

    ds, report = build_grpo_dataset(data_dir / "mixed.jsonl", processor=processor, video_cfg=video_cfg())
    assert ds["video"][4] is None and ds["video"][2]["end"] == 1.0 and ds["video"][2]["path"].endswith("c.mp4")
    assert ds["video"][0]["origin"].endswith("mixed.jsonl:1")
    assert ds[0]["prompt"][-1]["content"][0]["type"] == "video"  # a placeholder: no pixels in the messages
    # the prompt budget counts video tokens: 8 frames of 56x56 = 16 tokens, 4 frames = 8
    lengths = [prompt_length(processor, r["prompt"], r["images"], r["video"], video_cfg()) for r in ds]
    assert lengths[0] - lengths[2] == 8 and lengths[3] == lengths[0]
    small, rep = build_grpo_dataset(data_dir / "mixed.jsonl", processor=processor, video_cfg=video_cfg(),
                                    max_prompt_length=lengths[2])
    assert rep.dropped_long == 3 and small["record_id"] == ["v2", "i4"]
    # a bad video (here: a cut past its end) is an error naming file:line, or a counted skip when lenient
    bad = data_dir / "bad.jsonl"
    lines = (data_dir / "video.jsonl").read_text().splitlines()
    lines[1] = lines[1].replace('"video": {"path": "b.mp4"}', '"video": {"path": "b.mp4", "start": 5.0}')
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(RecordError, match=r"bad\.jsonl:2"):
        build_grpo_dataset(bad, video_cfg=video_cfg())
    ds2, rep2 = build_grpo_dataset(bad, video_cfg=video_cfg(), lenient=True)
    assert rep2.skipped_bad_video == 1 and len(ds2) == 3 and "1 bad videos skipped" in rep2.summary()


def test_nep_config_reaches_trl_intact(tmp_path):
    from mmreason.prompts import PromptSpec
    from mmreason.records import Record
    from mmreason.rl.run import make_parser

    script, args, model = make_parser().parse_args_and_config(
        args=["--config", str(REPO / "configs/grpo/qwen2_5_vl_7b_nep.yaml"), "--bf16", "false",
              "--output_dir", str(tmp_path / "o")])
    assert (args.num_generations, args.temperature, args.learning_rate, args.beta, args.entropy_coef) == (
        8, 1.0, 1e-6, 0.01, 1e-3)
    assert (args.max_prompt_length, args.max_completion_length, args.policy_loss) == (4096, 2048, "none")
    # EasyR1's rollout: vLLM colocated, tensor parallel 1, memory 0.5, context = prompt + response
    assert (args.use_vllm, args.vllm_mode, args.vllm_tensor_parallel_size, args.vllm_gpu_memory_utilization,
            args.vllm_max_model_length) == (True, "colocate", 1, 0.5, 4096 + 2048)
    assert script.reward_funcs == ["answer_letter"] and script.reward_options == {"answer_letter": {"mode": "official"}}
    v = script.video_config()
    assert (v.video_fps, v.video_min_pixels, v.video_total_pixels) == (2.0, 3136, 1605632)
    assert model.model_name_or_path == "Qwen/Qwen2.5-VL-7B-Instruct"
    spec = PromptSpec(**script.explicit())
    assert spec.system.startswith("You FIRST think") and "<answer> </answer> tags." in spec.system
    rec = Record(id="x", question="What next?", choices=["Up.", "Down.", "Left.", "Right."], answer="B",
                 answer_type="choice")
    from mmreason.chat import question_text

    # dataset_video_v1.py's problem text, byte for byte
    assert question_text(rec, spec=spec) == "Question:\nWhat next?\n\nOptions:\nA: Up.\nB: Down.\nC: Left.\nD: Right."
    # the tiny CPU variant parses with the same prompt
    s2, a2, _ = make_parser().parse_args_and_config(args=["--config", str(REPO / "configs/grpo/tiny_nep.yaml")])
    assert PromptSpec(**s2.explicit()).template == spec.template and a2.use_vllm is False and a2.bf16 is False


@pytest.mark.slow
def test_grpo_cli_runs_tiny_nep_on_synthetic_video(tiny_model_dir, tmp_path):
    """`mmreason nep synth` records -> `mmreason grpo --config configs/grpo/tiny_nep.yaml` (a few CPU steps)."""
    import os
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    run = lambda *a: subprocess.run([sys.executable, "-m", "mmreason", *a], cwd=tmp_path, env=env,  # noqa: E731
                                    capture_output=True, text=True, timeout=600)
    r = run("nep", "synth", "--out", "runs/nep/data", "--n", "8", "--size", "56", "--video-format", "mp4")
    assert r.returncode == 0, r.stderr[-2000:]
    r = run("grpo", "--config", str(REPO / "configs/grpo/tiny_nep.yaml"), "--model_name_or_path", str(tiny_model_dir),
            "--max_steps", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "8 video records" in r.stderr
    state = json.loads((tmp_path / "runs/nep/grpo/trainer_state.json").read_text())
    assert state["global_step"] == 2 and all("rewards/answer_letter/mean" in h for h in state["log_history"][:2])
    assert (tmp_path / "runs/nep/grpo/model.safetensors").is_file()


@pytest.mark.slow
def test_video_grpo_trains_in_step_on_two_processes(tiny_model_dir, data_dir, tmp_path):
    """2 processes (gloo, DDP): each process generates and scores its own rows (videos of other lengths, images);
    after two steps both hold the same weights, and the vision tower moved."""
    views = two_process_views("video_grpo_worker.py", [tiny_model_dir, data_dir / "mixed.jsonl"], tmp_path / "view",
                              timeout=600)
    assert views[0]["steps"] == views[1]["steps"] == 2
    assert views[0]["digest"] == views[1]["digest"]  # DDP kept the processes' weights equal
    assert views[0]["visual_changed"] and views[1]["visual_changed"]
    assert all(len(rows) == 8 for v in views for rows in v["video_rows"])  # every rollout had video rows
    assert any(r > 0 for v in views for rows in v["video_rows"] for r in rows)
