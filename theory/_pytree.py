"""Small frozen dataclasses registered as JAX pytrees (array fields are leaves, the rest is static), and how their
numbers are written to JSON."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import jax
import numpy as np

T = TypeVar("T")


def pytree_dataclass(cls: type[T]) -> type[T]:
  """Makes ``cls`` a frozen dataclass whose fields are pytree leaves, except fields marked ``static_field()``."""
  cls = dataclasses.dataclass(frozen=True)(cls)
  fields = dataclasses.fields(cls)
  data = [f.name for f in fields if not f.metadata.get("static", False)]
  meta = [f.name for f in fields if f.metadata.get("static", False)]
  return jax.tree_util.register_dataclass(cls, data_fields=data, meta_fields=meta)


def static_field(**kwargs: Any) -> Any:
  """A dataclass field kept out of the pytree's leaves (hashable, compared at trace time)."""
  return dataclasses.field(metadata={"static": True}, **kwargs)


def key_path_name(path: Any) -> str:
  """``"layers/0/kernel"`` for a ``jax.tree_util`` key path (dict keys, attribute names and indices joined by ``/``)."""
  parts = []
  for key in path:
    for attr in ("key", "name", "idx"):
      if hasattr(key, attr):
        parts.append(str(getattr(key, attr)))
        break
    else:
      parts.append(str(key))
  return "/".join(parts)


def json_numbers(values: Any) -> Any:
  """``values`` (a scalar or an array of any shape) as Python numbers for JSON: NaN and ±inf become ``None``, and a
  float32 (or float16) number becomes the shortest decimal that reads back as the same number in its own
  precision, so that ``0.1`` typed by a user and computed in float32 is written ``0.1``, not
  ``0.10000000149011612``. Integers and booleans pass through; float64 keeps every digit.

  Returns:
    A Python number, ``None``, or nested lists of them (the array's shape).
  """
  array = np.asarray(values)
  if array.dtype.kind != "f":
    return array.tolist()
  shortest = array.dtype.itemsize < 8  # str() of a float32 is its shortest round-trip decimal

  def one(value: np.floating) -> float | None:
    if not np.isfinite(value):
      return None
    return float(str(value)) if shortest else float(value)

  if array.ndim == 0:
    return one(array[()])
  return [json_numbers(row) for row in array] if array.ndim > 1 else [one(v) for v in array]
