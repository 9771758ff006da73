"""Small frozen dataclasses registered as JAX pytrees (array fields are leaves, the rest is static)."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import jax

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
