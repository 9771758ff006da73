"""The experiment scripts: each answers --help, none imports another, and what they share in experiments/_common."""

import argparse
import ast
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import _common

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(path for path in (ROOT / "experiments").glob("*.py") if not path.name.startswith("_"))
SIBLINGS = {path.stem for path in (ROOT / "experiments").glob("*.py")}  # scripts, _common and __init__
LIBRARY = {"mfprune", "theory", "experiments"}
FLOAT64_SCRIPTS = {"scr_theorem1", "scr_vs_sigma"}
MODULE_CHECKED = {"scr_vs_sigma", "paths_convergence", "bench_kernels"}
BENCH_MACHINE_KEYS = {  # what each benchmark recorded about its machine before machine_info existed
    "bench_eoc": {"device", "jax", "python"},
    "bench_kernels": {"platform", "python", "jax", "devices", "cpu_count"},
    "bench_paths": {"device", "platform", "cpu_count", "jax", "python"},
    "bench_prune": {"device", "platform", "cpu", "cpu_count", "cpus_usable", "jax", "flax", "optax", "python",
                    "xla_flags"},
    "bench_scr": {"device", "platform", "cpu_count", "jax", "python", "xla_flags"},
    "bench_train": {"backend", "devices", "cpu_count", "jax", "python"},
}


def _tree(path: Path) -> ast.Module:
  return ast.parse(path.read_text(encoding="utf-8"), str(path))


def test_the_glob_finds_the_thirteen_scripts():
  assert len(SCRIPTS) == 13, f"expected the 13 experiment scripts, found {[p.name for p in SCRIPTS]}"
  assert {p.stem for p in SCRIPTS} >= set(BENCH_MACHINE_KEYS) | FLOAT64_SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_script_answers_help_when_run_as_a_file(script, tmp_path):
  """``python experiments/NAME.py --help`` from another folder: the script finds the repository by itself."""
  result = subprocess.run([sys.executable, str(script), "--help"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
  assert result.returncode == 0, result.stderr
  assert result.stdout.startswith("usage:")


@pytest.mark.parametrize("name", sorted(MODULE_CHECKED))
def test_script_answers_help_when_run_as_a_module(name):
  """``python -m experiments.NAME --help`` from the repository root (all scripts import ``_common`` the same way;
  these are the ones that imported another script or import themselves in a subprocess)."""
  assert name in {p.stem for p in SCRIPTS}
  result = subprocess.run([sys.executable, "-m", f"experiments.{name}", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr
  assert result.stdout.startswith("usage:")


def _script_imports(tree: ast.Module) -> list[str]:
  """The imports of one source that reach another script: anything from ``experiments`` but ``_common``, a bare
  import of a file next to the scripts (it works only when the scripts' folder is on ``sys.path``), or a relative
  import."""
  found = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      modules = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      if node.level:
        found.append("." * node.level + (node.module or ""))
        continue
      modules = ([f"experiments.{alias.name}" for alias in node.names] if node.module == "experiments"
                 else [node.module])
    else:
      continue
    for module in modules:
      parts = module.split(".")
      if parts[0] in SIBLINGS or (parts[0] == "experiments" and parts[1:2] != ["_common"]):
        found.append(module)
  return found


@pytest.mark.parametrize("source, expected", [
    ("import scr_theorem1 as common", ["scr_theorem1"]),
    ("from paths_width import density", ["paths_width"]),
    ("import _common", ["_common"]),
    ("from experiments import _common, paths_width", ["experiments.paths_width"]),
    ("from experiments.scr_theorem1 import ScaledSeeds", ["experiments.scr_theorem1"]),
    ("from . import _common", ["."]),
    ("from experiments import _common\nfrom experiments._common import parse_list\nimport numpy", []),
])
def test_the_import_scan_sees_every_way_to_import_a_script(source, expected):
  assert _script_imports(ast.parse(source)) == expected


def test_no_script_imports_another():
  offenders = {path.name: _script_imports(_tree(path)) for path in SCRIPTS + [ROOT / "experiments" / "_common.py"]}
  offenders = {name: found for name, found in offenders.items() if found}
  assert not offenders, f"scripts may import only experiments._common from experiments: {offenders}"


def _enables_x64(node: ast.stmt) -> bool:
  """Whether a statement is ``jax.config.update("jax_enable_x64", True)``."""
  return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
          and ast.unparse(node.value) == "jax.config.update('jax_enable_x64', True)")


def _library_import(node: ast.stmt) -> bool:
  if isinstance(node, ast.Import):
    return any(alias.name.split(".")[0] in LIBRARY for alias in node.names)
  return isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in LIBRARY


def test_float64_scripts_enable_x64_before_importing_the_library():
  """scr_vs_sigma used to get float64 from importing scr_theorem1; each now sets it itself, before any array."""
  enabling = {path.stem: path for path in SCRIPTS if any(_enables_x64(node) for node in _tree(path).body)}
  assert set(enabling) == FLOAT64_SCRIPTS
  for name, path in enabling.items():
    body = _tree(path).body
    first_x64 = next(i for i, node in enumerate(body) if _enables_x64(node))
    first_library = next(i for i, node in enumerate(body) if _library_import(node))
    assert first_x64 < first_library, f"{name} imports mfprune/theory/_common before enabling float64"
  assert not any(_enables_x64(node) for node in ast.walk(_tree(ROOT / "experiments" / "_common.py")))


@pytest.mark.parametrize("text, kind, expected", [
    ("0.5,1,2", float, [0.5, 1.0, 2.0]),
    ("0.25", float, [0.25]),
    ("3", int, [3]),
    ("20, 40,60", int, [20, 40, 60]),
    ("0.5,,0.9,", float, [0.5, 0.9]),
    ("", float, []),
    ("snip,grasp", str, ["snip", "grasp"]),
])
def test_parse_list(text, kind, expected):
  values = _common.parse_list(text, kind)
  assert values == expected
  assert all(type(v) is kind for v in values)


@pytest.mark.parametrize("text, kind, message", [
    ("1,x", float, "'x' in '1,x' is not a valid float"),
    ("1.5", int, "'1.5' in '1.5' is not a valid int"),
    ("0:1:3", float, "'0:1:3' in '0:1:3' is not a valid float"),  # no start:stop:count form in the scripts
])
def test_parse_list_names_the_bad_item(text, kind, message):
  with pytest.raises(ValueError, match=message):
    _common.parse_list(text, kind)


def test_parse_list_errors_reach_argparse_as_an_invalid_value(capsys):
  parser = argparse.ArgumentParser(prog="script")
  parser.add_argument("--ratios", type=_common.parse_list)
  with pytest.raises(SystemExit) as exit_info:
    parser.parse_args(["--ratios", "1,x"])
  assert exit_info.value.code == 2
  assert "argument --ratios: invalid parse_list value: '1,x'" in capsys.readouterr().err


def test_machine_info_has_every_field_the_benchmarks_record():
  info = _common.machine_info()
  assert set(info) == {"device", "backend", "devices", "platform", "cpu", "cpu_count", "cpus_usable", "jax", "flax",
                       "optax", "python", "xla_flags"}
  missing = {name: sorted(keys - set(info)) for name, keys in BENCH_MACHINE_KEYS.items() if keys - set(info)}
  assert not missing
  assert info["backend"] == jax.default_backend() and info["devices"] == [str(d) for d in jax.devices()]
  assert info["jax"] == jax.__version__
  assert isinstance(info["cpu_count"], int) and 1 <= info["cpus_usable"] <= info["cpu_count"]
  assert all(isinstance(info[key], str) for key in ("device", "platform", "cpu", "python", "xla_flags"))


def test_density_is_ten_to_minus_the_ratio():
  assert _common.density(0.0) == 1.0
  assert _common.density(2.0) == pytest.approx(0.01)


def test_zero_init_keeps_shapes_and_dtypes():
  init = lambda key: {"kernel": jax.random.normal(key, (3, 2)), "count": jnp.ones((4,), jnp.int32)}
  zeros = _common.zero_init(init)(jax.random.key(7))
  assert zeros["kernel"].shape == (3, 2) and zeros["kernel"].dtype == init(jax.random.key(0))["kernel"].dtype
  assert zeros["count"].dtype == jnp.int32
  assert not np.any(np.asarray(zeros["kernel"])) and not np.any(np.asarray(zeros["count"]))


def test_compile_program_returns_the_executable_and_its_seconds():
  compiled, seconds = _common.compile_program(lambda x: 2 * x, (jnp.arange(3.0),))
  np.testing.assert_array_equal(compiled(jnp.arange(3.0)), [0.0, 2.0, 4.0])
  assert seconds >= 0.0
