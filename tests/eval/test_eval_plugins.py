"""Benchmarks as plugins: a toy benchmark in one file plus one spec YAML goes through `eval run` (tiny model)
and `eval score`; a video item reaches the backend; the checkpoint's prompt.json is the default prompt and an
explicit flag or spec field wins (loudly); templates are jinja2 and old `{name}` templates are refused."""

import json
import logging
import shutil
from pathlib import Path

import pytest
from PIL import Image

from mmreason.eval.benchmark import BENCHMARKS, Item, VideoInput, benchmark_class, resolve
from mmreason.eval.cli import main as eval_main
from mmreason.eval.run import run_benchmark
from mmreason.eval.spec import BenchmarkSpec, load_spec
from mmreason.prompts import PromptSpec, save_prompt_spec

TOY = '''
import json
from pathlib import Path

from mmreason.eval.benchmark import Benchmark


class ToyBenchmark(Benchmark):
    modes = ("contains", "exact")
    fields = ("question", "instruction")

    def load(self, data_dir, split):
        self.data_dir = Path(data_dir)
        return json.loads((self.data_dir / f"{split}.json").read_text())

    def item_id(self, item):
        return item["id"]

    def prompt_fields(self, item):
        return {"question": item["q"]}

    def media(self, item):
        return [str(self.data_dir / item["image"])]

    def score(self, predictions, items, opts):
        hits = {}
        for it in items:
            r = (predictions.get(it["id"]) or {}).get("response") or ""
            hits[it["id"]] = it["a"] in r if opts.mode == "contains" else r.strip() == it["a"]
        n = len(items)
        return {"benchmark": self.spec.name, "mode": opts.mode, "total": n, "correct": sum(hits.values()),
                "accuracy": round(100.0 * sum(hits.values()) / n, 2), "per_item": hits}
'''

VIDEO_TOY = '''
from pathlib import Path

from mmreason.eval.benchmark import Benchmark, VideoInput
from mmreason.prompts import DEFAULT_TEMPLATE


class ClipBenchmark(Benchmark):
    """FutureBench-like: one video per item, multiple choice, accuracy per hop."""

    fields = ("question", "choices", "instruction")
    default_template = DEFAULT_TEMPLATE

    def load(self, data_dir, split):
        self.data_dir = Path(data_dir)
        return [{"id": f"v{i}", "video": f"clip{i}.mp4", "hop": i % 2 + 1, "answer": "A"} for i in range(3)]

    def item_id(self, item):
        return item["id"]

    def prompt_fields(self, item):
        return {"question": "What happens next?", "choices": "(A) it falls\\n(B) it flies"}

    def media(self, item):
        return [VideoInput(str(self.data_dir / item["video"]), fps=2.0, min_pixels=3136, max_pixels=12544)]

    def score(self, predictions, items, opts):
        per_hop = {}
        for it in items:
            ok = "A" in ((predictions.get(it["id"]) or {}).get("response") or "")
            per_hop.setdefault(str(it["hop"]), []).append(ok)
        return {"benchmark": self.spec.name, "mode": opts.mode, "total": len(items),
                "per_hop": {h: sum(v) / len(v) for h, v in per_hop.items()}}
'''


class Recorder:
    """A stand-in backend: records what it is asked to generate, answers "A <n>"."""

    def __init__(self):
        self.items = []

    def generate(self, items, progress=True, desc="", on_batch=None):
        self.items += list(items)
        texts = [f"A {i}" for i in range(len(items))]
        if on_batch is not None:
            on_batch(0, texts)
        return texts


def write_toy(tmp_path, n=5, spec_extra=""):
    """toy.py + toy.yaml + data/test.json and its images; returns the spec path."""
    (tmp_path / "toy.py").write_text(TOY)
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    items = []
    for i in range(n):
        Image.new("RGB", (56, 56), (50 * i, 90, 0)).save(data / f"img{i}.png")
        items.append({"id": f"t{i}", "q": f"Question {i}?", "a": "e" if i % 2 else "a", "image": f"img{i}.png"})
    (data / "test.json").write_text(json.dumps(items))
    spec = tmp_path / "toy.yaml"
    spec.write_text("name: toy\nscorer: toy.py:ToyBenchmark\ndata_dir: data\nsplit: test\nmode: contains\n"
                    'prompt_template: "{{ question }} Put the answer in \\\\boxed{}.{% if instruction %} '
                    '{{ instruction }}{% endif %}"\n'
                    "max_new_tokens_cpu: 6\ntemperature: 0.0\nbatch_size: 2\n" + spec_extra)
    return spec


def _rows(path):
    return [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]


def test_toy_benchmark_one_file_run_and_score(tiny_model_dir, tmp_path):
    spec = write_toy(tmp_path)
    out = tmp_path / "out"
    assert eval_main(["run", "--model", str(tiny_model_dir), "--benchmark", str(spec), "--output-dir", str(out),
                      "--no-progress"]) == 0
    s = json.loads((out / "scores.json").read_text())
    preds = {r["id"]: r["response"] for r in _rows(out / "predictions.jsonl")}
    items = json.loads((tmp_path / "data" / "test.json").read_text())
    expected = {it["id"]: it["a"] in preds[it["id"]] for it in items}
    assert s["benchmark"] == "toy" and s["mode"] == "contains" and s["total"] == 5
    assert s["per_item"] == expected and s["correct"] == sum(expected.values())
    assert s["generation"]["generated"] == 5 and s["model"] == str(tiny_model_dir)
    assert "| total | 5 |" in (out / "report.md").read_text()  # the base report: a table of the numbers
    ident = json.loads((out / "predictions.jsonl.identity.json").read_text())
    assert ident["benchmark"] == "toy" and "\\boxed{}" in ident["prompt_template"]
    assert ident["max_new_tokens"] == 6 and ident["system_prompt"] == "You are a helpful assistant."
    # eval score: the same plugin reads the predictions file and scores it the same; its first mode is the default
    scored = tmp_path / "scored" / "scores.json"
    assert eval_main(["score", "--benchmark", str(spec), "--predictions", str(out / "predictions.jsonl"),
                      "--output", str(scored)]) == 0
    s2 = json.loads(scored.read_text())
    assert (s2["per_item"], s2["accuracy"], s2["mode"]) == (s["per_item"], s["accuracy"], "contains")
    assert (scored.parent / "report.md").is_file()
    assert eval_main(["score", "--benchmark", str(spec), "--predictions", str(out / "predictions.jsonl"),
                      "--output", str(scored), "--mode", "exact"]) == 0
    exact = {it["id"]: preds[it["id"]].strip() == it["a"] for it in items}
    assert json.loads(scored.read_text())["per_item"] == exact


def test_toy_prompt_rendering_is_jinja(tmp_path):
    """`\\boxed{}` in a template is text; each item's image fills its placeholder."""
    spec = write_toy(tmp_path, n=3, spec_extra='system_prompt: "Toy system."\ninstruction: "Be brief."\n')
    rec = Recorder()
    s = run_benchmark(None, spec, tmp_path / "out", backend_obj=rec, progress=False, limit=2)
    assert s["total"] == 2 and len(rec.items) == 2
    msgs, images = rec.items[1]
    assert msgs == [{"role": "system", "content": [{"type": "text", "text": "Toy system."}]},
                    {"role": "user", "content": [{"type": "image"},
                                                 {"type": "text", "text": "Question 1? Put the answer in \\boxed{}. Be brief."}]}]
    assert images == [str(tmp_path / "data" / "img1.png")]


def test_video_item_reaches_the_backend(tmp_path):
    """A FutureBench-like plugin: media = a video path with fps and pixel bounds, carried to the backend as the
    qwen-vl-utils video part; a missing video file is named before any generation."""
    (tmp_path / "clip.py").write_text(VIDEO_TOY)
    spec = tmp_path / "clip.yaml"
    spec.write_text("name: clipbench\nscorer: clip.py:ClipBenchmark\ndata_dir: videos\nsplit: test\n")
    (tmp_path / "videos").mkdir()
    with pytest.raises(FileNotFoundError, match=r"clipbench: 3 video file\(s\) not found, e.g. .*clip0.mp4"):
        run_benchmark(None, spec, tmp_path / "out", backend_obj=Recorder(), progress=False)
    from PIL import Image

    from mmreason.media.writer import write_mp4

    for i in range(3):  # real clips: eval decodes every video's cut before generation (a corrupt one is named)
        write_mp4([Image.new("RGB", (28, 28), (40 * i, 80, 120))] * 4, tmp_path / "videos" / f"clip{i}.mp4", 2)
    rec = Recorder()
    s = run_benchmark(None, spec, tmp_path / "out", backend_obj=rec, progress=False)
    assert s["per_hop"] == {"1": 1.0, "2": 1.0} and s["total"] == 3
    msgs, images = rec.items[0]
    assert images == []
    assert msgs[-1]["content"][0] == {"type": "video", "video": str(tmp_path / "videos" / "clip0.mp4"), "fps": 2.0,
                                      "min_pixels": 3136, "max_pixels": 12544}
    assert msgs[-1]["content"][1]["text"].startswith("What happens next?")


def test_video_item_generates_on_the_tiny_model(tiny_model_dir, tmp_path):
    """The same plugin, real mp4 files (PyAV) and the real HF backend (qwen-vl-utils reads the videos)."""
    av = pytest.importorskip("av")
    pytest.importorskip("decord")
    import numpy as np

    (tmp_path / "clip.py").write_text(VIDEO_TOY)
    spec = tmp_path / "clip.yaml"
    spec.write_text("name: clipbench\nscorer: clip.py:ClipBenchmark\ndata_dir: videos\nmax_new_tokens_cpu: 3\n")
    (tmp_path / "videos").mkdir()
    for i in range(3):
        with av.open(str(tmp_path / "videos" / f"clip{i}.mp4"), "w") as c:
            st = c.add_stream("mpeg4", rate=4)
            st.width = st.height = 112
            st.pix_fmt = "yuv420p"
            for f in range(8):
                c.mux(st.encode(av.VideoFrame.from_ndarray(np.full((112, 112, 3), 30 * f, np.uint8), format="rgb24")))
            c.mux(st.encode())
    s = run_benchmark(str(tiny_model_dir), spec, tmp_path / "out", progress=False)
    assert s["total"] == 3 and s["generation"]["generated"] == 3 and set(s["per_hop"]) == {"1", "2"}
    assert len(_rows(tmp_path / "out" / "predictions.jsonl")) == 3


def test_item_backend_input_counts_videos():
    it = Item("x", [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "q"}]}],
              [VideoInput("a.mp4"), VideoInput("b.mp4")])
    with pytest.raises(ValueError, match="item x: more videos than video placeholders"):
        it.backend_input()


def test_registry_names_and_errors(tmp_path):
    for name in ("records", "mathvista", "wemath"):
        assert benchmark_class(BenchmarkSpec(name=name, scorer=name)) is BENCHMARKS[name]
    cls = benchmark_class(BenchmarkSpec(name="r", scorer="mmreason.eval.records_eval:RecordsBenchmark"))
    assert cls is BENCHMARKS["records"]
    with pytest.raises(ValueError, match=r"unknown benchmark scorer 'mmmu': .*; built-in: .*mathvista"):
        benchmark_class(BenchmarkSpec(name="m", scorer="mmmu"))
    with pytest.raises(ValueError, match="'nope.py:X': file not found"):
        benchmark_class(BenchmarkSpec(name="m", scorer="nope.py:X", source=str(tmp_path / "s.yaml")))
    (tmp_path / "notabench.py").write_text("class X:\n    pass\n")
    with pytest.raises(ValueError, match="notabench.py:X is a type, expected a mmreason.eval.benchmark.Benchmark subclass"):
        benchmark_class(BenchmarkSpec(name="m", scorer="notabench.py:X", source=str(tmp_path / "s.yaml")))
    spec, bench = resolve(str(tmp_path / "test.jsonl"))  # the records plugin's own detection
    assert spec.scorer == "records" and bench.name == "records"


def test_old_single_brace_template_is_refused(tmp_path):
    p = tmp_path / "old.yaml"
    p.write_text('name: x\nscorer: mathvista\nprompt_template: "{query}\\n{instruction}"\n')
    with pytest.raises(ValueError) as e:
        load_spec(p)
    assert str(e.value) == (f"{p}: prompt_template uses the old placeholder {{query}}; templates are jinja2 now: "
                            "write {{ query }} instead")
    # LaTeX braces and jinja are fine
    p.write_text('name: x\nscorer: mathvista\nprompt_template: "{{ query }} \\\\boxed{answer} \\\\{x\\\\}"\n')
    assert "\\boxed{answer}" in load_spec(p).prompt_template


def test_undefined_template_field_names_the_spec(tmp_path):
    spec = write_toy(tmp_path, n=1, spec_extra="")
    spec.write_text(spec.read_text().replace("{{ question }}", "{{ query }}"))
    with pytest.raises(ValueError, match=rf"{spec}: prompt_template: UndefinedError: 'query' is undefined"):
        run_benchmark(None, spec, tmp_path / "out", backend_obj=Recorder(), progress=False)


# ---------------------------------------------------------------- the checkpoint's prompt spec


def _records(tmp_path, n=3):
    img = tmp_path / "images"
    img.mkdir(exist_ok=True)
    lines = []
    for i in range(n):
        Image.new("RGB", (56, 56), (60 * i, 0, 0)).save(img / f"r{i}.png")
        lines.append(json.dumps({"id": f"r{i}", "question": f"How many? ({i})", "answer": str(i),
                                 "answer_type": "integer", "images": [f"images/r{i}.png"], "source": "synth/count"}))
    path = tmp_path / "test.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


CUSTOM = PromptSpec(system="You are a counting robot.", instruction="Reply with \\boxed{N}.", min_pixels=3136,
                    max_pixels=6272)


@pytest.fixture
def checkpoint(tiny_model_dir, tmp_path):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_model_dir, ckpt)
    save_prompt_spec(ckpt, CUSTOM)
    return ckpt


def test_checkpoint_prompt_spec_is_the_default(checkpoint, tmp_path, caplog):
    records = _records(tmp_path)
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        assert eval_main(["run", "--model", str(checkpoint), "--benchmark", str(records), "--output-dir", str(out),
                          "--max-new-tokens", "3", "--no-progress"]) == 0
    assert "!!!" not in caplog.text
    ident = json.loads((out / "predictions.jsonl.identity.json").read_text())
    assert ident["system_prompt"] == "You are a counting robot." and ident["instruction"] == "Reply with \\boxed{N}."
    assert (ident["min_pixels"], ident["max_pixels"]) == (3136, 6272)
    assert json.loads((out / "run_config.json").read_text())["prompt_source"].startswith("checkpoint ")
    s = json.loads((out / "scores.json").read_text())
    assert s["total"] == 3 and (out / "predictions_scored.jsonl").is_file()
    # eval score on a records file: the same plugin and writer
    assert eval_main(["score", "--benchmark", str(records), "--predictions", str(out / "predictions.jsonl"),
                      "--output", str(tmp_path / "rescored" / "scores.json")]) == 0
    s2 = json.loads((tmp_path / "rescored" / "scores.json").read_text())
    assert (s2["per_item"], s2["mode"], s2["checker"]) == (s["per_item"], "boxed", s["checker"])
    assert (tmp_path / "rescored" / "records_accuracy.png").is_file()
    # the rendered prompt (a recording backend, same checkpoint path)
    rec = Recorder()
    run_benchmark(str(checkpoint), records, tmp_path / "rec", backend_obj=rec, progress=False)
    msgs, _ = rec.items[0]
    assert msgs[0] == {"role": "system", "content": [{"type": "text", "text": "You are a counting robot."}]}
    assert msgs[1]["content"][-1]["text"] == "How many? (0)\nReply with \\boxed{N}."


def test_explicit_flag_or_spec_field_wins_loudly(checkpoint, tmp_path, caplog):
    records = _records(tmp_path)
    rec = Recorder()
    with caplog.at_level(logging.WARNING):
        assert eval_main(["run", "--model", str(checkpoint), "--benchmark", str(records), "--output-dir",
                          str(tmp_path / "flag"), "--max-new-tokens", "2", "--no-progress", "--system-prompt",
                          "Flag."]) == 0
    ident = json.loads((tmp_path / "flag" / "predictions.jsonl.identity.json").read_text())
    assert ident["system_prompt"] == "Flag." and ident["instruction"] == "Reply with \\boxed{N}."
    assert "!!!" in caplog.text and "'system'" in caplog.text and "You are a counting robot." in caplog.text
    assert "instruction" not in caplog.text.split("!!!", 1)[1]  # only the explicit setting is compared
    caplog.clear()
    # '' = explicitly no instruction (the records template then ends with the question)
    with caplog.at_level(logging.WARNING):
        run_benchmark(str(checkpoint), records, tmp_path / "noinstr", backend_obj=rec, progress=False, instruction="")
    assert rec.items[-1][0][1]["content"][-1]["text"] == "How many? (2)" and "'instruction'" in caplog.text
    caplog.clear()
    # a spec field set explicitly in the YAML wins over the checkpoint too; one left out does not
    (tmp_path / "t1").mkdir()
    spec = write_toy(tmp_path / "t1", spec_extra='system_prompt: "Spec system."\nmax_pixels: 9408\n')
    with caplog.at_level(logging.WARNING):
        run_benchmark(str(checkpoint), spec, tmp_path / "spec_out", backend_obj=rec, progress=False, limit=1)
    cfg = json.loads((tmp_path / "spec_out" / "run_config.json").read_text())
    assert (cfg["settings"]["min_pixels"], cfg["settings"]["max_pixels"]) == (3136, 9408)
    assert rec.items[-1][0][0]["content"][0]["text"] == "Spec system." and "!!!" in caplog.text
    assert rec.items[-1][0][1]["content"][-1]["text"].endswith("Reply with \\boxed{N}.")  # instruction: checkpoint's
    (tmp_path / "t2").mkdir()
    spec2 = write_toy(tmp_path / "t2")
    run_benchmark(str(checkpoint), spec2, tmp_path / "spec2_out", backend_obj=rec, progress=False, limit=1)
    assert rec.items[-1][0][0]["content"][0]["text"] == "You are a counting robot."


def test_jinja_templates_render_as_the_old_format_strings(benchmarks):
    """The converted templates give, on every testmini item, exactly the text the str.format ones gave."""
    from mmreason.eval import wemath
    from mmreason.eval.prompting import eval_prompt

    instr = "Please reason step by step, and put your final answer within \\boxed{}."
    for name, old in (("mathvista", "{query}\n{instruction}"), ("wemath", "Question: {question}\nOption: {option}\n{instruction}"),
                      ("wemath_official", "{query}")):
        spec, bench = resolve(name)
        prompt = eval_prompt(None, spec, {})
        assert prompt.instruction == instr and prompt.system_prompt == "You are a helpful assistant."
        items = bench.load(benchmarks.root / spec.name, "testmini")
        assert len(items) == {"mathvista": benchmarks.mathvista_items}.get(spec.name, benchmarks.wemath_rows)
        for it in items:
            fields = bench.prompt_fields(it)
            assert prompt.user_text(fields) == old.format(**fields, instruction=instr), (name, bench.item_id(it))
    old_official = wemath.PROMPT_TEMPLATE.replace("{{ question }}", "{question}").replace("{{ option }}", "{option}")
    rows = wemath.load_rows(benchmarks.root / "wemath")
    assert all(wemath.build_prompt(r) == old_official.format(question=r["question"], option=r["option"]) for r in rows)
