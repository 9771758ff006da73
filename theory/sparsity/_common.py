"""Helpers shared by the :mod:`theory.sparsity` modules: the float type, bisection lengths and range checks."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from theory import gaussian
from theory._validation import is_concrete

Array = jax.Array


def as_float(x) -> Array:
  """``x`` in the float type in force (float32, or float64 with ``jax_enable_x64``)."""
  return jnp.asarray(x, gaussian.float_dtype())


def bisection_steps(dtype) -> int:
  """Bisection halvings: round-off of a bracket of width ~1e3 in ``dtype``."""
  return 64 if jnp.finfo(dtype).bits == 64 else 44


def check_range(name: str, value: Any, valid: Callable[[np.ndarray], np.ndarray], what: str) -> None:
  """``ValueError`` naming ``name`` and its offending entries unless ``valid(array)`` holds everywhere (concrete
  values only: traced ones pass)."""
  if not is_concrete(value):
    return
  array = np.asarray(value, np.float64)
  bad = array[~valid(array)]
  if bad.size:
    raise ValueError(f"{name} must {what}; got {bad.ravel()[:3].tolist()}")
