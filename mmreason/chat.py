"""Record -> chat messages: the one prompt layout of every stage and of eval.

The user text is built by the prompt spec (`mmreason.prompts.PromptSpec`: question, lettered options,
instruction, in its jinja2 template). Media parts go where the text's `<image>` / `<video>` placeholders stand,
as EasyR1 (`prompt.split("<image>")`), ms-swift and LLaMA-Factory place them; text without placeholders gets its
images (then its video) first."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from mmreason.prompts import PromptSpec
from mmreason.errors import RecordError
from mmreason.records import BOXED_SUFFIX, IMAGE_PLACEHOLDER, LETTERS, VIDEO_PLACEHOLDER, Record

_PLACEHOLDER = re.compile(f"({re.escape(IMAGE_PLACEHOLDER)}|{re.escape(VIDEO_PLACEHOLDER)})")


def choices_text(rec: Record) -> str:
    """Lettered options, one per line: "(A) 3\n(B) 4"; empty for open questions."""
    return "\n".join(f"({l}) {c}" for l, c in zip(LETTERS, rec.choices or []))


def _spec(system: str | None, suffix: str | None, spec: PromptSpec | None) -> PromptSpec:
    return spec if spec is not None else PromptSpec(system=system, instruction=suffix)


def question_text(rec: Record, suffix: str | None = BOXED_SUFFIX, spec: PromptSpec | None = None) -> str:
    """The user text: question, lettered options for choice questions, then the instruction (the spec's template)."""
    return _spec(None, suffix, spec).user_text(rec.question, choices_text(rec))


def content_parts(text: str, n_images: int = 0, video: bool = False) -> list[dict[str, Any]]:
    """The user turn's parts. With placeholders in `text`: a text part per piece and a media part at each
    placeholder (their counts must match the media); without: the images, the video, then the text."""
    n_img, n_vid = text.count(IMAGE_PLACEHOLDER), text.count(VIDEO_PLACEHOLDER)
    if not n_img and not n_vid:
        parts: list[dict[str, Any]] = [{"type": "image"} for _ in range(n_images)]
        if video:
            parts.append({"type": "video"})
        return parts + [{"type": "text", "text": text}]
    if (n_img and n_img != n_images) or (n_vid and n_vid != int(video)):
        raise ValueError(f"the prompt has {n_img} {IMAGE_PLACEHOLDER} and {n_vid} {VIDEO_PLACEHOLDER} "
                         f"placeholder(s) for {n_images} image(s) and {int(video)} video(s)")
    parts = []
    for piece in _PLACEHOLDER.split(text):
        if piece == IMAGE_PLACEHOLDER:
            parts.append({"type": "image"})
        elif piece == VIDEO_PLACEHOLDER:
            parts.append({"type": "video"})
        elif piece:
            parts.append({"type": "text", "text": piece})
    # Media without a placeholder of their kind (images placed, the video not) go first, as without placeholders.
    lead = [{"type": "image"}] * (n_images if not n_img else 0) + ([{"type": "video"}] if video and not n_vid else [])
    return [dict(p) for p in lead] + parts


def chat_messages(text: str, n_images: int = 0, system: str | None = None, video: bool = False) -> list[dict]:
    """Optional system message, then the user turn (`content_parts`)."""
    msgs = [{"role": "system", "content": [{"type": "text", "text": system}]}] if system else []
    return msgs + [{"role": "user", "content": content_parts(text, n_images, video)}]


def user_message(rec: Record, suffix: str | None = BOXED_SUFFIX, spec: PromptSpec | None = None) -> dict[str, Any]:
    return chat_messages(question_text(rec, suffix, spec), len(rec.images), video=rec.video is not None)[0]


def record_prompt_spec(rec: Record, spec: PromptSpec | None = None) -> PromptSpec:
    """The stage's prompt spec with the record's own `metadata.system_prompt` / `metadata.prompt_suffix` on top
    (NEP records carry them, and released rows with their own system turn: None = the chat template's default
    system message, "" = no instruction)."""
    spec = spec or PromptSpec()
    over = {}
    if "system_prompt" in rec.metadata:
        over["system"] = rec.metadata["system_prompt"]
    if "prompt_suffix" in rec.metadata:
        over["instruction"] = rec.metadata["prompt_suffix"]
    return dataclasses.replace(spec, **over) if over else spec


def prompt_messages(rec: Record, system: str | None = None, suffix: str | None = BOXED_SUFFIX,
                    spec: PromptSpec | None = None) -> list[dict]:
    """Chat messages of a record's prompt, under the record's own overrides (`record_prompt_spec`); with `spec`,
    `system` and `suffix` are not used."""
    spec = record_prompt_spec(rec, _spec(system, suffix, spec))
    try:
        return chat_messages(question_text(rec, spec=spec), len(rec.images), spec.system, video=rec.video is not None)
    except ValueError as e:
        raise RecordError(rec.origin or rec.id, str(e)) from None


def to_sft_example(rec: Record, system: str | None = None, suffix: str | None = BOXED_SUFFIX,
                   spec: PromptSpec | None = None) -> dict[str, Any]:
    """TRL conversational SFT format: {'messages': [...], 'images': [absolute paths]}. The target is the record's
    `solution` verbatim (a released chain of thought trains as released)."""
    if not rec.solution:
        raise RecordError(rec.id, "record has no 'solution' (the SFT target)")
    msgs = prompt_messages(rec, system, suffix, spec)
    msgs.append({"role": "assistant", "content": [{"type": "text", "text": rec.solution}]})
    return {"messages": msgs, "images": [str(p) for p in rec.image_paths()]}


def to_grpo_example(rec: Record, system: str | None = None, suffix: str | None = BOXED_SUFFIX,
                    spec: PromptSpec | None = None) -> dict[str, Any]:
    """TRL GRPO prompt format plus the columns reward functions receive."""
    return {
        "prompt": prompt_messages(rec, system, suffix, spec),
        "images": [str(p) for p in rec.image_paths()],
        "answer": rec.answer,
        "answer_type": rec.answer_type,
        "choices": rec.choices,
        "precision": rec.precision,
        "record_id": rec.id,
        "source": rec.source or "",
    }
