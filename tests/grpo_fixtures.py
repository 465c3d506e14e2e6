"""Small shared pieces of the GRPO trainer tests: an image-records file, local rewards, TRL-style arguments."""

import json

NUM_GEN = 4


def varying_reward(completions, **kwargs):
    """Position-in-group reward: always varies within a group, deterministic."""
    return [float(i % NUM_GEN) for i in range(len(completions))]


def token_reward(completions, completion_ids, **kwargs):
    """Varies within every group (position in group) and depends on the sampled tokens (their first id)."""
    return [float(i % NUM_GEN) + 0.1 * (ids[0] % 5) for i, ids in enumerate(completion_ids)]


def write_records(folder, n=8):
    """n image questions (56x56 PNGs) as a mmreason records JSONL; returns its path."""
    from PIL import Image

    (folder / "images").mkdir(parents=True, exist_ok=True)
    recs = []
    for i in range(n):
        Image.new("RGB", (56, 56), (30 * i % 255, 100, 0)).save(folder / f"images/{i}.png")
        recs.append({"id": f"q{i}", "question": "How many red shapes are there?", "answer": str(i % 4),
                     "answer_type": "integer", "images": [f"images/{i}.png"]})
    path = folder / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


def trl_args(tmp_path, **kw):
    """GRPOConfig keyword arguments for a 2-step run of the tiny model on CPU."""
    args = dict(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, num_generations=NUM_GEN,
        max_completion_length=8, bf16=False, gradient_checkpointing=False, report_to="none", logging_steps=1,
        save_strategy="no", learning_rate=1e-2, seed=0, temperature=1.0, max_steps=2, use_cpu=True,
        dataloader_num_workers=0,
    )
    args.update(kw)
    return args
