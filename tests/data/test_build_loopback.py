"""Each recipe end to end against a real loopback OpenAI-compatible server with scripted teacher replies
(correct, wrong, mixed, malformed, failing, flaky, empty, truncated, slow)."""

from __future__ import annotations

import json

import pytest
from test_build_common import ANSWERED, BENCHMARKS, BEHAVIOURS, Script, gold_of, make_source, read_jsonl, recipe_for

from mmreason.verify.answers import extract_boxed_all, match_answer
from mmreason.data.build import build, main
from mmreason.data.loopback import LoopbackServer, Scripted
from mmreason.chat import to_sft_example
from mmreason.records import load_records

N = 10
BAD = {"missing_img": "bad_image", "corrupt_img": "bad_image", "no_gold": "no_gold_answer", "line4": "invalid_record"}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return make_source(tmp_path_factory.mktemp("src"), N)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.getbasetemp() / "decontam_cache"  # shared by all build tests of the session


@pytest.fixture(scope="module")
def server():
    with LoopbackServer(Script()) as srv:
        yield srv


def check_accounting(stats, ledger, n_sources):
    assert stats["questions"]["total"] == n_sources == len(ledger)
    q = stats["questions"]
    assert q["kept"] + q["dropped"] + q["retryable"] == n_sources
    # the always-500 questions got no answer: retryable (a rerun asks again), so the build is not complete
    assert stats["complete"] == (q["retryable"] == 0)
    assert stats["retryable"] == [r["source_id"] for r in ledger if r["status"] == "retryable"]
    assert sum(q["dropped_by_reason"].values()) == q["dropped"]
    assert all(row["status"] == "kept" or row["reason"] for row in ledger)
    assert stats["records"] == sum(row["kept"] for row in ledger)


def check_records(out, stats, recipe):
    recs, report = load_records(out / "train.jsonl")  # strict: every line valid, images exist
    assert len(recs) == stats["records"] and not report.skipped
    for r in recs:
        boxes = extract_boxed_all(r.solution)
        assert len(boxes) == 1, r.solution
        assert match_answer(boxes[0], r.answer, r.answer_type)
        assert r.metadata["recipe"] == recipe.name and r.metadata["prompt_version"] == recipe.prompt_version()
        assert r.id == f"{r.metadata['source_id']}--{recipe.name}--{r.metadata['sample_index']}"
        assert r.images and all(p.is_file() for p in r.image_paths()) and r.images[0].startswith("images/")
        ex = to_sft_example(r)
        assert ex["messages"][-1]["content"][0]["text"] == r.solution
    return recs


def by_id(ledger):
    return {row["source_id"]: row for row in ledger}


def test_distilled_end_to_end(tmp_path, source, server, cache_dir):
    recipe = recipe_for("distilled.yaml", source, server.base_url, cache_dir)
    out = tmp_path / "out"
    stats = build(recipe, out, progress=False)
    ledger = read_jsonl(out / "ledger.jsonl")
    check_accounting(stats, ledger, N + 4)
    recs = check_records(out, stats, recipe)
    rows = by_id(ledger)
    for sid, reason in BAD.items():
        assert rows[sid]["status"] == "dropped" and rows[sid]["reason"] == reason, rows[sid]
    k, m = recipe.sampling.k, recipe.filters.keep_per_question
    for i in range(N):
        row, beh = rows[f"q{i}"], BEHAVIOURS[i % len(BEHAVIOURS)]
        assert sum(row["samples"].values()) == k  # every sample has exactly one outcome
        if beh in ("correct", "flaky500"):
            assert row["kept"] == m and row["samples"] == {"accepted": m, "over_cap": k - m}
        elif beh == "mixed":
            assert row["kept"] >= 1 and row["samples"]["wrong_answer"] >= 1
        else:
            expected = {"wrong": "wrong_answer", "malformed": "malformed_response", "empty": "empty",
                        "truncated": "truncated", "fail500": "http_error"}[beh]
            assert row["status"] == ("retryable" if beh == "fail500" else "dropped") and row["samples"] == {expected: k}
    assert stats["samples"]["by_outcome"]["http_error"] == k
    assert 0 < stats["samples"]["acceptance_rate"] < 1
    # source order, deterministic ids
    assert [r.metadata["source_id"] for r in recs] == sorted((r.metadata["source_id"] for r in recs), key=lambda s: int(s[1:]))
    # retries: a malformed reply is retried max_retries times
    assert row is not None and stats["teacher_requests"] == sum(r["requests"] for r in ledger)


def test_reflection_end_to_end(tmp_path, source, server, cache_dir):
    recipe = recipe_for("reflection.yaml", source, server.base_url, cache_dir, **{"sampling.k": 4})
    out = tmp_path / "out"
    stats = build(recipe, out, progress=False)
    ledger = read_jsonl(out / "ledger.jsonl")
    check_accounting(stats, ledger, N + 4)
    recs = check_records(out, stats, recipe)
    # only 'mixed' questions have both a wrong and a correct sample
    kept = {r.metadata["source_id"] for r in recs}
    assert kept == {f"q{i}" for i in range(N) if BEHAVIOURS[i % len(BEHAVIOURS)] == "mixed"}
    for r in recs:
        wrong = str(gold_of(int(r.metadata["source_id"][1:])) + 1)
        assert r.solution.index(f"There are {wrong} red dots") < r.solution.index("Wait, let me re-check")
        assert r.solution.rstrip().endswith(f"\\boxed{{{r.answer}}}")
        assert "wrong_sample_index" in r.metadata
    assert by_id(ledger)["q0"]["samples"] == {"no_pair": 4}


def test_reflection_prompt_mode(tmp_path, source, server, cache_dir):
    recipe = recipe_for("reflection.yaml", source, server.base_url, cache_dir,
                        **{"sampling.k": 2, "reflection_mode": "prompt"})
    out = tmp_path / "out"
    stats = build(recipe, out, limit=3, progress=False)
    recs = check_records(out, stats, recipe)
    assert {r.metadata["source_id"] for r in recs} == {"q1", "q2"}  # always-wrong and mixed questions
    assert all("Wait, let me re-check: I counted one dot twice" in r.solution for r in recs)


def test_caption_end_to_end(tmp_path, source, server, cache_dir):
    recipe = recipe_for("caption.yaml", source, server.base_url, cache_dir, **{"source.format": "records"})
    out = tmp_path / "out"
    stats = build(recipe, out, progress=False)
    ledger = read_jsonl(out / "ledger.jsonl")
    check_accounting(stats, ledger, N + 4)
    recs = check_records(out, stats, recipe)
    assert recs
    for r in recs:
        assert r.solution.index("A white square canvas") < r.solution.index("Now let me reason") < r.solution.index("\\boxed")
    # caption + reasoning: 2 requests per sample on a clean question
    assert by_id(ledger)["q0"]["requests"] == 2 * recipe.sampling.k


def test_self_critic_end_to_end(tmp_path, source, server, cache_dir):
    recipe = recipe_for("self_critic.yaml", source, server.base_url, cache_dir,
                        **{"sampling.k": 4, "filters.keep_per_question": 4})
    out = tmp_path / "out"
    stats = build(recipe, out, progress=False)
    ledger = read_jsonl(out / "ledger.jsonl")
    check_accounting(stats, ledger, N + 4)
    recs = check_records(out, stats, recipe)
    kept = {r.metadata["source_id"] for r in recs}
    # the revision is verified: an always-wrong teacher gives nothing; a wrong draft fixed by the revision is kept
    assert "q1" not in kept and "q2" in kept and "q0" in kept
    q2 = [r for r in recs if r.metadata["source_id"] == "q2"]
    assert {r.metadata["draft_verdict"] for r in q2} == {"wrong", "correct"}
    for r in recs:
        assert r.solution.index("Draft:") < r.solution.index("Critique:") < r.solution.index("Revised solution:")


def test_synth_questions_incontext_and_direct(tmp_path, source, server, cache_dir):
    for name in ("synth_questions_incontext.yaml", "synth_questions_direct.yaml"):
        recipe = recipe_for(name, source, server.base_url, cache_dir)
        out = tmp_path / name
        stats = build(recipe, out, progress=False)
        ledger = read_jsonl(out / "ledger.jsonl")
        check_accounting(stats, ledger, N + 4)
        recs, _ = load_records(out / "train.jsonl", require_answer=False)
        assert recs and all(r.answer is None and r.solution is None for r in recs)
        for r in recs:
            # never a copy of a source question
            assert "how many red dots are in the image" not in r.question
            assert r.question != r.metadata["source_question"]
        assert stats["samples"]["by_outcome"].get("duplicate", 0) > 0
        if "direct" in name:  # direct needs no gold answer
            assert by_id(ledger)["no_gold"]["status"] == "kept"


def test_slow_teacher_times_out_and_is_counted(tmp_path, source, cache_dir):
    with LoopbackServer(lambda body: Scripted(text="late \\boxed{1}", delay=1.0)) as srv:
        recipe = recipe_for("distilled.yaml", source, srv.base_url, cache_dir,
                            **{"teacher.timeout": 0.2, "teacher.max_retries": 1, "sampling.k": 1})
        stats = build(recipe, tmp_path / "out", limit=2, progress=False)
    assert stats["samples"]["by_outcome"] == {"timeout": 2}
    assert stats["questions"]["retryable"] == 2 and stats["questions"]["dropped_by_reason"] == {}


def test_api_key_from_env_sent_and_never_logged(tmp_path, source, cache_dir, monkeypatch, capsys, caplog):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-123")
    with LoopbackServer(Script(), api_key="sk-secret-123") as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        recipe = recipe_for("distilled.yaml", source, srv.base_url, cache_dir, **{"teacher.base_url": None})
        assert recipe.teacher.base_url is None
        code = main(["--recipe", str(recipe.path), "--out", str(tmp_path / "o"), "--limit", "1", "--no-progress",
                     "--set", f"source.path={source}", "--teacher.model", "scripted",
                     f"--decontam.cache_dir={cache_dir}", f"--decontam.benchmarks_dir={BENCHMARKS}"])
        assert code == 0
        assert srv.auth_headers and all(h == "Bearer sk-secret-123" for h in srv.auth_headers)
    captured = capsys.readouterr()
    assert "sk-secret" not in captured.out + captured.err + caplog.text
    assert "sk-secret" not in (tmp_path / "o" / "stats.json").read_text()


def test_images_referenced_without_copy(tmp_path, source, server, cache_dir):
    recipe = recipe_for("distilled.yaml", source, server.base_url, cache_dir, **{"output.copy_images": False})
    stats = build(recipe, tmp_path / "out", limit=1, progress=False)
    recs, _ = load_records(tmp_path / "out" / "train.jsonl")
    assert stats["records"] == len(recs) >= 1
    assert recs[0].images[0].startswith("..") and recs[0].image_paths()[0].resolve() == (source.parent / "images/q0.png").resolve()
    assert not (tmp_path / "out" / "images").exists()


def test_cli_errors_name_file_and_field(tmp_path, source, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: distilled\nname: x\nsource: {path: a.jsonl}\nteacher: {model: m, concurency: 3}\n"
                   "prompts: {user: hi}\n")
    assert main(["--recipe", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "teacher.concurency" in err
    assert main(["--recipe", "data_recipes/distilled.yaml", "--out", str(tmp_path / "o"), "--set", "sampling.k=zero"]) == 2
    assert "sampling.k" in capsys.readouterr().err
    bad.write_text("kind: distilled\nname: x\nsource: {path: a.jsonl}\nteacher: {model: m}\nprompts: {user: '{questoin}'}\n")
    assert main(["--recipe", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "prompts.user" in capsys.readouterr().err


def test_stats_json_layout(tmp_path, source, server, cache_dir):
    recipe = recipe_for("distilled.yaml", source, server.base_url, cache_dir)
    build(recipe, tmp_path / "out", limit=4, progress=False)
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert set(stats) >= {"recipe", "kind", "prompt_version", "teacher", "questions", "records", "samples",
                          "teacher_requests", "decontaminated", "skipped", "complete"}
    assert stats["questions"]["total"] == 4


def test_down_server_stops_build_without_committing_the_failures(tmp_path, source, cache_dir, capsys):
    with LoopbackServer(lambda body: Scripted(status=500)) as srv:
        args = ["--recipe", "data_recipes/distilled.yaml", "--out", str(tmp_path / "o"), "--no-progress",
                "--set", f"source.path={source}", "--set", f"teacher.base_url={srv.base_url}",
                "--set", "teacher.max_retries=1", "--set", "teacher.backoff_base=0.01",
                "--set", "teacher.max_failed_questions=3", "--set", "sampling.k=1", "--set", f"decontam.cache_dir={cache_dir}",
                "--set", f"decontam.benchmarks_dir={BENCHMARKS}"]
        assert main(args) == 2
    assert "teacher unavailable" in capsys.readouterr().err
    assert (tmp_path / "o" / "ledger.jsonl").read_text() == ""  # nothing committed: a rerun retries them
    with LoopbackServer(Script(ANSWERED)) as srv:  # the server is back: the rerun completes
        args[args.index(next(a for a in args if a.startswith("teacher.base_url=")))] = f"teacher.base_url={srv.base_url}"
        assert main(args) == 0
    stats = json.loads((tmp_path / "o" / "stats.json").read_text())
    assert stats["complete"] and stats["records"] > 0
