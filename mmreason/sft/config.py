"""Configuration of the SFT stage: our script arguments, and SFTConfig with defaults that fit images."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from trl import SFTConfig

from mmreason.formats import DataFormatArguments
from mmreason.modeling import PromptArguments
from mmreason.prompts import MAX_TEXT_CHARS

_TRAINER_HAS_ACTIVATION_CHECKPOINTING = "activation_checkpointing" in {f.name for f in fields(SFTConfig)}


@dataclass
class SFTScriptArguments(PromptArguments, DataFormatArguments):
    train_files: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Data to train on: records JSONL (mmreason.records; image paths relative to each file) or any "
            "layout of `data_format` (EasyR1, ms-swift, LLaMA-Factory, verl, NEP), each a JSONL or JSON list, a "
            "parquet file or folder of shards, a `save_to_disk` folder or a Hub id `org/name[@split]` (online)."
        },
    )
    eval_file: str | None = field(
        default=None, metadata={"help": "Optional records JSONL evaluated with the SFT loss (set eval_strategy)."}
    )
    eval_split_ratio: float = field(
        default=0.0,
        metadata={
            "help": "Hold out this fraction of the training records (at least one record, a random sample seeded by "
            "`seed`) as the eval set scored with the SFT loss at eval_strategy, as ms-swift's split_dataset_ratio "
            "(its default is 0.01). 0: no split. Not together with eval_file."
        },
    )
    freeze_vision_tower: bool = field(
        default=True,
        metadata={"help": "Freeze the vision encoder (patch embedding and blocks), as in the paper."},
    )
    freeze_merger: bool = field(
        default=False, metadata={"help": "Also freeze the vision-language merger (projector)."}
    )
    lenient: bool = field(
        default=False,
        metadata={
            "help": "Skip bad records (counted, reported and written to <output_dir>/sft_data_report.json) instead "
            "of failing on the first one with its file:line."
        },
    )
    max_samples: int | None = field(
        default=None,
        metadata={
            "help": "Train on a random subset of this many records (seeded by `seed`, kept in file order), drawn "
            "after skipping bad ones. The same meaning as in the GRPO stage."
        },
    )
    max_text_chars: int | None = field(
        default=MAX_TEXT_CHARS,
        metadata={
            "help": "Drop (counted in the data report, naming the record id) an example whose text (system message, "
            "question, choices, instruction and solution) is longer than this many characters. Checked before "
            "tokenisation: a 1 MB question would otherwise exhaust memory inside the tokenizer. None: no limit."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        DataFormatArguments.__post_init__(self)
        if not 0.0 <= self.eval_split_ratio < 1.0:
            raise ValueError(f"eval_split_ratio must be in [0, 1), got {self.eval_split_ratio}")
        if self.eval_split_ratio and self.eval_file:
            raise ValueError("set eval_file or eval_split_ratio, not both")


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
