"""`mmreason grpo --config configs/grpo/<name>.yaml [--key value ...]`: the GRPO stage.

parse (TrlParser: script args + MMReasonGRPOConfig + trl.ModelConfig) -> records -> dataset -> trainer ->
train (resuming from a checkpoint when asked) -> save."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field

from mmreason.distributed import DistributedSetupError, check_distributed, finish_distributed
from mmreason.records import BOXED_SUFFIX, RecordError
from mmreason.resume import resolve_resume

logger = logging.getLogger("mmreason.grpo")


@dataclass
class GRPOScriptArguments:
    """Data and reward choices of the GRPO stage (training knobs live in MMReasonGRPOConfig)."""

    train_file: str | None = field(default=None, metadata={"help": "Records JSONL of RL questions (mmreason.records)."})
    eval_file: str | None = field(default=None, metadata={"help": "Optional records JSONL evaluated with eval_strategy."})
    reward_funcs: list[str] = field(
        default_factory=lambda: ["accuracy", "format"],
        metadata={
            "help": "Reward functions: names from the mmreason.rewards registry (accuracy, format, mcq_letter, "
            "majority_vote, ...) or a dotted import path 'package.module.function'. Weights: `reward_weights`."
        },
    )
    reward_options: dict | str | None = field(
        default=None,
        metadata={
            "help": "Per-reward keyword options, by registry name, e.g. {accuracy: {single_box: false}} in YAML or "
            "'{\"accuracy\": {\"single_box\": false}}' on the command line. An option the reward does not take "
            "is an error. Registry rewards only (a dotted-path reward takes its options in its own code). See each "
            "reward's docstring in mmreason/rewards/."
        },
    )
    max_samples: int | None = field(
        default=None,
        metadata={
            "help": "Use a random subset of this many records (seeded by `seed`) as the RL question pool. When "
            "max_steps asks for more prompts than the pool holds, training makes several passes over it, so "
            "the mean reward of one pass and of a later one are measured on the same questions. The subset is drawn "
            "before the prompt-budget filter, so the pool can end up smaller (the build report counts the drops)."
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
    system_prompt: str | None = field(default=None, metadata={"help": "Optional system message."})
    prompt_suffix: str | None = field(
        default=BOXED_SUFFIX, metadata={"help": "Instruction appended to every question."}
    )
    min_pixels: int | None = field(default=None, metadata={"help": "Image processor min pixels (null: checkpoint's)."})
    max_pixels: int | None = field(default=None, metadata={"help": "Image processor max pixels (null: checkpoint's)."})

    def __post_init__(self):
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


def make_parser():
    from trl import ModelConfig, TrlParser

    from mmreason.rl.config import MMReasonGRPOConfig

    return TrlParser((GRPOScriptArguments, MMReasonGRPOConfig, ModelConfig))


def resolve_reward_funcs(names: list[str], num_generations: int, options: dict | None = None, **common) -> list:
    """Registry names go to mmreason.rewards.build_reward_funcs (which binds num_generations for the
    group-aware ones, and `common` options such as stop_token_ids where a reward takes them); names with a
    dot are imported as 'module.function'. Order is kept."""
    import importlib

    if not names:
        raise ValueError("reward_funcs is empty: name at least one reward function")
    registry = [n for n in names if "." not in n]
    built = []
    if registry:
        from mmreason.rewards import build_reward_funcs

        built = list(build_reward_funcs(registry, num_generations, options=options, **common))
    funcs = []
    for name in names:
        if "." in name:
            module, attr = name.rsplit(".", 1)
            funcs.append(getattr(importlib.import_module(module), attr))
        else:
            funcs.append(built.pop(0))
    return funcs


def build_trainer(script_args: GRPOScriptArguments, training_args, model_args):
    from transformers import AutoProcessor

    from mmreason.rl.data import build_grpo_dataset, configure_processor
    from mmreason.rl.trainer import MMReasonGRPOTrainer

    if not script_args.train_file:
        raise ValueError("train_file is required (a records JSONL)")
    model_id = model_args.model_name_or_path
    if not model_id:
        raise ValueError("model_name_or_path is required")
    processor = AutoProcessor.from_pretrained(
        model_id,
        revision=model_args.model_revision,
        trust_remote_code=training_args.trust_remote_code,
        padding_side="left",
        truncation_side="left",
    )
    configure_processor(processor, script_args.min_pixels, script_args.max_pixels)

    data_kwargs = dict(
        processor=processor,
        max_prompt_length=training_args.max_prompt_length,
        lenient=script_args.lenient,
        require_answer=script_args.require_answer,
        check_media=script_args.check_media,
        system_prompt=script_args.system_prompt,
        prompt_suffix=script_args.prompt_suffix,
    )
    train_ds, report = build_grpo_dataset(
        script_args.train_file, max_samples=script_args.max_samples, seed=training_args.seed, **data_kwargs
    )
    logger.warning(report.summary())
    eval_ds = None
    if script_args.eval_file and training_args.eval_strategy != "no":
        eval_ds, eval_report = build_grpo_dataset(
            script_args.eval_file, max_samples=script_args.eval_max_samples, seed=training_args.seed, **data_kwargs
        )
        logger.warning(eval_report.summary())

    model_init_kwargs = dict(
        revision=model_args.model_revision,
        trust_remote_code=training_args.trust_remote_code,
        attn_implementation=model_args.attn_implementation,
        dtype=model_args.dtype,
        use_safetensors=True,  # no pickled weights (model_init_kwargs may override)
    )
    model_init_kwargs.update(training_args.model_init_kwargs or {})
    training_args.model_init_kwargs = model_init_kwargs

    from trl import get_peft_config

    tok = getattr(processor, "tokenizer", processor)
    stop_ids = sorted({i for i in (tok.eos_token_id, tok.pad_token_id) if i is not None})
    reward_funcs = resolve_reward_funcs(
        list(script_args.reward_funcs), training_args.num_generations, options=script_args.reward_options,
        stop_token_ids=stop_ids
    )
    trainer = MMReasonGRPOTrainer(
        model=model_id,
        reward_funcs=reward_funcs,
        args=training_args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=processor,
        peft_config=get_peft_config(model_args),
    )
    trainer.build_report = report
    return trainer


def main(argv: list[str] | None = None) -> int:
    from mmreason.offline import offline_defaults

    offline_defaults()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = make_parser()
    script_args, training_args, model_args = parser.parse_args_and_config(args=argv)
    try:
        trainer = build_trainer(script_args, training_args, model_args)
        resume = resolve_resume(training_args.resume_from_checkpoint, training_args.output_dir)
        check_distributed(trainer, resume)
    except (RecordError, FileNotFoundError, DistributedSetupError) as e:  # bad data or launch: one clear line
        print(f"mmreason grpo: error: {e}", file=sys.stderr)
        return 2
    if resume:
        logger.warning("resuming from %s", resume)
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(training_args.output_dir)
    trainer.save_state()
    finish_distributed(trainer)
    logger.warning("saved GRPO model to %s", training_args.output_dir)
    return 0
