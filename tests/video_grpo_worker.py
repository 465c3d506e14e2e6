"""Worker of test_video_grpo_trains_in_step_on_two_processes (torch.distributed.run, 2 processes, gloo on CPU):
two video GRPO steps under DDP on a mixed image + video records file, each process on its own rows (clips of
different lengths, images). Writes its view as JSON to argv[3].<rank>."""

import hashlib
import json
import sys

import torch
import trl_hooks


def varying(completions, **kwargs):
    return [float(i % 4) for i in range(len(completions))]


def main(model_dir: str, records: str, out: str) -> None:
    from transformers import AutoProcessor

    from mmreason.rl.config import MMReasonGRPOConfig
    from mmreason.rl.data import build_grpo_dataset
    from mmreason.rl.trainer import MMReasonGRPOTrainer
    from mmreason.media.video import VideoConfig

    cfg = VideoConfig(video_fps=4.0, video_min_frames=2, video_max_frames=8, video_min_pixels=3136,
                      video_max_pixels=3136)
    processor = AutoProcessor.from_pretrained(model_dir, padding_side="left")
    dataset, _ = build_grpo_dataset(records, processor=processor, video_cfg=cfg)
    args = MMReasonGRPOConfig(
        output_dir=out + ".run", per_device_train_batch_size=8, num_generations=4, max_completion_length=8,
        bf16=False, report_to="none", save_strategy="no", seed=0, loss_type="dapo", beta=0.01, use_cpu=True,
        max_steps=2, learning_rate=1e-2, logging_steps=1, gradient_checkpointing=False,
    )
    trainer = MMReasonGRPOTrainer(model=model_dir, reward_funcs=[varying], args=args, train_dataset=dataset,
                                  processing_class=processor, video_config=cfg)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    seen = []
    trl_hooks.watch_generation(trainer, lambda output: seen.append([int(g.prod(-1).sum())
                                                                    for g in output["video_grid_thw"]]))
    trainer.train()
    model = trainer.accelerator.unwrap_model(trainer.model)
    digest = hashlib.sha256(b"".join(p.detach().cpu().numpy().tobytes() for p in model.parameters())).hexdigest()
    changed = [n for n, p in model.named_parameters() if not torch.equal(before[n].cpu(), p.detach().cpu())]
    rank = trainer.accelerator.process_index
    json.dump({"digest": digest, "visual_changed": any(n.startswith("model.visual") for n in changed),
               "video_rows": seen, "steps": trainer.state.global_step}, open(f"{out}.{rank}", "w"))


if __name__ == "__main__":
    main(*sys.argv[1:4])
