"""dynamic_sampling 'refill' (DAPO's dynamic sampling) helpers: the fresh prompt rows of one extra
generation round, and the merge of several rounds' TRL outputs into one generation batch, group by group.

A process's TRL output (`_generate_and_score_completions`) holds its rows of the generation batch, padded
to that round's widths: prompts left-padded, completions right-padded, image tensors flat over the images.
Merging takes whole groups (num_generations consecutive rows) from any round, re-pads every per-token tensor
to the widest round and rebuilds the flat image tensors with TRL's own split/unsplit helpers. Video rollouts
(mmreason/rl/video.py) keep their video tensors as per-sample lists: they are taken row by row like any other
row value (a dataset with videos encodes every batch that way, so all rounds hold the same keys)."""

from __future__ import annotations

import torch
from trl.trainer.utils import split_pixel_values_by_grid, unsplit_pixel_values_by_grid

from mmreason.rl.video import VIDEO_KEYS

# per-token tensors [B, P] (left-padded) and [B, C] (right-padded), with their padding value
# ("pad" = the tokenizer's pad token id)
PROMPT_KEYS = {"prompt_ids": "pad", "prompt_mask": 0}
COMPLETION_KEYS = {
    "completion_ids": "pad",
    "completion_mask": 0,
    "tool_mask": 1,  # TRL pads tool_mask with 1
    "old_per_token_logps": 0.0,
    "ref_per_token_logps": 0.0,
    "sampling_per_token_logps": 0.0,
    "importance_sampling_ratio": 0.0,  # [B, C] in TRL's token modes ([B, 1] in sequence modes: a row value)
}
PROMPT_COMPLETION_KEYS = ("token_type_ids", "mm_token_type_ids")  # [B, P + C]: the prompt's, then zeros
# per-row values after TRL's split_pixel_values_by_grid (lists) or [B] / [B, 1] tensors
ROW_KEYS = ("advantages", "group_mask", "num_images", "num_tiles", "pixel_values", "image_grid_thw",
            "image_position_ids", "pixel_attention_mask", "spatial_shapes", *VIDEO_KEYS)
SCALAR_KEYS = ("num_items_in_batch",)  # recomputed by the caller after the merge


def refill_rows(dataset, num_prompts: int, num_generations: int, process_index: int, n_local: int,
                seed: int, step: int, round_: int) -> list[dict]:
    """This process's rows of a fresh generation batch of `num_prompts` prompts, each repeated num_generations
    times (TRL's RepeatSampler layout: process p holds prompts [p * n_local, (p + 1) * n_local)). The prompts
    are drawn without replacement (with replacement from a smaller dataset) by a generator seeded from
    (seed, micro-step, round): identical on every process, and again after a resume."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step * 7_919 + round_)
    n = len(dataset)
    idx = torch.randperm(n, generator=g) if n >= num_prompts else torch.randint(n, (num_prompts,), generator=g)
    mine = idx[:num_prompts].tolist()[process_index * n_local : (process_index + 1) * n_local]
    return [dataset[i] for i in mine for _ in range(num_generations)]


def _round_up(width: int, multiple: int | None) -> int:
    return width if not multiple else -(-width // multiple) * multiple


def _pad(t: torch.Tensor, width: int, value, left: bool) -> torch.Tensor:
    extra = width - t.size(1)
    if extra == 0:
        return t
    fill = t.new_full((t.size(0), extra), value)
    return torch.cat([fill, t] if left else [t, fill], dim=1)


def merge_groups(outputs: list[dict], picks: list[tuple[int, int]], num_generations: int, pad_token_id: int,
                 pad_to_multiple_of: int | None = None) -> dict:
    """Slot s of the merged batch gets group `picks[s] = (round, group)` of `outputs[round]` (groups are
    num_generations consecutive rows). Every output must hold the same keys (they come from one trainer)."""
    keys = list(outputs[0])
    for r, out in enumerate(outputs[1:], 1):
        if set(out) != set(keys):
            raise ValueError(f"refill round {r} returned keys {sorted(out)}, round 0 {sorted(keys)}")
    unknown = [k for k in keys if k not in PROMPT_KEYS and k not in COMPLETION_KEYS
               and k not in PROMPT_COMPLETION_KEYS and k not in ROW_KEYS and k not in SCALAR_KEYS]
    if unknown:
        raise ValueError(f"dynamic_sampling 'refill' cannot merge the rollout fields {unknown} (image_sizes: "
                         "models that need it are not supported by refill; use 'mask')")
    split = [split_pixel_values_by_grid(out) for out in outputs]
    rows = [(r, j * num_generations + k) for r, j in picks for k in range(num_generations)]
    p_widths = [out["prompt_ids"].size(1) for out in outputs]
    c_widths = [out["completion_ids"].size(1) for out in outputs]
    P = _round_up(max(p_widths), pad_to_multiple_of)
    C = _round_up(max(c_widths), pad_to_multiple_of)

    def fill(value):
        return pad_token_id if value == "pad" else value

    merged = {}
    for key in keys:
        values = [s[key] for s in split]
        if values[0] is None or key in SCALAR_KEYS:
            merged[key] = values[0]
            continue
        if isinstance(values[0], list):
            merged[key] = [values[r][i] for r, i in rows]
            continue
        if key in PROMPT_KEYS:
            padded = [_pad(v, P, fill(PROMPT_KEYS[key]), left=True) for v in values]
        elif key in COMPLETION_KEYS and values[0].dim() == 2 and values[0].size(1) == c_widths[0]:
            padded = [_pad(v, C, fill(COMPLETION_KEYS[key]), left=False) for v in values]
        elif key in PROMPT_COMPLETION_KEYS:
            padded = [torch.cat([_pad(v[:, :p], P, 0, left=True), _pad(v[:, p:], C, 0, left=False)], dim=1)
                      for v, p in zip(values, p_widths)]
        else:  # a [B] or [B, 1] row value
            padded = values
        merged[key] = torch.stack([padded[r][i] for r, i in rows])
    return unsplit_pixel_values_by_grid(merged)
