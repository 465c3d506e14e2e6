"""Benchmark specs (eval/*.yaml) and the generation input helpers."""

from pathlib import Path

import pytest

from mmreason.generation.backends import GenerationSettings, fill_images
from mmreason.eval.benchmark import benchmark_class
from mmreason.eval.spec import PRESETS, load_spec
from mmreason.prompts import render

REPO = Path(__file__).resolve().parents[2]


MATH_SPECS = sorted(p for p in (REPO / "eval").glob("*.yaml") if not p.name.startswith("futurebench"))


@pytest.mark.parametrize("path", MATH_SPECS, ids=lambda p: p.name)
def test_repo_specs_load(path):
    spec = load_spec(path)
    assert spec.scorer in ("mathvista", "wemath")
    assert spec.system_prompt == "You are a helpful assistant." and spec.temperature == 0.2
    assert spec.max_new_tokens == 16384
    # the template (jinja2) only uses fields its benchmark plugin provides (undefined names raise)
    fields = benchmark_class(spec).fields
    text = render(spec.prompt_template, **{f: f"<{f}>" for f in fields})
    assert "<query>" in text or "<question>" in text


@pytest.mark.parametrize("name", ["futurebench", "futurebench_reasoning"])
def test_futurebench_specs_have_the_official_settings(name):
    spec = load_spec(name)
    assert spec.scorer == "futurebench" and spec.system_prompt == "You are a helpful assistant."
    assert spec.temperature == 0.0 and spec.instruction == "" and spec.prompt_template == "{{ query }}"
    assert spec.max_new_tokens == (16 if name == "futurebench" else 2048)
    assert spec.mode == ("official" if name == "futurebench" else "official-reasoning")
    assert spec.video_part() == {"fps": 2.0, "max_frames": 32, "min_pixels": 3136, "total_pixels": 1605632}
    assert benchmark_class(spec).modes == ("official", "official-reasoning", "corrected")


def test_names_resolve_to_repo_specs_and_presets():
    assert load_spec("mathvista").source.endswith("eval/mathvista.yaml")
    for name, preset in PRESETS.items():
        assert load_spec(name).scorer == preset["scorer"]
    with pytest.raises(ValueError, match="unknown benchmark"):
        load_spec("mmmu")


def test_bad_spec_names_the_file_and_field(tmp_path):
    p = tmp_path / "b.yaml"
    p.write_text("name: x\nscorer: mathvista\ntemprature: 0.1\n")
    with pytest.raises(ValueError, match=r"b.yaml: unknown field\(s\) \['temprature'\]"):
        load_spec(p)
    p.write_text("name: x\n")
    with pytest.raises(ValueError, match="missing required field 'scorer'"):
        load_spec(p)


def test_fill_images_checks_counts_and_sets_pixels():
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "q"}]}]
    filled = fill_images(msgs, ["a.png"], GenerationSettings(min_pixels=3136, max_pixels=12544))
    assert filled[0]["content"][0] == {"type": "image", "image": "a.png", "min_pixels": 3136, "max_pixels": 12544}
    assert "image" not in msgs[0]["content"][0]  # input untouched
    with pytest.raises(ValueError, match="more image placeholders"):
        fill_images(msgs, [], GenerationSettings())
    with pytest.raises(ValueError, match="more images than"):
        fill_images(msgs, ["a", "b"], GenerationSettings())
