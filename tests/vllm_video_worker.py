"""Worker of test_video_grpo_with_vllm_stays_in_step_on_two_processes (torch.distributed.run, 2 processes, gloo):
two video GRPO steps with use_vllm (colocate, tensor_parallel_size 2) under the stand-in engine (tests/fake_vllm.py).
Writes its view as JSON to argv[3].<rank>: the weights' digest, what its engine received per generate call
(prompt-id hash and video grid per request), and its own rows' completions."""

import hashlib
import json
import sys

import fake_vllm
import trl_hooks


def varying(completions, **kwargs):
    return [float(i % 4) for i in range(len(completions))]


def main(model_dir: str, records: str, out: str) -> None:
    fake_vllm.install()
    from transformers import AutoProcessor

    from mmreason.rl.config import MMReasonGRPOConfig
    from mmreason.rl.data import build_grpo_dataset
    from mmreason.rl.trainer import MMReasonGRPOTrainer
    from mmreason.media.video import VideoConfig

    cfg = VideoConfig(video_fps=4.0, video_min_frames=2, video_max_frames=8, video_min_pixels=784,
                      video_max_pixels=784)
    processor = AutoProcessor.from_pretrained(model_dir, padding_side="left")
    dataset, _ = build_grpo_dataset(records, processor=processor, video_cfg=cfg)
    args = MMReasonGRPOConfig(
        output_dir=out + ".run", per_device_train_batch_size=8, num_generations=4, max_completion_length=6,
        bf16=False, report_to="none", save_strategy="no", seed=0, loss_type="dapo", use_cpu=True, max_steps=2,
        learning_rate=1e-2, logging_steps=1, gradient_checkpointing=False, temperature=1.0, use_vllm=True,
        vllm_mode="colocate", vllm_tensor_parallel_size=2,
    )
    trainer = MMReasonGRPOTrainer(model=model_dir, reward_funcs=[varying], args=args, train_dataset=dataset,
                                  processing_class=processor, video_config=cfg)
    (llm,) = fake_vllm.FakeLLM.instances
    served, own = [], []
    generate = llm.generate

    def spy(prompts, **kw):
        start = len(llm.served)
        res = generate(prompts, **kw)
        served.append([(hashlib.sha256(str(s.prompt_token_ids).encode()).hexdigest()[:16], s.video_grid_thw)
                       for s in llm.served[start:]])
        return res

    llm.generate = spy
    trl_hooks.watch_generation(trainer, lambda output: own.append(output["completion_ids"].tolist()))
    trainer.train()
    model = trainer.accelerator.unwrap_model(trainer.model)
    digest = hashlib.sha256(b"".join(p.detach().cpu().numpy().tobytes() for p in model.parameters())).hexdigest()
    rank = trainer.accelerator.process_index
    json.dump({"digest": digest, "served": served, "own_completions": own, "steps": trainer.state.global_step},
              open(f"{out}.{rank}", "w"))


if __name__ == "__main__":
    main(*sys.argv[1:4])
