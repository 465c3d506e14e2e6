"""`mmreason nep demo`: the table / paired-test writer on fixed inputs (fast), and the whole demo end to end with a
handful of clips and steps (slow): base, SFT and SFT+GRPO rows per hop from the real eval pipeline, the
blanked-frames control, the FutureBench-format records, the GRPO stage's inherited prompt, reuse of finished stages."""

import json

import pytest

from mmreason.records import load_records
from mmreason.demos.nep import main as demo_main
from mmreason.demos.nep import report


def _scores(correct: dict[str, bool], hops: dict[str, str]) -> dict:
    """A scores.json as the futurebench plugin writes it, from per-item correctness."""
    per_hop_counts = {h: {"correct": 0, "total": 0} for h in ("hop1", "hop2", "hop3", "hop5")}
    for i, ok in correct.items():
        per_hop_counts[hops[i]]["total"] += 1
        per_hop_counts[hops[i]]["correct"] += ok
    pct = {h: 100 * c["correct"] / c["total"] if c["total"] else 0 for h, c in per_hop_counts.items()}
    n, k = len(correct), sum(correct.values())
    return {"overall": 100 * k / n, "per_hop": pct, "per_hop_counts": per_hop_counts, "total": n, "correct": k,
            "per_item": {i: {"correct": ok} for i, ok in correct.items()}}


def test_report_table_and_paired_tests(tmp_path):
    ids = [f"q{i:02d}" for i in range(20)]
    hops = {i: ("hop1" if n < 12 else "hop2") for n, i in enumerate(ids)}
    base = _scores({i: n % 4 == 0 for n, i in enumerate(ids)}, hops)  # 5 right: q00 q04 q08 q12 q16
    sft = _scores({i: n < 15 for n, i in enumerate(ids)}, hops)  # 15 right; only base: q16; only SFT: 11 items
    grpo = _scores({i: n < 15 for n, i in enumerate(ids)}, hops)  # the same items as SFT
    blank = _scores({i: n % 5 == 1 for n, i in enumerate(ids)}, hops)  # q01 q06 q11 q16
    text, summary = report([("base", base), ("SFT", sft), ("SFT+GRPO", grpo)], [("SFT, frames blanked", blank)],
                           123.4, {"SFT": 60.0, "GRPO": 30.0}, tmp_path)
    lines = text.splitlines()
    assert "| model | hop1 (n=12) | hop2 (n=8) | overall (n=20) |" in lines  # hop3/hop5 have no items: no column
    assert "| base | 25.0 | 25.0 | 25.0 ± 9.7 |" in lines
    assert "| SFT | 100.0 | 37.5 | 75.0 ± 9.7 |" in lines
    assert "| SFT, frames blanked | 25.0 | 12.5 | 20.0 ± 8.9 |" in lines
    paired = {(r["b"], r["a"], r["group"]): r for r in summary["paired"]}
    assert set(paired) == {("SFT", "base", "all"), ("SFT+GRPO", "SFT", "all")}  # no groups given: overall only
    sft_vs_base = paired[("SFT", "base", "all")]
    assert (sft_vs_base["b_only_a"], sft_vs_base["c_only_b"], sft_vs_base["n"]) == (1, 11, 20)
    assert sft_vs_base["diff"] == pytest.approx(0.5) and sft_vs_base["p_mcnemar"] == pytest.approx(2 * 13 / 4096)
    assert sft_vs_base["ci_low"] > 0 and sft_vs_base["reading"] == "SFT better, beyond noise"
    g = paired[("SFT+GRPO", "SFT", "all")]
    assert (g["diff"], g["b_only_a"], g["c_only_b"], g["p_mcnemar"]) == (0.0, 0, 0, 1.0)
    assert any(line.startswith("| SFT vs base | all (n = 20) | 25.0% → 75.0% | +50.0 [") and "0.00635 (1 / 11)" in line
               for line in lines)
    assert "wall time 123 s on this machine (SFT 60 s, GRPO 30 s)" in text
    assert summary["rows"]["SFT"]["correct"] == 15 and summary["blank_frames"]["SFT, frames blanked"]["correct"] == 4
    assert "per_item" not in summary["rows"]["base"]
    # per group (item id -> family): a row per group under the overall one
    fam = {i: ("ball" if n % 2 else "sequence") for n, i in enumerate(ids)}
    _, by_family = report([("base", base), ("SFT", sft)], [], 1.0, {}, tmp_path, fam)
    assert [(r["group"], r["n"]) for r in by_family["paired"]] == [("all", 20), ("ball", 10), ("sequence", 10)]
    # the two evals must have scored the same items
    other = _scores({i: True for i in ids[:-1]}, hops)
    with pytest.raises(ValueError, match="different items"):
        report([("base", base), ("SFT", other)], [], 1.0, {}, tmp_path)


@pytest.mark.slow
def test_nep_demo_small(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = ["--out", str(out), "--n-train", "6", "--n-test", "4", "--sft-steps", "2", "--grpo-steps", "1",
            "--eval-batch-size", "4", "--mcq-variants", "2", "--grpo-arg=--per_device_train_batch_size=4",
            "--grpo-arg=--num_generations=2"]
    assert demo_main(argv) == 0
    summary = json.loads((out / "nep_demo_summary.json").read_text())
    assert list(summary["rows"]) == ["base", "SFT", "SFT+GRPO"]
    assert list(summary["blank_frames"]) == ["SFT, frames blanked", "SFT+GRPO, frames blanked"]
    for row in [*summary["rows"].values(), *summary["blank_frames"].values()]:
        assert row["total"] == 4 and row["correct"] == round(row["overall"] * 4 / 100)
        assert sum(c["total"] for c in row["per_hop_counts"].values()) == 4
    assert {(p["b"], p["a"]) for p in summary["paired"]} == {("SFT", "base"), ("SFT+GRPO", "SFT")}
    assert all(p["p_mcnemar"] is not None for p in summary["paired"])
    assert {p["n"] for p in summary["paired"] if p["group"] == "all"} == {4}
    table = (out / "nep_demo_table.md").read_text()
    assert "| base |" in table and "| SFT |" in table and "| SFT+GRPO |" in table and "wall time" in table
    assert "| SFT vs base | all (n = 4) |" in table and "McNemar" in table
    fb, _ = load_records(out / "data" / "train_fb_mcq.jsonl")
    mcq, _ = load_records(out / "data" / "train_mcq.jsonl")
    assert len(fb) == len(mcq) == 12 and fb[0].solution == mcq[0].answer and fb[0].question.startswith("\n")
    assert fb[0].answer_type == "choice" and fb[0].choices == mcq[0].choices
    assert fb[0].question.endswith("\nAnswer with the option's letter from the given choices directly.")
    sft_prompt = json.loads((out / "sft" / "prompt.json").read_text())
    assert sft_prompt["instruction"] is None and sft_prompt["system"] == "You are a helpful assistant."
    assert json.loads((out / "grpo" / "prompt.json").read_text()) == sft_prompt  # GRPO prompts = the eval's
    blank = json.loads((out / "data" / "blank" / "test_futurebench.json").read_text())
    assert blank == json.loads((out / "data" / "test_futurebench.json").read_text())
    mtime = (out / "grpo" / "model.safetensors").stat().st_mtime_ns
    assert demo_main(argv) == 0  # finished stages are reused
    assert (out / "grpo" / "model.safetensors").stat().st_mtime_ns == mtime
    with pytest.raises(SystemExit, match="other settings"):
        demo_main(argv[:2] + ["--n-train", "7"] + argv[4:])


def _tree(root) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_synthesis_is_byte_identical(tmp_path):
    """Two `nep synth` runs with the same seed (and the demo's FutureBench records and blanked clips) write the
    same bytes: the data is not where a demo's table moves."""
    from mmreason.demos.nep import blank_test_clips, futurebench_sft_records
    from mmreason.video.synth import generate

    trees = []
    for name in ("a", "b"):
        out = tmp_path / name
        generate(str(out), 4, 2, seed=3, size=56, train_families=["ball", "sequence"], option_order="sorted")
        futurebench_sft_records(out)
        blank_test_clips(out)
        trees.append(_tree(out))
    assert trees[0] == trees[1] and any(k.endswith(".mp4") for k in trees[0])


def test_a_folder_made_by_other_code_is_refused_not_reused(tmp_path, monkeypatch):
    """A run folder left by another version of the code printed that version's table: the demo refuses it."""
    import mmreason.demos.nep as demo

    out = tmp_path / "demo"
    argv = ["--out", str(out), "--n-train", "2", "--n-test", "2", "--prepare-only"]
    assert demo_main(argv) == 0
    assert json.loads((out / "demo_data.json").read_text())["code"] == demo.code_identity(demo.SFT_CONFIG, demo.GRPO_CONFIG)
    assert demo_main(argv) == 0  # same code: reused
    monkeypatch.setattr(demo, "code_identity", lambda *files: "another version")
    with pytest.raises(SystemExit, match="other settings"):
        demo_main(argv)


def test_threads_are_pinned(monkeypatch):
    import torch

    from mmreason.demos.kernels import DEMO_THREADS, pin_threads

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        pin_threads()
        assert torch.get_num_threads() == DEMO_THREADS == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_the_thread_count_and_cpu_kernels_do_not_change_the_trained_weights(tmp_path):
    """A machine with 2 threads whose torch picks other CPU kernels (simulated: OMP_NUM_THREADS=2, the ATen
    kernels of the default vector width, MKL's "compatible" path) trains the same SFT weights as 1 thread with this
    machine's kernels: the demo pins threads and kernels (without either pin the weights differ after 10 steps)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    weights = []
    other_machine = {"OMP_NUM_THREADS": "2", "ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}
    for name, over in (("here", {"OMP_NUM_THREADS": "1"}), ("other", other_machine)):
        out = tmp_path / name
        env = {**os.environ, **over, "PYTHONPATH": str(root), "MMREASON_OFFLINE": "1"}
        cmd = [sys.executable, "-m", "mmreason", "nep", "demo", "--out", str(out), "--n-train", "4", "--n-test", "2",
               "--sft-steps", "6", "--grpo-steps", "0", "--no-blank-control", "--eval-batch-size", "2"]
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        weights.append((out / "sft" / "model.safetensors").read_bytes())
    assert weights[0] == weights[1]


def test_cpu_kernels_are_pinned_before_torch_loads(tmp_path):
    """`pin_isa` sets the kernel choice before torch loads: another vector width asked by the environment is
    replaced by the demo's (where the CPU has AVX2)."""
    import os
    import subprocess
    import sys

    import torch

    if torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        pytest.skip("a CPU without AVX2: nothing to pin")
    code = ("import sys; from mmreason.demos.kernels import pin_isa; assert pin_isa(); import torch; "
            "print(torch.backends.cpu.get_cpu_capability())")
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["AVX2"]
