"""Bracketing and bisection that compile: fixed shapes, fixed iteration counts, vmap-safe."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

Array = jax.Array


def bisection_steps(dtype: jnp.dtype) -> int:
  """Enough halvings to shrink a bracket of one grid cell to round-off in ``dtype``."""
  return 64 if jnp.finfo(dtype).bits == 64 else 32


def bisect(fn: Callable[[Array], Array], lo: Array, hi: Array, steps: int) -> Array:
  """A root of ``fn`` in ``[lo, hi]`` given ``fn(lo) > 0 >= fn(hi)`` or ``fn(lo) <= 0 < fn(hi)``.

  The midpoint is geometric when ``lo > 0`` (bisection in ``log``, for variances spanning decades) and arithmetic
  otherwise. Elementwise over arrays of brackets.
  """
  positive_at_lo = fn(lo) > 0

  def step(_, bracket):
    lo, hi = bracket
    mid = jnp.where((lo > 0) & (hi > 0), jnp.sqrt(lo * hi), 0.5 * (lo + hi))
    same_side = (fn(mid) > 0) == positive_at_lo
    return jnp.where(same_side, mid, lo), jnp.where(same_side, hi, mid)

  lo, hi = jax.lax.fori_loop(0, steps, step, (lo, hi))
  return jnp.where((lo > 0) & (hi > 0), jnp.sqrt(lo * hi), 0.5 * (lo + hi))


def sign_changes(values: Array, max_count: int) -> tuple[Array, Array]:
  """Indices ``k`` (ascending, at most ``max_count``) where ``values[k]`` and ``values[k + 1]`` differ in sign.

  A zero counts as the sign of ``<= 0``. Returns ``(indices, valid)``; unused slots have ``valid = False``.
  """
  positive = values > 0
  change = positive[:-1] != positive[1:]
  (indices,) = jnp.nonzero(change, size=max_count, fill_value=values.shape[0] - 2)
  valid = jnp.arange(max_count) < jnp.sum(change)
  return indices, valid
