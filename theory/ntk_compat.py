"""Imports neural-tangents 0.6.5 on current JAX (DESIGN.md, "neural-tangents on current JAX").

neural-tangents (NT) is the reference the infinite-width kernels of :mod:`theory.kernels` are checked against. Its
last release, 0.6.5, fails to import on JAX >= 0.5 because JAX moved or removed four things it uses. Restoring
exactly these, before NT's first import, makes it work (:data:`PATCHES` names them):

1. ``jax_core``: ``Jaxpr, JaxprEqn, Literal, Var, Primitive`` copied from ``jax.extend.core`` into ``jax.core``;
2. ``jax_util``: a ``jax.util`` module offering ``safe_map`` and ``safe_zip`` (from ``jax._src.util``);
3. ``zeros_like_p``: ``jax.interpreters.ad.zeros_like_p`` set to a ``jax.extend.core.Primitive`` (NT only uses it
   as a dictionary key of its structured-derivative rules);
4. ``experimental_stub``: when TensorFlow is absent, an empty module for ``neural_tangents.experimental``, the only
   NT module that imports TensorFlow (its TF path is broken on current JAX anyway). TensorFlow is never imported
   by this module: with TF absent the stub is installed before NT is, and with TF present the stub is installed too,
   because importing TF costs seconds and its NT path does not work.

What works after the patches: ``stax`` analytic kernels, ``jit``, ``nt.batch``, ``monte_carlo_kernel_fn``,
``nt.predict`` and ``empirical_ntk_fn`` with ``NtkImplementation.JACOBIAN_CONTRACTION`` or ``NTK_VECTOR_PRODUCTS``
(:data:`SAFE_NTK_IMPLEMENTATIONS`; :func:`safe_ntk_implementation` returns the default one). What does not:
``STRUCTURED_DERIVATIVES`` and ``AUTO`` (which may pick it) rely on JAX internals that are gone; never use them,
and do not patch NT's private functions to revive them. With Flax NNX parameters pass ``nnx.to_pure_dict(state)``.

Install NT without TensorFlow: ``pip install --no-deps neural-tangents==0.6.5 frozendict``.

Call :func:`import_neural_tangents` before anything imports NT: a plain ``import neural_tangents``, even after
``import theory``, fails (on TensorFlow when it is absent, or on what current JAX moved) until it has run once in the
process; afterwards ``import neural_tangents`` works anywhere.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from typing import Any

INSTALL_COMMAND = "pip install --no-deps neural-tangents==0.6.5 frozendict"
"""How to install NT without pulling in TensorFlow."""

PATCHES: tuple[str, ...] = ("jax_core", "jax_util", "zeros_like_p", "experimental_stub")
"""Names of the four restorations, in the order they are applied."""

SAFE_NTK_IMPLEMENTATIONS: tuple[str, ...] = ("JACOBIAN_CONTRACTION", "NTK_VECTOR_PRODUCTS")
"""Names of ``nt.NtkImplementation`` members that work on current JAX (``STRUCTURED_DERIVATIVES`` and ``AUTO`` do
not)."""

_CORE_NAMES = ("Jaxpr", "JaxprEqn", "Literal", "Var", "Primitive")
_applied: tuple[str, ...] | None = None


def is_installed() -> bool:
  """True when the ``neural_tangents`` distribution can be found (without importing it)."""
  return "neural_tangents" in sys.modules or importlib.util.find_spec("neural_tangents") is not None


def applied_patches() -> tuple[str, ...]:
  """Which of :data:`PATCHES` this process needed (empty before :func:`import_neural_tangents` ran, or when the
  installed JAX needed none)."""
  return _applied or ()


def needed_patches() -> tuple[str, ...]:
  """Which of :data:`PATCHES` the running JAX needs, judged without changing anything.

  After :func:`import_neural_tangents` has patched the process, the JAX-side restorations are in place and so no
  longer "needed"; :func:`applied_patches` then says what was done.
  """
  import jax
  import jax.core
  import jax.interpreters.ad

  needed = []
  if not all(hasattr(jax.core, name) for name in _CORE_NAMES):
    needed.append("jax_core")
  if "jax.util" not in sys.modules and importlib.util.find_spec("jax.util") is None:
    needed.append("jax_util")
  if not hasattr(jax.interpreters.ad, "zeros_like_p"):
    needed.append("zeros_like_p")
  if "neural_tangents.experimental" not in sys.modules:
    needed.append("experimental_stub")
  return tuple(needed)


def _patch_jax_core() -> bool:
  import jax.core
  import jax.extend.core

  missing = [name for name in _CORE_NAMES if not hasattr(jax.core, name)]
  for name in missing:
    setattr(jax.core, name, getattr(jax.extend.core, name))
  return bool(missing)


def _patch_jax_util() -> bool:
  import jax

  if "jax.util" in sys.modules or importlib.util.find_spec("jax.util") is not None:
    return False
  from jax._src import util as src_util

  module = types.ModuleType("jax.util", "safe_map and safe_zip restored for neural-tangents (theory.ntk_compat).")
  module.safe_map = src_util.safe_map
  module.safe_zip = src_util.safe_zip
  sys.modules["jax.util"] = module
  jax.util = module
  return True


def _patch_zeros_like_p() -> bool:
  import jax.extend.core
  import jax.interpreters.ad

  if hasattr(jax.interpreters.ad, "zeros_like_p"):
    return False
  jax.interpreters.ad.zeros_like_p = jax.extend.core.Primitive("zeros_like")
  return True


def _patch_experimental() -> bool:
  existing = sys.modules.get("neural_tangents.experimental")
  if existing is not None:
    return False
  stub = types.ModuleType(
      "neural_tangents.experimental",
      "Stub installed by theory.ntk_compat: NT's experimental module imports TensorFlow, whose path is broken.")
  stub.__mfprune_stub__ = True
  sys.modules["neural_tangents.experimental"] = stub
  return True


def import_neural_tangents() -> Any:
  """Applies the four restorations once (idempotent) and returns the ``neural_tangents`` module.

  Never imports TensorFlow: the ``neural_tangents.experimental`` stub is in ``sys.modules`` before NT is imported.

  Returns:
    The imported ``neural_tangents`` module.

  Raises:
    ImportError: NT is not installed (the message gives :data:`INSTALL_COMMAND`), or it is installed but fails to
      import even with the patches (a JAX release has broken them; the message says so).
  """
  global _applied
  if "neural_tangents" in sys.modules and _applied is not None:
    return sys.modules["neural_tangents"]
  if not is_installed():
    raise ImportError(f"neural-tangents is not installed; install it without TensorFlow with `{INSTALL_COMMAND}`")
  done = []
  for name, patch in zip(PATCHES, (_patch_jax_core, _patch_jax_util, _patch_zeros_like_p, _patch_experimental)):
    if patch():
      done.append(name)
  if _applied is None:
    _applied = tuple(done)
  try:
    import neural_tangents
  except Exception as error:  # noqa: BLE001 - any failure here means the patches no longer suffice
    import jax

    raise ImportError(
        f"neural-tangents failed to import on JAX {jax.__version__} even with theory.ntk_compat's patches "
        f"{PATCHES}: {type(error).__name__}: {error}. A JAX release has broken them; update theory/ntk_compat.py "
        "(see DESIGN.md, 'neural-tangents on current JAX').") from error
  return neural_tangents


def safe_ntk_implementation() -> Any:
  """``nt.NtkImplementation.JACOBIAN_CONTRACTION``, the empirical-NTK method that works on current JAX (imports NT).

  Pass it as ``implementation=`` to ``nt.empirical_ntk_fn``; ``NTK_VECTOR_PRODUCTS`` also works, while
  ``STRUCTURED_DERIVATIVES`` and ``AUTO`` do not.
  """
  return import_neural_tangents().NtkImplementation.JACOBIAN_CONTRACTION


def tensorflow_imported() -> bool:
  """True when TensorFlow has been imported in this process (this module never imports it)."""
  return "tensorflow" in sys.modules
