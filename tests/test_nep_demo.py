"""`mmreason nep demo` end to end with a handful of clips and steps: base and SFT rows per hop from the real
eval pipeline, the FutureBench-format SFT records, the table and summary files, reuse of finished stages."""

import json

import pytest

from mmreason.records import load_records
from mmreason.video.demo import main as demo_main


@pytest.mark.slow
def test_nep_demo_small(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = ["--out", str(out), "--n-train", "6", "--n-test", "4", "--sft-steps", "2", "--eval-batch-size", "4"]
    assert demo_main(argv) == 0
    summary = json.loads((out / "nep_demo_summary.json").read_text())
    assert set(summary["rows"]) == {"base", "SFT"}
    for row in summary["rows"].values():
        assert row["total"] == 4 and row["correct"] == round(row["overall"] * 4 / 100)
        assert sum(c["total"] for c in row["per_hop_counts"].values()) == 4
    table = (out / "nep_demo_table.md").read_text()
    assert "| base |" in table and "| SFT |" in table and "wall time" in table
    fb, _ = load_records(out / "data" / "train_fb_mcq.jsonl")
    mcq, _ = load_records(out / "data" / "train_mcq.jsonl")
    assert len(fb) == len(mcq) and fb[0].solution == mcq[0].answer and fb[0].question.startswith("\n")
    assert fb[0].question.endswith("\nAnswer with the option's letter from the given choices directly.")
    assert json.loads((out / "sft" / "prompt.json").read_text())["instruction"] is None
    mtime = (out / "sft" / "model.safetensors").stat().st_mtime_ns
    assert demo_main(argv) == 0  # finished stages are reused
    assert (out / "sft" / "model.safetensors").stat().st_mtime_ns == mtime
    with pytest.raises(SystemExit, match="other settings"):
        demo_main(argv[:2] + ["--n-train", "7"] + argv[4:])
