"""Greedy / sampled generation for video prompts with the explicit metadata Qwen2.5-VL needs.

The shared `mmreason.generation` HF backend passes videos to the processor without
`video_metadata` (the processor then assumes 24 fps and the temporal RoPE ids collapse), so video
prompts go through `generate_video` until that backend carries metadata.

An item is `(messages, frames, metadata)`: chat messages whose user turn holds one `{"type": "video"}`
placeholder, the clip's frames (PIL images or a [T, 3, H, W] tensor) and its
{fps, total_num_frames, frames_indices}.
"""

from __future__ import annotations

from typing import Any, Sequence

VideoItem = tuple[list[dict[str, Any]], Any, dict[str, Any]]


def _placeholders(messages: list[dict]) -> list[dict]:
    """Messages with each video part reduced to its placeholder (the template needs only the type)."""
    out = []
    for m in messages:
        content = m["content"]
        if isinstance(content, list):
            content = [{"type": "video"} if p.get("type") == "video" else dict(p) for p in content]
        out.append({"role": m["role"], "content": content})
    return out


def generate_video(model, processor, items: Sequence[VideoItem], max_new_tokens: int = 16, batch_size: int = 4,
                   temperature: float = 0.0) -> list[str]:
    import torch

    outs: list[str] = []
    tok = processor.tokenizer
    for start in range(0, len(items), max(1, batch_size)):
        batch = items[start : start + batch_size]
        texts = [processor.apply_chat_template(_placeholders(m), tokenize=False, add_generation_prompt=True)
                 for m, _, _ in batch]
        inputs = processor(text=texts, videos=[f for _, f, _ in batch], video_metadata=[md for _, _, md in batch],
                           do_sample_frames=False, padding=True, padding_side="left", return_tensors="pt")
        inputs = inputs.to(next(model.parameters()).device)
        kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "pad_token_id": tok.pad_token_id}
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with torch.inference_mode():
            out = model.generate(**inputs, **kwargs)
        outs.extend(tok.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True))
    return outs
