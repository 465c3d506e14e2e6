"""Fault injection (issue 25): records files as they arrive from elsewhere — a UTF-8 byte-order mark on line 1
(Windows editors), gzip-compressed `.jsonl.gz`, a gzip file cut short — fed to every entry point that reads
records: the records loader, SFT, GRPO, eval run, data build."""

from __future__ import annotations

import gzip

import pytest
from faults_corpus import N_GOOD, write_good_records

from mmreason.records import load_records

FILES = ["bom", "gzip", "gzip_bom", "gzip_truncated"]


def _variant(root, name):
    plain = write_good_records(root).read_bytes()
    if name == "bom":
        path, data = root / "bom.jsonl", b"\xef\xbb\xbf" + plain
    elif name == "gzip":
        path, data = root / "good.jsonl.gz", gzip.compress(plain)
    elif name == "gzip_bom":
        path, data = root / "bom.jsonl.gz", gzip.compress(b"\xef\xbb\xbf" + plain)
    else:
        whole = gzip.compress(plain)
        path, data = root / "cut.jsonl.gz", whole[: len(whole) // 2]  # a copy that stopped half-way
    path.write_bytes(data)
    return path


def _expect_cut(e, path):
    assert f"{path}:" in str(e.value) and "gzip stream is corrupt or truncated" in str(e.value), str(e.value)


class Echo:
    def generate(self, inputs, progress=True, desc="", on_batch=None):
        texts = ["one dot \\boxed{1}" for _ in inputs]
        if on_batch is not None:
            on_batch(0, texts)
        return texts


@pytest.mark.parametrize("name", FILES)
def test_every_entry_point_reads_the_file(tmp_path, name, tiny_model_dir, fault_log):
    from mmreason.eval.run import run_benchmark
    from mmreason.modeling import ModelLoad, load_processor
    from mmreason.rl.data import build_grpo_dataset
    from mmreason.sft.dataset import load_sft_records

    path = _variant(tmp_path, name)
    processor = load_processor(ModelLoad(str(tiny_model_dir)), padding_side="left")
    readers = {
        "records": lambda: len(load_records(path)[0]),
        "sft": lambda: len(load_sft_records([str(path)])[0]),
        "grpo": lambda: len(build_grpo_dataset(str(path), processor=processor, max_prompt_length=512)[0]),
        "eval run": lambda: run_benchmark(None, path, tmp_path / "ev", backend_obj=Echo(), progress=False)["total"],
    }
    for entry, read in readers.items():
        if name == "gzip_truncated":
            with pytest.raises(ValueError) as e:
                read()
            _expect_cut(e, path)
            outcome = "error naming file:line"
        else:
            assert read() == N_GOOD, entry
            outcome = "read, first record kept" if "bom" in name else "read"
        fault_log.record("fault", f"{name} records file -> {entry}", outcome, area="files")


@pytest.mark.parametrize("name", FILES)
def test_data_build_reads_the_file(tmp_path, name, fault_log):
    from pathlib import Path

    from mmreason.data.build import build
    from mmreason.data.loopback import LoopbackServer, Scripted
    from mmreason.data.kinds.registry import load_recipe

    path = _variant(tmp_path, name)
    recipe_file = Path(__file__).resolve().parents[2] / "data_recipes" / "distilled.yaml"
    with LoopbackServer(lambda body: Scripted(text="I count exactly one red dot here. \\boxed{1}")) as srv:
        recipe = load_recipe(recipe_file, [("source.path", str(path)), ("teacher.base_url", srv.base_url),
                                           ("teacher.model", "scripted"), ("decontam.enabled", False),
                                           ("sampling.k", 1)])
        if name == "gzip_truncated":
            with pytest.raises(ValueError) as e:
                build(recipe, tmp_path / "build", progress=False)
            _expect_cut(e, path)
            assert srv.calls == 0  # stopped while reading the sources, before any teacher call
            outcome = "error naming file:line"
        else:
            stats = build(recipe, tmp_path / "build", progress=False)
            assert stats["complete"] and stats["records"] == N_GOOD, stats
            outcome = "built"
    fault_log.record("fault", f"{name} records file -> data build", outcome, area="files")
