"""End-to-end `mmreason eval run` on the tiny model: We-Math testmini (--limit), kill and resume,
records evaluation, LoRA adapters, the prediction cache, the vLLM wiring."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from mmreason.eval.cache import PredictionCache
from mmreason.eval.cli import main as eval_main
from mmreason.eval.run import run_benchmark

REPO = Path(__file__).resolve().parents[2]


def _ids(path):
    return [json.loads(line)["id"] for line in Path(path).read_text().splitlines() if line.strip()]


def test_cache_repairs_partial_last_line(tmp_path):
    p = tmp_path / "predictions.jsonl"
    p.write_text('{"id": "a", "response": "x"}\n{"id": "b", "response": "y"}\n{"id": "c", "resp')
    c = PredictionCache(p)
    assert set(c.rows) == {"a", "b"} and c.repaired > 0
    assert c.append([{"id": "b", "response": "dup"}, {"id": "c", "response": "z"}]) == 1
    assert _ids(p) == ["a", "b", "c"] and PredictionCache(p).get("b")["response"] == "y"
    p.write_text('{"id": "a"}\nnot json\n{"id": "b"}\n')
    with pytest.raises(ValueError, match="corrupt line"):
        PredictionCache(p)


def test_wemath_run_complete_outputs(tiny_model_dir, benchmarks_dir, tmp_path):
    out = tmp_path / "out"
    rc = eval_main(["run", "--model", str(tiny_model_dir), "--benchmark", str(REPO / "eval" / "wemath_official.yaml"),
                    "--data-dir", str(benchmarks_dir / "wemath"), "--limit", "7", "--max-new-tokens", "4",
                    "--batch-size", "4", "--output-dir", str(out), "--no-progress"])
    assert rc == 0
    s = json.loads((out / "scores.json").read_text())
    assert s["benchmark"] == "wemath" and s["mode"] == "official" and s["official"] is True
    assert len(s["per_item"]) == 6 and s["missing"] == []  # whole groups only: 2 two-step problems x 3 rows
    assert s["IK"] + s["IG"] + s["CM_strict"] + s["RM_strict"] == s["n_composite"] == 2
    assert sorted(_ids(out / "predictions.jsonl")) == sorted(s["per_item"])
    assert (out / "report.md").is_file() and (out / "wemath_4d.png").stat().st_size > 1000
    cfg = json.loads((out / "run_config.json").read_text())
    assert cfg["settings"]["max_new_tokens"] == 4 and cfg["prompt_template"] == "{{ query }}"
    # a rerun generates nothing and scores the same
    spec = str(REPO / "eval" / "wemath_official.yaml")
    s2 = run_benchmark(str(tiny_model_dir), spec, out, data_dir=str(benchmarks_dir / "wemath"), limit=7,
                       mode="official", max_new_tokens=4, progress=False, backend_obj=object())
    assert s2["generation"]["generated"] == 0 and s2["per_item"] == s["per_item"]
    # the built-in "wemath" spec prompts differently: its answers are not these
    with pytest.raises(ValueError, match="another run.*prompt_template"):
        run_benchmark(str(tiny_model_dir), "wemath", out, data_dir=str(benchmarks_dir / "wemath"), limit=7,
                      max_new_tokens=4, progress=False, backend_obj=object())


class _Boom(RuntimeError):
    pass


def test_interrupted_run_resumes_without_loss_or_duplicates(tiny_model_dir, benchmarks_dir, tmp_path):
    """An exception after 2 batches (in-process), then a rerun: every item scored exactly once."""
    out = tmp_path / "out"
    kw = dict(data_dir=str(benchmarks_dir / "wemath"), limit=9, batch_size=2, max_new_tokens=3,
              progress=False, mode="official")

    def boom(n):
        if n == 2:
            raise _Boom

    with pytest.raises(_Boom):
        run_benchmark(str(tiny_model_dir), "wemath", out, on_batch=boom, **kw)
    assert len(_ids(out / "predictions.jsonl")) == 4
    s = run_benchmark(str(tiny_model_dir), "wemath", out, **kw)
    ids = _ids(out / "predictions.jsonl")
    assert len(ids) == len(set(ids)) == 9 and s["total"] == 9 and set(s["per_item"]) == set(ids)
    assert s["generation"] == s["generation"] | {"generated": 5, "cached": 4}


def test_corrupt_image_is_named_before_any_generation(benchmarks_dir, tmp_path):
    """A truncated image would stop every rerun at the same batch: it is found up front, naming the item."""
    import shutil

    from mmreason.eval import wemath

    data = tmp_path / "wemath"
    data.mkdir()
    shutil.copy(benchmarks_dir / "wemath" / "testmini.json", data / "testmini.json")
    rows = wemath.limit_rows(wemath.load_rows(str(benchmarks_dir / "wemath"), "testmini", None), 3)
    for r in rows:
        (data / r["image_path"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(benchmarks_dir / "wemath" / r["image_path"], data / r["image_path"])
    bad = data / rows[-1]["image_path"]
    bad.write_bytes(bad.read_bytes()[:200])
    with pytest.raises(ValueError, match=rf"1 unreadable image.*item {wemath.item_id(rows[-1])}.*{bad.name}"):
        run_benchmark("unused", "wemath", tmp_path / "out", data_dir=str(data), limit=3, progress=False,
                      backend_obj=object())
    assert not (tmp_path / "out" / "predictions.jsonl").exists()


def test_mathvista_run_names_missing_images(tiny_model_dir, benchmarks_dir, tmp_path):
    """The local MathVista copy has no images (they ship with the Hub dataset): a clear error, before any
    model is loaded."""
    with pytest.raises(FileNotFoundError, match=r"image file\(s\) not found, e.g. .*images/1.jpg"):
        run_benchmark(str(tiny_model_dir), "mathvista", tmp_path, data_dir=str(benchmarks_dir / "mathvista"),
                      limit=3, progress=False, backend_obj=object())


def test_killed_subprocess_resumes(tiny_model_dir, benchmarks_dir, tmp_path):
    """SIGKILL a real `mmreason eval run` once its cache has lines, tear the last line, rerun."""
    out = tmp_path / "out"
    args = ["run", "--model", str(tiny_model_dir), "--benchmark", "wemath", "--data-dir",
            str(benchmarks_dir / "wemath"), "--limit", "12", "--batch-size", "1", "--max-new-tokens", "6",
            "--output-dir", str(out), "--no-progress"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "mmreason", "eval", *args], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cache = out / "predictions.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if cache.exists() and cache.read_text().count("\n") >= 2:
            break
        time.sleep(0.05)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert killed, "the run finished before it could be killed"
    n_before = len(_ids(cache))
    assert 2 <= n_before < 12
    with open(cache, "a") as f:
        f.write('{"id": "2steps_9|2steps_1", "respo')  # a torn write
    assert eval_main(args) == 0
    ids = _ids(cache)
    s = json.loads((out / "scores.json").read_text())
    assert len(ids) == len(set(ids)) == len(s["per_item"]) == 12
    assert s["generation"]["cached"] == n_before and s["generation"]["generated"] == 12 - n_before


def _write_records(tmp_path, n=6):
    img_dir = tmp_path / "images"
    img_dir.mkdir()
    lines = []
    for i in range(n):
        Image.new("RGB", (56, 56), (40 * i, 0, 0)).save(img_dir / f"r{i}.png")
        rec = {"id": f"r{i}", "question": f"How many red shapes? ({i})", "answer": str(i), "answer_type": "integer",
               "images": [f"images/r{i}.png"], "source": f"synth/{'count' if i % 2 else 'color'}",
               "metadata": {"task": "count" if i % 2 else "color"}}
        lines.append(json.dumps(rec))
    lines.append(json.dumps({"id": "bad", "question": "q"}))  # invalid: counted as skipped, no crash
    path = tmp_path / "test.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_evaluate_records_api_and_cli(tiny_model_dir, tmp_path):
    from mmreason.eval.records_eval import evaluate_records
    from mmreason.eval.records_eval import score_records
    from mmreason.records import load_records

    path = _write_records(tmp_path)
    s = evaluate_records(str(tiny_model_dir), path, tmp_path / "out", batch_size=4, max_new_tokens=4, progress=False)
    assert s["total"] == 6 and 0.0 <= s["accuracy"] <= 1.0 and len(s["skipped_records"]) == 1
    assert set(s["per_task"]) == {"count", "color"} and set(s["per_source"]) == {"synth/count", "synth/color"}
    scored = [json.loads(x) for x in (tmp_path / "out" / "predictions_scored.jsonl").read_text().splitlines()]
    assert [r["id"] for r in scored] == [f"r{i}" for i in range(6)]
    assert (tmp_path / "out" / "report.md").is_file() and (tmp_path / "out" / "records_accuracy.png").is_file()
    # scoring itself: boxed extraction and answer-type comparison
    recs, _ = load_records(path, strict=False)
    resp = {"r0": "\\boxed{0}", "r1": "so \\boxed{2} no, \\boxed{1}", "r2": "2", "r3": "\\boxed{3.0}", "r4": None}
    sc = score_records(recs, resp)
    assert [sc["per_item"][f"r{i}"]["correct"] for i in range(6)] == [True, True, False, True, False, False]
    assert sc["correct"] == 3 and sc["accuracy"] == 0.5 and sc["missing"] == ["r5"]
    assert sc["checker"] == "verify_pool"  # the timed process pool from mmreason.verify
    # the CLI path on the same file resumes from the cache (nothing left to generate)
    assert eval_main(["run", "--model", str(tiny_model_dir), "--benchmark", str(path),
                      "--output-dir", str(tmp_path / "out"), "--max-new-tokens", "4", "--no-progress"]) == 0
    assert json.loads((tmp_path / "out" / "scores.json").read_text())["generation"]["generated"] == 0
    # another model or budget into the same folder is refused, not mixed into the cached answers
    before = (tmp_path / "out" / "predictions.jsonl").read_bytes()
    with pytest.raises(ValueError, match=r"another run \(max_new_tokens: 4 -> 8\)"):
        evaluate_records(str(tiny_model_dir), path, tmp_path / "out", max_new_tokens=8, progress=False)
    with pytest.raises(ValueError, match=r"another run \(model: .* -> '/elsewhere'; weights"):
        evaluate_records("/elsewhere", path, tmp_path / "out", max_new_tokens=4, progress=False)
    assert (tmp_path / "out" / "predictions.jsonl").read_bytes() == before


def test_lora_adapter_loaded_onto_base(tiny_model_dir, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    from mmreason.generation.backends import GenerationSettings, HFBackend

    base = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    ref = {k: v.clone() for k, v in base.state_dict().items()}
    peft_model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_model_dir)
    be = HFBackend(str(adapter), GenerationSettings(max_new_tokens=3, batch_size=2))
    sd = be.model.state_dict()
    changed = [k for k in ref if "q_proj.weight" in k and not torch.equal(sd[k], ref[k])]
    assert changed and not any("lora" in k for k in sd)  # merged into the base weights
    msgs = [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]
    assert len(be.generate([(msgs, [])] * 3, progress=False)) == 3


def test_vllm_backend_wiring(monkeypatch, tiny_model_dir):
    import importlib.util

    from mmreason.generation import backends as generate

    assert "vllm" not in sys.modules  # never imported at module top level
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm installed: the engine needs a GPU")
    with pytest.raises(ImportError, match="--backend hf"):
        generate.load_backend(str(tiny_model_dir), "vllm")
    with pytest.raises(ValueError, match="unknown backend"):
        generate.load_backend(str(tiny_model_dir), "tgi")


def test_batched_generation_equals_one_by_one(tiny_model_dir, benchmarks_dir):
    """Left padding and mm_token_type_ids: a mixed batch (1 image, 2 images, none, different lengths)
    decodes exactly as each prompt alone (greedy); sampling is seeded."""
    from mmreason.generation.backends import GenerationSettings, HFBackend

    imgs = sorted(str(p) for p in (benchmarks_dir / "wemath" / "2steps" / "image").glob("*.png"))[:3]

    def msgs(text, n):
        return [{"role": "system", "content": [{"type": "text", "text": "You are a helpful assistant."}]},
                {"role": "user", "content": [{"type": "image"}] * n + [{"type": "text", "text": text}]}]

    items = [(msgs("What is it?", 1), imgs[:1]), (msgs("A much longer question that pads the others " * 3, 1), imgs[1:2]),
             (msgs("no image", 0), []), (msgs("two images", 2), imgs[1:3])]
    be = HFBackend(str(tiny_model_dir), GenerationSettings(max_new_tokens=8, batch_size=4))
    batched = be.generate(items, progress=False)
    assert batched == [be.generate([it], progress=False)[0] for it in items]
    be.settings.temperature = 1.0
    assert be.generate(items, progress=False) == be.generate(items, progress=False)
    wrapped = HFBackend.from_model(be.model, be.processor, GenerationSettings(max_new_tokens=8, batch_size=2))
    assert wrapped.generate(items, progress=False) == batched


def test_hub_loading_path(monkeypatch):
    """Without a data folder the loaders read the Hub dataset (stubbed here: no network in tests)."""
    import datasets
    from PIL import Image

    from mmreason.eval import mathvista, wemath

    calls = []

    def fake_load_dataset(name, split):
        calls.append((name, split))
        if name == mathvista.HUB_ID:
            return [{"pid": "1", "question": "q", "decoded_image": Image.new("RGB", (8, 8)), "choices": None,
                     "question_type": "free_form", "answer_type": "integer", "answer": "3", "unit": None,
                     "precision": None, "metadata": {}}]
        return [{"ID": "2steps_1", "key": "2steps_1", "question": "q", "option": "A. 1;B. 2", "answer": "A",
                 "image_path": Image.new("RGB", (8, 8))}]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    probs = mathvista.load_problems(None)
    assert mathvista.problem_images(probs["1"])[0].size == (8, 8)
    rows = wemath.load_rows(None)
    assert wemath.row_images(rows[0])[0].size == (8, 8) and rows[0]["image_path"] is None
    assert calls == [("AI4Math/MathVista", "testmini"), ("We-Math/We-Math", "testmini")]


def test_vllm_backend_requests_with_a_fake_engine(monkeypatch, tiny_model_dir, benchmarks_dir, tmp_path):
    """The vLLM wiring (engine args, chat-templated prompts, image data, sampling, LoRA) against a stand-in
    `vllm` module: the real engine needs CUDA."""
    import types

    from mmreason.generation import backends as generate

    made = {}

    class LLM:
        def __init__(self, **kw):
            made["engine"] = kw

        def generate(self, reqs, params, use_tqdm, lora_request):
            made.setdefault("calls", []).append((reqs, params, lora_request))
            return [types.SimpleNamespace(outputs=[types.SimpleNamespace(text=f"out{i}")]) for i in range(len(reqs))]

    class SamplingParams:
        def __init__(self, **kw):
            self.kw = kw

    class LoRARequest:
        def __init__(self, name, idx, path):
            self.path = path

    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = LLM, SamplingParams
    lora_mod = types.ModuleType("vllm.lora.request")
    lora_mod.LoRARequest = LoRARequest
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.lora", types.ModuleType("vllm.lora"))
    monkeypatch.setitem(sys.modules, "vllm.lora.request", lora_mod)

    img = str(next((benchmarks_dir / "wemath" / "2steps" / "image").glob("*.png")))
    items = [([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "q"}]}], [img]),
             ([{"role": "user", "content": [{"type": "text", "text": "text only"}]}], [])]
    be = generate.load_backend(str(tiny_model_dir), "vllm",
                               generate.GenerationSettings(max_new_tokens=7, temperature=0.0, batch_size=1))
    seen = []
    assert be.generate(items, progress=False, on_batch=lambda start, texts: seen.append(start)) == ["out0", "out1"]
    assert made["engine"]["model"] == str(tiny_model_dir) and made["engine"]["trust_remote_code"] is False
    assert made["engine"]["load_format"] == "safetensors"
    reqs, params, lora = made["calls"][0]
    assert "<|vision_start|><|image_pad|><|vision_end|>q" in reqs[0]["prompt"]
    assert reqs[0]["prompt"].endswith("<|im_start|>assistant\n")
    assert len(reqs[0]["multi_modal_data"]["image"]) == 1 and "multi_modal_data" not in reqs[1]
    assert params.kw["max_tokens"] == 7 and params.kw["temperature"] == 0.0 and lora is None and seen == [0]

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tiny_model_dir), "r": 32}))
    be = generate.load_backend(str(adapter), "vllm")
    assert made["engine"]["enable_lora"] is True and made["engine"]["max_lora_rank"] == 32
    be.generate(items[1:], progress=False)
    assert made["calls"][-1][2].path == str(adapter)
