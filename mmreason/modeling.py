"""The one model/processor loader (SFT, GRPO and the HF generation backend) and the prompt options every
training stage shares.

- `ModelLoad`: how a checkpoint is loaded (trl.ModelConfig's fields + trust_remote_code, off by default);
  a LoRA adapter folder loads its base model and merges the adapter.
- `load_processor` / `apply_image_bounds`: the processor with the min/max pixel bounds, applied one way.
- `PromptArguments`: system_prompt / instruction / prompt_template / min_pixels / max_pixels as stage options;
  unset options come from the checkpoint's prompt.json (`mmreason.prompts`).
- `prompt_spec_callback`: writes prompt.json into every checkpoint-N folder a trainer saves.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmreason.prompts import PromptSpec, load_template, resolve_prompt_spec, save_prompt_spec
from mmreason.usage import UsageError, check_model_path

logger = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"
# A checkpoint folder a processor loads from has one of each group (transformers writes them with save_pretrained).
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


# ---------------------------------------------------------------- checkpoints and LoRA adapter folders


def is_adapter_dir(path: str | os.PathLike) -> bool:
    return (Path(path) / ADAPTER_CONFIG).is_file()


def adapter_base(path: str | os.PathLike) -> str:
    """The base model a LoRA adapter folder was trained on (its adapter_config.json)."""
    cfg = json.loads((Path(path) / ADAPTER_CONFIG).read_text())
    base = cfg.get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{path}/{ADAPTER_CONFIG}: no 'base_model_name_or_path'")
    try:  # a base folder moved or deleted since training (the Hub would say 'Repo id must be in the form ...')
        check_model_path(base, f"{Path(path) / ADAPTER_CONFIG}: base_model_name_or_path")
    except UsageError as e:
        raise UsageError(f"{e}; the LoRA adapter's base model is gone: put it back or edit that field") from None
    return base


def has_processor_files(folder: str | os.PathLike) -> bool:
    folder = Path(folder)
    return any((folder / f).is_file() for f in PROCESSOR_FILES) and any((folder / f).is_file() for f in TOKENIZER_FILES)


def check_processor_files(src: str | os.PathLike) -> None:
    """A local checkpoint folder without its processor/tokenizer files is named here, before any weights load
    (transformers says "Can't load image processor ... make sure you don't have a local directory ...")."""
    folder = Path(src)
    if folder.is_dir() and not has_processor_files(folder):
        raise UsageError(f"{folder}: no processor files (one of {' / '.join(PROCESSOR_FILES)} and one of "
                         f"{' / '.join(TOKENIZER_FILES)}): copy them from the base model the checkpoint was trained "
                         "from (save_pretrained writes them beside the weights)")


@dataclass
class ModelLoad:
    """How a checkpoint (folder or Hub id) is loaded; the same kwargs in every stage."""

    name_or_path: str
    revision: str | None = None
    dtype: str | None = None  # "auto" | "bfloat16" | "float16" | "float32" | None (transformers' default)
    attn_implementation: str | None = None
    trust_remote_code: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)  # model_init_kwargs from the training config
    quantization: dict[str, Any] = field(default_factory=dict)  # quantization_config + device_map (k-bit)

    @classmethod
    def from_trl(cls, model_args, trust_remote_code: bool = False, model_init_kwargs: dict | None = None) -> "ModelLoad":
        """From trl.ModelConfig (+ the training config's trust_remote_code and model_init_kwargs)."""
        if not model_args.model_name_or_path:
            raise ValueError("model_name_or_path is required")
        quant: dict[str, Any] = {}
        if model_args.load_in_4bit or model_args.load_in_8bit:
            # lazy: trl loads torch; imported by model-free commands
            from trl import get_kbit_device_map, get_quantization_config

            quant = dict(quantization_config=get_quantization_config(model_args), device_map=get_kbit_device_map())
        return cls(
            name_or_path=str(model_args.model_name_or_path),
            revision=model_args.model_revision,
            dtype=model_args.dtype,
            attn_implementation=model_args.attn_implementation,
            trust_remote_code=bool(trust_remote_code),
            overrides=dict(model_init_kwargs) if isinstance(model_init_kwargs, dict) else {},
            quantization=quant,
        )

    @property
    def adapter(self) -> str | None:
        """The adapter folder when name_or_path is a LoRA adapter (merged into its base on load)."""
        return self.name_or_path if is_adapter_dir(self.name_or_path) else None

    @property
    def base(self) -> str:
        return adapter_base(self.name_or_path) if self.adapter else self.name_or_path

    def model_kwargs(self) -> dict[str, Any]:
        """`from_pretrained` kwargs (JSON-serialisable: TRL keeps them in its config as model_init_kwargs).
        Weights load from safetensors only; `overrides` win."""
        kwargs: dict[str, Any] = dict(
            revision=None if self.adapter else self.revision,  # a revision names the adapter's repo, not the base's
            trust_remote_code=self.trust_remote_code,
            attn_implementation=self.attn_implementation,
            dtype=self.dtype,
            use_safetensors=True,
        )
        kwargs.update(self.overrides)
        return kwargs


def load_model(load: ModelLoad):
    """AutoModelForImageTextToText from `load` (on CPU unless a k-bit device map says otherwise); a LoRA adapter
    folder loads its base and merges the adapter, so the result is a plain model."""
    import torch  # lazy: torch; imported by model-free commands
    from transformers import AutoModelForImageTextToText  # lazy: transformers; imported by model-free commands

    check_processor_files(processor_source(load))  # fail before the weights load, not after
    kwargs = load.model_kwargs()
    dtype = kwargs.get("dtype")
    if isinstance(dtype, str) and dtype != "auto":
        kwargs["dtype"] = getattr(torch, dtype)
    for k, v in load.quantization.items():
        kwargs.setdefault(k, v)  # model_init_kwargs (overrides) win
    model = AutoModelForImageTextToText.from_pretrained(load.base, **kwargs)
    if load.adapter:
        from peft import PeftModel  # lazy: peft loads torch; imported by model-free commands

        model = PeftModel.from_pretrained(model, load.adapter).merge_and_unload()
    return model


def processor_source(load: ModelLoad) -> str:
    """Where the processor loads from: the checkpoint, or an adapter folder without its own files: its base."""
    if load.adapter and not has_processor_files(load.name_or_path):
        return load.base
    return load.name_or_path


def load_processor(load: ModelLoad, min_pixels: int | None = None, max_pixels: int | None = None, **kwargs):
    """AutoProcessor of the checkpoint (an adapter folder without its own processor files: its base's), with
    the image bounds applied. `kwargs` go to from_pretrained (e.g. padding_side)."""
    from transformers import AutoProcessor  # lazy: transformers; imported by model-free commands

    src = processor_source(load)
    check_processor_files(src)
    processor = AutoProcessor.from_pretrained(
        src, revision=None if load.adapter else load.revision, trust_remote_code=load.trust_remote_code, **kwargs
    )
    return apply_image_bounds(processor, min_pixels, max_pixels)


def apply_image_bounds(processor, min_pixels: int | None = None, max_pixels: int | None = None):
    """Set per-image pixel bounds (one LLM token per 28x28 pixels) on a Qwen2-VL style image processor: its
    `size` edges and min_pixels/max_pixels attributes. None keeps the processor's own bound."""
    ip = getattr(processor, "image_processor", None)
    if ip is None or (min_pixels is None and max_pixels is None):
        return processor
    size = dict(getattr(ip, "size", None) or {})
    if min_pixels is not None:
        size["shortest_edge"] = int(min_pixels)
    if max_pixels is not None:
        size["longest_edge"] = int(max_pixels)
    lo, hi = size.get("shortest_edge"), size.get("longest_edge")
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"min_pixels {lo} > max_pixels {hi}")
    ip.size = type(ip.size)(**size) if getattr(ip, "size", None) is not None else size
    for name, value in (("min_pixels", min_pixels), ("max_pixels", max_pixels)):
        if value is not None and hasattr(ip, name):
            setattr(ip, name, int(value))
    return processor


# ---------------------------------------------------------------- prompt options of the training stages

_FROM_CHECKPOINT = "Not set (null): the value in the starting checkpoint's prompt.json, else "


@dataclass
class PromptArguments:
    """How prompts are built in a training stage. Every option left unset is taken from the prompt.json of the
    checkpoint the stage starts from (model_name_or_path), else from the default; the stage then saves the
    result as prompt.json with its own checkpoints. A set value that differs from the checkpoint's is logged."""

    system_prompt: str | None = field(default=None, metadata={
        "help": "System message. " + _FROM_CHECKPOINT + "none (the chat template's default system message). "
                "Empty string: no system message."})
    instruction: str | None = field(default=None, metadata={
        "help": "Instruction after the question (after the lettered options), `{{ instruction }}` in "
                "prompt_template. " + _FROM_CHECKPOINT + "'Please reason step by step, and put your final answer "
                "within \\boxed{}.'. Empty string: no instruction."})
    prompt_template: str | None = field(default=None, metadata={
        "help": "jinja2 template of the user text (fields: question, choices, instruction), or a .jinja/.j2 file "
                "holding it. " + _FROM_CHECKPOINT + "the default (question, 'Choices:' lines, instruction)."})
    min_pixels: int | None = field(default=None, metadata={
        "help": "Image processor min pixels per image. " + _FROM_CHECKPOINT + "the processor's own setting."})
    max_pixels: int | None = field(default=None, metadata={
        "help": "Image processor max pixels per image, e.g. 1204224. " + _FROM_CHECKPOINT
                + "the processor's own setting."})
    def explicit(self) -> dict[str, Any]:
        """The prompt-spec fields this config sets."""
        values = {"system": self.system_prompt, "instruction": self.instruction, "min_pixels": self.min_pixels,
                  "max_pixels": self.max_pixels,
                  "template": load_template(self.prompt_template) if self.prompt_template is not None else None}
        return {k: v for k, v in values.items() if v is not None}

    def prompt_spec(self, model: str | os.PathLike, what: str) -> PromptSpec:
        """The spec for a stage starting from `model`: its prompt.json (if any) with this config's values on top."""
        return resolve_prompt_spec(model, self.explicit(), what)


def deprecated(old: str, new: str) -> None:
    msg = f"`{old}` is deprecated and will be removed in the next release: use `{new}`"
    warnings.warn(msg, FutureWarning, stacklevel=3)
    logger.warning(msg)


def prompt_spec_callback(spec: PromptSpec):
    """A TrainerCallback that writes `spec` as prompt.json into each checkpoint-N folder the trainer saves."""
    from transformers import TrainerCallback  # lazy: transformers; imported by model-free commands
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR  # lazy: transformers; imported by model-free commands

    class SavePromptSpec(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
            if args.should_save and folder.is_dir():
                save_prompt_spec(folder, spec)

    return SavePromptSpec()
