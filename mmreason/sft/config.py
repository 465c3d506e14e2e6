"""Configuration of the SFT stage: our script arguments, and SFTConfig with defaults that fit images."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from trl import SFTConfig

from mmreason.records import BOXED_SUFFIX

_TRAINER_HAS_ACTIVATION_CHECKPOINTING = "activation_checkpointing" in {f.name for f in fields(SFTConfig)}


@dataclass
class SFTScriptArguments:
    train_files: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Records JSONL files to train on (mmreason.records format; image paths relative to each file). "
            "An entry that is not a file is read as a Hugging Face dataset (local `save_to_disk` folder or Hub id, "
            "split 'train') whose columns are record fields."
        },
    )
    eval_file: str | None = field(
        default=None, metadata={"help": "Optional records JSONL evaluated with the SFT loss (set eval_strategy)."}
    )
    system_prompt: str | None = field(
        default=None,
        metadata={"help": "System message. None keeps the chat template's default system message."},
    )
    prompt_suffix: str | None = field(
        default=BOXED_SUFFIX,
        metadata={"help": "Instruction appended to every question (after the lettered options). Empty: none."},
    )
    freeze_vision_tower: bool = field(
        default=True,
        metadata={"help": "Freeze the vision encoder (patch embedding and blocks), as in the paper."},
    )
    freeze_merger: bool = field(
        default=False, metadata={"help": "Also freeze the vision-language merger (projector)."}
    )
    min_pixels: int | None = field(
        default=None, metadata={"help": "Image processor min pixels per image (None: the checkpoint's setting)."}
    )
    max_pixels: int | None = field(
        default=None,
        metadata={"help": "Image processor max pixels per image, e.g. 1204224 (None: the checkpoint's setting)."},
    )
    lenient: bool = field(
        default=False,
        metadata={
            "help": "Skip bad records (counted, reported and written to <output_dir>/sft_data_report.json) instead "
            "of failing on the first one with its file:line."
        },
    )
    max_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N training records (after skipping bad ones)."}
    )


@dataclass
class MMSFTConfig(SFTConfig):
    """SFTConfig with defaults for image data on any machine; every other field is TRL's."""

    max_length: int | None = field(
        default=None,
        metadata={"help": "Max tokens per example. None (default): truncation would cut image tokens."},
    )
    assistant_only_loss: bool = field(
        default=True, metadata={"help": "Compute the loss on assistant tokens only (the reference CoT)."}
    )
    bf16: bool = field(
        default=False, metadata={"help": "bf16 mixed precision. Off by default (CPU); the GPU configs turn it on."}
    )
    dataloader_num_workers: int = field(
        default=0, metadata={"help": "DataLoader worker processes (0: load in the main process)."}
    )
    activation_checkpointing: bool | None = field(
        default=True,
        metadata={"help": "Recompute activations in the backward pass to save memory (~20% slower). Off for CPU demos."},
    )
    gradient_checkpointing: bool | None = field(
        default=None, metadata={"help": "Deprecated alias of activation_checkpointing (transformers 5.23)."}
    )

    def __post_init__(self):
        # transformers < 5.23 (e.g. requirements/gpu.txt's 5.20) has no activation_checkpointing field and
        # reads only gradient_checkpointing: without this the paper configs' `activation_checkpointing: true`
        # would silently train without checkpointing there.
        if not _TRAINER_HAS_ACTIVATION_CHECKPOINTING and self.gradient_checkpointing is None:
            self.gradient_checkpointing = bool(self.activation_checkpointing)
        super().__post_init__()
