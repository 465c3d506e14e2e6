"""The prompt an eval run uses: the benchmark spec's template, with the system prompt, instruction and pixel
bounds of the checkpoint's prompt.json (`mmreason.prompts`) unless a flag or an explicit spec field sets them
(a difference from the checkpoint is logged loudly by `resolve_prompt_spec`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import TemplateError

from mmreason.eval.spec import BenchmarkSpec, check_template
from mmreason.prompts import PromptSpec, load_prompt_spec, render, resolve_prompt_spec

logger = logging.getLogger(__name__)

# eval spec field -> prompt.json field
_TO_PROMPT_SPEC = {"system_prompt": "system", "instruction": "instruction", "min_pixels": "min_pixels",
                   "max_pixels": "max_pixels", "prompt_template": "template"}


@dataclass
class EvalPrompt:
    system_prompt: str | None
    instruction: str | None
    prompt_template: str
    min_pixels: int | None
    max_pixels: int | None
    source: str  # "spec" (no prompt.json) or "checkpoint <path>/prompt.json" (+ overrides)
    where: str  # the spec file, for errors

    def user_text(self, fields: dict[str, Any]) -> str:
        try:
            return render(self.prompt_template, **fields, instruction=self.instruction or "")
        except TemplateError as e:
            raise ValueError(f"{self.where}: prompt_template: {type(e).__name__}: {e} (fields: "
                             f"{sorted([*fields, 'instruction'])})") from None


def eval_prompt(model: str | None, spec: BenchmarkSpec, overrides: dict[str, Any],
                uses_model_template: bool = False, default_template: str | None = None) -> EvalPrompt:
    """`overrides`: prompt settings given explicitly by the caller (CLI flags / API arguments; None = not given).
    `default_template`: the benchmark's template when the spec sets none."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    explicit = {k: getattr(spec, k) for k in _TO_PROMPT_SPEC if k in spec.explicit} | overrides
    fields = ["system_prompt", "instruction", "min_pixels", "max_pixels"]
    fields += ["prompt_template"] if uses_model_template else []
    saved = load_prompt_spec(model) if model is not None and Path(str(model)).is_dir() else None
    values = {k: getattr(spec, k) for k in _TO_PROMPT_SPEC}
    if default_template is not None and "prompt_template" not in spec.explicit:
        values["prompt_template"] = default_template
    values |= overrides
    source = "spec"
    if saved is not None:
        compared = {k: explicit[k] for k in fields if k in explicit}
        configured = None
        if compared:
            configured = PromptSpec(**(saved.to_dict() | {_TO_PROMPT_SPEC[k]: v for k, v in compared.items()}))
        chosen = resolve_prompt_spec(model, configured, f"eval run ({spec.name})")
        for k in fields:
            values[k] = getattr(chosen, _TO_PROMPT_SPEC[k])
        values |= overrides
        source = f"checkpoint {Path(str(model)) / 'prompt.json'}" + (f" (overridden: {sorted(compared)})" if compared else "")
    check_template(values["prompt_template"], source if uses_model_template and saved else spec.where())
    return EvalPrompt(**values, source=source, where=spec.where())
