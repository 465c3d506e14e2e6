"""Which parameters train: vision tower / merger freezing, and LoRA on the language model only."""

from __future__ import annotations

import torch.nn as nn

# Linear layers of the Qwen2.5-VL language model; the regex keeps LoRA off the vision tower and merger.
LANGUAGE_LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


def vision_tower(model: nn.Module) -> nn.Module:
    """The vision encoder of a Qwen2.5-VL model (`model.model.visual` in transformers 5.x)."""
    for path in ("model.visual", "visual", "base_model.model.model.visual"):
        mod = model
        for part in path.split("."):
            mod = getattr(mod, part, None)
            if mod is None:
                break
        if isinstance(mod, nn.Module):
            return mod
    raise AttributeError(f"{type(model).__name__} has no vision tower at model.visual / visual")


def freeze_vision(model: nn.Module, tower: bool = True, merger: bool = False) -> dict[str, int]:
    """Set requires_grad=False on the vision encoder (patch embedding + blocks) and/or its merger.

    Returns parameter counts {"frozen": n, "trainable": m} over the whole model."""
    visual = vision_tower(model)
    merger_mod = getattr(visual, "merger", None)
    merger_ids = {id(p) for p in merger_mod.parameters()} if merger_mod is not None else set()
    for p in visual.parameters():
        in_merger = id(p) in merger_ids
        if (tower and not in_merger) or (merger and in_merger):
            p.requires_grad_(False)
    def numel(p):  # a ZeRO-3 partitioned parameter is an empty placeholder; ds_numel is its full size
        return getattr(p, "ds_numel", p.numel())

    frozen = sum(numel(p) for p in model.parameters() if not p.requires_grad)
    trainable = sum(numel(p) for p in model.parameters() if p.requires_grad)
    return {"frozen": frozen, "trainable": trainable}
