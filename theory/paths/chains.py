"""Path objectives and the Path Kernel of a dense chain, by one gradient and in log space ([P] eq. 9-16).

For a **dense chain** given as its kernels (a sequence of 2-D arrays in flax's ``(fan_in, fan_out)`` layout, layer 1
first; ``f(x) = φ(…φ(x W_1)…) W_L``, no activation after the last layer):

* :func:`chain_path_objective` and :func:`chain_log_path_objective`: ``R(x, θ)`` with ``|θ|^power`` (power 1:
  ``R_sf``, power 2: ``R_pk``), the log version renormalised layer by layer so that depth 100 neither overflows nor
  underflows;
* :func:`chain_path_kernel_diagonal`, :func:`chain_log_path_kernel_diagonal`: ``∂R_pk(x, θ)/∂(θ²)`` per weight;
* :func:`chain_path_kernel_trace`, :func:`chain_log_path_kernel_trace` and :func:`chain_path_statistics`: ``Tr Π``
  (total or per layer) by one gradient, and everything in log space at once.

The same quantities of any model (convolutions, skips, batch norm) are :func:`mfprune.paths.path_kernel_trace`'s.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from theory._pytree import pytree_dataclass
from theory.paths._checks import (Mask, Weights, check_mask, check_power, check_weights, check_x, input_vector,
                                  mask_grads, masked, squared)

Array = jax.Array

__all__ = ["chain_path_objective", "chain_log_path_objective", "chain_path_kernel_diagonal",
           "chain_log_path_kernel_diagonal", "chain_path_kernel_trace", "chain_log_path_kernel_trace",
           "PathStatistics", "chain_path_statistics"]


_SCAN_RUN = 4
"""Runs of at least this many consecutive same-shape kernels go through one ``lax.scan`` (fast compiles at depth)."""


def _groups(mats: list[Array]) -> list[list[Array]]:
  """Consecutive kernels of one shape grouped together (deep constant-width stacks become one scan)."""
  groups: list[list[Array]] = []
  for s in mats:
    if groups and groups[-1][0].shape == s.shape:
      groups[-1].append(s)
    else:
      groups.append([s])
  return groups


def _fold(step: Callable[[Any, Array], Any], carry: Any, mats: list[Array]) -> Any:
  """``step`` applied layer after layer, scanning over long runs of same-shape kernels."""
  for group in _groups(mats):
    if len(group) >= _SCAN_RUN:
      carry, _ = jax.lax.scan(lambda c, s: (step(c, s), None), carry, jnp.stack(group))
    else:
      for s in group:
        carry = step(carry, s)
  return carry


def _chain(mats: list[Array], x: Array) -> Array:
  """``xᵀ S_1 S_2 … S_L``: the output of the linear network with kernels ``S_l``."""
  return _fold(lambda h, s: h @ s, x, mats)


def _renormalised_step(carry: tuple[Array, Array], s: Array) -> tuple[Array, Array]:
  h, log_scale = carry
  h = h @ s
  scale = jax.lax.stop_gradient(jnp.mean(h))
  scale = jnp.where(scale > 0, scale, 1.0)
  return h / scale, log_scale + jnp.log(scale)


def _log_chain_sum(mats: list[Array], x: Array) -> Array:
  """``log(1ᵀ (xᵀ S_1 … S_L))`` for non-negative ``S_l`` and ``x``, renormalised after every layer.

  After each layer the signal is divided by its mean, a positive scalar held constant under differentiation, and
  the mean's log is added back: the value is exact and its gradient is that of ``log R`` (the stop-gradient
  factors cancel in ``∂ log R``). An all-zero signal is left as is; ``log 0 = −inf`` comes back with a zero
  gradient.
  """
  h, log_scale = _fold(_renormalised_step, (x, jnp.zeros((), x.dtype)), mats)
  total = jnp.sum(h)
  positive = total > 0
  return jnp.where(positive, jnp.log(jnp.where(positive, total, 1.0)), -jnp.inf) + log_scale


def chain_path_objective(weights: Weights, x: Array | None = None, *, power: float = 1) -> Array:
  """``R(x, θ) = 1ᵀ (|W_L|^p)ᵀ … (|W_1|^p)ᵀ x``, the output sum of the linear net on ``|θ|^p`` ([P] eq. 15-16).

  ``power=1`` with ``x = 1`` is SynFlow's ``R_sf = 1ᵀ(Π_l |θ^l|)1`` (eq. 16); ``power=2`` is the path-kernel
  objective ``R_pk(x, θ) = 1ᵀ(Π_l (θ^l)²) x`` (eq. 15). Summing over paths, ``R = Σ_p |v_p(θ)|^p x_{s(p)}``.
  Overflows in float32 for deep or large-scale nets: use :func:`chain_log_path_objective` there.

  Args:
    weights: the kernels ``(fan_in, fan_out)``, layer 1 first, forming a chain.
    x: one input vector of the first layer's fan_in (default: all ones). Any finite values (SynFlow-Dist uses the
      data mean's magnitude).
    power: the exponent ``p > 0`` applied to ``|θ|``.

  Returns:
    ``R`` as a scalar.

  Raises:
    ValueError: bad ``weights`` (a 1-D bias, not 2-D, not chaining), bad ``x`` or ``power <= 0``.
  """
  ws = check_weights(weights)
  x = check_x(x, ws[0].shape[0], ws[0].dtype, nonnegative=False)
  check_power(power)
  return _objective_program(ws, x, power)[0]


@jax.jit
def _objective_program(ws: list[Array], x: Array | None, power: Array) -> tuple[Array, Array]:
  """``(R, log R)``: one compiled program for every power and both forms (the log needs ``x >= 0``)."""
  mats, x = [jnp.abs(w) ** jnp.asarray(power, w.dtype) for w in ws], input_vector(ws, x)
  return jnp.sum(_chain(mats, x)), _log_chain_sum(mats, x)


def chain_log_path_objective(weights: Weights, x: Array | None = None, *, power: float = 1) -> Array:
  """``log R(x, θ)`` of :func:`chain_path_objective`, safe at any depth ([P] eq. 15-16).

  The running vector is divided after every layer by its mean (a positive scalar held constant under
  differentiation) and the log of that mean is added back, so the value is exact and its gradient is ``∂ log R``;
  a net of depth 100 whose plain ``R`` over- or underflows float32 gives a finite log. ``−inf`` when ``R = 0``.

  Args:
    weights: the kernels, layer 1 first.
    x: one non-negative input vector (default ones); non-negative so that every renormalisation is by a positive
      number.
    power: the exponent ``p > 0`` applied to ``|θ|``.

  Returns:
    ``log R`` as a scalar.

  Raises:
    ValueError: bad ``weights``, negative or misshapen ``x``, ``power <= 0``.
  """
  ws = check_weights(weights)
  x = check_x(x, ws[0].shape[0], ws[0].dtype, nonnegative=True)
  check_power(power)
  return _objective_program(ws, x, power)[1]


# ---------------------------------------------------------------------------------------------------------------
# The Path Kernel's diagonal and trace by one gradient ([P] eq. 14-15).
# ---------------------------------------------------------------------------------------------------------------


def chain_path_kernel_diagonal(weights: Weights, x: Array | None = None, *,
                               mask: Mask | None = None) -> list[Array]:
  """``∂R_pk(x, θ)/∂(θ_j²)`` for every weight: at ``x = 1`` it is ``Σ_p (∂v_p/∂θ_j)²`` ([P] eq. 15).

  ``R_pk`` is a polynomial in the squared weights ``S = θ²`` of degree one in each layer; the gradient with respect
  to ``S`` is one backward pass of the linear network on ``S``. Since ``v_p(θ)² = v_p(θ²)``, ``∂R_pk(1, θ)/∂S_j =
  Σ_{p ∋ j} Π_{i ∈ p, i ≠ j} θ_i² = Σ_p (∂v_p/∂θ_j)²``, the row sums of ``J_θ^vᵀ`` squared. With ``x ≠ 1`` each
  path is weighted by its input ``x_{s(p)}`` (SynFlow-L2-Dist's objective).

  Args:
    weights: the kernels, layer 1 first.
    x: one input vector (default ones).
    mask: one 0/1 array per kernel; the net is evaluated at ``θ ⊙ m`` and pruned entries are set to 0 (they are
      no longer parameters; see the module docstring).

  Returns:
    One array per kernel, shaped like it.

  Raises:
    ValueError: bad ``weights``, ``x`` or ``mask``.
  """
  ws = check_weights(weights)
  ms = check_mask(mask, ws)
  x = check_x(x, ws[0].shape[0], ws[0].dtype, nonnegative=False)
  return _diagonal_program(ws, ms, x)[0]


@jax.jit
def _diagonal_program(ws: list[Array], ms: list[Array] | None, x: Array | None) -> tuple[list[Array], Array]:
  """The diagonal per kernel and its per-layer sums."""
  x = input_vector(ws, x)
  grads = mask_grads(jax.grad(lambda s: jnp.sum(_chain(s, x)))(squared(ws, ms)), ms)
  return grads, jnp.stack([jnp.sum(g) for g in grads])


def _log_grads(ws: list[Array], ms: list[Array] | None, x: Array | None) -> tuple[Array, list[Array]]:
  """``log R_pk`` and ``∂ log R_pk / ∂S`` (masked) at ``S = (θ ⊙ m)²``."""
  x = input_vector(ws, x)
  log_r, grads = jax.value_and_grad(lambda s: _log_chain_sum(s, x))(squared(ws, ms))
  return log_r, mask_grads(grads, ms)


def _log(x: Array) -> Array:
  """``log x`` for ``x >= 0`` with ``log 0 = −inf`` and no NaN gradient."""
  positive = x > 0
  return jnp.where(positive, jnp.log(jnp.where(positive, x, 1.0)), -jnp.inf)


def chain_log_path_kernel_diagonal(weights: Weights, x: Array | None = None, *,
                             mask: Mask | None = None) -> list[Array]:
  """``log ∂R_pk(x, θ)/∂(θ_j²)`` per weight, safe at any depth (see :func:`chain_path_kernel_diagonal`).

  Computed as ``log R_pk + log ∂(log R_pk)/∂S_j`` with the renormalised objective of :func:`chain_log_path_objective`:
  the gradient of ``log R_pk`` stays of order one where ``R_pk`` itself would over- or underflow. ``−inf`` where
  the diagonal is 0 (pruned weights, weights no path through which carries flow).

  Args:
    weights: the kernels, layer 1 first.
    x: one non-negative input vector (default ones).
    mask: one 0/1 array per kernel (pruned entries give ``−inf``).

  Returns:
    One array per kernel.

  Raises:
    ValueError: bad ``weights``, ``x`` or ``mask``.
  """
  ws = check_weights(weights)
  ms = check_mask(mask, ws)
  x = check_x(x, ws[0].shape[0], ws[0].dtype, nonnegative=True)
  return _log_program(ws, ms, x)["log_diagonal"]


def chain_path_kernel_trace(weights: Weights, *, x: Array | None = None, mask: Mask | None = None,
                      per_layer: bool = False) -> Array:
  """``Tr Π_θ = Σ_p Σ_j (∂v_p/∂θ_j)² = Σ_j ∂R_pk(1, θ)/∂(θ_j²)`` by one gradient ([P] eq. 14-15).

  Depends on the weights only (not on φ). Overflows in float32 for deep or large-scale nets: use
  :func:`chain_log_path_kernel_trace` there.

  Args:
    weights: the kernels, layer 1 first.
    x: one input vector (default ones, the trace itself); another ``x`` weights each path by ``x_{s(p)}``.
    mask: one 0/1 array per kernel; pruned weights are not parameters and add nothing.
    per_layer: return the sum over each layer's weights instead of the total.

  Returns:
    A scalar, or an array ``(L,)`` of per-layer traces (summing to the total) with ``per_layer=True``.

  Raises:
    ValueError: bad ``weights``, ``x`` or ``mask``.
  """
  ws = check_weights(weights)
  ms = check_mask(mask, ws)
  x = check_x(x, ws[0].shape[0], ws[0].dtype, nonnegative=False)
  layers = _diagonal_program(ws, ms, x)[1]
  return layers if per_layer else _sum(layers)


_sum = jax.jit(jnp.sum)


def chain_log_path_kernel_trace(weights: Weights, *, x: Array | None = None, mask: Mask | None = None,
                          per_layer: bool = False) -> Array:
  """``log Tr Π_θ`` (or per layer), safe at any depth: ``log R_pk + log Σ_j ∂(log R_pk)/∂(θ_j²)``.

  Args:
    weights: the kernels, layer 1 first.
    x: one non-negative input vector (default ones).
    mask: one 0/1 array per kernel.
    per_layer: per-layer logs ``(L,)`` instead of the total (their ``logsumexp`` is the total).

  Returns:
    A scalar or an array ``(L,)``.

  Raises:
    ValueError: bad ``weights``, ``x`` or ``mask``.
  """
  out = _log_program(*_checked(weights, x, mask))
  return out["layers"] if per_layer else out["total"]


@pytree_dataclass
class PathStatistics:
  """The path quantities of one network in log space (natural logs; ``−inf`` for 0).

  Attributes:
    log_trace: ``log Tr Π_θ`` ([P] eq. 14).
    log_layer_traces: ``(L,)``, the log of each layer's share ``Σ_{j ∈ l} ∂R_pk/∂(θ_j²)``; their
      ``logsumexp`` is ``log_trace``.
    log_r_pk: ``log R_pk(x, θ)`` ([P] eq. 15).
    log_r_sf: ``log R_sf(x, θ)`` ([P] eq. 16).
  """

  log_trace: Array
  log_layer_traces: Array
  log_r_pk: Array
  log_r_sf: Array


def _checked(weights, x, mask) -> tuple[list[Array], list[Array] | None, Array | None]:
  ws = check_weights(weights)
  ms = check_mask(mask, ws)
  return ws, ms, check_x(x, ws[0].shape[0], ws[0].dtype, nonnegative=True)


@jax.jit
def _log_program(ws: list[Array], ms: list[Array] | None, x: Array | None) -> dict[str, Any]:
  """Everything in log space in one compiled program (shared by the log functions and :func:`chain_path_statistics`)."""
  log_r, grads = _log_grads(ws, ms, x)
  layers = jnp.stack([log_r + _log(jnp.sum(g)) for g in grads])
  return {
      "log_diagonal": [log_r + _log(g) for g in grads], "layers": layers, "log_r": log_r,
      "total": jax.nn.logsumexp(layers) if len(ws) > 1 else layers[0],
      "log_sf": _log_chain_sum([jnp.abs(w) for w in masked(ws, ms)], input_vector(ws, x)),
  }


def chain_path_statistics(weights: Weights, *, x: Array | None = None, mask: Mask | None = None) -> PathStatistics:
  """``log Tr Π`` (total and per layer), ``log R_pk`` and ``log R_sf`` of a dense chain, safe at any depth.

  Args:
    weights: the kernels, layer 1 first.
    x: one non-negative input vector (default ones).
    mask: one 0/1 array per kernel (the net at ``θ ⊙ m``; pruned weights add nothing to the trace).

  Returns:
    A :class:`PathStatistics`.

  Raises:
    ValueError: bad ``weights``, ``x`` or ``mask``.
  """
  out = _log_program(*_checked(weights, x, mask))
  return PathStatistics(out["total"], out["layers"], out["log_r"], out["log_sf"])
