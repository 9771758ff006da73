"""Argument checks at the public boundary of :mod:`theory`.

Checks run on concrete values only: inside ``jax.jit`` or ``jax.vmap`` the arguments are tracers and cannot be
inspected, so the check is skipped there (validate before tracing if you need it). Every error names the argument
and the valid range.
"""

from __future__ import annotations

import math

from typing import Any

import jax
import numpy as np


def is_concrete(value: Any) -> bool:
  """True when ``value`` holds data that can be inspected now (not a tracer)."""
  leaves = jax.tree_util.tree_leaves(value)
  return not any(isinstance(leaf, jax.core.Tracer) for leaf in leaves)


def _as_numpy(value: Any) -> np.ndarray | None:
  if not is_concrete(value):
    return None
  return np.asarray(value, dtype=np.float64)


def check_finite(name: str, value: Any) -> None:
  """Raises ``ValueError`` if any entry of ``value`` is NaN or infinite."""
  array = _as_numpy(value)
  if array is not None and not np.all(np.isfinite(array)):
    raise ValueError(f"{name} must be finite; got {_show(array)}")


def check_positive(name: str, value: Any) -> None:
  """Raises ``ValueError`` unless every entry of ``value`` is finite and > 0."""
  array = _as_numpy(value)
  if array is None:
    return
  check_finite(name, array)
  if not np.all(array > 0):
    raise ValueError(f"{name} must be > 0; got {_show(array)}")


def check_nonnegative(name: str, value: Any) -> None:
  """Raises ``ValueError`` unless every entry of ``value`` is finite and >= 0."""
  array = _as_numpy(value)
  if array is None:
    return
  check_finite(name, array)
  if not np.all(array >= 0):
    raise ValueError(f"{name} must be >= 0; got {_show(array)}")


def check_interval(name: str, value: Any, low: float, high: float) -> None:
  """Raises ``ValueError`` unless every entry of ``value`` lies in the closed interval [low, high]."""
  array = _as_numpy(value)
  if array is None:
    return
  check_finite(name, array)
  if not np.all((array >= low) & (array <= high)):
    raise ValueError(f"{name} must lie in [{low}, {high}]; got {_show(array)}")


def check_int(name: str, value: Any, minimum: int) -> int:
  """Returns ``value`` as a Python int, or raises ``ValueError`` unless it is an integer >= ``minimum``."""
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
  if value < minimum:
    raise ValueError(f"{name} must be an integer >= {minimum}; got {value}")
  return int(value)


def positive_float(name: str, value: Any, what: str) -> float:
  """``value`` as a Python float, or ``ValueError`` naming ``name`` (and saying ``what`` it is) unless it is a
  finite number > 0 (a scalar; for arrays use :func:`check_positive`)."""
  try:
    number = float(value)
  except (TypeError, ValueError):
    raise ValueError(f"{name} must be a finite number > 0 ({what}); got {value!r}") from None
  if not (math.isfinite(number) and number > 0):
    raise ValueError(f"{name} must be a finite number > 0 ({what}); got {number}")
  return number


def _show(array: np.ndarray) -> str:
  if array.size == 1:
    return repr(float(array.reshape(())))
  bad = array[~np.isfinite(array)] if not np.all(np.isfinite(array)) else array
  return f"array of shape {array.shape} (offending values include {bad.ravel()[:3].tolist()})"
