"""A stand-in `vllm` package for CPU tests of the vLLM wiring (the real engine needs CUDA): `LLM` with the interface
TRL 1.16's colocate path calls (`generate(prompts, sampling_params=, use_tqdm=)`, `reset_prefix_cache`, the
`llm_engine...model_runner.model.load_weights` weight sync, sleep / wake_up), `SamplingParams`, `RequestOutput`.

The engine does what vLLM does with a token prompt and media: it loads the checkpoint's own processor and model,
processes each request's media alone through the processor with the request's `mm_processor_kwargs` (the parser
keeps only the frames of a `(frames, metadata)` tuple, as vLLM's Qwen2.5-VL parser does), checks that every run of
placeholder tokens in the prompt ids has the length the processed media need (vLLM raises on a mismatch), then
samples the completion with the HF model and returns the sampled tokens' log-probs (temperature-scaled, vLLM's
`processed_logprobs`). Every request it got is kept in `FakeLLM.requests`, and its view of it (what it processed)
in `FakeLLM.served`, for the tests to compare."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Served:
    prompt_token_ids: list[int]
    frames: list[int] = field(default_factory=list)  # frame count per video
    video_grid_thw: list[list[int]] = field(default_factory=list)
    second_per_grid_ts: list[float] = field(default_factory=list)
    image_grid_thw: list[list[int]] = field(default_factory=list)
    pixel_values_videos: Any = None
    completion: list[int] = field(default_factory=list)


class SamplingParams:
    def __init__(self, n=1, temperature=1.0, top_p=1.0, top_k=0, min_p=0.0, max_tokens=16, logprobs=None,
                 repetition_penalty=1.0, logit_bias=None, seed=None, **extra):
        if extra:
            raise TypeError(f"SamplingParams got unexpected arguments {sorted(extra)}")
        self.n, self.temperature, self.top_p, self.top_k, self.min_p = n, temperature, top_p, top_k, min_p
        self.max_tokens, self.logprobs, self.repetition_penalty = max_tokens, logprobs, repetition_penalty
        self.logit_bias, self.seed = dict(logit_bias or {}), seed


class RequestOutput(types.SimpleNamespace):
    pass


class _Weights:
    def __init__(self, model):
        self.model = model

    def load_weights(self, weights):
        params = dict(self.model.named_parameters())
        for name, value in weights:
            if name not in params:
                raise KeyError(f"the engine has no parameter {name!r}")
            with torch.no_grad():
                params[name].copy_(value.detach().to(params[name].dtype))


class FakeLLM:
    instances: list["FakeLLM"] = []

    def __init__(self, model: str, seed: int = 0, tensor_parallel_size: int = 1, **kwargs):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.kwargs = dict(kwargs, tensor_parallel_size=tensor_parallel_size)
        self.processor = AutoProcessor.from_pretrained(model)  # the checkpoint's own bounds, as the engine loads it
        self.model = AutoModelForImageTextToText.from_pretrained(model, dtype=torch.float32).eval()
        self.seed, self.calls = seed, 0
        self.requests: list[dict] = []
        self.served: list[Served] = []
        runner = types.SimpleNamespace(model=_Weights(self.model))
        self.llm_engine = types.SimpleNamespace(
            model_executor=types.SimpleNamespace(driver_worker=types.SimpleNamespace(model_runner=runner)),
            model_config=types.SimpleNamespace(max_model_len=kwargs.get("max_model_len")))
        FakeLLM.instances.append(self)

    def reset_prefix_cache(self):
        pass

    def sleep(self, level=1):
        pass

    def wake_up(self, tags=None):
        pass

    def process(self, req: dict) -> tuple[dict, Served]:
        """The model inputs of one token prompt with media, as vLLM builds them; raises on a placeholder mismatch."""
        ids = list(req["prompt_token_ids"])
        mm = req.get("multi_modal_data") or {}
        kwargs = dict(req.get("mm_processor_kwargs") or {})
        cfg = self.model.config
        images = mm.get("image") or []
        images = images if isinstance(images, list) else [images]
        videos = [v[0] if isinstance(v, tuple) else v for v in mm.get("video") or []]  # the parser drops metadata
        served = Served(ids, frames=[len(v) for v in videos])
        inputs = {"input_ids": torch.tensor([ids])}
        expected = {cfg.image_token_id: [], cfg.video_token_id: []}
        merge = self.processor.image_processor.merge_size ** 2
        if images or videos:  # one HF processor call over the media alone, with the request's kwargs
            text = ("<|vision_start|><|image_pad|><|vision_end|>" * len(images)
                    + "<|vision_start|><|video_pad|><|vision_end|>" * len(videos))
            out = self.processor(text=[text], images=images or None, videos=videos or None, return_tensors="pt",
                                 **kwargs)
            if images:
                inputs.update(pixel_values=out["pixel_values"], image_grid_thw=out["image_grid_thw"])
                served.image_grid_thw = out["image_grid_thw"].tolist()
                expected[cfg.image_token_id] = [int(g.prod()) // merge for g in out["image_grid_thw"]]
            if videos:
                inputs.update(pixel_values_videos=out["pixel_values_videos"], video_grid_thw=out["video_grid_thw"],
                              second_per_grid_ts=out["second_per_grid_ts"])
                served.video_grid_thw = out["video_grid_thw"].tolist()
                served.second_per_grid_ts = [float(s) for s in out["second_per_grid_ts"]]
                served.pixel_values_videos = out["pixel_values_videos"]
                expected[cfg.video_token_id] = [int(g.prod()) // merge for g in out["video_grid_thw"]]
        for token, want in expected.items():
            runs = _runs(ids, token)
            if runs != want:
                raise ValueError(f"placeholder runs of token {token} in the prompt are {runs}, the media need {want}")
        type_ids = torch.zeros_like(inputs["input_ids"])
        type_ids[inputs["input_ids"] == cfg.image_token_id] = 1
        type_ids[inputs["input_ids"] == cfg.video_token_id] = 2
        inputs["mm_token_type_ids"] = type_ids
        inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
        return inputs, served

    def generate(self, prompts, sampling_params=None, use_tqdm=False, lora_request=None):
        sp = sampling_params
        results = []
        self.calls += 1
        eos = self.eos_ids()
        for i, req in enumerate(prompts):
            self.requests.append(req)
            inputs, served = self.process(req)
            outs = []
            for j in range(sp.n):
                # the same seed on every rank of a tensor-parallel group (TRL: seed = process_index // tp)
                g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.calls * 1009 + i * 31 + j)
                tokens, lps = self.sample(inputs, sp, eos, g)
                served.completion = tokens
                logprobs = None
                if sp.logprobs is not None:
                    logprobs = [{t: types.SimpleNamespace(logprob=lp, rank=1)} for t, lp in zip(tokens, lps)]
                outs.append(types.SimpleNamespace(token_ids=tokens, logprobs=logprobs, text=""))
            self.served.append(served)
            results.append(RequestOutput(prompt_token_ids=served.prompt_token_ids, outputs=outs))
        return results

    def eos_ids(self) -> set[int]:
        gen = getattr(self.model, "generation_config", None)
        eos = getattr(gen, "eos_token_id", None) or self.processor.tokenizer.eos_token_id
        return set(eos if isinstance(eos, list) else [eos])

    @torch.no_grad()
    def sample(self, inputs, sp, eos, g):
        """Token-by-token sampling (full forward each step: tiny models) -> (tokens, temperature-scaled log-probs)."""
        ids = inputs["input_ids"]
        tokens, lps = [], []
        for _ in range(sp.max_tokens):
            step = {**inputs, "input_ids": ids, "attention_mask": torch.ones_like(ids),
                    "mm_token_type_ids": torch.cat([inputs["mm_token_type_ids"],
                                                    torch.zeros(1, ids.size(1) - inputs["input_ids"].size(1),
                                                                dtype=torch.long)], dim=1)}
            logits = self.model(**step).logits[0, -1].float()
            for t, b in sp.logit_bias.items():
                logits[t] += b
            logp = torch.log_softmax(logits / max(sp.temperature, 1e-6), dim=-1)
            tok = int(torch.multinomial(logp.exp(), 1, generator=g)) if sp.temperature > 0 else int(logp.argmax())
            tokens.append(tok)
            lps.append(float(logp[tok]))
            ids = torch.cat([ids, torch.tensor([[tok]])], dim=1)
            if tok in eos:
                break
        return tokens, lps


def _runs(ids: list[int], token: int) -> list[int]:
    runs, n = [], 0
    for t in [*ids, None]:
        if t == token:
            n += 1
        elif n:
            runs.append(n)
            n = 0
    return runs


def install(setitem=None) -> None:
    """Put the stand-in `vllm` in `sys.modules` and make TRL's vLLM module see it (TRL imports the engine at its own
    import time, only when the package is installed). `setitem(obj, name, value)`: pytest's monkeypatch.setitem /
    setattr pair, so the test undoes it; None (a worker process) sets them for good."""
    import trl.generation.vllm_generation as vg

    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams, vllm.RequestOutput = FakeLLM, SamplingParams, RequestOutput
    sp_mod = types.ModuleType("vllm.sampling_params")
    sp_mod.StructuredOutputsParams = lambda **kw: kw
    vllm.sampling_params = sp_mod
    mods = {"vllm": vllm, "vllm.sampling_params": sp_mod}
    attrs = {"is_vllm_available": lambda *a, **k: True, "LLM": FakeLLM, "SamplingParams": SamplingParams,
             "RequestOutput": RequestOutput, "StructuredOutputsParams": sp_mod.StructuredOutputsParams}
    if setitem is None:
        sys.modules.update(mods)
        for k, v in attrs.items():
            setattr(vg, k, v)
    else:
        set_module, set_attr = setitem
        for k, v in mods.items():
            set_module(sys.modules, k, v)
        for k, v in attrs.items():
            set_attr(vg, k, v, raising=False)
