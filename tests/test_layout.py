"""The layering rules of docs/architecture.md: theory → mfprune → experiments, and a module map that stays true."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
  """Top-level package names a source file imports (absolute imports only)."""
  names = set()
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      names.update(alias.name.split(".")[0] for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      names.add(node.module.split(".")[0])
  return names


def _modules(package: str) -> list[str]:
  """Dotted names of a package's modules and subpackages (``__init__`` files name their package)."""
  out = []
  for path in sorted((ROOT / package).rglob("*.py")):
    parts = path.relative_to(ROOT).with_suffix("").parts
    out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
  return out


@pytest.mark.parametrize("package, forbidden", [
    ("theory", {"mfprune", "flax", "optax", "orbax", "experiments"}),
    ("mfprune", {"experiments"}),
])
def test_no_module_imports_a_layer_above_its_own(package, forbidden):
  offenders = {str(path.relative_to(ROOT)): sorted(_imports(path) & forbidden)
               for path in (ROOT / package).rglob("*.py") if _imports(path) & forbidden}
  assert not offenders, f"{package} must not import {sorted(forbidden)}: {offenders}"


def test_importing_all_of_theory_loads_no_flax_and_no_mfprune():
  """What the AST scan cannot see (an import through a dependency) shows in sys.modules of a fresh interpreter."""
  names = [name for name in _modules("theory") if name != "theory.ntk_compat"]  # NT is imported only on request
  code = ("import importlib, sys\n"
          f"for name in {names!r}:\n"
          "  importlib.import_module(name)\n"
          "print(sorted({m.split('.')[0] for m in sys.modules} & {'flax', 'mfprune', 'optax', 'orbax'}))\n")
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
  assert out.strip() == "[]"


def test_the_module_map_names_every_module_and_only_modules_that_exist():
  text = (ROOT / "docs" / "architecture.md").read_text()
  named = set(re.findall(r"`((?:theory|mfprune)(?:\.[a-z_]+)+)`", text))
  modules = set(_modules("theory")) | set(_modules("mfprune"))
  assert named - modules == set(), "docs/architecture.md names modules that do not exist"
  # Every public module is in a table; submodules of a package may be named in its row instead (`chains`).
  rows = "\n".join(line for line in text.splitlines() if line.startswith("| `"))
  missing = []
  for module in sorted(modules - {"theory", "mfprune"}):
    leaf = module.rsplit(".", 1)[-1]
    if f"`{module}`" not in text and f"`{leaf}`" not in rows:
      missing.append(module)
  assert not missing, f"docs/architecture.md does not place {missing}"
