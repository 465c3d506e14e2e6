"""Under ZeRO-3 every rank calls the vision tower exactly once in every full forward, whatever its batch holds.

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

A rank whose batch holds both images and videos would call the tower twice beside a rank with one kind
calling it once: such a forward runs its images and videos through one tower call (ms-swift does the same).
Decode steps of generation (a non-empty KV cache) never carry pixels on any rank, so they are left alone.
"""

from __future__ import annotations

import functools
import logging

import torch
import torch.nn as nn
from PIL import Image
from transformers.modeling_outputs import BaseModelOutputWithPooling

logger = logging.getLogger(__name__)

def vision_language_model(model: nn.Module) -> nn.Module:
    """The module whose forward calls the vision tower (Qwen2.5-VL's `model.model`: `visual` is its own child),
    through PEFT and wrapper modules."""
    for mod in model.modules():
        if "visual" in mod._modules and hasattr(mod, "get_input_embeddings"):
            return mod
    raise AttributeError(f"{type(model).__name__} has no module holding a vision tower (`visual`)")


def dummy_image_inputs(processor) -> dict[str, torch.Tensor]:
    """pixel_values and image_grid_thw of one black 32x32 image (resized by the processor to its pixel bounds)."""
    out = processor.image_processor(images=[Image.new("RGB", (32, 32))], return_tensors="pt")
    return {"pixel_values": out["pixel_values"], "image_grid_thw": out["image_grid_thw"]}


def _decoding(kwargs: dict) -> bool:
    cache = kwargs.get("past_key_values")
    return cache is not None and hasattr(cache, "get_seq_length") and cache.get_seq_length() > 0


def one_tower_call(module: nn.Module, dummy: dict[str, torch.Tensor], args: tuple, kwargs: dict):
    """(args, kwargs) of `module`'s forward such that it calls the vision tower exactly once: with no image and
    no video input, the dummy image's 0 x features are added to the input embeddings; with images and videos,
    both go through one tower call (as ms-swift does) and reach the forward as `mm_encoder_outputs`; otherwise,
    and on decode steps, unchanged."""
    encoded = kwargs.get("mm_encoder_outputs") or {}  # generation passes {} when it has nothing precomputed
    if any(v is not None for v in encoded.values()) or _decoding(kwargs):
        return args, kwargs
    if args:  # input_ids given positionally
        kwargs = {**kwargs, "input_ids": args[0]}
        args = args[1:]
    images, videos = kwargs.get("pixel_values"), kwargs.get("pixel_values_videos")
    if images is not None and videos is not None:
        return args, _images_and_videos_at_once(module, kwargs)
    if images is not None or videos is not None:
        return args, kwargs
    embeds = kwargs.get("inputs_embeds")
    if embeds is None:
        embeds = module.get_input_embeddings()(kwargs["input_ids"])
    visual = module.visual
    pixels, grid = dummy["pixel_values"].to(embeds.device, visual.dtype), dummy["image_grid_thw"].to(embeds.device)
    out = visual(pixels, grid_thw=grid)
    features = out.pooler_output if hasattr(out, "pooler_output") else out
    # input_ids stay: the placeholder masks and the 3D positions are computed from them
    return args, {**kwargs, "inputs_embeds": embeds + features.mean().to(embeds.dtype) * 0.0}


def _images_and_videos_at_once(module: nn.Module, kwargs: dict) -> dict:
    visual = module.visual
    grid_i, grid_v = kwargs["image_grid_thw"], kwargs["video_grid_thw"]
    pixels = torch.cat([kwargs["pixel_values"].type(visual.dtype), kwargs["pixel_values_videos"].type(visual.dtype)])
    grids = torch.cat([grid_i, grid_v])
    out = visual(pixels, grid_thw=grids)  # items attend within themselves (cu_seqlens): the same features
    parts = torch.split(out.pooler_output, (grids.prod(-1) // visual.spatial_merge_size**2).tolist())
    n = grid_i.size(0)
    encoded = {"image": BaseModelOutputWithPooling(pooler_output=parts[:n]),
               "video": BaseModelOutputWithPooling(pooler_output=parts[n:])}  # fmt: skip
    return {**kwargs, "pixel_values": None, "pixel_values_videos": None, "mm_encoder_outputs": encoded}


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
    inner = vision_language_model(model)
    dummy = dummy_image_inputs(processor)
    original = inner.forward

    @functools.wraps(original)
    def forward(*args, **kwargs):
        args, kwargs = one_tower_call(inner, dummy, args, kwargs)
        return original(*args, **kwargs)

    inner.forward = forward
    logger.info("ZeRO-3: every forward calls the vision tower once (a dummy image x 0 without images or videos)")
    return Installed(inner)
