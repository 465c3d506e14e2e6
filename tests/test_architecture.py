"""The layers of docs/ARCHITECTURE.md, checked on the source of every module: nothing imports a higher layer,
the stages do not import one another, no two modules import each other through any path (no circle), every
top-level module or folder of `mmreason/` has a layer, and no module imports another module's private (`_name`)
names. Every import counts: `import x` and `from x import y`, at the top or inside a function. Imports under
`if TYPE_CHECKING:` are never run and do not count (annotations only).

Imports go at the top of a module. One inside a function (of any module: third-party, stdlib or ours) is only for
an optional or start-up-heavy dependency and says why, `# lazy: <reason>`, on its line or on a comment line directly
above it. The start-up-heavy ones are pinned here too: the CLI (before a command is chosen) and a verify worker
process import no third-party package, and the model-free commands import no torch."""

import ast
import re
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "mmreason"

# Bottom first. A layer's parts may import the parts of the layers below it. In a "peers" layer the parts may
# also import one another (no circle, though); in an "ordered" layer each part may import only the parts listed
# before it; in an "isolated" layer the parts may not import one another.
LAYERS = (
    ("schema", "peers", ("__init__", "errors", "disk_full", "http_deadline", "prompts", "plugins", "jsonl", "usage",
                         "offline", "env")),
    ("media", "peers", ("media",)),
    ("records", "peers", ("records", "chat")),
    ("formats", "peers", ("formats",)),
    ("model", "peers", ("modeling", "resume", "fingerprint", "run_lock", "preemption", "distributed", "vision_sync",
                        "tiny", "export")),
    ("services", "ordered", ("verify", "generation", "rewards")),
    ("stages", "isolated", ("data", "sft", "rl", "eval")),
    ("apps", "ordered", ("video", "demos", "papers")),
    ("face", "peers", ("cli", "__main__")),
)


def _rank() -> dict[str, tuple[float, str, str]]:
    """part -> (rank, layer, kind): parts of an ordered layer get increasing ranks inside it."""
    out = {}
    for i, (layer, kind, parts) in enumerate(LAYERS):
        for j, part in enumerate(parts):
            out[part] = (i + (j / len(parts) if kind == "ordered" else 0.0), layer, kind)
    return out


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _part(module: str) -> str:
    bits = module.split(".")
    return bits[1] if len(bits) > 1 else "__init__"


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for n in ast.walk(node)}
    return skip


def _imports(path: Path, own: str, modules: set[str]):
    """(line, target module, imported names) for every import of a `mmreason` module in a file. The target is
    the module itself where `from pkg import name` names a submodule."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    skip = _type_checking_nodes(tree)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{base}" if base else anchor
            if base != "mmreason" and not base.startswith("mmreason."):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield node.lineno, sub if sub in modules else base, [] if sub in modules else [alias.name]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "mmreason" or alias.name.startswith("mmreason."):
                    yield node.lineno, alias.name, []


def _resolve(target: str, modules: set[str]) -> str:
    """The module a dotted import lands in (the longest existing prefix; the name itself when none exists)."""
    name = target
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or target


def _strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively: the components with more than one module (import circles)."""
    index, low, on_stack, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def _violations() -> dict[str, list[str]]:
    rank = _rank()
    files = {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}
    modules = set(files)
    found = {"unmapped": [], "upward": [], "cross_stage": [], "circle": [], "private": []}
    for part in sorted({_part(m) for m in modules} - set(rank)):
        found["unmapped"].append(f"mmreason/{part}: not in tests/test_architecture.py's LAYERS: add it to the table "
                                 "(and to docs/ARCHITECTURE.md) in the layer it belongs to")
    edges: dict[str, set[str]] = {}
    for own, path in sorted(files.items()):
        rel = path.relative_to(PKG.parent)
        src = _part(own)
        for line, target, names in _imports(path, own, modules):
            module = _resolve(target, modules)
            if module != own:
                edges.setdefault(own, set()).add(module)
            dst = _part(module)
            if src in rank and dst in rank and src != dst:
                (r_src, layer_src, kind), (r_dst, layer_dst, _) = rank[src], rank[dst]
                if r_dst > r_src:
                    found["upward"].append(f"{rel}:{line}: {src} ({layer_src}) imports {module} ({dst}, "
                                           f"{layer_dst}): a lower layer imports a higher one")
                elif r_dst == r_src and kind == "isolated":
                    found["cross_stage"].append(f"{rel}:{line}: {src}/ imports {module}: the {layer_src} do not "
                                                "import one another")
            same_package = module.rpartition(".")[0] == own.rpartition(".")[0] or module == own.rpartition(".")[0]
            for name in names:
                if name.startswith("_") and not name.startswith("__") and not same_package:
                    found["private"].append(f"{rel}:{line}: imports private {module}.{name}")
            last = target.rsplit(".", 1)[-1]
            if last.startswith("_") and not last.startswith("__") and not target.startswith(own.rpartition(".")[0] + "."):
                found["private"].append(f"{rel}:{line}: imports private module {target}")
    found["circle"] = [" -> ".join(c) for c in _strongly_connected(edges)]
    return found


def test_every_top_level_module_has_a_layer():
    assert not _violations()["unmapped"], "\n".join(_violations()["unmapped"])


def test_no_upward_import():
    assert not _violations()["upward"], "\n".join(_violations()["upward"])


def test_stages_do_not_import_one_another():
    assert not _violations()["cross_stage"], "\n".join(_violations()["cross_stage"])


def test_no_import_circle():
    assert not _violations()["circle"], "import circles:\n" + "\n".join(_violations()["circle"])


def test_no_private_names_across_modules():
    assert not _violations()["private"], "\n".join(_violations()["private"])


LAZY_TAG = re.compile(r"#\s*lazy:\s*\S")


def _untagged_function_imports() -> list[str]:
    """Every import inside a function with no `# lazy: <reason>` on its line(s) or on a comment line directly above
    (not under `if TYPE_CHECKING:`)."""
    out = set()
    for path in sorted(PKG.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        tree = ast.parse(text, filename=str(path))
        skip = _type_checking_nodes(tree)
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if id(node) in skip or not isinstance(node, (ast.Import, ast.ImportFrom)):
                    continue
                above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
                if not (any(LAZY_TAG.search(line) for line in lines[node.lineno - 1:node.end_lineno])
                        or (above.startswith("#") and LAZY_TAG.search(above))):
                    out.add((str(path.relative_to(PKG.parent)), node.lineno, ast.unparse(node)))
    return [f"{rel}:{line}: {code}" for rel, line, code in sorted(out)]


def test_every_function_level_import_says_why_it_is_lazy():
    found = _untagged_function_imports()
    assert not found, ("imports inside a function without `# lazy: <reason>` (move them to the top of the module, "
                       "or say why they cannot be there):\n" + "\n".join(found))


# Processes that must start light (docs/ARCHITECTURE.md, under the layer table). The model-free commands:
# `eval` scoring (its benchmark plugins included), `data build` with an API teacher (its recipe kinds included),
# `data convert|synth`, `nep build|synth`, `env`.
THIRD_PARTY_FREE = ("mmreason.cli", "mmreason.verify._worker")
MODEL_FREE = ("mmreason.eval.cli", "mmreason.data.build", "mmreason.data.convert", "mmreason.data.synth",
              "mmreason.video.nep", "mmreason.video.synth", "mmreason.env")
MODEL_FREE_PLUGINS = ("mmreason.eval", "mmreason.data.kinds")
MODEL_LIBRARIES = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "vllm", "deepspeed")


def _in_fresh_process(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], cwd=PKG.parent, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_cli_and_verify_workers_start_without_third_party_packages():
    for module in THIRD_PARTY_FREE:
        loaded = _in_fresh_process(f"""
import sys
before = set(sys.modules)
import {module}
names = {{m.split(".")[0] for m in set(sys.modules) - before}} - set(sys.stdlib_module_names) - {{"mmreason"}}
print(sorted(n for n in names if not n.startswith("__")))  # __mp_main__: multiprocessing's alias of __main__
""")
        assert loaded == "[]", f"importing {module} loads third-party packages: {loaded}"


def test_model_free_commands_start_without_torch():
    loaded = _in_fresh_process(f"""
import importlib, sys
from mmreason.plugins import discover
for name in {MODEL_FREE + MODEL_FREE_PLUGINS!r}:
    importlib.import_module(name) if name in {MODEL_FREE!r} else discover(name)
    heavy = [m for m in {MODEL_LIBRARIES!r} if m in sys.modules]
    if heavy:
        print(name, heavy)
        break
""")
    assert not loaded, f"a model-free command's module loads a model library (module, libraries): {loaded}"


def test_layers_table_names_real_parts():
    """A part in LAYERS that no longer exists is a stale table (formats/ and chat.py, built on other branches, may
    not have landed yet)."""
    present = {p.stem if p.is_file() else p.name for p in PKG.iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file()}
    stale = [part for _, _, parts in LAYERS for part in parts if part not in present and part not in ("formats", "chat")]
    assert not stale, f"LAYERS names parts that do not exist: {stale}"


# ---------------------------------------------------------------- the checker fails on planted violations

def _plant(tmp_path, monkeypatch, files: dict[str, str]) -> dict[str, list[str]]:
    pkg = tmp_path / "mmreason"
    for rel, text in {"__init__.py": "", "errors.py": "", "data/__init__.py": "", "eval/__init__.py": "",
                      "eval/run.py": "", "media/__init__.py": "", **files}.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text, encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "PKG", pkg)
    return _violations()


def test_checker_sees_an_upward_import_also_inside_a_function(tmp_path, monkeypatch):
    found = _plant(tmp_path, monkeypatch, {"media/clip.py": "def f():\n    from mmreason.eval.run import x\n"})
    assert found["upward"] == ["mmreason/media/clip.py:2: media (media) imports mmreason.eval.run (eval, stages): "
                               "a lower layer imports a higher one"]
    assert not found["cross_stage"] and not found["circle"] and not found["unmapped"]


def test_checker_sees_a_cross_stage_import(tmp_path, monkeypatch):
    found = _plant(tmp_path, monkeypatch, {"data/build.py": "import mmreason.eval.run\n"})
    assert found["cross_stage"] == ["mmreason/data/build.py:1: data/ imports mmreason.eval.run: the stages do not "
                                    "import one another"]
    assert not found["upward"]


def test_checker_sees_an_import_circle(tmp_path, monkeypatch):
    found = _plant(tmp_path, monkeypatch, {"media/a.py": "from mmreason.media import b\n",
                                           "media/b.py": "from mmreason.media.c import x\n",
                                           "media/c.py": "from . import a\n"})
    assert found["circle"] == ["mmreason.media.a -> mmreason.media.b -> mmreason.media.c"]


def test_checker_sees_an_unmapped_module(tmp_path, monkeypatch):
    found = _plant(tmp_path, monkeypatch, {"newpart.py": ""})
    assert len(found["unmapped"]) == 1 and found["unmapped"][0].startswith("mmreason/newpart: not in")
    assert "add it to the table" in found["unmapped"][0]


def test_checker_sees_a_private_import(tmp_path, monkeypatch):
    found = _plant(tmp_path, monkeypatch, {"data/build.py": "from mmreason.eval.run import _secret\n"})
    assert found["private"] == ["mmreason/data/build.py:1: imports private mmreason.eval.run._secret"]


def test_checker_ignores_type_checking_imports(tmp_path, monkeypatch):
    found = _plant(tmp_path, monkeypatch, {"media/clip.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                                            "    from mmreason.eval.run import Item\n"})
    assert not any(found.values()), found


def test_checker_sees_a_function_level_import_without_a_reason(tmp_path, monkeypatch):
    _plant(tmp_path, monkeypatch, {"media/clip.py": (
        "from typing import TYPE_CHECKING\n"
        "import json\n"  # 2: at the top: fine
        "def tagged():\n"
        "    import torch  # lazy: a reason\n"
        "def tagged_above():\n"
        "    # lazy: a reason\n"
        "    from PIL import Image\n"
        "def bare():\n"
        "    import yaml\n"  # 9
        "def no_reason():\n"
        "    import numpy  # lazy:\n"  # 11
        "def one_comment_two_imports():\n"
        "    # lazy: a reason\n"
        "    import av\n"
        "    from mmreason.errors import RecordError\n"  # 15: ours count too
        "def in_a_method():\n"
        "    class A:\n"
        "        def f(self):\n"
        "            import random\n"  # 19: stdlib counts too
        "def annotations_only():\n"
        "    if TYPE_CHECKING:\n"
        "        from mmreason.records import Record\n")})
    assert _untagged_function_imports() == [
        "mmreason/media/clip.py:9: import yaml",
        "mmreason/media/clip.py:11: import numpy",
        "mmreason/media/clip.py:15: from mmreason.errors import RecordError",
        "mmreason/media/clip.py:19: import random",
    ]


def test_docs_table_is_this_table():
    """docs/ARCHITECTURE.md's layer table lists exactly LAYERS, in order (a file named inside a folder, e.g.
    `media/` (`images.py`, ...), is the folder's)."""
    doc = (PKG.parent / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    table = doc.split("| layer (bottom first) | parts | holds |", 1)[1].split("\n\n", 1)[0]
    rows = [line.split("|")[1:3] for line in table.strip().splitlines()[1:]]
    documented = []
    for layer, parts in rows:
        parts = re.sub(r"\([^)]*\)", "", parts)  # a folder's files in brackets
        names = [n.removesuffix(".py").rstrip("/") for n in re.findall(r"`([^`]+)`", parts)]
        documented.append((layer.split("(")[0].strip(), tuple(names)))
    assert documented == [(layer, parts) for layer, _, parts in LAYERS]
