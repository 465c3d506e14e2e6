"""Acceptance: each of the four recipes builds a set from synthetic tasks (mmreason.data.synth) through
the loopback teacher, and `mmreason sft` trains on the built sets for 2 steps."""

from __future__ import annotations

import hashlib
import json

from test_build_common import read_jsonl, recipe_for

from mmreason.data.build import build
from mmreason.data.loopback import LoopbackServer, Scripted, last_user_text
from mmreason.data.teachers import data_url
from mmreason.records import LETTERS, load_records


def wrong_answer(rec) -> str:
    if rec.answer_type == "choice":
        return LETTERS[(LETTERS.index(rec.answer) + 1) % len(rec.choices)]
    if rec.answer_type in ("integer", "float"):
        return str(int(float(rec.answer)) + 1)
    return "no-such-" + rec.answer


class GoldScript:
    """Knows each synthetic image's gold answer (by the image bytes); right on even seeds, wrong on odd."""

    def __init__(self, records):
        self.by_image = {hashlib.sha256(data_url(r.image_paths()[0]).encode()).hexdigest(): r for r in records}

    def __call__(self, body):
        url = next(p["image_url"]["url"] for m in body["messages"] if isinstance(m["content"], list)
                   for p in m["content"] if p.get("type") == "image_url")
        rec = self.by_image[hashlib.sha256(url.encode()).hexdigest()]
        text = last_user_text(body)
        if "Describe the image in detail" in text:
            return Scripted(text="A small synthetic scene: coloured shapes, bars or digits on a plain background.")
        if "Critique this draft" in text:
            return Scripted(text="Checking each step against the image: the count in step 1 looks off.")
        right = body.get("seed", 0) % 2 == 0 or "Taking the critique" in text
        ans = rec.answer if right else wrong_answer(rec)
        return Scripted(text=f"I read the image carefully and work it out step by step. So the answer is \\boxed{{{ans}}}.")


def test_four_recipes_on_synth_then_sft_trains(tmp_path, tiny_model_dir):
    from mmreason.cli import main as cli_main
    from mmreason.data.synth import synthesize

    syn = synthesize(tmp_path / "synth", 8, 0, seed=0, progress=False)
    records, _ = load_records(syn["train"])
    built = []
    with LoopbackServer(GoldScript(records)) as srv:
        for name in ("distilled.yaml", "reflection.yaml", "caption.yaml", "self_critic.yaml"):
            recipe = recipe_for(name, syn["train"], srv.base_url, tmp_path / "decontam_cache",
                                **{"source.format": "records", "sampling.k": 4, "decontam.enabled": False})
            out = tmp_path / recipe.kind
            stats = build(recipe, out, progress=False)
            assert stats["complete"] and stats["questions"]["total"] == 8
            assert stats["records"] > 0, (name, stats)
            assert stats["questions"]["kept"] + sum(stats["questions"]["dropped_by_reason"].values()) == 8
            built.append(out / "train.jsonl")
    for path in built:
        recs, report = load_records(path)
        assert recs and not report.skipped
    cfg = tmp_path / "sft.yaml"
    cfg.write_text(
        f"model_name_or_path: {tiny_model_dir}\n"
        f"train_files: {json.dumps([str(p) for p in built])}\n"
        f"output_dir: {tmp_path / 'sft'}\n"
        "per_device_train_batch_size: 2\nmax_steps: 2\nlearning_rate: 1.0e-3\n"
        "activation_checkpointing: false\nsave_strategy: 'no'\nreport_to: none\n"
    )
    assert cli_main(["sft", "--config", str(cfg)]) == 0
    report = json.loads((tmp_path / "sft" / "sft_data_report.json").read_text())
    assert report["loaded"] == sum(len(read_jsonl(p)) for p in built) and not report["skipped"]
    assert (tmp_path / "sft" / "model.safetensors").is_file()
