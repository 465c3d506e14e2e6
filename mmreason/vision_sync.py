"""Under ZeRO-3 every rank runs the vision tower in every full forward, even on a batch without images.

ZeRO-3 gathers a module's parameter shards from all ranks when the module runs: a collective every rank must
join. A batch of text-only records skips Qwen2.5-VL's vision tower, so with images on one rank and none on
another the ranks' gathers no longer pair up: NCCL hangs, gloo aborts ("Received data size doesn't match
expected size ... collective mismatch"; reproduced on CPU, tests/test_distributed.py). As ms-swift does
(`Template._get_inputs_embeds_hf`), a forward that has no image and no video input runs the tower on one small
black image and adds 0 x the mean of its output to the input embeddings: the gathers (and, in backward, the
merger's gradient reduction) then happen on every rank, and the loss, logits and every other gradient are
unchanged bit for bit (x + 0.0 == x; the tower's own gradients are zeros, which ZeRO's flat gradient
partitions hold for an unused parameter anyway). Installed only under ZeRO-3 (`mmreason.distributed.
check_distributed`): without sharded parameters nothing needs it, and a zero gradient is not neutral for a plain
optimizer (AdamW would decay a parameter whose gradient is otherwise None).

Decode steps of generation (a non-empty KV cache) never carry pixels on any rank, so they are left alone.
A rank whose batch holds both images and videos calls the tower twice, a rank with one kind once: that mix is
not equalised here.
"""

from __future__ import annotations

import logging

import torch
import torch.nn as nn

logger = logging.getLogger(__name__)

MEDIA_KWARGS = ("pixel_values", "pixel_values_videos")


def vision_language_model(model: nn.Module) -> nn.Module:
    """The module whose forward calls the vision tower (Qwen2.5-VL's `model.model`: `visual` is its own child),
    through PEFT and wrapper modules."""
    for mod in model.modules():
        if "visual" in mod._modules and hasattr(mod, "get_input_embeddings"):
            return mod
    raise AttributeError(f"{type(model).__name__} has no module holding a vision tower (`visual`)")


def dummy_image_inputs(processor) -> dict[str, torch.Tensor]:
    """pixel_values and image_grid_thw of one black 32x32 image (resized by the processor to its pixel bounds)."""
    from PIL import Image

    out = processor.image_processor(images=[Image.new("RGB", (32, 32))], return_tensors="pt")
    return {"pixel_values": out["pixel_values"], "image_grid_thw": out["image_grid_thw"]}


def _decoding(kwargs: dict) -> bool:
    cache = kwargs.get("past_key_values")
    return cache is not None and hasattr(cache, "get_seq_length") and cache.get_seq_length() > 0


def with_dummy_image(module: nn.Module, dummy: dict[str, torch.Tensor], args: tuple, kwargs: dict):
    """(args, kwargs) of `module`'s forward, with the dummy image's 0 x features added to the input embeddings
    when the call has no image and no video input and is not a decode step; unchanged otherwise."""
    encoded = kwargs.get("mm_encoder_outputs") or {}  # generation passes {} when it has nothing precomputed
    if any(kwargs.get(k) is not None for k in MEDIA_KWARGS) or any(v is not None for v in encoded.values()):
        return args, kwargs
    if _decoding(kwargs):
        return args, kwargs
    if args:  # input_ids given positionally
        kwargs = {**kwargs, "input_ids": args[0]}
        args = args[1:]
    embeds = kwargs.get("inputs_embeds")
    if embeds is None:
        embeds = module.get_input_embeddings()(kwargs["input_ids"])
    visual = module.visual
    pixels, grid = dummy["pixel_values"].to(embeds.device, visual.dtype), dummy["image_grid_thw"].to(embeds.device)
    out = visual(pixels, grid_thw=grid)
    features = out.pooler_output if hasattr(out, "pooler_output") else out
    # input_ids stay: the placeholder masks and the 3D positions are computed from them
    return args, {**kwargs, "inputs_embeds": embeds + features.mean().to(embeds.dtype) * 0.0}


class Installed:
    """The wrapped forward of one module; `remove()` restores the class's forward."""

    def __init__(self, module: nn.Module):
        self.module = module

    def remove(self) -> None:
        self.module.__dict__.pop("forward", None)


def run_vision_on_every_forward(model: nn.Module, processor) -> Installed:
    """Make `model`'s vision-language module run the vision tower on a dummy image in every forward without
    media (see the module docstring). The dummy runs inside that module's forward, not in a forward pre-hook:
    ZeRO-3 checks that every rank fetches the modules in the same order, and its own pre-hook on the module
    must come first, as on a rank with images."""
    import functools

    inner = vision_language_model(model)
    dummy = dummy_image_inputs(processor)
    original = inner.forward

    @functools.wraps(original)
    def forward(*args, **kwargs):
        args, kwargs = with_dummy_image(inner, dummy, args, kwargs)
        return original(*args, **kwargs)

    inner.forward = forward
    logger.info("ZeRO-3: a forward without images or videos runs the vision tower on a dummy image (x 0)")
    return Installed(inner)
