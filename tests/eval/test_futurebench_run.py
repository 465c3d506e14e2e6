"""`mmreason eval run --benchmark futurebench` on the tiny model: held-out synthetic clips in FutureBench's
official record layout, the official prompt and video settings reaching the backend, resume after a partial run,
scores per hop; and the video generated through the shared HF backend keeps its metadata (the fps trap)."""

import json

import pytest
import torch

from mmreason.cli import main as cli_main
from mmreason.eval.benchmark import VideoInput, resolve
from mmreason.eval.futurebench import load_annotations, official_messages, official_video_inputs
from mmreason.eval.run import build_items, run_benchmark
from mmreason.eval.prompting import eval_prompt
from mmreason.generation import GenerationSettings, HFBackend
from mmreason.generation.vision import placeholders, vision_inputs
from mmreason.video.synth import generate


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    data = tmp_path_factory.mktemp("synth")
    generate(str(data), n=2, n_test=3, seed=0)
    return data


class Spy:
    """A backend that records its inputs and answers 'B' for every item."""

    def __init__(self):
        self.items = []

    def generate(self, items, progress=True, desc="", on_batch=None):
        self.items += list(items)
        texts = ["B"] * len(items)
        if on_batch is not None:
            on_batch(0, texts)
        return texts


def test_items_carry_the_official_prompt_and_video_settings(synth, tmp_path):
    ann = synth / "test_futurebench.json"
    spy = Spy()
    s = run_benchmark(None, "futurebench", tmp_path / "out", data_dir=str(ann), backend_obj=spy, progress=False)
    docs = load_annotations(ann)
    msgs, images = spy.items[0]
    official = official_messages(docs[0], synth)
    assert images == []
    assert msgs[0] == {"role": "system", "content": [{"type": "text", "text": "You are a helpful assistant."}]}
    video, text = msgs[1]["content"]
    assert text == {"type": "text", "text": official[1]["content"][1]["text"]}
    assert video == {"type": "video", "video": str(synth / "videos" / f"{docs[0]['id'].rsplit('-', 1)[0]}.past.mp4"),
                     "fps": 2.0, "max_frames": 32, "min_pixels": 3136, "total_pixels": 1605632}
    assert {k: v for k, v in video.items() if k != "fps"} == official[1]["content"][0]  # fps 2 = qwen-vl-utils' default
    gold = {str(d["id"]): d["qa"]["Answer"] for d in docs}
    assert s["total"] == 3 and s["correct"] == sum(a == "B" for a in gold.values())
    assert set(s["per_hop"]) == {"hop1", "hop2", "hop3", "hop5"} and set(s["per_item"]) == set(gold)
    assert s["generation"]["generated"] == 3
    # the video root and video settings are part of the prediction cache's identity
    spec, bench = resolve("futurebench")
    bench.load(ann, spec.split)
    assert bench.identity()["video_root"] == str(synth) and bench.identity()["video"]["max_frames"] == 32


def test_eval_run_tiny_model_resume_and_score(synth, tmp_path, tiny_model_dir):
    ann = synth / "test_futurebench.json"
    out = tmp_path / "run"
    argv = ["eval", "run", "--model", str(tiny_model_dir), "--benchmark", "futurebench", "--data-dir", str(ann),
            "--output-dir", str(out), "--no-progress", "--batch-size", "2"]
    assert cli_main(argv + ["--limit", "1"]) == 0
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 1
    assert cli_main(argv) == 0  # resumes: only the 2 missing ids are generated
    s = json.loads((out / "scores.json").read_text())
    assert s["generation"] == {**s["generation"], "generated": 2, "cached": 1}
    rows = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == sorted(str(d["id"]) for d in load_annotations(ann))
    assert s["total"] == 3 and not s["missing"] and 0 <= s["overall"] <= 100
    assert s["correct"] == sum(v["correct"] for v in s["per_item"].values())
    assert json.loads((out / "run_config.json").read_text())["settings"]["max_new_tokens"] == 16
    scores = tmp_path / "rescored.json"
    assert cli_main(["eval", "score", "--benchmark", "futurebench", "--predictions", str(out / "predictions.jsonl"),
                     "--annotations", str(ann), "--output", str(scores)]) == 0
    assert json.loads(scores.read_text())["per_item"] == s["per_item"]


def _temporal_ids(model, b):
    pos, _ = model.model.get_rope_index(b["input_ids"], b["mm_token_type_ids"], video_grid_thw=b["video_grid_thw"],
                                        second_per_grid_ts=b["second_per_grid_ts"], attention_mask=b["attention_mask"])
    return [pos[0, i][b["mm_token_type_ids"][i] == 2] for i in range(len(b["input_ids"]))]


def test_hf_backend_video_keeps_metadata_and_temporal_positions(synth, tiny_model_dir):
    """The fps trap: frames without metadata make the processor assume 24 fps and every temporal RoPE id of the
    video collapses to one value. Through HFBackend the video carries qwen-vl-utils' metadata: the ids advance,
    second_per_grid_ts is 2 / the sampled fps, and the frames are not resized again by the processor."""
    be = HFBackend(str(tiny_model_dir), GenerationSettings(max_new_tokens=3, batch_size=2))
    spec, bench = resolve("futurebench")
    spec.data_dir = str(synth / "test_futurebench.json")
    raw = bench.load(spec.resolved_data_dir(), spec.split)[:2]
    items = [it.backend_input() for it in build_items(bench, raw, eval_prompt(None, spec, {}))]
    seen = []
    generate_ = be.model.generate
    be.model.generate = lambda **kw: seen.append(kw) or generate_(**kw)
    texts = be.generate(items, progress=False)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    batch = seen[0]
    frames, meta = official_video_inputs(raw[0], synth)
    t, _, h, w = frames.shape
    assert batch["video_grid_thw"][0].tolist() == [(t + 1) // 2, h // 14, w // 14]  # not re-resized
    sampled_fps = len(meta["frames_indices"]) / meta["total_num_frames"] * meta["fps"]
    assert float(batch["second_per_grid_ts"][0]) == pytest.approx(2 / sampled_fps)
    for ids in _temporal_ids(be.model, batch):
        assert len(set(ids.tolist())) == (t + 1) // 2 > 1 and bool(torch.all(ids.diff() >= 0))
    # the same frames without metadata (what the backend did before): one temporal id for the whole video
    text = be.processor.apply_chat_template(placeholders(items[0][0]), tokenize=False, add_generation_prompt=True)
    bare = be.processor(text=[text], videos=[frames], do_sample_frames=False, return_tensors="pt")
    assert len(set(_temporal_ids(be.model, bare)[0].tolist())) == 1


def test_predecoded_frames_need_their_metadata(tmp_path):
    from PIL import Image

    frames = [Image.new("RGB", (56, 56), (i * 20, 0, 0)) for i in range(4)]
    part = {"type": "video", "video": frames, "video_metadata": {"fps": 2.0, "total_num_frames": 4,
                                                                  "frames_indices": [0, 1, 2, 3]}}
    kw = vision_inputs([[{"role": "user", "content": [part, {"type": "text", "text": "x"}]}]])
    assert kw["video_metadata"] == [part["video_metadata"]] and kw["do_sample_frames"] is False
    del part["video_metadata"]
    with pytest.raises(ValueError, match="needs its 'video_metadata'"):
        vision_inputs([[{"role": "user", "content": [part]}]])
    assert VideoInput("a.mp4", max_frames=32).message_part() == {"type": "video", "video": "a.mp4", "max_frames": 32}


def test_video_root_flag_and_the_official_first_part_video_folder(synth, tmp_path):
    """The released layout keeps the past clips in first_part_video/ beside the annotations: found by default;
    --video-root (the spec's video_root) points anywhere else."""
    import shutil

    v1 = tmp_path / "V1-33K"
    shutil.copytree(synth / "videos", v1 / "first_part_video" / "videos")
    shutil.copy(synth / "test_futurebench.json", v1 / "futurebench.json")
    spy = Spy()
    s = run_benchmark(None, "futurebench", tmp_path / "a", data_dir=str(v1 / "futurebench.json"), backend_obj=spy,
                      progress=False)
    assert s["total"] == 3 and spy.items[0][0][1]["content"][0]["video"].startswith(str(v1 / "first_part_video"))
    elsewhere = tmp_path / "clips"
    shutil.copytree(synth / "videos", elsewhere / "videos")
    spy = Spy()
    assert cli_main(["eval", "run", "--model", "unused", "--benchmark", "futurebench", "--data-dir",
                     str(v1 / "futurebench.json"), "--video-root", str(tmp_path / "missing"), "--output-dir",
                     str(tmp_path / "b")]) == 2
    run_benchmark(None, "futurebench", tmp_path / "c", data_dir=str(v1 / "futurebench.json"), backend_obj=spy,
                  progress=False, video_root=str(elsewhere))
    assert spy.items[0][0][1]["content"][0]["video"].startswith(str(elsewhere))


def test_eval_score_reads_lmms_eval_samples_and_json_lists_and_refuses_rows_without_response(synth, tmp_path):
    ann = synth / "test_futurebench.json"
    docs = load_annotations(ann)
    answers = {str(d["id"]): d["qa"]["Answer"] for d in docs}
    # lmms-eval --log_samples: one JSON line per doc with the doc itself and the filtered response
    samples = tmp_path / "samples_futurebench.jsonl"
    samples.write_text("".join(json.dumps({"doc_id": i, "doc": d, "target": d["qa"]["Answer"],
                                           "resps": [[d["qa"]["Answer"]]], "filtered_resps": [d["qa"]["Answer"]]}) + "\n"
                               for i, d in enumerate(docs)))
    out = tmp_path / "lmms.json"
    assert cli_main(["eval", "score", "--benchmark", "futurebench", "--predictions", str(samples), "--annotations",
                     str(ann), "--output", str(out)]) == 0
    s = json.loads(out.read_text())
    assert s["total"] == 3 and s["correct"] == 3
    # a JSON list of {id, response}
    as_list = tmp_path / "preds.json"
    as_list.write_text(json.dumps([{"id": k, "response": "A" if v != "A" else "B"} for k, v in answers.items()]))
    assert cli_main(["eval", "score", "--benchmark", "futurebench", "--predictions", str(as_list), "--annotations",
                     str(ann), "--output", str(tmp_path / "list.json")]) == 0
    assert json.loads((tmp_path / "list.json").read_text())["correct"] == 0
    # rows with `prediction` instead of `response`: refused, naming the line (it used to score 0.0 with exit 0)
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text("".join(json.dumps({"id": k, "prediction": v}) + "\n" for k, v in answers.items()))
    from mmreason.eval.run import score_file

    with pytest.raises(ValueError, match=rf"{wrong}:1: a prediction needs a 'response' field \(the row has "
                                         r"\['id', 'prediction'\]\)"):
        score_file("futurebench", wrong, tmp_path / "wrong.json", annotations=str(ann))
