"""GRPO rollouts of video prompts through vLLM (colocate mode), which TRL 1.16 does not do: its
`VLLMGeneration.generate` (trl/generation/vllm_generation.py) builds `multi_modal_data={"image": ...}` rows only.

A batch from a dataset with a `video` column is encoded by the trainer in one HF processor call
(mmreason/rl/video.py); its unpadded prompt ids (placeholders already expanded) go to the engine with each row's
images and clips as `mmreason.generation.vllm_requests` builds them for the eval's vLLM backend too: the clip's
frames and metadata, `do_sample_frames: False` and pixel bounds that keep every medium at the size the HF path
encoded. vLLM processes the media itself and checks the runs of placeholder tokens in the ids against them, so the
rollout model sees the tokens and video grid the loss forward sees.

The rest mirrors TRL's colocate branch: the same sampling parameters, weight sync when the step changed, sleep
mode, and with tensor parallelism every rank of a group gathers the group's requests (all ranks call the gather,
with or without media, so mixed image / video / text batches keep the collectives paired), generates the group's
whole batch with the group's shared seed and keeps its own slice.

Server mode is refused at config time (`check_vllm_video`): TRL's `trl vllm-serve` API takes token ids and image
features only, so a video cannot reach it."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from accelerate.utils import is_peft_model
from trl.extras.profiling import profiling_context
from trl.generation.vllm_generation import extract_logprobs

from mmreason.generation.vllm_requests import media_request

# the value vLLM clamps logit_bias to: the placeholder tokens are never sampled (as the HF path's suppress_tokens)
SUPPRESS_BIAS = -100.0


def check_vllm_video(args) -> None:
    """Refuse, before any engine is built, a vLLM setting the video rollouts cannot honour."""
    if args.use_vllm and args.vllm_mode != "colocate":
        raise ValueError(
            f"video GRPO with use_vllm needs vllm_mode: colocate (got {args.vllm_mode!r}): TRL 1.16's vLLM server "
            "(`trl vllm-serve`, VLLMClient.generate) accepts token ids and image features only, so a video cannot reach it"
        )


def rollout_requests(prompt_ids: Sequence[Sequence[int]], media: Sequence[Any]) -> list[dict[str, Any]]:
    """One vLLM request per row: its prompt ids and its media (`mmreason.rl.video.RowMedia`). Rows holding the same
    media objects (the num_generations copies of a prompt share their decoded clip) share one media dict, so the
    frames are converted once and a tensor-parallel gather pickles them once."""
    if len(prompt_ids) != len(media):
        raise RuntimeError(f"{len(prompt_ids)} prompts for {len(media)} rows of media")
    shared: dict[tuple, dict[str, Any]] = {}
    out = []
    for ids, m in zip(prompt_ids, media):
        key = tuple(map(id, m.clips)) + ("|",) + tuple(map(id, m.images))
        if key not in shared:
            shared[key] = media_request(m.images, [c.frames for c in m.clips], [c.metadata() for c in m.clips])
        out.append({"prompt_token_ids": [int(t) for t in ids], **shared[key]})
    return out


def sampling_kwargs(vg) -> dict[str, Any]:
    """TRL's colocate `SamplingParams` keyword arguments (n=1: each rank's rows already hold num_generations copies)."""
    kw: dict[str, Any] = {
        "n": 1,
        "repetition_penalty": vg.repetition_penalty,
        "temperature": vg.temperature,
        "top_p": vg.top_p,
        "top_k": vg.top_k,
        "min_p": 0.0 if vg.min_p is None else vg.min_p,
        "max_tokens": vg.max_completion_length,
        "logprobs": vg.logprobs,
    }
    kw.update(vg.generation_kwargs)
    if vg.structured_outputs_regex is not None or isinstance(kw.get("structured_outputs"), dict):
        from vllm.sampling_params import StructuredOutputsParams  # lazy: vLLM is optional (GPU machines)

        if vg.structured_outputs_regex is not None:
            kw["structured_outputs"] = StructuredOutputsParams(regex=vg.structured_outputs_regex)
        else:
            kw["structured_outputs"] = StructuredOutputsParams(**kw["structured_outputs"])
    return kw


def generate_colocate(vg, requests: list[dict[str, Any]]):
    """TRL's colocate generation over full requests (`vg`: the trainer's `VLLMGeneration`) ->
    (completion_ids, per-token top logprobs) for this rank's rows."""
    from vllm import SamplingParams  # lazy: vLLM is optional (GPU machines)

    if vg.mode != "colocate":
        raise ValueError(f"video rollouts need vllm_mode colocate, got {vg.mode!r}")
    if vg.enable_sleep_mode and vg._llm_weights_sleeping:  # sleep level 2 discarded the weights: push them again
        vg.sync_weights()
    params = SamplingParams(**sampling_kwargs(vg))
    tp = vg.tensor_parallel_size
    local = len(requests)
    if tp > 1:
        # every rank of the group calls the gather, whatever media its rows hold
        gathered = [None] * tp
        torch.distributed.all_gather_object(gathered, requests, group=vg.tp_group)
        if len({len(g) for g in gathered}) != 1:
            raise RuntimeError(f"tensor-parallel ranks hold {[len(g) for g in gathered]} rows: they must be equal")
        all_requests = [r for g in gathered for r in g]
    else:
        all_requests = requests
    if vg.enable_sleep_mode:
        vg.llm.wake_up(tags=["kv_cache"])
    if is_peft_model(vg.model) and tp > 1:  # TRL's NCCL drain before vLLM's TP collectives (trl#3671)
        torch.distributed.barrier(device_ids=[vg.accelerator.local_process_index])
    outputs = vg.llm.generate(all_requests, sampling_params=params, use_tqdm=False)
    completion_ids = [list(o.token_ids) for out in outputs for o in out.outputs]
    logprobs, _ = extract_logprobs(outputs)
    if len(completion_ids) != len(all_requests):
        raise RuntimeError(f"vLLM returned {len(completion_ids)} completions for {len(all_requests)} requests")
    if tp > 1:
        rank = torch.distributed.get_rank(group=vg.tp_group)
        keep = slice(rank * local, (rank + 1) * local)
        completion_ids = completion_ids[keep]
        logprobs = logprobs[keep] if logprobs is not None else None
    if vg.enable_sleep_mode:
        vg.llm.sleep(level=2)
        vg._llm_weights_sleeping = True
    return completion_ids, logprobs


def bias_out_placeholders(vg, token_ids: Sequence[int]) -> None:
    """Keep the image / video placeholder tokens out of colocated vLLM's completions through the engine's
    `generation_kwargs` (read by TRL's image path and by `generate_colocate`): TRL's HF path suppresses the image
    token, its vLLM path does not, and a sampled placeholder breaks the loss forward ("Image features and image
    tokens do not match"; seen with the tiny model in scripts/gpu_smoke.py). Server mode is left as TRL has it: the
    server receives the kwargs as JSON, whose keys would be strings."""
    bias = dict(vg.generation_kwargs.get("logit_bias") or {})
    if all(bias.get(t) == SUPPRESS_BIAS for t in token_ids):
        return
    bias.update({int(t): SUPPRESS_BIAS for t in token_ids})
    vg.generation_kwargs = {**vg.generation_kwargs, "logit_bias": bias}  # a new dict: args.generation_kwargs stays


class VLLMVideoMixin:
    """Routes the generation of a batch with decoded media (the trainer's `_round.media`, set while a video-dataset
    batch is generated: mmreason/rl/video_rollouts.py) through `generate_colocate`; every other batch takes TRL's path, with the placeholder tokens kept
    out of colocated vLLM's completions."""

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        if self.use_vllm and self.vllm_mode == "colocate":
            bias_out_placeholders(self.vllm_generation, [t for t in (self._image_pad_token_id,
                                                                     self._video_pad_token_id) if t is not None])
        media = self._round.media if self._round is not None else None
        if not (self.use_vllm and media is not None):
            return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations,
                                                 has_tool_images=has_tool_images)

        if self.state.global_step != self._last_loaded_step:  # as TRL: once per optimizer step
            with profiling_context(self, "sync_weights"):
                self.vllm_generation.sync_weights()
            self._last_loaded_step = self.state.global_step
        with profiling_context(self, "vLLM.generate"):
            completion_ids, logprobs = generate_colocate(self.vllm_generation, rollout_requests(prompt_ids, media))
        if logprobs is not None:  # top-1 = the sampled token's logprob (TRL's importance-sampling correction)
            logprobs = [[lp[0] for lp in seq] for seq in logprobs]
        return completion_ids, logprobs
