"""Build a tiny, real Qwen2.5-VL checkpoint offline (model + tokenizer + processor).

Everything is the real transformers code path: `Qwen2_5_VLForConditionalGeneration`
with random weights, a BPE tokenizer trained locally with the exact Qwen2
pre-tokenizer and wrapped as `Qwen2Tokenizer`, the official chat template, and
`Qwen2_5_VLProcessor` with its image and video processors. The folder loads with
`AutoModelForImageTextToText` / `AutoProcessor` and HF_HUB_OFFLINE=1.
"""

from __future__ import annotations

import argparse
import json
import os
import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import (
    AddedToken,
    GenerationConfig,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2VLImageProcessor,
    Qwen2VLVideoProcessor,
)
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX, Qwen2Tokenizer

from mmreason.offline import offline_defaults

# All Qwen2.5-VL special tokens, in the official order (ids follow the BPE vocab).
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
# Non-special added tokens of the official tokenizer (tool calling / FIM).
EXTRA_TOKENS = ["<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>"]

PATCH = 14
MERGE = 2
PIXELS_PER_TOKEN = (PATCH * MERGE) ** 2  # one LLM token per 28x28 pixels


@dataclass(frozen=True)
class TinySpec:
    vocab_size: int  # BPE vocab before special tokens
    text_hidden: int
    text_layers: int
    text_heads: int
    text_kv_heads: int
    text_intermediate: int
    vision_hidden: int
    vision_depth: int
    vision_heads: int
    vision_intermediate: int
    min_pixels: int
    max_pixels: int


SIZES = {
    # ~0.25M params: what tests use.
    "tiny": TinySpec(1024, 64, 2, 4, 2, 128, 32, 2, 2, 64, 56 * 56, 56 * 56 * 4),
    # ~0.9M params: what the demo trains; learns the synthetic tasks in minutes on 2 cores.
    "small": TinySpec(1024, 128, 3, 4, 2, 256, 64, 2, 4, 128, 56 * 56, 112 * 112),
}


def chat_template() -> str:
    """The official Qwen2.5-VL chat template (TRL ships it byte-identical, which its
    `assistant_only_loss` relies on)."""
    return (resources.files("trl") / "chat_templates" / "qwen2_5_vl.jinja").read_text()


def _mrope_section(head_dim: int) -> list[int]:
    # Official split is [16, 24, 24] for head_dim 128 (t, h, w); scale it, summing to head_dim/2.
    half = head_dim // 2
    t = half * 16 // 64
    h = (half - t) // 2
    return [t, h, half - t - h]


def _tokenizer_corpus(seed: int) -> list[str]:
    """A deterministic corpus covering the synthetic tasks' language, digits and LaTeX."""
    rng = random.Random(seed)
    words = (
        "how many red green blue yellow purple orange black white gray circle circles square squares triangle "
        "triangles shape shapes are there in the image picture figure bar bars chart tallest shortest value "
        "of the sum digits drawn which is larger smaller left right above below top bottom compare size area "
        "perimeter rectangle side sides length width height labelled count counting colour color answer "
        "question first then so therefore total each one two three four five six seven eight nine ten"
    ).split()
    lines = [" ".join(rng.choice(words) for _ in range(12)) for _ in range(300)]
    lines += [
        "Please reason step by step, and put your final answer within \\boxed{}.",
        "You are a helpful assistant.",
        "Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.",
        "Question: What is the value of x? Choices: (A) 1 (B) 2 (C) 3 (D) 4 Answer:",
        "Wait, let me re-check the image. The description says the answer is \\frac{3}{4} = 0.75.",
        "The area of the triangle is \\frac{1}{2} \\times base \\times height, so \\sqrt{2} + 2^{3} - \\pi.",
    ]
    for _ in range(400):
        a, b = rng.randint(0, 999), rng.randint(0, 99)
        lines.append(f"{a} + {b} = {a + b}. {a} - {b} = {a - b}. {a} * {b} = {a * b}. So the answer is \\boxed{{{a + b}}}.")
    return lines


def build_tokenizer(spec: TinySpec, seed: int = 0):
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
        show_progress=False,
    )
    bpe.train_from_iterator(_tokenizer_corpus(seed), trainer=trainer)
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]

    tok = Qwen2Tokenizer(
        vocab=model["vocab"],
        merges=merges,
        unk_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        errors="replace",
        model_max_length=32768,
    )
    tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS], special_tokens=True)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in EXTRA_TOKENS])
    tok.chat_template = chat_template()
    return tok


def build_processor(tokenizer, spec: TinySpec):
    size = {"shortest_edge": spec.min_pixels, "longest_edge": spec.max_pixels}
    image_processor = Qwen2VLImageProcessor(size=size, patch_size=PATCH, merge_size=MERGE, temporal_patch_size=2)
    video_processor = Qwen2VLVideoProcessor(size=size, patch_size=PATCH, merge_size=MERGE, temporal_patch_size=2)
    return Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=chat_template(),
    )


def build_config(tokenizer, spec: TinySpec):
    head_dim = spec.text_hidden // spec.text_heads
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    vocab = len(tokenizer)
    vocab += -vocab % 64  # pad the embedding like the real checkpoints do
    text_config = dict(
        vocab_size=vocab,
        hidden_size=spec.text_hidden,
        intermediate_size=spec.text_intermediate,
        num_hidden_layers=spec.text_layers,
        num_attention_heads=spec.text_heads,
        num_key_value_heads=spec.text_kv_heads,
        max_position_embeddings=4096,
        max_window_layers=spec.text_layers,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": _mrope_section(head_dim)},
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=False,
    )
    vision_config = dict(
        depth=spec.vision_depth,
        hidden_size=spec.vision_hidden,
        intermediate_size=spec.vision_intermediate,
        num_heads=spec.vision_heads,
        out_hidden_size=spec.text_hidden,
        patch_size=PATCH,
        spatial_merge_size=MERGE,
        temporal_patch_size=2,
        window_size=112,
        fullatt_block_indexes=[spec.vision_depth - 1],
        tokens_per_second=2,
    )
    return Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )


def build_tiny_model(out_dir: str | os.PathLike, size: str = "tiny", seed: int = 0) -> Path:
    """Write a complete Qwen2.5-VL checkpoint folder to `out_dir`; returns its path."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {sorted(SIZES)}")
    spec = SIZES[size]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    tokenizer = build_tokenizer(spec, seed)
    processor = build_processor(tokenizer, spec)
    config = build_config(tokenizer, spec)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).to(torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=config.text_config.bos_token_id,
        eos_token_id=[tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")],
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    return out


def main(argv: list[str]) -> int:
    """`mmreason tiny-model OUT_DIR [--size tiny|small] [--seed S]`."""
    p = argparse.ArgumentParser(prog="mmreason tiny-model", description=main.__doc__)
    p.add_argument("out_dir", help="folder to write the checkpoint to")
    p.add_argument("--size", choices=sorted(SIZES), default="tiny", help="tiny (~0.25M params) or small (~0.9M)")
    p.add_argument("--seed", type=int, default=0, help="same seed -> byte-identical files")
    args = p.parse_args(argv)
    offline_defaults()
    out = build_tiny_model(args.out_dir, size=args.size, seed=args.seed)
    print(f"wrote {args.size} Qwen2.5-VL checkpoint to {out}")
    return 0
