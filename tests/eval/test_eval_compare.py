"""`mmreason eval compare A B`: the paired test of two eval outputs, on crafted scores files."""

import json

import pytest

from mmreason.eval.cli import main as eval_main


def _eval_dir(root, name, correct: dict[str, bool], sources: dict[str, str] | None = None):
    d = root / name
    d.mkdir()
    per = {i: {"prediction": "x", "correct": ok} for i, ok in correct.items()}
    (d / "scores.json").write_text(json.dumps({"accuracy": sum(correct.values()) / len(correct), "per_item": per}))
    if sources:
        (d / "predictions_scored.jsonl").write_text(
            "".join(json.dumps({"id": i, "source": sources[i], **per[i]}) + "\n" for i in correct))
    return d


def test_compare_prints_mcnemar_and_ci_overall_and_per_source(tmp_path, capsys):
    ids = [f"b{k}" for k in range(10)] + [f"c{k}" for k in range(10)]
    src = {i: {"b": "synth/bars", "c": "synth/color"}[i[0]] for i in ids}
    # bars: A 3/10, B 10/10 (7 only B); colour: A 5/10, B 4/10 (1 only A)
    a = {i: (i[0] == "b" and int(i[1:]) < 3) or (i[0] == "c" and int(i[1:]) < 5) for i in ids}
    b = {i: i[0] == "b" or int(i[1:]) < 4 for i in ids}
    da, db = _eval_dir(tmp_path, "sft", a, src), _eval_dir(tmp_path, "grpo", b, src)
    out = tmp_path / "cmp.json"
    assert eval_main(["compare", str(da / "scores.json"), str(db), "--labels", "SFT", "GRPO", "--json", str(out)]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| GRPO vs SFT")]
    assert [ln.split(" | ")[1] for ln in lines] == ["all (n = 20)", "synth/bars (n = 10)", "synth/color (n = 10)"]
    # 1 vs 7 discordant: p = 2 * (1 + 8) / 2^8; 0 vs 7: 2 / 2^7; 1 vs 0: 1
    assert " | 40.0% → 70.0% | +30.0 [" in lines[0] and lines[0].endswith("| 0.0703 (1 / 7) | within noise |")
    assert lines[1].endswith("| 0.0156 (0 / 7) | GRPO better, beyond noise |")
    assert lines[2].endswith("| 1 (1 / 0) | within noise |")
    rows = json.loads(out.read_text())
    assert rows[0]["p_mcnemar"] == pytest.approx(18 / 256) and rows[0]["ci_low"] < 0.3 < rows[0]["ci_high"]
    # without predictions_scored.jsonl (or with --no-groups): the overall row only
    assert eval_main(["compare", str(da), str(db), "--no-groups"]) == 0
    assert len([ln for ln in capsys.readouterr().out.splitlines() if " vs " in ln]) == 1


def test_compare_refuses_mismatched_items_and_missing_files(tmp_path):
    da = _eval_dir(tmp_path, "a", {"1": True, "2": False, "3": True})
    db = _eval_dir(tmp_path, "b", {"1": True, "2": True, "4": False})
    with pytest.raises(SystemExit, match=r"scored different items \(3 vs 3\): 1 only in .*a/scores.json \(3\), "
                                         r"1 only in .*b \(4\)"):
        eval_main(["compare", str(da / "scores.json"), str(db)])
    with pytest.raises(SystemExit, match="no eval summary"):
        eval_main(["compare", str(da), str(tmp_path / "nowhere")])
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "scores.json").write_text(json.dumps({"accuracy": 0.5}))
    with pytest.raises(SystemExit, match="no per_item"):
        eval_main(["compare", str(da), str(tmp_path / "c")])


def test_compare_refuses_evals_of_different_benchmarks(tmp_path):
    da = _eval_dir(tmp_path, "a", {"1": True, "2": False}, {"1": "synth/bars", "2": "synth/color"})
    db = _eval_dir(tmp_path, "b", {"1": True, "2": True}, {"1": "synth/color", "2": "synth/color"})
    with pytest.raises(SystemExit, match="different sources"):
        eval_main(["compare", str(da), str(db)])
