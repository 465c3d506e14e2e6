"""SFT input pipeline on the tiny Qwen2.5-VL: our dataset (image paths, opened by the processor inside
TRL's vision collator) vs the common TRL-example pattern (the images column cast to `datasets.Image()`,
so every __getitem__ decodes PIL images first). Same processor, examples and batch size (16, 112 px),
measured side by side. Also reports the synthetic generator's throughput and one short SFT run's step
time (absolute numbers depend on what else runs on the machine)."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from bench.smoke import size

BATCH = size(16, 4)
N_BATCHES = size(15, 2)
STEPS = size(10, 4)  # the median skips the first two steps


def _pipeline_seconds(ds, collator) -> float:
    t = time.perf_counter()
    for b in range(N_BATCHES):
        collator([ds[i] for i in range(b * BATCH, (b + 1) * BATCH)])
    return (time.perf_counter() - t) / N_BATCHES


def _step_seconds(model_dir: Path, data: Path, out: Path, steps: int = STEPS) -> float:
    from transformers import TrainerCallback
    from trl import SFTTrainer

    from mmreason.sft.dataset import build_sft_dataset, load_sft_records
    from mmreason.sft.run import load_model_and_processor, make_parser

    s, t, m, _video = make_parser().parse_args_and_config([
        "--model_name_or_path", str(model_dir), "--train_files", str(data / "train.jsonl"),
        "--output_dir", str(out), "--per_device_train_batch_size", str(BATCH), "--max_steps", str(steps),
        "--activation_checkpointing", "false", "--save_strategy", "no", "--logging_steps", "1000",
        "--dataloader_pin_memory", "false", "--disable_tqdm", "true", "--seed", "0",
    ])  # fmt: skip
    recs, _ = load_sft_records(s.train_files)
    spec = s.prompt_spec(m.model_name_or_path, "sft")
    ds = build_sft_dataset(recs, spec)
    model, proc = load_model_and_processor(s, t, m, spec)
    stamps: list[float] = []

    class Stamp(TrainerCallback):
        def on_step_end(self, *args, **kwargs):
            stamps.append(time.perf_counter())

    SFTTrainer(model=model, args=t, train_dataset=ds, processing_class=proc, callbacks=[Stamp()]).train()
    return statistics.median(b - a for a, b in zip(stamps[2:], stamps[3:]))  # first steps skipped


def main() -> None:
    from datasets import Image, Sequence
    from transformers import AutoProcessor
    from trl.chat_template_utils import get_training_chat_template
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    from mmreason.data.synth import synthesize
    from mmreason.sft.dataset import build_sft_dataset, load_sft_records
    from mmreason.tiny import build_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        synthesize(tmp / "data", BATCH * N_BATCHES, 1, seed=0, progress=False)
        print(f"synth: {(BATCH * N_BATCHES + 1) / (time.perf_counter() - t0):.0f} records/s (PNG + JSONL, 6 tasks, 112 px)")
        model_dir = build_tiny_model(tmp / "tiny", size="tiny", seed=0)
        proc = AutoProcessor.from_pretrained(model_dir)
        collator = DataCollatorForVisionLanguageModeling(
            processor=proc, assistant_only_loss=True, chat_template=get_training_chat_template(proc)
        )
        recs, _ = load_sft_records([str(tmp / "data" / "train.jsonl")])
        ours_ds = build_sft_dataset(recs)
        base_ds = ours_ds.cast_column("images", Sequence(Image()))
        ours, base = [], []
        for _ in range(size(3, 1)):  # alternate, keep the best of each, to even out load from other processes
            ours.append(_pipeline_seconds(ours_ds, collator))
            base.append(_pipeline_seconds(base_ds, collator))
        o, b = min(ours), min(base)
        print(f"sft input pipeline per batch of {BATCH}: ours {o:.3f} s, baseline {b:.3f} s, ratio {o / b:.2f}")
        print(f"sft step (tiny, batch {BATCH}, full step incl. data): {_step_seconds(model_dir, tmp / 'data', tmp / 'o'):.3f} s")


if __name__ == "__main__":
    main()
