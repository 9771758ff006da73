"""Old public names kept for one release: a module's ``__getattr__`` that warns and hands out the new object."""

from __future__ import annotations

import importlib
import warnings
from typing import Any, Callable, Mapping


def renamed(module: str, aliases: Mapping[str, str]) -> Callable[[str], Any]:
  """``__getattr__`` for ``module`` that resolves each old name in ``aliases`` (old -> new) to the new attribute with
  a ``DeprecationWarning`` (docs/changes.md lists the renames), and raises ``AttributeError`` for anything else."""

  def __getattr__(name: str) -> Any:
    if name not in aliases:
      raise AttributeError(f"module {module!r} has no attribute {name!r}")
    new = aliases[name]
    warnings.warn(f"{module}.{name} is now {module}.{new} (docs/changes.md, mfprune 0.4); the old name goes in the "
                  "next release", DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(module), new)

  return __getattr__
