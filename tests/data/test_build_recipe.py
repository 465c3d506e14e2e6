"""Recipe parsing (dataclasses, overrides, clear errors) and the pure text helpers of the builder."""

from __future__ import annotations

import pytest
from test_build_common import RECIPES

from mmreason.data.build import split_dotted_flags
from mmreason.data.kinds.questions import parse_question
from mmreason.data.kinds.registry import builtin_kinds, load_recipe
from mmreason.data.kinds.runner import sample_seed, unbox
from mmreason.data.recipe import RecipeError, help_text, parse_overrides
from mmreason.prompts import render
from mmreason.verify.answers import extract_boxed_all


@pytest.mark.parametrize("name", ["distilled", "reflection", "caption", "self_critic",
                                  "synth_questions_incontext", "synth_questions_direct"])
def test_shipped_recipes_load(name):
    r = load_recipe(RECIPES / f"{name}.yaml")
    assert r.kind == name and r.kind in builtin_kinds() and len(r.prompt_version()) == 12


def test_overrides_set_and_dotted_flags():
    ov = parse_overrides(["teacher.model=X", "sampling.k=8", "source.mapping={question: problem}"]
                         + split_dotted_flags(["--teacher.concurrency", "3", "--filters.keep_per_question=2"]))
    r = load_recipe(RECIPES / "distilled.yaml", ov)
    assert (r.teacher.model, r.sampling.k, r.teacher.concurrency, r.filters.keep_per_question) == ("X", 8, 3, 2)
    assert r.source.mapping == {"question": "problem"}
    base = load_recipe(RECIPES / "distilled.yaml")
    assert base.prompt_version() == r.prompt_version() and base.fingerprint() != r.fingerprint()
    # prompt edits change the prompt version
    edited = load_recipe(RECIPES / "distilled.yaml", [("prompts.user", "{{ question }} \\boxed{}")])
    assert edited.prompt_version() != base.prompt_version()
    with pytest.raises(SystemExit):
        split_dotted_flags(["--nodots", "1"])


def test_override_values_typed_by_field():
    ov = parse_overrides(["prompts.user={{ question }} \\boxed{}: go", "teacher.model=7", "teacher.base_url=null",
                          "teacher.extra_body={top_k: 20}", "filters.require_single_final_box=false", "source.path=a: b.jsonl"])
    r = load_recipe(RECIPES / "distilled.yaml", ov)
    assert r.prompts["user"] == "{{ question }} \\boxed{}: go"  # a template is text, not YAML
    assert r.teacher.model == "7" and r.teacher.base_url is None and r.teacher.extra_body == {"top_k": 20}
    assert r.filters.require_single_final_box is False and r.source.path == "a: b.jsonl"


@pytest.mark.parametrize("override, field", [
    (("sampling.k", "four"), "sampling.k"),
    (("teacher.backend", "grpc"), "teacher.backend"),
    (("kind", "poem"), "kind"),
    (("filters.unknown_filter", 1), "filters.unknown_filter"),
    (("prompts.user", "{nope}"), "prompts.user"),
    (("prompts.user", "{{ nope }}"), "prompts.user"),
    (("prompts.user", "{question}"), "prompts.user"),
    (("prompts.user", ""), "prompts.user"),
    (("name", "has space"), "name"),
    (("teacher.timeout", 0), "teacher.timeout"),
    (("teacher.deadline", -1), "teacher.deadline"),
    (("teacher.max_retries", -1), "teacher.max_retries"),
])
def test_bad_fields_name_file_and_field(override, field):
    with pytest.raises(RecipeError) as e:
        load_recipe(RECIPES / "distilled.yaml", [override])
    assert e.value.field == field and "distilled.yaml" in str(e.value)


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(RecipeError, match="not found"):
        load_recipe(tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text("kind: [unclosed")
    with pytest.raises(RecipeError, match="invalid YAML"):
        load_recipe(tmp_path / "bad.yaml")


def test_render_keeps_latex_braces():
    assert render("{{ question }} \\boxed{} and \\frac{a}{b} {unknown}", question="Q") == "Q \\boxed{} and \\frac{a}{b} {unknown}"


def test_unbox_leaves_one_final_box():
    t = "first \\boxed{\\frac{1}{2}} then \\boxed{3}"
    assert unbox(t) == "first \\frac{1}{2} then 3"
    assert extract_boxed_all(unbox(t, keep_last=True)) == ["3"]


def test_parse_question_and_seeds():
    assert parse_question("Sure!\nQuestion: How many cats are there?\n\nAnswer: 3") == "How many cats are there?"
    assert parse_question('"What colour is the ball?"') == "What colour is the ball?"
    assert sample_seed(0, "a", 1, "cot") == sample_seed(0, "a", 1, "cot") != sample_seed(0, "a", 2, "cot")


def test_help_lists_every_field():
    h = help_text()
    for key in ("source.path", "source.preset", "teacher.concurrency", "sampling.k", "filters.keep_per_question",
                "decontam.max_hamming", "output.copy_images", "reflection_mode"):
        assert key in h
