"""Worker of test_refill_keeps_processes_in_step (run under torch.distributed.run, 2 processes, gloo on CPU):
process 0 holds a zero-variance group, process 1 none; both must run the same refill rounds (a process that
stopped early would leave the other hanging in a collective), then compute the registry loss (clip_cov with
dual-clip) on the merged batch. Writes its view as JSON to argv[3].<rank>."""

import json
import sys

import torch
import trl_hooks


def accuracy(completions, record_id, **kwargs):
    """Constant for even-numbered records (no signal), varying within the group for odd ones."""
    return [1.0 if int(r[1:]) % 2 == 0 else float(i % 4) for i, r in enumerate(record_id)]


def main(model_dir: str, records: str, out: str) -> None:
    from transformers import AutoProcessor

    from mmreason.rl.config import MMReasonGRPOConfig
    from mmreason.rl.data import build_grpo_dataset
    from mmreason.rl.trainer import MMReasonGRPOTrainer

    processor = AutoProcessor.from_pretrained(model_dir, padding_side="left")
    dataset, _ = build_grpo_dataset(records, processor=processor)
    args = MMReasonGRPOConfig(
        output_dir=out + ".run", per_device_train_batch_size=8, num_generations=4, max_completion_length=8,
        bf16=False, report_to="none", save_strategy="no", seed=0, loss_type="dapo", beta=0.0,
        dynamic_sampling="refill", dynamic_sampling_max_rounds=6, use_cpu=True, policy_loss="clip_cov", clip_cov_lb=0.0,
        clip_ratio_c=3.0,
    )
    trainer = MMReasonGRPOTrainer(model=model_dir, reward_funcs=[accuracy], args=args, train_dataset=dataset,
                                  processing_class=processor)
    trainer.model.train()
    rank = trainer.accelerator.process_index
    ids = [0, 1] if rank == 0 else [1, 3]  # process 0: q0 has no signal
    rows = [dataset[i] for i in ids for _ in range(4)]
    torch.manual_seed(rank)
    output = trl_hooks.generate(trainer, rows)
    m = trl_hooks.metrics(trainer)
    alive = (output["advantages"].view(-1, 4).abs().sum(dim=1) > 0).tolist()
    trainer.current_gradient_accumulation_steps = 1
    trainer.compute_loss(trainer.model, output).backward()  # the registry loss's stats are combined over processes
    json.dump({"rounds": m["dynamic_sampling/refill_rounds"], "refilled": m["dynamic_sampling/refilled_groups"],
               "cap_hit": m["dynamic_sampling/refill_cap_hit"], "alive": alive,
               "group_mask": output["group_mask"].tolist(), "num_items": int(output["num_items_in_batch"]),
               "local_items": int(output["completion_mask"].sum()),
               "stats": {k: m[k][-1] for k in ("cov/max", "cov/frac_selected", "clip_ratio/dual_mean", "entropy/token_mean")}}, open(f"{out}.{rank}", "w"))


if __name__ == "__main__":
    main(*sys.argv[1:4])
