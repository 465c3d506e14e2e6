"""Tests reach the code through its public names: no file in tests/ reads or sets a private attribute (`x._name`, or
`getattr` / `setattr` / `hasattr` / `delattr` / `monkeypatch.setattr` with "_name") or imports a private name
(`from m import _name`), except tests/trl_hooks.py, the
one module that names TRL's and transformers' private hooks (its docstring says why). A private name of ours that a
test needs is a behaviour to check through the public surface, or a public name to give it. Defining a private name
is not reading one: a stand-in class that implements a library's hook (`def _save_rng_state`) is not flagged."""

import ast
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
HOOKS = "trl_hooks.py"
# (file under tests/, name) -> why no public route exists. Keep it tiny: first try tests/trl_hooks.py (a library's
# private hook) or a behaviour check / a public name (ours).
ALLOWED: dict[tuple[str, str], str] = {}
BY_NAME = ("getattr", "setattr", "hasattr", "delattr")


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _named(call: ast.Call) -> str | None:
    """The attribute a getattr-style call names by a string (`setattr(x, "_a", v)`, `monkeypatch.setattr(x, "_a", v)`,
    `monkeypatch.setattr("pkg.mod._a", v)`), if any."""
    f = call.func
    fname = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
    text = [a.value if isinstance(a, ast.Constant) and isinstance(a.value, str) else None for a in call.args[:2]]
    if fname not in BY_NAME or not text:
        return None
    if len(text) == 2 and text[1] is not None:
        return text[1]
    if isinstance(f, ast.Attribute) and text[0] is not None and "." in text[0]:  # monkeypatch's "module.attr" form
        return text[0].rsplit(".", 1)[1]
    return None


def _violations() -> list[str]:
    found = []
    for path in sorted(TESTS.rglob("*.py")):
        rel = path.relative_to(TESTS).as_posix()
        if rel == HOOKS:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                found += [f"tests/{rel}:{node.lineno}: imports private {node.module}.{a.name}" for a in node.names
                          if _private(a.name) and (rel, a.name) not in ALLOWED and node.module != "__future__"]
                continue
            if isinstance(node, ast.Attribute):
                name = node.attr
            elif isinstance(node, ast.Call):
                name = _named(node)
            else:
                continue
            if name is not None and _private(name) and (rel, name) not in ALLOWED:
                found.append(f"tests/{rel}:{node.lineno}: private attribute {name}")
    return sorted(found, key=lambda s: (s.split(":")[0], int(s.split(":")[1])))


def test_no_test_reaches_a_private_attribute():
    found = _violations()
    assert not found, ("tests reach private names (a library's hook: add it to tests/trl_hooks.py; ours: check the "
                       "behaviour through the public surface, or give it a public name):\n" + "\n".join(found))


# ---------------------------------------------------------------- the checker fails on planted accesses


def _plant(tmp_path, monkeypatch, files: dict[str, str], allowed=None) -> list[str]:
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "TESTS", tmp_path)
    if allowed is not None:
        monkeypatch.setattr(sys.modules[__name__], "ALLOWED", allowed)
    return _violations()


def test_checker_sees_private_attributes_read_set_and_named(tmp_path, monkeypatch):
    found = _plant(tmp_path, monkeypatch, {
        "rl/test_x.py": ("def test_a(trainer, monkeypatch):\n"
                         "    trainer._metrics['train']\n"
                         "    trainer._step = 3\n"
                         "    monkeypatch.setattr(trainer, '_compute_loss', None)\n"
                         "    getattr(trainer, '_buffered_inputs')\n"
                         "    monkeypatch.setattr('mmreason.jsonl._write_lines', None)\n"
                         "    from mmreason.distributed import _save_errors\n"),
        "worker.py": "class Spy:\n    def run(self):\n        return self._sample()\n",
    })
    assert found == ["tests/rl/test_x.py:2: private attribute _metrics",
                     "tests/rl/test_x.py:3: private attribute _step",
                     "tests/rl/test_x.py:4: private attribute _compute_loss",
                     "tests/rl/test_x.py:5: private attribute _buffered_inputs",
                     "tests/rl/test_x.py:6: private attribute _write_lines",
                     "tests/rl/test_x.py:7: imports private mmreason.distributed._save_errors",
                     "tests/worker.py:3: private attribute _sample"]


def test_checker_passes_the_hooks_module_dunders_definitions_and_allowed_accesses(tmp_path, monkeypatch):
    found = _plant(tmp_path, monkeypatch, {
        HOOKS: "def generate(trainer, rows):\n    return trainer._generate_and_score_completions(rows)\n",
        "test_ok.py": ("class Base:\n    def _save_rng_state(self, folder):\n        pass\n\n\n"
                       "def test_a(obj, fake):\n    obj.__class__.__name__\n    setattr(obj, 'public', 1)\n"
                       "    fake._engine_hook()\n"),
    }, allowed={("test_ok.py", "_engine_hook"): "the engine calls it by this name"})
    assert found == []
