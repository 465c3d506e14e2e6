"""The import rules of docs/ARCHITECTURE.md, checked on the source: stages import the shared parts, not each
other, and no module imports another module's private (`_name`) names."""

import ast
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "mmreason"
STAGES = ("data", "eval", "rewards")  # folders that may not import one another


def _imports(path: Path):
    """(line, imported module, [names]) for every absolute `mmreason` import in a file, lazy ones included."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("mmreason"):
            yield node.lineno, node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("mmreason"):
                    yield node.lineno, a.name, []


def _part(module: str) -> str | None:
    bits = module.split(".")
    return bits[1] if len(bits) > 1 else None


def _violations():
    stage_imports, private_imports = [], []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent)
        own = rel.parts[1] if len(rel.parts) > 2 else None
        own_module = ".".join(rel.with_suffix("").parts)
        for line, module, names in _imports(path):
            target = _part(module)
            if own in STAGES and target in STAGES and target != own:
                stage_imports.append(f"{rel}:{line}: {own}/ imports {module}")
            same_package = module.rsplit(".", 1)[0] == own_module.rsplit(".", 1)[0]
            for name in names:
                if name.startswith("_") and not name.startswith("__") and not same_package:
                    private_imports.append(f"{rel}:{line}: imports private {module}.{name}")
            last = module.rsplit(".", 1)[-1]
            if last.startswith("_") and not last.startswith("__") and not module.startswith(own_module.rsplit(".", 1)[0]):
                private_imports.append(f"{rel}:{line}: imports private module {module}")
    return stage_imports, private_imports


def test_stages_import_only_shared_parts():
    stage_imports, _ = _violations()
    assert not stage_imports, "\n".join(stage_imports)


def test_no_private_names_across_modules():
    _, private_imports = _violations()
    assert not private_imports, "\n".join(private_imports)


def test_checker_sees_a_violation(tmp_path, monkeypatch):
    """The rules above would fail on a file that breaks them (the checker is not vacuous)."""
    pkg = tmp_path / "mmreason"
    (pkg / "data").mkdir(parents=True)
    (pkg / "data" / "bad.py").write_text(
        "from mmreason.eval.run import x\nfrom mmreason.rewards.vote import _secret\n", encoding="utf-8"
    )
    monkeypatch.setattr(sys.modules[__name__], "PKG", pkg)
    stage_imports, private_imports = _violations()
    assert stage_imports == [
        "mmreason/data/bad.py:1: data/ imports mmreason.eval.run",
        "mmreason/data/bad.py:2: data/ imports mmreason.rewards.vote",
    ]
    assert private_imports == ["mmreason/data/bad.py:2: imports private mmreason.rewards.vote._secret"]
