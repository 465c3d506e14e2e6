"""`mmreason sft --config configs/sft/<name>.yaml [--field value ...]`: cold-start SFT of Qwen2.5-VL.

A thin script over TRL's SFTTrainer: parse (SFTScriptArguments, MMSFTConfig, ModelConfig, VideoConfig) ->
prompt spec (the options + the starting checkpoint's prompt.json) -> records (videos opened first) ->
conversational dataset (the video collator's when any record has a video) ->
model + processor (mmreason.modeling; vision tower frozen, optional LoRA on the language model) -> train
(resuming from the last checkpoint if asked) -> save model + processor + prompt.json (also in every checkpoint).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from trl import ModelConfig, SFTTrainer, TrlParser, get_peft_config
from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

from mmreason.distributed import DistributedSetupError, check_distributed, finish_distributed
from mmreason.errors import RecordError
from mmreason.fingerprint import FingerprintMismatch, check_resume, run_fingerprint
from mmreason.media.video import VideoConfig
from mmreason.modeling import ModelLoad, load_model, load_processor, prompt_spec_callback
from mmreason.offline import offline_defaults
from mmreason.prompts import PromptSpec, save_prompt_spec
from mmreason.preemption import EXIT_CODE, PreemptionCallback, preempted
from mmreason.resume import CheckpointWeightsMixin, is_automatic, resolve_resume
from mmreason.run_lock import RunLock, RunLockError
from mmreason.sft.config import MMSFTConfig, SFTScriptArguments
from mmreason.sft.dataset import (
    DataReport,
    build_sft_dataset,
    check_videos,
    drop_over_max_length,
    has_video,
    load_sft_records,
    split_eval,
)
from mmreason.sft.freeze import LANGUAGE_LORA_TARGETS, freeze_vision
from mmreason.sft.video_collator import VideoSFTCollator
from mmreason.usage import check_model_path, check_output_dir, check_training_counts, parse_stage_args

logger = logging.getLogger(__name__)


def make_parser():
    return TrlParser((SFTScriptArguments, MMSFTConfig, ModelConfig, VideoConfig), prog="mmreason sft")


def load_model_and_processor(script_args: SFTScriptArguments, training_args: MMSFTConfig, model_args,
                             spec: PromptSpec | None = None):
    """Model (vision tower frozen as configured) and processor (the spec's image bounds) through mmreason.modeling."""
    spec = spec or script_args.prompt_spec(model_args.model_name_or_path, "sft")
    load = ModelLoad.from_trl(model_args, training_args.trust_remote_code, training_args.model_init_kwargs)
    processor = load_processor(load, spec.min_pixels, spec.max_pixels)
    model = load_model(load)
    counts = freeze_vision(model, tower=script_args.freeze_vision_tower, merger=script_args.freeze_merger)
    logger.info("parameters: %(trainable)d trainable, %(frozen)d frozen (before LoRA)", counts)
    return model, processor


def token_counter(processor, training_args: MMSFTConfig, video_args: VideoConfig | None):
    """row -> its tokens (text + vision) as the training collator makes them, without truncation."""
    if video_args is not None:
        collate = VideoSFTCollator(processor, video_args, assistant_only=training_args.assistant_only_loss)
    else:
        collate = DataCollatorForVisionLanguageModeling(processor=processor, max_length=None,
                                                        dataset_text_field=training_args.dataset_text_field)
    return lambda row: int(collate([row])["input_ids"].shape[1])


def peft_config_for(model_args):
    """LoRA config from ModelConfig (use_peft); by default it targets the language model's linear layers only."""
    if not model_args.use_peft:
        return None

    if not model_args.lora_target_modules:
        model_args.lora_target_modules = LANGUAGE_LORA_TARGETS
    return get_peft_config(model_args)


class MMSFTTrainer(CheckpointWeightsMixin, SFTTrainer):
    """TRL's SFTTrainer; resume loads the checkpoint's weights under the model's key names, a full disk is one line,
    and checkpoints carry the run fingerprint (mmreason.resume)."""


def train(script_args: SFTScriptArguments, training_args: MMSFTConfig, model_args, video_args: VideoConfig | None = None):
    """Run the SFT stage; returns the trainer (the model and processor are saved to output_dir). Video records
    (alone or mixed with image records) train through the video collator with `video_args` (default: the NEP
    paper's SFT settings). The run holds output_dir's lock (mmreason.run_lock) from start to end; a trainer
    stopped by SIGTERM (`mmreason.preemption.preempted`) has saved a checkpoint and no final model."""
    check_training_counts(training_args)
    check_model_path(model_args.model_name_or_path, "model_name_or_path")
    check_output_dir(training_args.output_dir, "output_dir")
    with RunLock(training_args.output_dir):
        return _train(script_args, training_args, model_args, video_args)


def _train(script_args: SFTScriptArguments, training_args: MMSFTConfig, model_args, video_args: VideoConfig | None):
    fingerprint = run_fingerprint(script_args, training_args, model_args, video_args,
                                  data_files=script_args.train_files, model=model_args.model_name_or_path)
    resume = resolve_resume(training_args.resume_from_checkpoint, training_args.output_dir)
    check_resume(resume, fingerprint, is_automatic(training_args.resume_from_checkpoint))
    spec = script_args.prompt_spec(model_args.model_name_or_path, "sft")
    records, report = load_sft_records(
        script_args.train_files, script_args.lenient, script_args.max_samples, seed=training_args.seed,
        data_format=script_args.format_options(),
    )
    eval_records, eval_report = [], None
    if script_args.eval_file:
        eval_records, eval_report = load_sft_records([script_args.eval_file], script_args.lenient,
                                                       data_format=script_args.format_options())
    video = has_video(records, eval_records)
    if video:
        video_args = video_args or VideoConfig()
        records = check_videos(records, video_args, script_args.lenient, report)
        eval_records = check_videos(eval_records, video_args, script_args.lenient, eval_report) if eval_records else []
    records, held_out = split_eval(records, script_args.eval_split_ratio, training_args.seed)
    train_ds = build_sft_dataset(records, spec, script_args.max_text_chars, report, video)
    print(report.summary())
    eval_ds = None
    if held_out:
        print(f"SFT eval split: {len(held_out)} of {len(records) + len(held_out)} records held out (eval_split_ratio "
              f"{script_args.eval_split_ratio})")
        eval_report = DataReport()
        eval_ds = build_sft_dataset(held_out, spec, script_args.max_text_chars, eval_report, video=video)
    elif eval_records:
        eval_ds = build_sft_dataset(eval_records, spec, script_args.max_text_chars, eval_report, video)

    model, processor = load_model_and_processor(script_args, training_args, model_args, spec)
    if training_args.max_length is not None:  # before training: the collator must never cut an example
        count = token_counter(processor, training_args, video_args if video else None)
        train_ds = drop_over_max_length(train_ds, count, training_args.max_length, script_args.lenient, report)
        print(f"SFT data: {len(report.dropped_tokens)} dropped over max_length={training_args.max_length} tokens, "
              f"{len(train_ds)} examples")
        if eval_ds is not None:
            eval_ds = drop_over_max_length(eval_ds, count, training_args.max_length, script_args.lenient, eval_report)
    collator = None
    if video:  # TRL's vision collator takes images only; its column filter would drop 'video'
        collator = VideoSFTCollator(processor, video_args, assistant_only=training_args.assistant_only_loss,
                                    max_length=training_args.max_length)
        training_args.remove_unused_columns = False
    trainer = MMSFTTrainer(
        model=model,
        args=training_args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=processor,
        data_collator=collator,
        peft_config=peft_config_for(model_args),
        callbacks=[prompt_spec_callback(spec), PreemptionCallback()],
    )
    trainer.prompt_spec = spec
    trainer.run_fingerprint = fingerprint  # written into every checkpoint (mmreason.resume)
    check_distributed(trainer, resume)
    if trainer.accelerator.is_main_process:
        out = Path(training_args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "sft_data_report.json").write_text(json.dumps(report.to_json(), indent=1))
    trainer.train(resume_from_checkpoint=resume)
    if preempted(trainer):  # SIGTERM: the checkpoint is saved; the same command resumes it
        return trainer
    trainer.save_model(training_args.output_dir)  # model (or adapter) + processor: a loadable folder
    if training_args.should_save:
        save_prompt_spec(training_args.output_dir, spec)
    finish_distributed(trainer)
    if hasattr(trainer, "end"):
        trainer.end()
    return trainer


def main(argv: list[str] | None = None) -> int:
    offline_defaults()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    script_args, training_args, model_args, video_args = parse_stage_args(make_parser(), argv, "mmreason sft")
    try:
        trainer = train(script_args, training_args, model_args, video_args)
    except (RecordError, FileNotFoundError, DistributedSetupError, RunLockError, FingerprintMismatch) as e:
        print(f"mmreason sft: error: {e}", file=sys.stderr)  # bad data, launch or output folder: one clear line
        return 2
    if preempted(trainer):
        print(f"SFT stopped by SIGTERM at step {trainer.state.global_step}: checkpoint saved in "
              f"{training_args.output_dir}; the same command resumes it", file=sys.stderr)
        return EXIT_CODE
    print(f"SFT done: {training_args.output_dir}")
    return 0
