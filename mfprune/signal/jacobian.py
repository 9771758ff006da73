"""The input-output Jacobian of a (pruned) network and its singular values ([S] eq. 4, 7, Table 1, Figure 2).

``J_{0,K}(x) = ∂f(x)/∂x = Π_l D_l W_l`` ([S] eq. 4, 7; THEORY.md §6). [S] Table 1 and Figure 2 report the mean,
standard deviation and condition number ``s_max/s_min`` of its singular values: :func:`jacobian_singular_values`
computes them per example, :func:`jacobian_statistics` and :func:`spectrum_statistics` summarise them.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from mfprune._checks import batch_array, masked
from mfprune.functional import ApplyFn, Params
from mfprune.masks import Mask
from theory._validation import check_int

Array = jax.Array

__all__ = ["JacobianStats", "jacobian_singular_values", "jacobian_statistics", "spectrum_statistics"]


@dataclasses.dataclass(frozen=True)
class JacobianStats:
  """Statistics of input-output Jacobian singular values pooled over examples ([S] Table 1, Figure 2, App. C).

  Attributes:
    mean: mean of all singular values (every example's ``min(out, in)`` values pooled).
    std: their standard deviation (population, ``ddof = 0``).
    min: the smallest singular value.
    max: the largest singular value.
    condition_number: ``max / min`` over the pool, ``inf`` when ``min`` is 0 ([S] Table 1's "CN").
    count: number of singular values pooled (examples × ``min(out, in)``).
  """

  mean: float
  std: float
  min: float
  max: float
  condition_number: float
  count: int

  def to_dict(self) -> dict[str, float | int]:
    return dataclasses.asdict(self)


def _jacobian_chunk(apply_fn: ApplyFn, params: Params, x: Array) -> Array:
  """Singular values of ``∂f(x_i)/∂x_i`` for each row of ``x`` (one vmapped program)."""
  shape = x.shape[1:]
  d = math.prod(shape)

  def f(v):
    return apply_fn(params, v.reshape((1, *shape))).reshape(-1)

  out = math.prod(jax.eval_shape(f, jax.ShapeDtypeStruct((d,), x.dtype)).shape)
  # Reverse mode costs one pass per output, forward mode one per input: logits are usually far fewer.
  jacobian = jax.jacrev(f) if out <= d else jax.jacfwd(f)
  return jax.vmap(lambda v: jnp.linalg.svd(jacobian(v), compute_uv=False))(x.reshape(x.shape[0], d))


_jacobian_chunk_jit = jax.jit(_jacobian_chunk, static_argnums=0)


def jacobian_singular_values(apply_fn: ApplyFn, params: Params, x: Array, *, mask: Mask | None = None,
                             batch_size: int = 256) -> Array:
  """Singular values of each example's input-output Jacobian ``J_{0,K}(x_i) = ∂f(x_i)/∂x_i`` ([S] eq. 4, 7).

  ``f(x_i)`` is the network's output (logits) flattened and ``x_i`` the example flattened, so ``J`` is an
  ``out × in`` matrix (``in`` = the product of one example's dimensions). Each example goes through ``apply_fn`` as
  a batch of one, so the Jacobian is that of the per-example function; a model whose batch norm uses batch
  statistics (``model.train()``) should be split in eval mode for this. Jacobians come from ``jax.jacrev`` when
  ``out <= in`` (the usual case: one backward pass per logit) and ``jax.jacfwd`` otherwise, vmapped over examples
  in chunks of ``batch_size``.

  Args:
    apply_fn: ``apply_fn(params, x)`` (hashable: it is a static argument of the compiled program).
    params: the parameters.
    x: a batch of inputs ``(n, ...)``.
    mask: optional mask; the Jacobian is then that of ``masks.apply_mask(params, mask)``.
    batch_size: examples per compiled chunk (bounds the memory of the ``chunk × out × in`` Jacobians).

  Returns:
    Array ``(n, min(out, in))`` of singular values, each row in descending order.
  """
  x = batch_array("x", x)
  batch_size = check_int("batch_size", batch_size, 1)
  params = masked(params, mask)
  n = x.shape[0]
  size = min(n, batch_size)
  chunks = []
  for start in range(0, n, size):
    chunk = x[start:start + size]
    rows = chunk.shape[0]
    if rows < size:  # pad the last chunk so every chunk reuses one compiled program
      chunk = jnp.concatenate([chunk, jnp.zeros((size - rows, *x.shape[1:]), x.dtype)])
    chunks.append(_jacobian_chunk_jit(apply_fn, params, chunk)[:rows])
  return jnp.concatenate(chunks) if len(chunks) > 1 else chunks[0]


def spectrum_statistics(singular_values: Array) -> JacobianStats:
  """:class:`JacobianStats` of singular values of any shape, all pooled (e.g. several seeds stacked).

  Args:
    singular_values: non-negative values, e.g. the output of :func:`jacobian_singular_values`.

  Returns:
    Mean, standard deviation, min, max and condition number ``max/min`` (``inf`` if ``min`` is 0) of the pool.
  """
  values = np.asarray(singular_values, dtype=np.float64).reshape(-1)
  if values.size == 0:
    raise ValueError("singular_values must hold at least one value; got an empty array")
  if not np.all(np.isfinite(values)) or np.any(values < 0):
    raise ValueError("singular_values must be finite and >= 0 (a NaN or inf Jacobian means the forward pass "
                     "overflowed)")
  smin, smax = float(values.min()), float(values.max())
  condition = smax / smin if smin > 0 else math.inf
  return JacobianStats(mean=float(values.mean()), std=float(values.std()), min=smin, max=smax,
                       condition_number=condition, count=int(values.size))


def jacobian_statistics(apply_fn: ApplyFn, params: Params, x: Array, *, mask: Mask | None = None,
                        batch_size: int = 256) -> JacobianStats:
  """Mean, std and condition number of the input-output Jacobian's singular values ([S] Table 1, Figure 2).

  [S] measures the singular values of ``J_{0,K}`` over the training set and reports their mean, standard
  deviation and condition number ``s_max/s_min``, "the maximum and minimum Jacobian singular values" (Table 1
  caption); it does not say whether these are taken per example. We pool: all ``n · min(out, in)`` singular values
  of all examples form one sample, and ``condition_number`` is its largest value over its smallest (``inf`` when
  the smallest is 0, as in the last row of Table 1). Per-example statistics can be computed from
  :func:`jacobian_singular_values`.

  Args:
    apply_fn: ``apply_fn(params, x)``.
    params: the parameters.
    x: a batch of inputs ``(n, ...)`` (the paper uses the whole training set).
    mask: optional mask, applied with ``masks.apply_mask``.
    batch_size: examples per compiled chunk.

  Returns:
    A :class:`JacobianStats`.
  """
  return spectrum_statistics(jacobian_singular_values(apply_fn, params, x, mask=mask, batch_size=batch_size))
