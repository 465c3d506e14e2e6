"""The one plugin resolver (`mmreason.plugins.resolve`) and the four registries built on it: a reward, a loss, a
benchmark and a recipe kind each written into a new file and selected from YAML by `file.py:NAME`, each way a
reference can fail, and built-ins found by scanning their folder (adding one file adds one)."""

import sys
import textwrap
from pathlib import Path

import pytest

import mmreason
from mmreason.data.kinds.registry import builtin_kinds
from mmreason.errors import PluginError
from mmreason.eval.benchmark import BENCHMARKS, builtin_benchmarks, resolve as resolve_benchmark
from mmreason.plugins import resolve
from mmreason.rewards.registry import REWARDS, builtin_rewards

PKG = Path(mmreason.__file__).parent


# ---------------------------------------------------------------- the resolver's own errors

def test_resolver_forms_and_one_error_per_failure(tmp_path):
    (tmp_path / "plug.py").write_text("VALUE = 3\ndef f():\n    return 4\n")
    registry = {"builtin": "the built-in"}
    assert resolve("builtin", "thing", registry) == "the built-in"
    assert resolve("plug.py:f", "thing", registry, base_dir=tmp_path)() == 4
    assert resolve("mmreason.plugins:resolve", "thing") is resolve
    assert resolve("plug.py", "thing", base_dir=tmp_path, default_name="VALUE") == 3
    cases = [
        ("nope", "unknown thing 'nope': expected a built-in name, path/to/file.py:NAME or package.module:NAME; "
                 "built-in: builtin"),
        ("missing.py:f", "thing 'missing.py:f': file not found: "),
        ("no_such_module_xyz:f", "thing 'no_such_module_xyz:f': cannot import module 'no_such_module_xyz'"),
        ("plug.py:g", "thing 'plug.py:g': plug.py has no 'g'"),
        ("plug.py:VALUE", "thing 'plug.py:VALUE': plug.py:VALUE is a int, expected a function"),
        ("plug.py:", "thing 'plug.py:': expected"),
        ("", "thing '': expected"),
    ]
    for spec, message in cases:
        with pytest.raises(PluginError) as e:
            resolve(spec, "thing", registry, base_dir=tmp_path, check=callable, expected="a function")
        assert message in str(e.value), (spec, str(e.value))


def test_a_plugin_that_raises_on_import_is_named_and_not_left_half_imported(tmp_path):
    (tmp_path / "boom.py").write_text("raise RuntimeError('boom')\n")
    for _ in range(2):  # the second try imports it again (nothing half-imported was cached)
        with pytest.raises(PluginError, match=r"'boom.py:X': importing .*boom.py failed: RuntimeError: boom"):
            resolve("boom.py:X", "thing", base_dir=tmp_path)
    assert not [m for m in sys.modules if "boom" in m]


# ---------------------------------------------------------------- each kind from YAML, as a new file

def test_reward_plugin_file_from_yaml_with_its_options(tmp_path, monkeypatch):
    from mmreason.rl.run import make_parser, resolve_reward_funcs

    (tmp_path / "my_rewards.py").write_text(textwrap.dedent("""
        def length_bonus(prompts, completions, scale=1.0, **kw):
            return [scale * len(str(c)) for c in completions]
    """))
    cfg = tmp_path / "grpo.yaml"
    cfg.write_text("reward_funcs: [format, my_rewards.py:length_bonus]\n"
                   "reward_options:\n  my_rewards.py:length_bonus: {scale: 2.0}\n"
                   f"output_dir: {tmp_path / 'out'}\nbf16: false\n")
    monkeypatch.chdir(tmp_path)  # a reward file resolves against the working directory
    script, _, _ = make_parser().parse_args_and_config(args=["--config", str(cfg)])
    funcs = resolve_reward_funcs(script.reward_funcs, 4, options=script.reward_options)
    assert [f.__name__ for f in funcs] == ["format", "length_bonus"]
    assert funcs[1](prompts=["q"], completions=["abc"]) == [6.0]
    with pytest.raises(ValueError, match="has no option"):
        resolve_reward_funcs(["my_rewards.py:length_bonus"], 4, options={"my_rewards.py:length_bonus": {"nope": 1}})
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.warns(DeprecationWarning, match="old dotted form"):
            old = resolve_reward_funcs(["my_rewards.length_bonus"], 4)
        assert old[0](prompts=["q"], completions=["ab"]) == [2.0]
    finally:
        sys.modules.pop("my_rewards", None)  # imported by name: another test's my_rewards.py must not find it


def test_loss_plugin_file_from_yaml(tmp_path, monkeypatch):
    from mmreason.rl.losses import get_loss, load_loss_plugins
    from mmreason.rl.run import make_parser

    (tmp_path / "my_loss.py").write_text(textwrap.dedent("""
        def halved_pg(logp, old_logp, advantages, mask, cfg, ctx):
            return -0.5 * advantages.unsqueeze(-1) * logp, {}
    """))
    cfg = tmp_path / "grpo.yaml"
    cfg.write_text(f"loss_plugins: [my_loss.py:halved_pg]\npolicy_loss: halved_pg\noutput_dir: {tmp_path / 'out'}\n"
                   "bf16: false\n")
    monkeypatch.chdir(tmp_path)
    _, args, _ = make_parser().parse_args_and_config(args=["--config", str(cfg)])
    assert args.policy_loss == "halved_pg" and get_loss("halved_pg").__module__.startswith("mmreason_plugin_my_loss")
    load_loss_plugins(["my_loss.py:halved_pg"])  # the same reference again: no "registered twice"
    with pytest.raises(PluginError, match="my_loss.py has no 'nope'"):
        load_loss_plugins(["my_loss.py:nope"])
    (tmp_path / "old_loss.py").write_text(textwrap.dedent("""
        from mmreason.rl.losses import register_loss

        @register_loss("old_style_plugin_loss")
        def f(logp, old_logp, advantages, mask, cfg, ctx):
            return -logp, {}
    """))
    with pytest.warns(DeprecationWarning, match="old whole-file form"):
        load_loss_plugins(["old_loss.py"])
    assert get_loss("old_style_plugin_loss").__name__ == "f"


TOY_BENCH = '''
from mmreason.eval.benchmark import Benchmark


class Toy(Benchmark):
    def load(self, data_dir, split):
        return [{"id": "a"}]

    def item_id(self, item):
        return item["id"]

    def prompt_fields(self, item):
        return {"question": "?"}

    def score(self, predictions, items, opts):
        return {"accuracy": 0.0}
'''


def test_benchmark_plugin_file_from_spec_yaml(tmp_path):
    (tmp_path / "toy_bench.py").write_text(TOY_BENCH)
    spec_file = tmp_path / "toy.yaml"
    spec_file.write_text("name: toy\nscorer: toy_bench.py:Toy\nprompt_template: '{{ question }}'\n")
    spec, bench = resolve_benchmark(str(spec_file))
    assert type(bench).__name__ == "Toy" and spec.scorer == "toy_bench.py:Toy"
    spec_file.write_text("name: toy\nscorer: toy_bench.py:Nope\n")
    with pytest.raises(PluginError, match=r"toy.yaml.*'toy_bench.py:Nope': toy_bench.py has no 'Nope'"):
        resolve_benchmark(str(spec_file))


def test_recipe_kind_plugin_file_from_yaml(tmp_path):
    from mmreason.data.kinds.registry import load_recipe

    (tmp_path / "my_kind.py").write_text(textwrap.dedent("""
        from mmreason.data.kinds.registry import RecipeKind
        from mmreason.data.kinds.runner import Outcome

        MINE = RecipeKind(name="mine", run=lambda ctx, rec: Outcome(), prompts={"user": ()}, required=("user",),
                          teacherless=True)
    """))
    (tmp_path / "recipe.yaml").write_text(textwrap.dedent("""
        name: mine
        kind: my_kind.py:MINE
        source: {path: records.jsonl}
        teacher: {backend: none}
        prompts: {user: "{{ question }}"}
    """))
    recipe = load_recipe(tmp_path / "recipe.yaml")
    assert recipe.kind == "my_kind.py:MINE"
    from mmreason.data.kinds.registry import kind_of

    assert kind_of(recipe).name == "mine"


# ---------------------------------------------------------------- a built-in is one file, found by the scan

@pytest.fixture()
def package_file():
    """Write a module into a mmreason package folder for one test; removed (with what it registered) after."""
    written = []

    def write(folder: str, name: str, text: str) -> str:
        path = PKG / folder / f"{name}.py"
        assert not path.exists()
        path.write_text(textwrap.dedent(text))
        written.append((path, f"mmreason.{folder.replace('/', '.')}.{name}"))
        return name

    yield write
    for path, module in written:
        path.unlink()
        sys.modules.pop(module, None)


def test_builtin_reward_is_one_file(package_file):
    name = package_file("rewards", "zz_test_reward_plugin", """
        from mmreason.rewards.registry import register

        @register("zz_test_reward")
        def zz(prompts, completions, **kw):
            return [1.0] * len(completions)
    """)
    try:
        assert "zz_test_reward" in builtin_rewards() and name
        assert {"accuracy", "format", "mcq_letter", "answer_letter", "majority_vote"} <= set(builtin_rewards())
    finally:
        REWARDS.pop("zz_test_reward", None)


def test_builtin_benchmark_is_one_file(package_file):
    package_file("eval", "zz_test_bench_plugin", TOY_BENCH.replace("class Toy", "@register('zz_test_bench')\nclass Toy")
                 .replace("import Benchmark", "import Benchmark, register"))
    try:
        assert builtin_benchmarks()["zz_test_bench"].__name__ == "Toy"
        assert {"records", "mathvista", "wemath", "futurebench"} <= set(builtin_benchmarks())
    finally:
        BENCHMARKS.pop("zz_test_bench", None)


def test_builtin_loss_is_one_file(package_file):
    from mmreason.rl.losses import builtin_losses, get_loss
    from mmreason.rl.losses.registry import LOSSES

    package_file("rl/losses", "zz_test_loss_plugin", """
        from mmreason.rl.losses.registry import register_loss

        @register_loss("zz_test_loss")
        def zz(logp, old_logp, advantages, mask, cfg, ctx):
            return -logp, {}
    """)
    try:
        assert get_loss("zz_test_loss").__module__ == "mmreason.rl.losses.zz_test_loss_plugin"  # found by the scan
        assert {"none", "clip_cov", "kl_cov", "zz_test_loss"} <= set(builtin_losses())
    finally:
        LOSSES.pop("zz_test_loss", None)


def test_builtin_recipe_kind_is_one_file():
    path = PKG / "data" / "kinds" / "zz_test_kind_plugin.py"
    assert not path.exists()
    path.write_text(textwrap.dedent("""
        from mmreason.data.kinds.registry import RecipeKind
        from mmreason.data.kinds.runner import Outcome

        KIND = RecipeKind(name="zz_test_kind", run=lambda ctx, rec: Outcome(), prompts={"user": ()})
    """))
    try:
        assert builtin_kinds(rescan=True)["zz_test_kind"].name == "zz_test_kind"
    finally:
        path.unlink()
        sys.modules.pop("mmreason.data.kinds.zz_test_kind_plugin", None)
    assert "zz_test_kind" not in builtin_kinds(rescan=True)
