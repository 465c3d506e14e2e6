"""`mmreason grpo --config configs/grpo/<name>.yaml [--key value ...]`: the GRPO stage.

parse (TrlParser: script args + MMReasonGRPOConfig + trl.ModelConfig) -> prompt spec (the checkpoint's
prompt.json unless the config sets it) -> records -> dataset -> trainer -> train (resuming from a checkpoint
when asked) -> save (model, processor, prompt.json)."""

from __future__ import annotations

import inspect
import json
import logging
import sys
from dataclasses import dataclass, field, fields

from trl import ModelConfig, TrlParser, get_peft_config

from mmreason.distributed import DistributedSetupError, check_distributed, finish_distributed
from mmreason.errors import RecordError
from mmreason.fingerprint import FingerprintMismatch, check_resume, run_fingerprint
from mmreason.formats import DataFormatArguments
from mmreason.media.video import VideoConfig
from mmreason.modeling import ModelLoad, PromptArguments, deprecated, load_model, load_processor, prompt_spec_callback
from mmreason.offline import offline_defaults
from mmreason.preemption import EXIT_CODE, PreemptionCallback, preempted
from mmreason.prompts import save_prompt_spec
from mmreason.resume import is_automatic, resolve_resume
from mmreason.rewards.registry import build_reward_funcs
from mmreason.rl.callbacks import CollapseWarningCallback
from mmreason.rl.config import MMReasonGRPOConfig
from mmreason.rl.data import build_grpo_dataset
from mmreason.rl.trainer import MMReasonGRPOTrainer
from mmreason.run_lock import RunLock, RunLockError
from mmreason.usage import check_model_path, check_output_dir, check_training_counts, parse_stage_args

logger = logging.getLogger("mmreason.grpo")


@dataclass
class GRPOScriptArguments(PromptArguments, VideoConfig, DataFormatArguments):
    """Data, prompt and reward choices of the GRPO stage (training knobs live in MMReasonGRPOConfig); the video_*
    fields sample and bound the frames of video records (mmreason.media.video.VideoConfig)."""

    train_files: list[str] = field(
        default_factory=list,
        metadata={
            "help": "RL questions: records JSONL (mmreason.records; image paths relative to each file) or any layout "
            "of `data_format` (EasyR1, ms-swift, LLaMA-Factory, verl, NEP), each a JSONL or JSON list, a parquet "
            "file or folder of shards, a `save_to_disk` folder or a Hub id `org/name[@split]` (online). As in SFT."
        },
    )
    train_file: str | None = field(
        default=None, metadata={"help": "Deprecated (one release): one records JSONL; use train_files."}
    )
    eval_file: str | None = field(default=None, metadata={"help": "Optional records JSONL evaluated with eval_strategy."})
    reward_funcs: list[str] = field(
        default_factory=lambda: ["accuracy", "format"],
        metadata={
            "help": "Reward functions: built-in names (accuracy, format, mcq_letter, answer_letter, majority_vote: one "
            "module each in mmreason/rewards/) or plugins 'path/to/file.py:NAME' / 'package.module:NAME'. Weights: "
            "`reward_weights`."
        },
    )
    reward_options: dict | str | None = field(
        default=None,
        metadata={
            "help": "Per-reward keyword options, keyed by the reward_funcs entry (a built-in name or a plugin "
            "spec), e.g. {accuracy: {single_box: false}, my_rewards.py:length: {target: 200}} in YAML or "
            "'{\"accuracy\": {\"single_box\": false}}' on the command line; they reach every reward, built in or "
            "external, as keyword arguments on each call. An option the reward does not take (no such parameter and "
            "no **kwargs) is an error. See each built-in reward's docstring in mmreason/rewards/."
        },
    )
    max_samples: int | None = field(
        default=None,
        metadata={
            "help": "Use a random subset of this many records (seeded by `seed`, kept in file order) as the RL "
            "question pool; the same meaning as in the SFT stage. When "
            "max_steps asks for more prompts than the pool holds, training makes several passes over it, so "
            "the mean reward of one pass and of a later one are measured on the same questions. The subset is drawn "
            "after the max_prompt_chars filter and before the max_prompt_length (token) filter, so the pool can end "
            "up smaller (the build report counts the drops)."
        },
    )
    eval_max_samples: int | None = field(
        default=None,
        metadata={
            "help": "Evaluate on a random subset of this many eval_file records (seeded by `seed`): the same "
            "questions at every evaluation, so the eval reward curve is free of question-sampling noise (drawn before "
            "the prompt-budget filter, like max_samples)."
        },
    )
    lenient: bool = field(
        default=False, metadata={"help": "Skip (and count) bad record lines instead of stopping at the first."}
    )
    require_answer: bool = field(
        default=True,
        metadata={"help": "Reject records without an answer. Set false for label-free rewards (MM-UPT majority vote)."},
    )
    check_media: bool = field(default=True, metadata={"help": "Check every image file opens before training."})

    def __post_init__(self):
        super().__post_init__()
        VideoConfig.__post_init__(self)
        DataFormatArguments.__post_init__(self)
        if self.train_file is not None:
            deprecated("train_file", "train_files")
            if self.train_file not in self.train_files:
                self.train_files = [*self.train_files, self.train_file]
            self.train_file = None
        if isinstance(self.reward_options, str):
            try:
                self.reward_options = json.loads(self.reward_options)
            except json.JSONDecodeError as e:
                raise ValueError(f"reward_options: not JSON ({e}): {self.reward_options!r}") from None
        opts = self.reward_options or {}
        if not isinstance(opts, dict) or not all(isinstance(v, dict) for v in opts.values()):
            raise ValueError(f"reward_options must map reward names to option dicts, got {opts!r}")
        named = [n for n in opts if n not in self.reward_funcs]
        if named:
            raise ValueError(f"reward_options names {named}, which are not in reward_funcs {list(self.reward_funcs)}")

    def video_config(self) -> VideoConfig:
        return VideoConfig(**{f.name: getattr(self, f.name) for f in fields(VideoConfig)})


def make_parser():
    return TrlParser((GRPOScriptArguments, MMReasonGRPOConfig, ModelConfig), prog="mmreason grpo")


def resolve_reward_funcs(names: list[str], num_generations: int, options: dict | None = None, **common) -> list:
    """`reward_funcs` entries (built-in names, `file.py:NAME`, `package.module:NAME`) -> reward callables, in
    order (`mmreason.rewards.registry.build_reward_funcs`: binds num_generations for the group-aware ones, each
    entry's `reward_options`, and `common` options such as stop_token_ids where a reward takes them)."""
    if not names:
        raise ValueError("reward_funcs is empty: name at least one reward function")
    return build_reward_funcs(list(names), num_generations, options=options, **common)


def build_trainer(script_args: GRPOScriptArguments, training_args, model_args):
    """Prompt spec (the options over the starting checkpoint's prompt.json) -> processor -> datasets -> rewards
    -> trainer (which saves the spec as prompt.json with every checkpoint; `trainer.prompt_spec`)."""
    if not script_args.train_files:
        raise ValueError("train_files is required (records JSONL files)")
    load = ModelLoad.from_trl(model_args, training_args.trust_remote_code, training_args.model_init_kwargs)
    spec = script_args.prompt_spec(load.name_or_path, "grpo")
    processor = load_processor(load, spec.min_pixels, spec.max_pixels, padding_side="left", truncation_side="left")

    data_kwargs = dict(
        processor=processor,
        max_prompt_length=training_args.max_prompt_length,
        max_prompt_chars=training_args.max_prompt_chars,
        lenient=script_args.lenient,
        require_answer=script_args.require_answer,
        check_media=script_args.check_media,
        spec=spec,
        video_cfg=script_args.video_config(),
        data_format=script_args.format_options(),
    )
    train_ds, report = build_grpo_dataset(
        script_args.train_files, max_samples=script_args.max_samples, seed=training_args.seed, **data_kwargs
    )
    logger.warning(report.summary())
    eval_ds = None
    if script_args.eval_file and training_args.eval_strategy != "no":
        eval_ds, eval_report = build_grpo_dataset(
            script_args.eval_file, max_samples=script_args.eval_max_samples, seed=training_args.seed, **data_kwargs
        )
        logger.warning(eval_report.summary())

    if load.adapter:
        # TRL would build the KL reference from the adapter's base model, not from base + adapter
        if training_args.beta != 0.0:
            raise ValueError(f"{load.name_or_path} is a LoRA adapter folder: GRPO with beta > 0 needs a merged "
                             "checkpoint as its reference model (merge the adapter first), or beta: 0")
        model = load_model(load)  # base + merged adapter
        training_args.model_init_kwargs = None
    else:
        model = load.name_or_path  # TRL loads it (and the reference model) with these kwargs
        training_args.model_init_kwargs = load.model_kwargs()

    tok = getattr(processor, "tokenizer", processor)
    stop_ids = sorted({i for i in (tok.eos_token_id, tok.pad_token_id) if i is not None})
    reward_funcs = resolve_reward_funcs(
        list(script_args.reward_funcs), training_args.num_generations, options=script_args.reward_options,
        stop_token_ids=stop_ids
    )
    trainer = MMReasonGRPOTrainer(
        model=model,
        reward_funcs=reward_funcs,
        args=training_args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=processor,
        peft_config=get_peft_config(model_args),
        quantization_config=load.quantization.get("quantization_config"),
        callbacks=[prompt_spec_callback(spec), CollapseWarningCallback()],  # the latter: majority-vote collapse
        video_config=script_args.video_config(),
    )
    trainer.build_report = report
    trainer.prompt_spec = spec
    return trainer


def main(argv: list[str] | None = None) -> int:
    offline_defaults()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    script_args, training_args, model_args = parse_stage_args(make_parser(), argv, "mmreason grpo")
    check_training_counts(training_args)
    check_model_path(model_args.model_name_or_path, "model_name_or_path")
    check_output_dir(training_args.output_dir, "output_dir")
    try:
        with RunLock(training_args.output_dir):  # the run owns output_dir until it ends (mmreason.run_lock)
            return _run(script_args, training_args, model_args)
    except (RecordError, FileNotFoundError, DistributedSetupError, RunLockError, FingerprintMismatch) as e:
        print(f"mmreason grpo: error: {e}", file=sys.stderr)  # bad data, launch or output folder: one clear line
        return 2


def _run(script_args: GRPOScriptArguments, training_args, model_args) -> int:
    fingerprint = run_fingerprint(script_args, training_args, model_args, data_files=script_args.train_files,
                                  model=model_args.model_name_or_path)
    resume = resolve_resume(training_args.resume_from_checkpoint, training_args.output_dir)
    check_resume(resume, fingerprint, is_automatic(training_args.resume_from_checkpoint))
    trainer = build_trainer(script_args, training_args, model_args)
    check_distributed(trainer, resume)
    trainer.run_fingerprint = fingerprint  # written into every checkpoint (mmreason.resume)
    trainer.add_callback(PreemptionCallback())  # SIGTERM: finish the step, save a checkpoint, exit 143
    if resume:
        logger.warning("resuming from %s", resume)
    trainer.train(resume_from_checkpoint=resume)
    if preempted(trainer):
        logger.warning("GRPO stopped by SIGTERM at step %d: checkpoint saved in %s; the same command resumes it",
                       trainer.state.global_step, training_args.output_dir)
        return EXIT_CODE
    trainer.save_model(training_args.output_dir)
    trainer.save_state()
    if training_args.should_save:
        save_prompt_spec(training_args.output_dir, trainer.prompt_spec)
    finish_distributed(trainer)
    logger.warning("saved GRPO model to %s", training_args.output_dir)
    return 0
