"""Video SFT collator on the tiny model: the batch keeps every video input, the loss forward uses the
frames, mixed image+video batches equal the per-sample losses combined, and the label mask is TRL's."""

import pytest
import torch
from PIL import Image
from video_fixtures import write_coded_mp4

from mmreason.prompts import PromptSpec
from mmreason.records import Record, Video
from mmreason.sft.dataset import build_sft_dataset
from mmreason.sft.video_collator import VideoSFTCollator, video_sft_example
from mmreason.media.video import VideoConfig

CFG = VideoConfig(video_fps=4.0, video_min_frames=2, video_max_frames=8, video_min_pixels=3136, video_max_pixels=12544)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir).eval()
    return model, processor


def _video_rec(tmp_path, name, tint, end=None, **meta):
    write_coded_mp4(tmp_path / f"{name}.mp4", n=16, fps=4, size=112, tint=tint)
    return Record(id=name, question="What happens next?", answer="x", solution="The ball bounces back.",
                  video=Video(path=f"{name}.mp4", start=0.0 if end else None, end=end), base_dir=str(tmp_path),
                  metadata={"system_prompt": None, "prompt_suffix": "", **meta})


def _image_rec(tmp_path):
    Image.new("RGB", (56, 56), (200, 30, 30)).save(tmp_path / "red.png")
    return Record(id="img", question="What colour is it?", answer="red", solution="It is red. \\boxed{red}",
                  images=["red.png"], base_dir=str(tmp_path))


def _loss(model, batch):
    with torch.no_grad():
        return model(**batch).loss


def _n_targets(batch):
    return int((batch["labels"][:, 1:] != -100).sum())


def test_batch_keeps_video_inputs_and_loss_uses_frames(tmp_path, tiny):
    model, processor = tiny
    collate = VideoSFTCollator(processor, CFG)
    a = _video_rec(tmp_path, "a", tint=0)
    b = _video_rec(tmp_path, "b", tint=250)  # same text, other frames
    ba, bb = collate([video_sft_example(a)]), collate([video_sft_example(b)])
    for key in ("pixel_values_videos", "video_grid_thw", "second_per_grid_ts", "mm_token_type_ids", "labels"):
        assert key in ba, key
    assert ba["video_grid_thw"].tolist() == [[4, 8, 8]] and int((ba["mm_token_type_ids"] == 2).sum()) == 64
    assert torch.equal(ba["input_ids"], bb["input_ids"]) and torch.equal(ba["labels"], bb["labels"])
    assert not torch.equal(ba["pixel_values_videos"], bb["pixel_values_videos"])
    la, lb = _loss(model, ba), _loss(model, bb)
    assert torch.isfinite(la) and abs(float(la) - float(lb)) > 1e-6  # only the frames differ
    # the loss is differentiable through the video inputs' path (vision tower in the graph)
    model.train()
    loss = model(**ba).loss
    loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if n.startswith("model.visual") and p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)
    model.zero_grad(set_to_none=True)
    model.eval()


def test_mixed_batch_equals_per_sample_losses(tmp_path, tiny):
    model, processor = tiny
    collate = VideoSFTCollator(processor, CFG)
    examples = [
        video_sft_example(_video_rec(tmp_path, "v1", tint=0)),
        video_sft_example(_image_rec(tmp_path)),
        video_sft_example(_video_rec(tmp_path, "v2", tint=120, end=1.0)),  # a shorter (cut) clip: 4 frames
    ]
    batch = collate(examples)
    assert "pixel_values" in batch and "pixel_values_videos" in batch
    assert batch["video_grid_thw"].tolist() == [[4, 8, 8], [2, 8, 8]]
    assert set(batch["mm_token_type_ids"][1].tolist()) == {0, 1} and 2 in batch["mm_token_type_ids"][2].tolist()
    singles = [collate([ex]) for ex in examples]
    n = [_n_targets(s) for s in singles]
    per = [float(_loss(model, s)) for s in singles]
    expected = sum(l * k for l, k in zip(per, n)) / sum(n)  # token-level mean over the batch
    assert _n_targets(batch) == sum(n)
    assert float(_loss(model, batch)) == pytest.approx(expected, rel=1e-4, abs=1e-5)


def test_assistant_mask_matches_trl_training_template(tiny):
    from trl.chat_template_utils import get_training_chat_template

    _, processor = tiny
    collate = VideoSFTCollator(processor, CFG)
    rec = Record(id="t", question="Two plus two?", answer="4", solution="Four.\n\\boxed{4}")
    ex = video_sft_example(rec, PromptSpec(system="Be brief."))
    batch = collate([ex])
    trl_out = processor.apply_chat_template(
        ex["messages"], chat_template=get_training_chat_template(processor), tokenize=True, return_dict=True,
        return_assistant_tokens_mask=True,
    )
    assert batch["input_ids"][0].tolist() == list(trl_out["input_ids"][0] if isinstance(trl_out["input_ids"][0], list) else trl_out["input_ids"])
    trl_mask = torch.tensor(trl_out["assistant_masks"]).flatten()
    assert torch.equal((batch["labels"][0] != -100).long(), trl_mask.long())
    assert processor.tokenizer.decode(batch["input_ids"][0][batch["labels"][0] != -100]) == "Four.\n\\boxed{4}<|im_end|>\n"
    full = VideoSFTCollator(processor, CFG, assistant_only=False)([ex])
    assert bool((full["labels"] != -100).all())


def test_prompt_overrides_and_dataset_roundtrip(tmp_path, tiny):
    _, processor = tiny
    rec = _video_rec(tmp_path, "d", tint=0, end=3.0)
    rec.metadata["system_prompt"] = "Please critique whether the following solution to the question is correct."
    ex = video_sft_example(rec, PromptSpec(system="ignored", instruction="ignored too"))
    assert ex["messages"][0]["content"][0]["text"].startswith("Please critique")
    assert ex["messages"][1]["content"][-1]["text"] == "What happens next?"  # no suffix for NEP records
    assert ex["video"] == {"path": str((tmp_path / "d.mp4").resolve()), "start": 0.0, "end": 3.0}
    img = _image_rec(tmp_path)
    ds = build_sft_dataset([rec, img], PromptSpec(instruction="Answer briefly."))
    collate = VideoSFTCollator(processor, CFG)
    from_ds = collate([ds[0], ds[1]])
    direct = collate([ex, video_sft_example(img, PromptSpec(instruction="Answer briefly."))])
    for key in ("input_ids", "labels", "pixel_values_videos", "pixel_values", "second_per_grid_ts"):
        assert torch.equal(from_ds[key], direct[key]), key


def test_bad_video_names_the_record(tmp_path, tiny):
    from mmreason.errors import RecordError

    _, processor = tiny
    rec = _video_rec(tmp_path, "gone", tint=0)
    rec.origin = "data/train.jsonl:7"
    ex = video_sft_example(rec)
    (tmp_path / "gone.mp4").unlink()
    with pytest.raises(RecordError, match=r"data/train\.jsonl:7: video not found"):
        VideoSFTCollator(processor, CFG)([ex])


def test_one_sft_trainer_step_with_the_collator(tmp_path, tiny_model_dir):
    """The wiring `mmreason sft` needs: the dataset of `build_sft_dataset`, `data_collator=
    VideoSFTCollator(processor, video_cfg)` and `remove_unused_columns=False` (TRL keeps only its
    image columns otherwise and drops 'video')."""
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import SFTConfig, SFTTrainer

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    recs = [_video_rec(tmp_path, "s1", tint=0, end=2.0), _image_rec(tmp_path), _video_rec(tmp_path, "s2", tint=200)]
    ds = build_sft_dataset(recs)
    seen = []
    collate = VideoSFTCollator(processor, CFG)

    def spy(examples):
        out = collate(examples)
        seen.append(out)
        return out

    args = SFTConfig(output_dir=str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=3, report_to=[],
                     remove_unused_columns=False, save_strategy="no", logging_steps=1, learning_rate=1e-3,
                     use_cpu=True, dataloader_num_workers=0)
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=processor, data_collator=spy)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if n.startswith("model.visual")}
    result = trainer.train()
    assert result.global_step == 1 and seen and "pixel_values_videos" in seen[0] and "pixel_values" in seen[0]
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters() if n in before)
