"""The released data layouts read as they are (mmreason.formats): fixtures written exactly as the official loading
code reads them (generated here, a few rows each), the records they become, `data convert`, one SFT and one GRPO
step and an eval through --train_files / --benchmark with no conversion step, and the placeholder / vision-token
gates naming file:line."""

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from mmreason.chat import prompt_messages
from mmreason.formats import DataFormatArguments, UnknownLayout, open_source, read_source
from mmreason.errors import RecordError
from mmreason.records import LoadReport, load_records

COT = "The bars are 2 and 1, so the total is 3.\n\\boxed{3}"


def _png(color="red", size=(32, 32)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def _arrow_images(rows, column="images"):
    """An HF dataset whose image column is what the Hub's parquet holds: List(Image) of {bytes, path}."""
    import datasets

    return datasets.Dataset.from_list(rows).cast_column(column, datasets.List(datasets.Image()))


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    """{name: (path, expected rows)} in each official layout."""
    d = tmp_path_factory.mktemp("layouts")
    (d / "img").mkdir()
    for i, c in enumerate(["red", "green", "blue"]):
        (d / "img" / f"{i}.png").write_bytes(_png(c))
    out = {}
    # WaltonFuture/Multimodal-Cold-Start: problem, answer = the whole CoT, images (parquet bytes)
    cold = [{"problem": f"<image>How many bars? ({i})", "answer": COT, "images": [{"bytes": _png(c), "path": None}]}
            for i, c in enumerate(["red", "green", "blue"])]
    _arrow_images(cold).to_parquet(str(d / "cold_start.parquet"))
    out["easyr1_cot"] = d / "cold_start.parquet"
    # WaltonFuture/Multimodal-RL-Data: EasyR1 layout, a short answer, as a folder of parquet shards
    (d / "rl_data" / "data").mkdir(parents=True)
    rl = [{"problem": f"What is {i}+1? <image>", "answer": str(i + 1), "images": [{"bytes": _png(), "path": None}]}
          for i in range(4)]
    _arrow_images(rl[:2]).to_parquet(str(d / "rl_data" / "data" / "train-00000-of-00002.parquet"))
    _arrow_images(rl[2:]).to_parquet(str(d / "rl_data" / "data" / "train-00001-of-00002.parquet"))
    out["easyr1_shards"] = d / "rl_data"
    # the same as a save_to_disk folder
    _arrow_images(rl).save_to_disk(str(d / "rl_disk"))
    out["easyr1_disk"] = d / "rl_disk"
    # RL-with-Cold-Start SFT/convert_data.py: ms-swift [{"query", "response", "images": [path]}]
    swift = [{"query": f"<image>How many bars? ({i})", "response": COT, "images": [str(d / "img" / f"{i}.png")]}
             for i in range(3)]
    (d / "swift.json").write_text(json.dumps(swift, ensure_ascii=False, indent=2))
    out["swift"] = d / "swift.json"
    # ms-swift messages + images, JSONL
    msgs = [{"messages": [{"role": "user", "content": f"<image>Colour {i}?"},
                          {"role": "assistant", "content": f"It is \\boxed{{c{i}}}"}], "images": [f"img/{i}.png"]}
            for i in range(3)]
    (d / "swift_messages.jsonl").write_text("".join(json.dumps(m) + "\n" for m in msgs))
    out["messages"] = d / "swift_messages.jsonl"
    # LLaMA-Factory sharegpt: conversations from/value, images relative to the dataset folder
    share = [{"conversations": [{"from": "human", "value": f"<image>Shape {i}?"},
                                {"from": "gpt", "value": f"A square. \\boxed{{{i}}}"}],
              "images": [f"img/{i}.png"]} for i in range(3)]
    (d / "sharegpt.json").write_text(json.dumps(share))
    out["sharegpt"] = d / "sharegpt.json"
    # verl parquet (examples/data_preprocess/geo3k.py): prompt chat list, reward_model.ground_truth, images
    verl = [{"data_source": "hiyouga/geometry3k", "prompt": [{"role": "user", "content": f"<image>Find x. ({i})"}],
             "images": [{"bytes": _png(), "path": None}], "ability": "math",
             "reward_model": {"style": "rule", "ground_truth": str(10 + i)}, "extra_info": {"split": "train", "index": i}}
            for i in range(3)]
    _arrow_images(verl).to_parquet(str(d / "verl.parquet"))
    out["verl"] = d / "verl.parquet"
    return d, out


def _read(path, **kw):
    report = LoadReport(str(path))
    recs = list(read_source(path, DataFormatArguments(**kw), strict=False, require_answer=False, report=report))
    assert not report.skipped, report.summary()
    return recs


def test_each_layout_detected_and_read_as_released(layouts):
    _, f = layouts
    expected = {"easyr1_cot": "easyr1", "easyr1_shards": "easyr1", "easyr1_disk": "easyr1", "swift": "swift",
                "messages": "messages", "sharegpt": "sharegpt", "verl": "verl"}
    for name, layout in expected.items():
        assert open_source(f[name])[0] == layout, name
    cot = _read(f["easyr1_cot"])
    # Released CoT trains as released: the answer column verbatim is the target, its last box the answer
    assert [r.solution for r in cot] == [COT] * 3 and [r.answer for r in cot] == ["3"] * 3
    assert cot[0].question == "<image>How many bars? (0)" and [r.id for r in cot] == [
        "cold_start-000000", "cold_start-000001", "cold_start-000002"]
    assert all(len(r.images) == 1 and Path(r.images[0]).is_file() for r in cot)
    assert Image.open(cot[1].images[0]).getpixel((0, 0)) == (0, 128, 0)  # the row's own bytes, content-addressed
    shards = _read(f["easyr1_shards"])
    assert [r.answer for r in shards] == ["1", "2", "3", "4"] and all(r.solution is None for r in shards)
    assert [r.answer for r in _read(f["easyr1_disk"])] == ["1", "2", "3", "4"]
    swift = _read(f["swift"])
    assert [(r.question, r.solution, r.answer) for r in swift] == [(c["problem"], COT, "3") for c in
                                                                   [{"problem": f"<image>How many bars? ({i})"}
                                                                    for i in range(3)]]
    msgs = _read(f["messages"])
    assert [r.answer for r in msgs] == ["c0", "c1", "c2"] and msgs[2].image_paths()[0].name == "2.png"
    share = _read(f["sharegpt"])
    assert [r.solution for r in share] == [f"A square. \\boxed{{{i}}}" for i in range(3)]
    verl = _read(f["verl"])
    assert [(r.id, r.answer, r.source) for r in verl] == [
        (f"hiyouga/geometry3k-{i}", str(10 + i), "verl:hiyouga/geometry3k") for i in range(3)]
    # derived ids are stable: the same file read twice gives the same ids
    assert [r.id for r in _read(f["swift"])] == [r.id for r in swift]


def test_forced_layout_and_key_overrides(tmp_path):
    rows = [{"question_text": "<image>Q?", "gold": "7", "pics": ["a.png"]}]
    (tmp_path / "a.png").write_bytes(_png())
    (tmp_path / "custom.json").write_text(json.dumps(rows))
    (tmp_path / "custom.jsonl").write_text(json.dumps(rows[0]) + "\n")
    with pytest.raises(UnknownLayout) as e:
        list(read_source(tmp_path / "custom.json"))
    msg = str(e.value)
    assert "['gold', 'pics', 'question_text']" in msg and "easyr1" in msg and "sharegpt" in msg and "\n" not in msg
    # JSONL is our records format first: an unknown row there is that line's record error
    with pytest.raises(RecordError, match=r"custom.jsonl:1: missing required field 'id'"):
        list(read_source(tmp_path / "custom.jsonl"))
    (rec,) = read_source(tmp_path / "custom.jsonl", DataFormatArguments(
        data_format="easyr1", prompt_key="question_text", answer_key="gold", image_key="pics"))
    assert rec.answer == "7" and rec.image_paths()[0] == tmp_path / "a.png"
    with pytest.raises(ValueError, match="data_format 'nope'"):
        DataFormatArguments(data_format="nope")


def test_hub_id_is_a_clear_error_offline(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match=r"WaltonFuture/Multimodal-RL-Data@train: not a file .* needs the "
                                                r"network"):
        list(read_source("WaltonFuture/Multimodal-RL-Data@train"))


def test_placeholders_placed_where_they_stand(layouts):
    _, f = layouts
    (rl,) = [r for r in _read(f["easyr1_shards"]) if r.answer == "2"]
    content = prompt_messages(rl, suffix=None)[-1]["content"]
    assert content == [{"type": "text", "text": "What is 1+1? "}, {"type": "image"}]
    from mmreason.records import Record

    two = Record(id="t", question="Left <image> right <image> which?", answer="a", images=["a.png", "b.png"])
    assert [p["type"] for p in prompt_messages(two, suffix="Go.")[-1]["content"]] == [
        "text", "image", "text", "image", "text"]
    plain = Record(id="p", question="Which?", answer="a", images=["a.png", "b.png"])
    assert [p["type"] for p in prompt_messages(plain)[-1]["content"]] == ["image", "image", "text"]  # as before


def _bad_records(tmp_path) -> Path:
    (tmp_path / "a.png").write_bytes(_png())
    good = {"id": "g{}", "question": "How many?", "answer": "3", "answer_type": "integer", "images": ["a.png"],
            "solution": "\\boxed{3}"}
    rows = [dict(good, id="g0"),
            dict(good, id="two", question="<image> and <image>?"),  # 2 placeholders, 1 image
            dict(good, id="g1"),
            dict(good, id="pad", question="Count <|image_pad|> these"),  # the model's own token
            dict(good, id="g2")]
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_placeholder_count_and_vision_tokens_are_file_line_errors(tmp_path):
    from mmreason.sft.dataset import load_sft_records

    path = _bad_records(tmp_path)
    with pytest.raises(RecordError) as e:
        load_sft_records([str(path)])
    assert e.value.where == f"{path}:2" and "2 <image> placeholder(s) in the question but 1 image(s)" in str(e.value)
    recs, report = load_sft_records([str(path)], lenient=True)
    assert [r.id for r in recs] == ["g0", "g1", "g2"]
    assert [(s["where"], s["reason"]) for s in report.skipped] == [
        (f"{path}:2", "2 <image> placeholder(s) in the question but 1 image(s) in the record"),
        (f"{path}:4", "field 'question' holds the model's own vision token '<|image_pad|>'; images and videos go in "
                      "'images' / 'video' (a placeholder is <image> / <video>)")]


def test_data_convert_writes_the_same_records_every_row_accounted(layouts, tmp_path):
    from mmreason.cli import main

    _, f = layouts
    for name, path in f.items():
        out = tmp_path / name
        assert main(["data", "convert", "--input", str(path), "--out", str(out)]) == 0
        stats = json.loads((out / "stats.json").read_text())
        direct = _read(path)
        converted, _ = load_records(out / "records.jsonl", require_answer=False)
        assert stats["rows"] == stats["written"] == len(direct) == len(converted) and stats["rejected"] == 0
        assert [(r.id, r.question, r.answer, r.solution) for r in converted] == [
            (r.id, r.question, r.answer, r.solution) for r in direct]
        assert all(p.read_bytes() == q.read_bytes() for r, c in zip(direct, converted)
                   for p, q in zip(r.image_paths(), c.image_paths()))
        assert all(not Path(p).is_absolute() for c in converted for p in c.images)  # media copied under out/
    # a rejected row is counted with its reason, never dropped silently
    bad = _bad_records(tmp_path)
    assert main(["data", "convert", "--input", str(bad), "--out", str(tmp_path / "bad")]) == 0
    stats = json.loads((tmp_path / "bad" / "stats.json").read_text())
    assert (stats["rows"], stats["written"], stats["rejected"]) == (5, 3, 2)
    assert [r["where"] for r in stats["rejected_rows"]] == [f"{bad}:2", f"{bad}:4"]


def test_sft_step_on_released_layouts_through_train_files(tiny_model_dir, layouts, tmp_path):
    """One SFT step on the cold-start parquet, the ms-swift JSON, the messages JSONL and the sharegpt JSON at once,
    plus a records file with a bad placeholder count: strict stops before the model loads, lenient counts it."""
    from mmreason.cli import main

    _, f = layouts
    bad = _bad_records(tmp_path)
    argv = ["sft", "--model_name_or_path", str(tiny_model_dir), "--output_dir", str(tmp_path / "sft"),
            "--train_files", str(f["easyr1_cot"]), str(f["swift"]), str(f["messages"]), str(f["sharegpt"]), str(bad),
            "--per_device_train_batch_size", "2", "--max_steps", "1", "--save_strategy", "no",
            "--activation_checkpointing", "false", "--report_to", "none"]
    assert main(argv) == 2  # strict: bad.jsonl:2 before any model loads
    assert main([*argv, "--lenient", "true"]) == 0
    report = json.loads((tmp_path / "sft" / "sft_data_report.json").read_text())
    assert report["loaded"] == 3 + 3 + 3 + 3 + 3 and [s["where"] for s in report["skipped"]] == [
        f"{bad}:2", f"{bad}:4"]
    assert (tmp_path / "sft" / "model.safetensors").is_file()


def test_grpo_step_on_easyr1_and_verl_parquet_through_train_files(tiny_model_dir, layouts, tmp_path):
    from mmreason.rl.run import main

    _, f = layouts
    out = tmp_path / "grpo"
    argv = ["--model_name_or_path", str(tiny_model_dir), "--train_files", str(f["easyr1_shards"]), str(f["verl"]),
            "--output_dir", str(out), "--reward_funcs", "accuracy", "--per_device_train_batch_size", "4",
            "--num_generations", "4", "--max_completion_length", "4", "--max_steps", "1", "--bf16", "false",
            "--gradient_checkpointing", "false", "--report_to", "none", "--save_strategy", "no"]
    assert main(argv) == 0
    assert (out / "model.safetensors").is_file()


def test_eval_run_reads_a_released_layout(tiny_model_dir, layouts, tmp_path):
    from mmreason.eval.cli import main as eval_main

    _, f = layouts
    out = tmp_path / "eval"
    assert eval_main(["run", "--model", str(tiny_model_dir), "--benchmark", str(f["verl"]), "--output-dir", str(out),
                      "--max-new-tokens", "4", "--no-progress"]) == 0
    scores = json.loads((out / "scores.json").read_text())
    assert scores["total"] == 3


def test_eval_run_and_score_read_a_forced_layout_with_its_own_columns(tiny_model_dir, tmp_path):
    """Columns no detector knows (question / solution / imgs): detection reads the JSONL as records and finds none
    usable; --data-format easyr1 with the key flags reads every row, and the cache identity names the layout."""
    from mmreason.eval.cli import main as eval_main
    from mmreason.usage import NothingUsable, UsageError

    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(_png())
    rows = [{"question": f"<image>What is {i}+1?", "solution": str(i + 1), "imgs": ["img/a.png"]} for i in range(3)]
    data = tmp_path / "own_columns.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    base = ["run", "--model", str(tiny_model_dir), "--benchmark", str(data), "--max-new-tokens", "4", "--no-progress"]
    with pytest.raises(NothingUsable):
        eval_main(base + ["--output-dir", str(tmp_path / "auto")])
    flags = ["--data-format", "easyr1", "--prompt-key", "question", "--answer-key", "solution", "--image-key", "imgs"]
    out = tmp_path / "forced"
    assert eval_main(base + ["--output-dir", str(out)] + flags) == 0
    assert json.loads((out / "scores.json").read_text())["total"] == 3
    ident = json.loads((out / "predictions.jsonl.identity.json").read_text())
    assert ident["data_format"] == {"answer_key": "solution", "data_format": "easyr1", "image_key": "imgs",
                                    "prompt_key": "question"}
    assert eval_main(["score", "--benchmark", str(data), "--predictions", str(out / "predictions.jsonl"), "--output",
                      str(tmp_path / "rescored" / "scores.json")] + flags) == 0
    assert json.loads((tmp_path / "rescored" / "scores.json").read_text())["total"] == 3
    with pytest.raises(UsageError, match="no such file or folder"):
        eval_main(base[:4] + [str(tmp_path / "missing.jsonl"), "--output-dir", str(tmp_path / "m")] + base[5:] + flags)
    with pytest.raises(UsageError, match="a spec; --data-format and the key flags read a data file"):
        eval_main(base[:4] + ["eval/futurebench.yaml", "--output-dir", str(tmp_path / "y")] + base[5:] + flags)
    with pytest.raises(SystemExit) as e:
        eval_main(base + ["--output-dir", str(tmp_path / "b"), "--data-format", "bogus"])
    assert e.value.code == 2


@pytest.fixture(scope="module")
def nep_layouts(tmp_path_factory):
    """NEP's two released layouts over the same clips: LLaMA-Factory `video_fp_sft_data` (messages + videos) and
    the EasyR1 GRPO JSON (video_path + qa), with V1-33K's folder layout."""
    from video_fixtures import write_coded_mp4

    d = tmp_path_factory.mktemp("nep_layouts")
    root = d / "V1-33K" / "first_part_video"
    for i in range(3):
        write_coded_mp4(root / "cat" / f"clip{i}.mp4", n=8, fps=8)
    sft = [{"messages": [{"role": "user", "content": "<video>What will happen next?"},
                         {"role": "assistant", "content": f"The ball rolls left {i}."}],
            "videos": [str(root / "cat" / f"clip{i}.mp4")]} for i in range(3)]
    (d / "video_fp_sft_data.json").write_text(json.dumps(sft))
    grpo = [{"video_path": f"video_dataset/cat/clip{i}.mp4",
             "qa": {"Question": f"What next {i}?", "Options": {k: f"{k} {i}" for k in "ABCD"}, "Answer": "ABCD"[i]}}
            for i in range(3)]
    (d / "nep_grpo.json").write_text(json.dumps(grpo))
    return d, root


def test_nep_layouts_read_as_released_and_match_nep_build(nep_layouts, tmp_path):
    from mmreason.video.nep import build

    d, root = nep_layouts
    sft = _read(d / "video_fp_sft_data.json")
    assert [(r.question, r.solution, r.video_path()) for r in sft] == [
        ("<video>What will happen next?", f"The ball rolls left {i}.", root / "cat" / f"clip{i}.mp4") for i in range(3)]
    assert [p["type"] for p in prompt_messages(sft[0], suffix=None)[-1]["content"]] == ["video", "text"]
    grpo = _read(d / "nep_grpo.json", media_dir=str(root))
    build(str(d / "nep_grpo.json"), str(root), "mcq", str(tmp_path / "mcq"), probe_video=False)
    built, _ = load_records(tmp_path / "mcq" / "mcq.jsonl")
    assert [(r.question, r.choices, r.answer, r.answer_type, r.video_path().resolve()) for r in grpo] == [
        (r.question, r.choices, r.answer, r.answer_type, r.video_path().resolve()) for r in built]
    # data convert writes the same records (videos referenced where they are), every row accounted for
    from mmreason.data.convert import convert

    for src, direct, opts in ((d / "nep_grpo.json", grpo, DataFormatArguments(media_dir=str(root))),
                              (d / "video_fp_sft_data.json", sft, None)):
        stats = convert([str(src)], tmp_path / src.stem, opts)
        converted, _ = load_records(tmp_path / src.stem / "records.jsonl", require_answer=False)
        assert (stats["rows"], stats["written"], stats["rejected"], stats["with_video"]) == (3, 3, 0, 3)
        assert [(r.id, r.question, r.answer, r.solution, r.video_path()) for r in converted] == [
            (r.id, r.question, r.answer, r.solution, r.video_path()) for r in direct]


def test_sft_step_on_nep_video_fp_sft_data(tiny_model_dir, nep_layouts, tmp_path):
    from mmreason.cli import main

    d, _ = nep_layouts
    out = tmp_path / "sft"
    assert main(["sft", "--model_name_or_path", str(tiny_model_dir), "--output_dir", str(out), "--train_files",
                 str(d / "video_fp_sft_data.json"), "--per_device_train_batch_size", "1", "--max_steps", "1",
                 "--save_strategy", "no", "--activation_checkpointing", "false", "--report_to", "none",
                 "--video_max_frames", "4", "--video_max_pixels", "3136", "--video_min_pixels", "784"]) == 0
    assert json.loads((out / "sft_data_report.json").read_text())["loaded"] == 3


def test_a_released_system_turn_is_the_records_system_message(tmp_path):
    from mmreason.chat import to_sft_example

    (tmp_path / "a.png").write_bytes(_png())
    rows = [{"messages": [{"role": "system", "content": "You think first."},
                          {"role": "user", "content": "<image>Q?"}, {"role": "assistant", "content": "A."}],
             "images": ["a.png"]},
            {"messages": [{"role": "user", "content": "Q2?"}, {"role": "assistant", "content": "B."},
                          {"role": "user", "content": "and?"}, {"role": "assistant", "content": "C."}]}]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = LoadReport("m")
    (rec,) = read_source(tmp_path / "m.jsonl", strict=False, require_answer=False, report=report)
    assert [s.where for s in report.skipped] == [f"{tmp_path / 'm.jsonl'}:2"]
    assert "2 user and 2 assistant turns" in report.skipped[0].reason
    msgs = to_sft_example(rec, system="stage default")["messages"]
    assert msgs[0] == {"role": "system", "content": [{"type": "text", "text": "You think first."}]}
    assert [p["type"] for p in msgs[1]["content"]] == ["image", "text"] and msgs[2]["content"][0]["text"] == "A."


def test_grpo_step_on_the_nep_easyr1_video_json(tiny_model_dir, nep_layouts, tmp_path):
    """NEP's EasyR1 GRPO JSON (video_path + qa) trains through --train_files as released: --media_dir is the
    V1-33K first_part_video folder the official loader joins video_path to."""
    from mmreason.rl.run import main

    d, root = nep_layouts
    repo = Path(__file__).resolve().parents[2]
    out = tmp_path / "grpo"
    assert main(["--config", str(repo / "configs" / "grpo" / "tiny_nep.yaml"), "--model_name_or_path",
                 str(tiny_model_dir), "--train_files", str(d / "nep_grpo.json"), "--media_dir", str(root),
                 "--output_dir", str(out), "--per_device_train_batch_size", "4", "--num_generations", "4",
                 "--max_completion_length", "4", "--max_steps", "1"]) == 0
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 1 and "rewards/answer_letter/mean" in state["log_history"][0]


def test_convert_data_py_output_read_from_where_it_ran(tmp_path, monkeypatch):
    """RL-with-Cold-Start SFT/convert_data.py writes data/Multimodal-Cold-Start.json whose image paths are relative
    to the folder it ran in (ms-swift's rule), not to the JSON's folder: both resolve."""
    sft = tmp_path / "SFT"
    (sft / "data" / "Multimodal-Cold-Start" / "images").mkdir(parents=True)
    rows = []
    for i in range(2):
        img = f"data/Multimodal-Cold-Start/images/{i}.jpg"
        Image.new("RGB", (32, 32), "red").save(sft / img, format="JPEG")
        rows.append({"query": "<image>How many?", "response": COT, "images": [img]})
    (sft / "data" / "Multimodal-Cold-Start.json").write_text(json.dumps(rows, indent=4))
    monkeypatch.chdir(sft)
    recs = _read("data/Multimodal-Cold-Start.json")
    assert [r.image_paths()[0] for r in recs] == [sft / f"data/Multimodal-Cold-Start/images/{i}.jpg" for i in range(2)]
    monkeypatch.chdir(tmp_path)  # elsewhere, the paths are not found: the row's error names them
    with pytest.raises(RecordError, match=r"Multimodal-Cold-Start.json\[0\]: image file not found"):
        list(read_source(sft / "data" / "Multimodal-Cold-Start.json"))


def test_a_downloaded_hub_folder_reads_its_train_split_unless_told(tmp_path):
    """A folder as `huggingface-cli download` leaves it (data/<split>-0000x-of-0000y.parquet): `train` by default,
    `folder@test` the other split, as EasyR1 reads `data_dir` with `split`."""
    rows = lambda split: [{"problem": f"<image>{split} {i}?", "answer": str(i),  # noqa: E731
                           "images": [{"bytes": _png(), "path": None}]} for i in range(2)]
    (tmp_path / "geo" / "data").mkdir(parents=True)
    _arrow_images(rows("train")).to_parquet(str(tmp_path / "geo" / "data" / "train-00000-of-00001.parquet"))
    _arrow_images(rows("test")[:1]).to_parquet(str(tmp_path / "geo" / "data" / "test-00000-of-00001.parquet"))
    assert [r.question for r in _read(tmp_path / "geo")] == ["<image>train 0?", "<image>train 1?"]
    test = _read(f"{tmp_path / 'geo'}@test")
    assert [(r.id, r.question) for r in test] == [("geo_test-000000", "<image>test 0?")]


def test_a_jsonl_with_no_readable_line_names_its_lines(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_bytes(b'{"id": "a", "question": "q\x92"}\n{not json\n')
    with pytest.raises(RecordError, match=r"broken.jsonl:1: invalid UTF-8 \(byte 0x92"):
        list(read_source(path))
    report = LoadReport(str(path))
    assert list(read_source(path, strict=False, report=report)) == [] and len(report.skipped) == 2


def test_grpo_names_a_placeholder_mismatch_before_any_model_loads(tiny_model_dir, tmp_path, capsys, monkeypatch):
    import mmreason.rl.trainer as trainer_mod
    from mmreason.rl.run import main

    def no_model(*a, **k):
        raise AssertionError("the model was loaded before the bad record was named")

    monkeypatch.setattr(trainer_mod.MMReasonGRPOTrainer, "__init__", no_model)
    bad = _bad_records(tmp_path)
    argv = ["--model_name_or_path", str(tiny_model_dir), "--train_files", str(bad), "--output_dir", str(tmp_path / "o"),
            "--reward_funcs", "accuracy", "--bf16", "false", "--report_to", "none"]
    assert main(argv) == 2
    assert f"{bad}:2: 2 <image> placeholder(s) in the question but 1 image(s)" in capsys.readouterr().err


def test_a_spec_data_format_mapping_is_checked_where_it_is_read():
    from mmreason.formats.options import format_options_from

    assert format_options_from({"data_format": "swift"}, "s.yaml").data_format == "swift"
    with pytest.raises(ValueError, match=r"s.yaml: data_format: unknown key\(s\) \['prompt'\]"):
        format_options_from({"prompt": "q"}, "s.yaml")
    with pytest.raises(ValueError, match="s.yaml: data_format 'csv'"):
        format_options_from({"data_format": "csv"}, "s.yaml")
