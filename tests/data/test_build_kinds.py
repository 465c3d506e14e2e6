"""Recipe kinds as plugins: a kind written in one file outside the package (`kind: toy.py:NAME`) builds a
set through the loopback teacher; bad plugin references and templates fail at load time naming the recipe
file and field."""

from __future__ import annotations

import textwrap

import pytest
from test_build_common import BEHAVIOURS, Script, make_source, read_jsonl

from mmreason.data.build import build, main
from mmreason.data.kinds.registry import builtin_kinds, load_recipe
from mmreason.data.loopback import LoopbackServer, last_user_text
from mmreason.data.recipe import RecipeError
from mmreason.records import load_records

TOY = '''
"""A toy kind: one teacher answer per sample, wrapped by the `target` template."""
from mmreason.data.kinds.questions import parse_question
from mmreason.data.kinds.registry import RecipeKind
from mmreason.data.kinds.runner import Outcome, Target


def run(ctx, rec):
    out = Outcome()
    for i, text, fail in ctx.sample(out, rec, "user", "toy"):
        if fail:
            out.samples[fail] += 1
        else:
            ctx.accept(out, rec, ctx.text("target", rec, body=text.strip()), i, {"toy_chars": len(text)})
    return out


def ask_questions(ctx, rec):
    out = Outcome()
    for i, text, fail in ctx.sample(out, rec, "user", "toyq"):
        if fail:
            out.samples[fail] += 1
        elif len(out.targets) < ctx.r.filters.keep_per_question:
            out.samples["accepted"] += 1
            out.targets.append(Target(parse_question(text), i))
        else:
            out.samples["over_cap"] += 1
    return out


ToyKind = RecipeKind(name="toy", run=run, prompts={"user": (), "target": ("body",)}, required=("user", "target"))
ToyQuestions = RecipeKind(name="toy_questions", run=ask_questions, prompts={"user": ()}, required=("user",),
                          unlabeled=True)
BrokenQuestions = RecipeKind(name="broken", run=lambda ctx, rec: Outcome([Target(None, 0)]), prompts={"user": ()},
                             unlabeled=True)
NotAKind = {"name": "toy"}
'''

RECIPE = """\
kind: {kind}
name: toy-v1
source: {{path: {source}}}
teacher: {{model: scripted, base_url: {url}, max_retries: 2, backoff_base: 0.01, timeout: 5.0}}
sampling: {{k: 2}}
decontam: {{enabled: false}}
prompts:
{prompts}
"""

TOY_PROMPTS = {
    "user": "{{ question_with_choices }}\nAnswer with \\boxed{}, as in \\boxed{3}.",
    "target": "Toy solution ({{ answer_type }}):\n{{ body }}",
}


def write_recipe(tmp_path, kind, source, url="http://unused", prompts=None):
    (tmp_path / "kinds").mkdir(exist_ok=True)
    (tmp_path / "kinds" / "toy.py").write_text(TOY)
    lines = "".join(f"  {k}: |-\n{textwrap.indent(v, '    ')}\n" for k, v in (prompts or TOY_PROMPTS).items())
    path = tmp_path / "toy.yaml"
    path.write_text(RECIPE.format(kind=kind, source=source, url=url, prompts=lines))
    return path


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return make_source(tmp_path_factory.mktemp("src"), 5)


class Recording(Script):
    def __init__(self):
        super().__init__()
        self.user_texts: list[str] = []

    def __call__(self, body):
        self.user_texts.append(last_user_text(body))
        return super().__call__(body)


def test_toy_kind_from_one_file_builds_records(tmp_path, source):
    script = Recording()
    with LoopbackServer(script) as srv:
        recipe = load_recipe(write_recipe(tmp_path, "kinds/toy.py:ToyKind", source, srv.base_url))
        stats = build(recipe, tmp_path / "out", progress=False)
    assert "toy" not in builtin_kinds()  # known through the recipe only
    # the template is jinja2: the placeholder is filled, the literal \boxed{} goes to the teacher as written
    assert "Item 0: how many red dots are in the image?\nAnswer with \\boxed{}, as in \\boxed{3}." in script.user_texts
    ledger = {row["source_id"]: row for row in read_jsonl(tmp_path / "out" / "ledger.jsonl")}
    assert stats["kind"] == "toy" and stats["complete"] and stats["questions"]["total"] == 5 + 4
    assert ledger["no_gold"]["reason"] == "no_gold_answer"  # a labeled kind needs gold answers
    recs, report = load_records(tmp_path / "out" / "train.jsonl")
    assert not report.skipped and len(recs) == stats["records"]
    kept = {r.metadata["source_id"] for r in recs}
    assert BEHAVIOURS[:5] == ["correct", "wrong", "mixed", "malformed", "flaky500"]
    assert {"q0", "q4"} <= kept <= {"q0", "q2", "q4"}
    assert ledger["q1"]["samples"] == {"wrong_answer": 2}  # the toy's targets are verified like any kind's
    for r in recs:
        assert r.solution.startswith("Toy solution (integer):\nI look at the image") and r.solution.endswith(f"\\boxed{{{r.answer}}}")
        assert r.metadata["kind"] == "toy" and r.metadata["toy_chars"] > 0 and r.metadata["recipe"] == "toy-v1"
        assert r.id == f"{r.metadata['source_id']}--toy-v1--{r.metadata['sample_index']}"
        assert r.question.startswith("Item ") and r.answer_type == "integer" and r.images[0].startswith("images/")


def test_unlabeled_toy_kind_writes_new_questions(tmp_path, source):
    prompts = {"user": "{{ question }}\nLook at the image and write one question about it."}
    with LoopbackServer(Script()) as srv:
        recipe = load_recipe(write_recipe(tmp_path, "kinds/toy.py:ToyQuestions", source, srv.base_url, prompts))
        stats = build(recipe, tmp_path / "out", progress=False)
    ledger = {row["source_id"]: row for row in read_jsonl(tmp_path / "out" / "ledger.jsonl")}
    assert ledger["no_gold"]["status"] == "kept"  # unlabeled: no gold answer needed
    recs, _ = load_records(tmp_path / "out" / "train.jsonl", require_answer=False)
    assert recs and len(recs) == stats["records"]
    for r in recs:
        assert r.answer is None and r.solution is None and r.answer_type == "text" and r.choices is None
        assert r.question.startswith("Item ") and r.metadata["source_question"].startswith("Item ")
        assert r.metadata["kind"] == "toy_questions"


def test_invalid_output_record_is_a_counted_drop(tmp_path, source):
    recipe = load_recipe(write_recipe(tmp_path, "kinds/toy.py:BrokenQuestions", source, prompts={"user": "hi"}))
    stats = build(recipe, tmp_path / "out", teacher=object(), progress=False)  # this kind never calls the teacher
    ledger = read_jsonl(tmp_path / "out" / "ledger.jsonl")
    assert stats["complete"] and stats["records"] == 0 and (tmp_path / "out" / "train.jsonl").read_text() == ""
    q0 = next(row for row in ledger if row["source_id"] == "q0")
    assert q0["reason"] == "invalid_output" and "field 'question' must be str" in q0["detail"]
    assert stats["questions"]["dropped_by_reason"]["invalid_output"] == 5 + 1  # the good records and no_gold


@pytest.mark.parametrize("kind, message", [
    ("kinds/none.py:ToyKind", "'kinds/none.py:ToyKind': file not found"),
    ("kinds/toy.py:Missing", "kinds/toy.py has no 'Missing'"),
    ("kinds/toy.py:NotAKind", "kinds/toy.py:NotAKind is a dict, expected a RecipeKind"),
    ("kinds/toy.py", "kinds/toy.py has no 'KIND'"),  # NAME defaults to KIND
    ("no_such_module_xyz:KIND", "cannot import module 'no_such_module_xyz'"),
    ("poem", "unknown recipe kind 'poem'"),
])
def test_bad_kind_references_name_file_and_field(tmp_path, source, kind, message):
    with pytest.raises(RecipeError) as e:
        load_recipe(write_recipe(tmp_path, kind, source))
    assert e.value.field == "kind" and "toy.yaml" in str(e.value) and message in str(e.value)


def test_plugin_that_fails_to_import_is_a_recipe_error(tmp_path, source):
    path = write_recipe(tmp_path, "broken.py:KIND", source)
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(RecipeError, match="importing .*broken.py failed: RuntimeError: boom") as e:
        load_recipe(path)
    assert e.value.field == "kind"


@pytest.mark.parametrize("prompts, field, message", [
    ({"user": "{{ question }} {{ body }}", "target": "{{ body }}"}, "prompts.user",
     "unknown placeholder {{ body }}; allowed: ['question', 'question_with_choices', 'answer', 'choices', 'answer_type']"),
    ({"user": "{{ question }}", "target": "{{ bdy }}"}, "prompts.target", "unknown placeholder {{ bdy }}; allowed: [" ),
    ({"user": "{question}", "target": "{{ body }}"}, "prompts.user", "write {{ question }}"),
    ({"user": "{{ question }}", "target": "x\n{body}"}, "prompts.target", "template line 2: single-brace {body} is the old"),
    ({"user": "{{ question }}", "target": "{nope}"}, "prompts.target", "single-brace {nope} is not a placeholder"),
    ({"user": "{{ question ", "target": "{{ body }}"}, "prompts.user", "jinja2 syntax error"),
    ({"user": "{{ question }}"}, "prompts.target", "required for kind 'toy'"),
    ({"user": "{{ question }}", "target": "{{ body }}", "caption": "{{ question }}"}, "prompts.caption",
     "not a template of kind 'toy'; its templates: ['system', 'target', 'user']"),
])
def test_bad_templates_name_file_prompt_and_placeholders(tmp_path, source, prompts, field, message):
    with pytest.raises(RecipeError) as e:
        load_recipe(write_recipe(tmp_path, "kinds/toy.py:ToyKind", source, prompts=prompts))
    assert e.value.field == field and "toy.yaml" in str(e.value) and message in str(e.value), str(e.value)


def test_literal_braces_and_latex_are_text(tmp_path, source):
    from mmreason.data.kinds.runner import Runner
    from mmreason.records import Record

    prompts = {"user": "{{ question }} \\frac{a}{b} \\text{cm} x^{n} {% raw %}{x}{% endraw %} \\boxed{}",
               "target": "{{ body }}"}
    recipe = load_recipe(write_recipe(tmp_path, "kinds/toy.py:ToyKind", source, prompts=prompts))
    runner = Runner(recipe, teacher=None, verify=lambda pred, rec: "correct")
    rec = Record(id="a", question="Q {{ not rendered }}", answer="1", answer_type="integer")
    assert runner.text("user", rec) == "Q {{ not rendered }} \\frac{a}{b} \\text{cm} x^{n} {x} \\boxed{}"


def test_help_recipe_lists_kinds_and_their_templates(capsys):
    assert main(["--help-recipe"]) == 0
    out = capsys.readouterr().out
    for name in ("distilled", "reflection", "caption", "self_critic", "synth_questions_incontext", "synth_questions_direct"):
        assert f"kind {name}" in out
    assert "prompts.reflect (required in some modes): + wrong_solution" in out
    assert "prompts.target (required): + caption, reasoning" in out
    assert "path/to/file.py:NAME" in out
