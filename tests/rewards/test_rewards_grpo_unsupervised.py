"""MM-UPT end to end on the tiny model: `mmreason grpo` with configs/grpo/tiny_unsupervised.yaml, records
without answers, reward_funcs [majority_vote]; and the 7B config reaching TRL with the paper's settings."""

import json
from pathlib import Path

import trl_hooks

REPO = Path(__file__).resolve().parents[2]


def test_unsupervised_configs_parse_with_mmupt_settings():
    from mmreason.rl.run import make_parser

    for name in ("tiny_unsupervised", "qwen2_5_vl_7b_unsupervised"):
        script, args, _ = make_parser().parse_args_and_config(
            args=["--config", str(REPO / f"configs/grpo/{name}.yaml"), "--bf16", "false"])
        assert script.reward_funcs == ["majority_vote"] and script.require_answer is False, name
        assert (args.num_generations, args.temperature, args.top_p, args.beta) == (10, 0.7, 0.99, 0.01), name
        assert str(args.lr_scheduler_type) == "SchedulerType.CONSTANT" and args.dynamic_sampling == "off", name
    assert (args.learning_rate, args.num_train_epochs, args.weight_decay) == (1e-6, 15, 0.01)
    # micro-batch 4 per device as EasyR1: 4 x 160 per device x 8 GPUs = 5120 completions = 512 prompts per round
    assert args.generation_batch_size == 4 * 160 and args.steps_per_generation == 160


def test_unsupervised_grpo_step_on_unlabeled_records(tiny_model_dir, tmp_path):
    from PIL import Image

    from mmreason.rl.run import main

    (tmp_path / "images").mkdir()
    rows = []
    for i in range(4):
        Image.new("RGB", (56, 56), (40 * i, 90, 10)).save(tmp_path / f"images/{i}.png")
        rows.append({"id": f"u{i}", "question": "How many shapes are there?", "answer": None,
                     "answer_type": "integer", "images": [f"images/{i}.png"]})
    train = tmp_path / "unlabeled.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    argv = ["--config", str(REPO / "configs/grpo/tiny_unsupervised.yaml"),
            "--model_name_or_path", str(tiny_model_dir), "--train_files", str(train), "--output_dir", str(out),
            "--max_steps", "1", "--num_generations", "4", "--per_device_train_batch_size", "8",
            "--max_completion_length", "8", "--save_strategy", "no", "--max_prompt_length", "400"]
    assert main(argv) == 0
    state = json.loads((out / "trainer_state.json").read_text())
    logs = [h for h in state["log_history"] if "loss" in h]
    assert logs and "rewards/majority_vote/mean" in logs[0]
    # the reward's own metrics went through TRL's log_metric
    for key in ("majority_vote/reward_mean", "majority_vote/cluster_entropy", "majority_vote/no_majority_frac"):
        assert key in logs[0], key
    assert "majority_vote/pseudo_label_accuracy" not in logs[0]  # no gold answers at all
    assert (out / "model.safetensors").is_file()


def test_trl_calls_registry_rewards_with_its_real_kwargs(tiny_model_dir, tmp_path):
    """TRL's own reward call, `_calculate_rewards` (real kwargs: dataset columns, trainer_state, log_extra, log_metric)
    on crafted completions: majority votes, accuracy None for unlabeled rows, metrics reach TRL."""
    from PIL import Image
    from transformers import AutoProcessor

    from mmreason.rewards.registry import build_reward_funcs
    from mmreason.rl.config import MMReasonGRPOConfig
    from mmreason.rl.data import build_grpo_dataset
    from mmreason.rl.trainer import MMReasonGRPOTrainer

    (tmp_path / "images").mkdir()
    rows = []
    for i, ans in enumerate([None, "7"]):
        Image.new("RGB", (56, 56), (40 * i, 90, 10)).save(tmp_path / f"images/{i}.png")
        rows.append({"id": f"u{i}", "question": "How many?", "answer": ans, "answer_type": "integer",
                     "images": [f"images/{i}.png"]})
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    processor = AutoProcessor.from_pretrained(tiny_model_dir, padding_side="left")
    ds, _ = build_grpo_dataset(path, processor=processor, require_answer=False)
    G = 4
    funcs = build_reward_funcs(["majority_vote", "accuracy"], num_generations=G)
    args = MMReasonGRPOConfig(output_dir=str(tmp_path / "o"), per_device_train_batch_size=8, num_generations=G,
                              max_completion_length=8, bf16=False, gradient_checkpointing=False, report_to="none")
    trainer = MMReasonGRPOTrainer(model=str(tiny_model_dir), reward_funcs=funcs, args=args, train_dataset=ds,
                                  processing_class=processor)
    assert trainer.reward_func_names == ["majority_vote", "accuracy"]
    inputs = [ds[i] for i in range(2) for _ in range(G)]
    answers = ["3", "3", "4", "no box", r"\frac{14}{2}", "7", "7.0", "8"]
    completions = [[{"role": "assistant", "content": rf"Count them. \boxed{{{a}}}" if a != "no box" else a}]
                   for a in answers]
    rewards = trl_hooks.calculate_rewards(trainer, inputs, [x["prompt"] for x in inputs], completions, [[1, 2]] * 8)
    vote, acc = rewards[:, 0].tolist(), rewards[:, 1].tolist()
    assert vote == [1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0]
    assert all(a != a for a in acc[:4])  # NaN: no gold answer -> not applicable
    assert acc[4:] == [1.0, 1.0, 1.0, 0.0]
    pending = trl_hooks.reward_function_metrics(trainer)
    assert pending["majority_vote/pseudo_label_accuracy"] == [1.0]  # only the labelled group
    assert pending["majority_vote/no_majority_frac"] == [0.0, 0.0]
    assert pending["accuracy/verify_timeouts"] == [0.0]
    columns = trl_hooks.reward_function_columns(trainer)
    assert columns["majority_vote/answer"] == ["3", "3", "4", None, r"\frac{14}{2}", "7", "7.0", "8"]
