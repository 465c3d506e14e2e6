"""Video rollouts: GRPO on a dataset with a `video` column, which stock TRL 1.16 generates from but leaves out of
the loss. A batch's images and videos are decoded and encoded here (mmreason/rl/video.py) and reach generation,
the old / reference log-probs, the loss forward and TRL's batch split. The state of one batch is one `Round`
(mmreason/rl/rounds.py): its decoded media and their encoding, alive only while TRL generates that batch.
The generation override is `_generate_video_round`, the one place another rollout engine hooks in."""

from __future__ import annotations

import torch

from mmreason.rl.data import fit_images
from mmreason.rl.rounds import Round
from mmreason.rl.video import encode, forward_inputs, load_row_media, template_messages
from mmreason.media.video import VideoConfig, set_video_pixels


class VideoRolloutMixin:
    """GRPOTrainer mixin: `_setup_video` for datasets with videos; then `_generate_video_round` generates their
    batches, and `_video_batch` says which media a log-prob pass must use."""

    video_config = None  # set for datasets with videos: their batches take `_generate_video_round`
    _round: Round | None = None  # the generation round in progress (set by the trainer's `_generate_round`)

    def _setup_video(self, video_config) -> None:
        if self.tools or self.environment_factories is not None or self.rollout_func is not None:
            raise ValueError("video GRPO does not support tools, environments or rollout_func")
        self.video_config = video_config or VideoConfig()
        # the processor must keep the frames at the size media.py resized them to (its defaults upscale)
        set_video_pixels(self.processing_class, self.video_config.video_min_pixels, self.video_config.video_max_pixels)
        self._suppress_video_token()

    def _suppress_video_token(self) -> None:
        """TRL keeps the image placeholder token out of sampled completions (it would mismatch the image
        features); the video placeholder needs the same, or a sampled <|video_pad|> breaks the loss forward
        ("video features and video tokens do not match")."""
        video_id = self._video_pad_token_id
        gen = getattr(self, "generation_config", None)
        if video_id is None or gen is None:
            return
        suppress = list(gen.suppress_tokens or [])
        if video_id not in suppress:
            suppress.append(video_id)
        gen.suppress_tokens = suppress
        self.generation_kwargs["suppress_tokens"] = suppress

    def _generate_video_round(self, inputs):
        """TRL's generation + scoring of a batch from a dataset with a `video` column. TRL sees no `images`
        column (it would build the forward inputs from images alone); `_tokenize_prompts` encodes the batch's
        images and videos, and the log-prob passes inside TRL's call take them from there. The output carries
        them for the loss (mmreason/rl/video.py: images flat as TRL's, videos per sample)."""
        self._round.media = load_row_media(inputs, self.video_config,
                                           lambda ims: fit_images(ims, self.processing_class))
        rows = [{k: v for k, v in x.items() if k != "images"} for x in inputs]
        output = super()._generate_and_score_completions(rows)
        encoded = self._round.encoded
        device = output["prompt_ids"].device
        fields = encoded.rollout_fields(output["prompt_ids"].size(1), output["completion_ids"].size(1))
        for k, v in fields.items():
            if isinstance(v, torch.Tensor):
                v = v.to(device)
            elif v and isinstance(v[0], torch.Tensor):
                v = [t.to(device) for t in v]
            output[k] = v
        return output

    def _tokenize_prompts(self, prompts: list):
        round_ = self._round
        if round_ is None or round_.media is None:
            return super()._tokenize_prompts(prompts)
        if len(prompts) != len(round_.media):
            raise RuntimeError(f"{len(prompts)} prompts for {len(round_.media)} rows of media")
        texts = [
            self.processing_class.apply_chat_template(
                template_messages(p), tokenize=False, add_generation_prompt=True, chat_template=self.chat_template,
                **self.chat_template_kwargs,
            )
            for p in prompts
        ]
        round_.encoded = encode(self.processing_class, texts, round_.media)
        return round_.encoded.prompt_ids, None, round_.encoded.generate_fields()

    def _video_batch(self, input_ids, logits_to_keep, video_inputs=None):
        """The rollout whose media a log-prob pass must use: `video_inputs` (the loss's batch, when it carries
        videos), else the batch being generated (old / reference log-probs inside TRL's call); None: TRL's pass."""
        if video_inputs is not None:
            return video_inputs
        if self._round is not None and self._round.encoded is not None:
            return self._round.encoded.rollout_fields(input_ids.size(1) - logits_to_keep, logits_to_keep)
        return None

    def _video_logps(self, model, input_ids, attention_mask, logits_to_keep, batch, batch_size=None,
                     compute_entropy=False, compute_aux_loss=False):
        """TRL's chunked log-prob / entropy pass with the media of rows [start, end) of `batch` in each chunk."""
        batch_size = batch_size or input_ids.size(0)
        all_logps, all_entropies, all_aux = [], [], []
        for start in range(0, input_ids.size(0), batch_size):
            end = min(start + batch_size, input_ids.size(0))
            ids, mask = input_ids[start:end], attention_mask[start:end]
            model_inputs = {"input_ids": ids, "attention_mask": mask,
                            **forward_inputs(batch, start, end, device=input_ids.device)}
            if compute_aux_loss:
                model_inputs["output_router_logits"] = True
            labels = ids.masked_fill(mask == 0, -100)
            labels[:, :-logits_to_keep] = -100
            with self.accelerator.autocast():
                outputs = model(**model_inputs, labels=labels, fused_lm_head=True)
            all_logps.append(outputs.log_probs[:, -logits_to_keep:])
            if compute_entropy:
                all_entropies.append(outputs.entropy[:, -logits_to_keep:])
            if compute_aux_loss:
                all_aux.append(outputs.aux_loss)
        logps = torch.cat(all_logps, dim=0)
        entropies = torch.cat(all_entropies, dim=0) if compute_entropy else None
        aux = torch.stack(all_aux).mean() if compute_aux_loss else None
        return logps, entropies, aux
