"""Argument checks shared by the modules that take ``(apply_fn, params, x[, mask])``: batches and masks."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from mfprune.masks import Mask, Params, apply_mask

Array = jax.Array


def batch_array(name: str, x: Any, like: Array | None = None) -> Array:
  """``x`` as an array ``(n, ...)`` with ``n >= 1`` and at least one feature axis, shaped like ``like`` past the batch
  axis when given; ``ValueError`` naming ``name`` otherwise."""
  x = jnp.asarray(x)
  if x.ndim < 2 or x.shape[0] < 1:
    raise ValueError(f"{name} must be a batch of shape (n, ...) with n >= 1 and at least one feature axis; "
                     f"got shape {x.shape}")
  if like is not None and x.shape[1:] != like.shape[1:]:
    raise ValueError(f"{name} must hold examples shaped like x1's {like.shape[1:]}; got shape {x.shape}")
  return x


def masked(params: Params, mask: Mask | None) -> Params:
  """``params`` with the pruned weights set to zero (``params`` itself when ``mask`` is ``None``)."""
  return params if mask is None else apply_mask(params, mask)
