"""One generation interface over two backends: Hugging Face transformers (CPU or GPU) and vLLM
(GPU only, imported lazily).

Input is a list of `(messages, images)` pairs: chat messages whose user content holds
`{"type": "image"}` placeholders (as `mmreason.chat.prompt_messages` builds them) and the
image paths or PIL images that fill those placeholders in order; video parts come filled (a qwen-vl-utils
part with a path, or pre-decoded frames with their `video_metadata`: `mmreason.generation.vision`). Output is
one text per pair.
Used by the eval harness and the data builder's local teachers (`mmreason.generation`).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from tqdm.auto import tqdm

from mmreason.generation.vision import placeholders, video_bounds_of, vision_inputs
from mmreason.generation.vllm_requests import vllm_request
from mmreason.modeling import ModelLoad, adapter_base, is_adapter_dir, load_model, load_processor

logger = logging.getLogger(__name__)

Item = tuple[list[dict[str, Any]], list[Any]]  # (messages, images)


@dataclass
class GenerationSettings:
    """Sampling and batching settings shared by both backends."""

    max_new_tokens: int = field(default=16384, metadata={"help": "Maximum new tokens per response."})
    temperature: float = field(default=0.0, metadata={"help": "0 = greedy decoding; > 0 = sampling."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass (sampling only)."})
    batch_size: int = field(default=16, metadata={"help": "Prompts per generate() call (HF backend)."})
    min_pixels: int | None = field(default=None, metadata={"help": "Per-image min pixels (qwen-vl-utils)."})
    max_pixels: int | None = field(default=None, metadata={"help": "Per-image max pixels (qwen-vl-utils)."})
    seed: int = field(default=0, metadata={"help": "Sampling seed."})


def fill_images(messages: list[dict[str, Any]], images: Sequence[Any], settings: GenerationSettings) -> list[dict]:
    """Put each image (path or PIL image) into its `{"type": "image"}` placeholder, with the
    min/max pixel bounds qwen-vl-utils honours per image."""
    it = iter(images)
    msgs = []
    for m in messages:
        m = dict(m)
        if isinstance(m.get("content"), list):
            m["content"] = [dict(part) for part in m["content"]]  # fresh dicts, even for repeated parts
            for part in m["content"]:
                if part.get("type") == "image" and "image" not in part:
                    try:
                        img = next(it)
                    except StopIteration:
                        raise ValueError("more image placeholders than images") from None
                    part["image"] = str(img) if isinstance(img, (str, os.PathLike)) else img
                    if settings.min_pixels is not None:
                        part["min_pixels"] = settings.min_pixels
                    if settings.max_pixels is not None:
                        part["max_pixels"] = settings.max_pixels
        msgs.append(m)
    if next(it, None) is not None:
        raise ValueError("more images than image placeholders")
    return msgs


def _progress(total: int, desc: str, enabled: bool):
    return tqdm(total=total, desc=desc, disable=not enabled, dynamic_ncols=True)


class HFBackend:
    """transformers generation: AutoModelForImageTextToText + AutoProcessor, left padding."""

    name = "hf"

    def __init__(self, model_path: str, settings: GenerationSettings | None = None, device: str | None = None,
                 dtype: str | None = None, trust_remote_code: bool = False):
        import torch  # lazy: torch; imported by model-free commands

        self.settings = settings or GenerationSettings()
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        load = ModelLoad(str(model_path), dtype=dtype or ("bfloat16" if self.device == "cuda" else "float32"),
                         trust_remote_code=trust_remote_code)
        self.model = load_model(load).to(self.device).eval()
        # the bounds go on the processor too (not only per image to qwen-vl-utils), so they mean the same as in training
        self.processor = load_processor(load, self.settings.min_pixels, self.settings.max_pixels)
        self.processor.tokenizer.padding_side = "left"

    @classmethod
    def from_model(cls, model: Any, processor: Any, settings: GenerationSettings | None = None) -> "HFBackend":
        """Wrap an already-loaded model and processor (e.g. in a training process) without reloading."""
        self = cls.__new__(cls)
        self.settings = settings or GenerationSettings()
        self.model = model
        self.device = str(next(model.parameters()).device)
        self.processor = processor  # padding side is switched to left only during generate()
        return self

    def encode(self, batch: list[Item]):
        """Processor inputs of a batch (left padded): images filled with the pixel bounds, videos with their
        explicit metadata and frame-exact pixel bounds (`mmreason.generation.vision`)."""
        convs = [fill_images(m, imgs, self.settings) for m, imgs in batch]
        texts = [self.processor.apply_chat_template(placeholders(c), tokenize=False, add_generation_prompt=True)
                 for c in convs]
        vision = vision_inputs(convs)
        tok = self.processor.tokenizer
        side, tok.padding_side = tok.padding_side, "left"  # restored: a training processor may be shared
        try:
            with video_bounds_of(self.processor, vision.get("videos")):
                inputs = self.processor(text=texts, padding=True, return_tensors="pt", **vision)
        finally:
            tok.padding_side = side
        return inputs.to(self.device)  # keeps mm_token_type_ids (mrope positions need it)

    def _generate_batch(self, batch: list[Item]) -> list[str]:
        import torch  # lazy: torch; imported by model-free commands

        s = self.settings
        inputs = self.encode(batch)
        tok = self.processor.tokenizer
        kwargs: dict[str, Any] = {"max_new_tokens": s.max_new_tokens}
        if s.temperature and s.temperature > 0:
            kwargs.update(do_sample=True, temperature=s.temperature, top_p=s.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with torch.inference_mode():
            out = self.model.generate(**inputs, **kwargs, pad_token_id=tok.pad_token_id)
        new = out[:, inputs["input_ids"].shape[1]:]
        return tok.batch_decode(new, skip_special_tokens=True)

    def generate(self, items: Sequence[Item], progress: bool = True, desc: str = "generate",
                 on_batch: Callable[[int, list[str]], None] | None = None) -> list[str]:
        """Texts for `items`, `batch_size` prompts per call. `on_batch(start, texts)` runs after each
        batch (the eval harness appends to its prediction cache there)."""
        import torch  # lazy: torch; imported by model-free commands

        torch.manual_seed(self.settings.seed)
        bs = max(1, self.settings.batch_size)
        outs: list[str] = []
        was_training = self.model.training
        self.model.eval()  # no dropout while generating; a wrapped training model gets its mode back
        try:
            with _progress(len(items), desc, progress) as bar:
                for start in range(0, len(items), bs):
                    texts = self._generate_batch(list(items[start : start + bs]))
                    outs.extend(texts)
                    if on_batch is not None:
                        on_batch(start, texts)
                    bar.update(len(texts))
        finally:
            self.model.train(was_training)
        return outs


class VLLMBackend:
    """vLLM offline engine (GPU machines with requirements/gpu.txt). Imported only when built."""

    name = "vllm"

    def __init__(self, model_path: str, settings: GenerationSettings | None = None, trust_remote_code: bool = False,
                 tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.9, max_model_len: int | None = None):
        try:
            from vllm import LLM  # lazy: vLLM is optional (GPU machines)
        except ImportError as e:
            raise ImportError(
                "the vLLM backend needs the `vllm` package (on a CUDA machine: "
                "pip install -r requirements/gpu.txt -e '.[vllm]'); use --backend hf on CPU"
            ) from e
        from transformers import AutoProcessor  # lazy: transformers; imported by model-free commands

        self.settings = settings or GenerationSettings()
        model_path = str(model_path)
        lora = None
        base = model_path
        lora_kwargs: dict[str, Any] = {}
        if is_adapter_dir(model_path):
            from vllm.lora.request import LoRARequest  # lazy: vLLM is optional (GPU machines)

            base = adapter_base(model_path)
            lora = LoRARequest("adapter", 1, model_path)
            rank = json.loads((Path(model_path) / "adapter_config.json").read_text()).get("r", 16)
            lora_kwargs = {"enable_lora": True, "max_lora_rank": max(16, int(rank))}
        self.lora = lora
        self.processor = AutoProcessor.from_pretrained(base, trust_remote_code=trust_remote_code)
        self.llm = LLM(model=base, trust_remote_code=trust_remote_code, tensor_parallel_size=tensor_parallel_size,
                       gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
                       seed=self.settings.seed, **lora_kwargs,
                       limit_mm_per_prompt={"image": 8, "video": 1}, load_format="safetensors")

    def sampling_params(self):
        from vllm import SamplingParams  # lazy: vLLM is optional (GPU machines)

        s = self.settings
        return SamplingParams(max_tokens=s.max_new_tokens, temperature=max(0.0, s.temperature),
                              top_p=s.top_p if s.temperature > 0 else 1.0, seed=s.seed)

    def request(self, messages: list[dict[str, Any]], images: Sequence[Any]) -> dict[str, Any]:
        """One vLLM prompt dict: the chat-templated text and its media, decoded by the same layer as the HF
        backend (`mmreason.generation.vision`), so both see the same frames and metadata; built by
        `mmreason.generation.vllm_requests` (GRPO's vLLM rollouts use the same function)."""
        conv = fill_images(messages, images, self.settings)
        prompt = self.processor.apply_chat_template(placeholders(conv), tokenize=False, add_generation_prompt=True)
        return vllm_request(prompt, vision_inputs([conv]))

    def generate(self, items: Sequence[Item], progress: bool = True, desc: str = "generate",
                 on_batch: Callable[[int, list[str]], None] | None = None) -> list[str]:
        s = self.settings
        outs: list[str] = []
        chunk = max(1, s.batch_size) * 8  # large chunks: vLLM batches internally; chunks let the cache grow
        with _progress(len(items), desc, progress) as bar:
            for start in range(0, len(items), chunk):
                reqs = [self.request(m, imgs) for m, imgs in items[start : start + chunk]]  # frames per chunk
                res = self.llm.generate(reqs, self.sampling_params(), use_tqdm=False, lora_request=self.lora)
                texts = [r.outputs[0].text for r in res]
                outs.extend(texts)
                if on_batch is not None:
                    on_batch(start, texts)
                bar.update(len(texts))
        return outs


BACKENDS = {"hf": HFBackend, "vllm": VLLMBackend}


def load_backend(model_path: str, backend: str = "hf", settings: GenerationSettings | None = None, **kwargs):
    """Build a generation backend by name ('hf' or 'vllm')."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {sorted(BACKENDS)}")
    return BACKENDS[backend](model_path, settings=settings, **kwargs)


def generate_texts(model_path_or_backend: Any, items: Iterable[Item], settings: GenerationSettings | None = None,
                   backend: str = "hf", progress: bool = True) -> list[str]:
    """Convenience: generate one text per (messages, images) item from a model path or a built backend."""
    be = model_path_or_backend
    if isinstance(be, (str, os.PathLike)):
        be = load_backend(str(be), backend, settings)
    return be.generate(list(items), progress=progress)
