"""Teacher backends other than HTTP: local HF generation on the tiny model, and the vLLM wiring."""

from __future__ import annotations

import sys

import pytest
from test_build_common import make_source, read_jsonl, recipe_for

from mmreason.data.build import build
from mmreason.data.recipe import SamplingConfig, TeacherConfig
from mmreason.data.teachers import ChatRequest, HFTeacher, TeacherError, image_part, make_teacher, text_part


def test_hf_teacher_builds_on_tiny_model(tmp_path, tiny_model_dir):
    """The tiny model writes gibberish: the pipeline must run and account for every question and sample."""
    src = make_source(tmp_path / "src", n=3)
    recipe = recipe_for("distilled.yaml", src, "http://unused", tmp_path.parent / "decontam_cache",
                        **{"teacher.backend": "hf", "teacher.model": str(tiny_model_dir), "teacher.batch_size": 2,
                           "sampling.k": 3, "sampling.max_tokens": 8, "decontam.enabled": False})
    stats = build(recipe, tmp_path / "out", progress=False)
    ledger = read_jsonl(tmp_path / "out" / "ledger.jsonl")
    assert stats["complete"] and len(ledger) == stats["questions"]["total"] == 3 + 4
    usable = [row for row in ledger if row["source_id"].startswith("q")]
    assert all(sum(row["samples"].values()) == 3 and row["requests"] == 3 for row in usable)
    outcomes = set(stats["samples"]["by_outcome"])
    assert outcomes and outcomes <= {"truncated", "no_answer", "wrong_answer", "empty", "accepted", "over_cap", "too_short"}
    assert stats["samples"]["total"] == 9


def test_hf_teacher_replies_and_finish_reasons(tiny_model_dir, tmp_path):
    from test_build_common import dots_image

    dots_image(tmp_path / "a.png", 3)
    t = HFTeacher(TeacherConfig(backend="hf", model=str(tiny_model_dir), batch_size=4))
    msgs = [{"role": "user", "content": [image_part(tmp_path / "a.png"), text_part("How many dots?")]}]
    replies = t.chat([ChatRequest(msgs, seed=1), ChatRequest(msgs, seed=2)], SamplingConfig(max_tokens=4, temperature=0))
    assert len(replies) == 2 and all(r.error is None and r.finish_reason in ("stop", "length") for r in replies)
    assert replies[0].text == replies[1].text  # greedy: same input, same output
    bad = [{"role": "user", "content": [image_part(tmp_path / "missing.png"), text_part("?")]}]
    assert t.chat([ChatRequest(bad)], SamplingConfig(max_tokens=2))[0].error == "bad_image"


def test_vllm_backend_wiring_gives_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # not installable on CPU machines
    with pytest.raises(TeacherError, match="vLLM engine"):
        make_teacher(TeacherConfig(backend="vllm", model="Qwen/Qwen2.5-VL-7B-Instruct"))


def test_vllm_backend_passes_settings_to_engine(monkeypatch):
    """With a stand-in `vllm` module the teacher builds the engine and sampling params from the recipe."""
    import types

    calls = {}

    class LLM:
        def __init__(self, **kw):
            calls["llm"] = kw

        def chat(self, convs, params, use_tqdm=False):
            calls["chat"] = (convs, params)
            out = types.SimpleNamespace(text="ok \\boxed{1}", finish_reason="stop")
            return [types.SimpleNamespace(outputs=[out]) for _ in convs]

    class SamplingParams:
        def __init__(self, **kw):
            self.kw = kw

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM, SamplingParams=SamplingParams))
    t = make_teacher(TeacherConfig(backend="vllm", model="m", tensor_parallel_size=2))
    assert calls["llm"]["tensor_parallel_size"] == 2 and calls["llm"]["trust_remote_code"] is False
    assert calls["llm"]["load_format"] == "safetensors"
    r = t.chat([ChatRequest([{"role": "user", "content": [text_part("hi")]}], seed=7)], SamplingConfig(max_tokens=5))
    assert r[0].text == "ok \\boxed{1}" and calls["chat"][1][0].kw["seed"] == 7 and calls["chat"][1][0].kw["max_tokens"] == 5
