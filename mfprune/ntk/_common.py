"""Argument checks and compiled helpers shared by :mod:`mfprune.ntk`'s empirical, analytic and dynamics modules."""

from __future__ import annotations

import functools
import math

import jax

from mfprune.functional import ApplyFn, Params
from mfprune.masks import Mask, apply_mask, check_mask

Array = jax.Array

_apply_mask = jax.jit(apply_mask)


def _masked_params(params: Params, mask: Mask | None) -> Params:
  """``θ ⊙ m`` (compiled), after checking that ``mask`` fits ``params``."""
  if mask is None:
    return params
  check_mask(mask, params)
  return _apply_mask(params, mask)


@functools.partial(jax.jit, static_argnums=0)
def _forward(apply_fn: ApplyFn, params: Params, x: Array) -> Array:
  """``f(θ, x)`` flattened to ``(n, K)``, compiled (eager model calls compile every operation on its own)."""
  return apply_fn(params, x).reshape(x.shape[0], -1)


def _output_size(apply_fn: ApplyFn, params: Params, x: Array, name: str = "x") -> int:
  """Outputs per example ``K`` (the model's output flattened past the batch axis); ValueError naming ``name`` when
  the model cannot take ``x``."""
  try:
    out = jax.eval_shape(apply_fn, params, x)
  except (TypeError, ValueError) as err:
    raise ValueError(f"{name} of shape {x.shape} does not fit the model: {err}") from None
  if not hasattr(out, "shape") or len(out.shape) < 1 or out.shape[0] != x.shape[0]:
    raise ValueError(f"apply_fn must return one output row per example of {name}; got {out}")
  return math.prod(out.shape[1:])
