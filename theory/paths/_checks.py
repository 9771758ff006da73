"""Argument checks and small helpers shared by :mod:`theory.paths.chains` and :mod:`theory.paths.enumeration`.

A dense chain is given as its kernels, a sequence of 2-D arrays in flax's ``(fan_in, fan_out)`` layout, layer 1
first; a mask as one 0/1 (or boolean) array per kernel.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from theory._validation import check_finite, check_nonnegative, check_positive, is_concrete

Array = jax.Array
Weights = Sequence[Array]
Mask = Sequence[Array]


def check_weights(weights: Weights) -> list[Array]:
  """The kernels as floating arrays, or ValueError naming ``weights[i]`` (bias, non-2-D, chain mismatch)."""
  if isinstance(weights, (jax.Array, np.ndarray)) or not isinstance(weights, Sequence) or isinstance(weights, str):
    raise ValueError("weights must be a sequence of 2-D kernels (fan_in, fan_out), layer 1 first; "
                     f"got {type(weights).__name__} (for a model use mfprune.paths.path_kernel_trace)")
  if len(weights) == 0:
    raise ValueError("weights must hold at least one 2-D kernel; got an empty sequence")
  out = []
  for i, w in enumerate(weights):
    w = jnp.asarray(w)
    if w.ndim == 1:
      raise ValueError(f"weights[{i}] has shape {w.shape}: a 1-D array looks like a bias, and paths need a "
                       "bias-free network; pass only the 2-D kernels (fan_in, fan_out)")
    if w.ndim != 2:
      raise ValueError(f"weights[{i}] must be a 2-D kernel (fan_in, fan_out); got shape {w.shape}")
    if min(w.shape) < 1:
      raise ValueError(f"weights[{i}] must have at least one row and one column; got shape {w.shape}")
    if out and out[-1].shape[1] != w.shape[0]:
      raise ValueError(f"weights[{i}] has fan_in {w.shape[0]} but weights[{i - 1}] has fan_out "
                       f"{out[-1].shape[1]}: the kernels must chain (layer i's outputs are layer i+1's inputs)")
    check_finite(f"weights[{i}]", w)
    out.append(w)
  dtype = jnp.result_type(*out, float) if not all(jnp.issubdtype(w.dtype, jnp.floating) for w in out) \
      else jnp.result_type(*out)
  return [w if w.dtype == dtype else w.astype(dtype) for w in out]


def check_mask(mask: Mask | None, weights: list[Array]) -> list[Array] | None:
  """The mask's arrays (0/1 or boolean; converted inside the compiled programs), or ValueError naming ``mask[i]``."""
  if mask is None:
    return None
  if isinstance(mask, (jax.Array, np.ndarray)) or not isinstance(mask, Sequence) or len(mask) != len(weights):
    raise ValueError(f"mask must be a sequence of {len(weights)} arrays shaped like the kernels (or None); "
                     f"got {type(mask).__name__}" + (f" of length {len(mask)}" if isinstance(mask, Sequence) else ""))
  out = []
  for i, (m, w) in enumerate(zip(mask, weights)):
    m = jnp.asarray(m)
    if m.shape != w.shape:
      raise ValueError(f"mask[{i}] must have the shape of weights[{i}], {w.shape}; got {m.shape}")
    if is_concrete(m) and not np.all((np.asarray(m) == 0) | (np.asarray(m) == 1)):
      raise ValueError(f"mask[{i}] must hold only 0/1 (or booleans: True = kept)")
    out.append(m)
  return out


def check_x(x: Array | None, n_in: int, dtype, *, nonnegative: bool) -> Array | None:
  """``x`` as a vector of the first layer's fan_in (``None`` stays: ones, made in the compiled program), or
  ValueError naming ``x``."""
  if x is None:
    return None
  x = jnp.asarray(x)
  x = x if x.dtype == dtype else x.astype(dtype)
  if x.shape != (n_in,):
    raise ValueError(f"x must be one input of shape ({n_in},) (the fan_in of weights[0]); got shape {x.shape}")
  if nonnegative:
    check_nonnegative("x", x)
  else:
    check_finite("x", x)
  return x


def check_power(power: float) -> None:
  if isinstance(power, bool):
    raise ValueError(f"power must be a number > 0 (1: R_sf, 2: R_pk); got {power!r}")
  check_positive("power", power)


def masked(weights: list[Array], mask: list[Array] | None) -> list[Array]:
  return weights if mask is None else [w * m.astype(w.dtype) for w, m in zip(weights, mask)]


def mask_grads(grads: list[Array], mask: list[Array] | None) -> list[Array]:
  return grads if mask is None else [g * m.astype(g.dtype) for g, m in zip(grads, mask)]


def input_vector(ws: list[Array], x: Array | None) -> Array:
  return jnp.ones((ws[0].shape[0],), ws[0].dtype) if x is None else x


def squared(weights: list[Array], mask: list[Array] | None) -> list[Array]:
  return [w * w for w in masked(weights, mask)]
