"""`mmreason sft --config configs/sft/<name>.yaml [--field value ...]`: cold-start SFT of Qwen2.5-VL.

A thin script over TRL's SFTTrainer: parse (SFTScriptArguments, MMSFTConfig, ModelConfig) ->
records -> conversational dataset -> model + processor (vision tower frozen, optional LoRA on the
language model) -> train (resuming from the last checkpoint if asked) -> save model + processor.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from mmreason.distributed import DistributedSetupError, check_distributed, finish_distributed
from mmreason.records import RecordError
from mmreason.resume import resolve_resume
from mmreason.sft.config import MMSFTConfig, SFTScriptArguments
from mmreason.sft.dataset import build_sft_dataset, load_sft_records
from mmreason.sft.freeze import LANGUAGE_LORA_TARGETS, freeze_vision

logger = logging.getLogger(__name__)


def make_parser():
    from trl import ModelConfig, TrlParser

    return TrlParser((SFTScriptArguments, MMSFTConfig, ModelConfig), prog="mmreason sft")


def set_image_pixels(processor, min_pixels: int | None, max_pixels: int | None) -> None:
    """Apply per-image pixel bounds to the processor's image processor (its `size` edges)."""
    if min_pixels is None and max_pixels is None:
        return
    ip = processor.image_processor
    size = dict(ip.size)
    if min_pixels is not None:
        size["shortest_edge"] = int(min_pixels)
    if max_pixels is not None:
        size["longest_edge"] = int(max_pixels)
    if size["shortest_edge"] > size["longest_edge"]:
        raise ValueError(f"min_pixels {size['shortest_edge']} > max_pixels {size['longest_edge']}")
    ip.size = type(ip.size)(**size)
    for name, value in (("min_pixels", min_pixels), ("max_pixels", max_pixels)):
        if value is not None and hasattr(ip, name):
            setattr(ip, name, int(value))


def load_model_and_processor(script_args: SFTScriptArguments, training_args: MMSFTConfig, model_args):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    name = model_args.model_name_or_path
    if not name:
        raise ValueError("model_name_or_path is required")
    common = dict(revision=model_args.model_revision, trust_remote_code=training_args.trust_remote_code)
    processor = AutoProcessor.from_pretrained(name, **common)
    set_image_pixels(processor, script_args.min_pixels, script_args.max_pixels)

    dtype = model_args.dtype
    model_kwargs = dict(
        common,
        attn_implementation=model_args.attn_implementation,
        dtype=dtype if dtype in (None, "auto") else getattr(torch, dtype),
        use_safetensors=True,  # no pickled weights (model_init_kwargs may override)
    )
    if model_args.load_in_4bit or model_args.load_in_8bit:
        from trl import get_kbit_device_map, get_quantization_config

        model_kwargs.update(quantization_config=get_quantization_config(model_args), device_map=get_kbit_device_map())
    if isinstance(training_args.model_init_kwargs, dict):
        model_kwargs.update(training_args.model_init_kwargs)
    model = AutoModelForImageTextToText.from_pretrained(name, **model_kwargs)
    counts = freeze_vision(model, tower=script_args.freeze_vision_tower, merger=script_args.freeze_merger)
    logger.info("parameters: %(trainable)d trainable, %(frozen)d frozen (before LoRA)", counts)
    return model, processor


def peft_config_for(model_args):
    """LoRA config from ModelConfig (use_peft); by default it targets the language model's linear layers only."""
    if not model_args.use_peft:
        return None
    from trl import get_peft_config

    if not model_args.lora_target_modules:
        model_args.lora_target_modules = LANGUAGE_LORA_TARGETS
    return get_peft_config(model_args)


def train(script_args: SFTScriptArguments, training_args: MMSFTConfig, model_args):
    """Run the SFT stage; returns the trainer (the model and processor are saved to output_dir)."""
    from trl import SFTTrainer

    records, report = load_sft_records(script_args.train_files, script_args.lenient, script_args.max_samples)
    print(report.summary())
    train_ds = build_sft_dataset(records, script_args.system_prompt, script_args.prompt_suffix)
    eval_ds = None
    if script_args.eval_file:
        eval_records, _ = load_sft_records([script_args.eval_file], script_args.lenient)
        eval_ds = build_sft_dataset(eval_records, script_args.system_prompt, script_args.prompt_suffix)

    model, processor = load_model_and_processor(script_args, training_args, model_args)
    resume = resolve_resume(training_args.resume_from_checkpoint, training_args.output_dir)
    trainer = SFTTrainer(
        model=model,
        args=training_args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=processor,
        peft_config=peft_config_for(model_args),
    )
    check_distributed(trainer, resume)
    if trainer.accelerator.is_main_process:
        out = Path(training_args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "sft_data_report.json").write_text(json.dumps(report.to_json(), indent=1))
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(training_args.output_dir)  # model (or adapter) + processor: a loadable folder
    finish_distributed(trainer)
    if hasattr(trainer, "end"):
        trainer.end()
    return trainer


def main(argv: list[str] | None = None) -> int:
    from mmreason.offline import offline_defaults

    offline_defaults()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    script_args, training_args, model_args = make_parser().parse_args_and_config(argv)
    try:
        train(script_args, training_args, model_args)
    except (RecordError, FileNotFoundError, DistributedSetupError) as e:  # bad data or launch: one clear line
        print(f"mmreason sft: error: {e}", file=sys.stderr)
        return 2
    print(f"SFT done: {training_args.output_dir}")
    return 0
