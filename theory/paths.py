"""Paths, the Path Kernel and SynFlow's objectives of bias-free networks with positively homogeneous activations.

A bias-free network whose activation is positively homogeneous (``φ(αh) = αφ(h)`` for ``α > 0``: ReLU, leaky ReLU,
linear) computes ([P] eq. 9; THEORY.md §7)::

    f_k(x, θ) = Σ_s Σ_{p ∈ P_{s→k}} v_p(θ) a_p(x, θ) x_s,        v_p(θ) = Π_j θ_j^{p_j},

a sum over the paths ``p`` from input ``s`` to output ``k`` of the path value ``v_p`` (the product of the weights
along it) times the path's activation ``a_p`` (the product of the slopes of the units it passes). So ``∇_θ f =
J_v^f J_θ^v`` and the NTK factors as ``Θ = J_v^f Π_θ J_v^fᵀ`` with the **Path Kernel** ``Π_θ = J_θ^v J_θ^vᵀ``, which
depends on the weights only ([P] eq. 10-13). Its trace ([P] eq. 14-15)::

    Tr Π_θ = Σ_p Σ_j (∂v_p/∂θ_j)² = Σ_j ∂R_pk(1, θ)/∂(θ_j²),      R_pk(x, θ) = 1ᵀ (Π_l (θ^l)²) x,

is one backward pass through the linear network whose weights are ``θ²``, with no path enumeration.
SynFlow's objective is ``R_sf = 1ᵀ (Π_l |θ^l|) 1`` ([P] eq. 16).

This module holds, for a **dense chain** given as its kernels (a sequence of 2-D arrays in flax's ``(fan_in,
fan_out)`` layout, layer 1 first; ``f(x) = φ(…φ(x W_1)…) W_L``, no activation after the last layer):

* :func:`path_objective` and :func:`log_path_objective`: ``R(x, θ)`` with ``|θ|^power`` (power 1: ``R_sf``, power 2:
  ``R_pk``), the log version renormalised layer by layer so that depth 100 neither overflows nor underflows;
* :func:`path_kernel_diagonal`, :func:`log_path_kernel_diagonal`: ``∂R_pk(x, θ)/∂(θ²)`` per weight;
* :func:`path_kernel_trace`, :func:`log_path_kernel_trace` and :func:`path_statistics`: ``Tr Π`` (total or per
  layer) by one gradient, and everything in log space at once;
* the explicit enumeration, the test oracle for tiny nets: :func:`path_indices`, :func:`path_values`,
  :func:`path_jacobian` (``J_θ^v``), :func:`path_kernel` (``Π``) and :func:`path_activations` (``J_v^f``);

for **any** bias-free homogeneous ``apply_fn(params, x)`` (convolutions, pooling, skips): :func:`path_objective_fn`,
:func:`path_kernel_diagonal_fn` and :func:`path_kernel_trace_fn`, after :func:`check_path_network`; and the
convergence estimate of [P] Fig. 1, :func:`convergence_estimate` and :func:`fit_convergence_scale`.

**Pruned networks.** ``mask`` (one 0/1 or boolean array per kernel) removes weights: the network is evaluated at
``θ ⊙ m`` and pruned weights are no longer parameters, so their entries of the diagonal are 0 and they add nothing
to ``Tr Π`` (the column of ``J_θ^v`` of a pruned weight is zero). Without the mask a weight that is merely 0 still
counts: ``∂R_pk/∂(θ_j²)`` is the flow through ``j``, not zero. Pass the mask, not only the zeroed weights.

Precision: the weights' floating dtype (float32 by default; float64 with ``jax_enable_x64``). Every function runs
under ``jax.jit``/``jax.vmap``; argument checks run on concrete values only.

References: [P] A Unified Paths Perspective for Pruning at Initialization (eq. 9-16, Fig. 1); Tanaka et al. 2020
(SynFlow).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from theory._pytree import key_path_name, pytree_dataclass
from theory._validation import check_finite, check_int, check_nonnegative, check_positive, is_concrete
from theory.activations import Activation, ActivationLike, get_activation

__all__ = [
    "DEFAULT_MAX_PATHS", "path_objective", "log_path_objective", "path_kernel_diagonal", "log_path_kernel_diagonal",
    "path_kernel_trace", "log_path_kernel_trace", "PathStatistics", "path_statistics",
    "path_count", "path_indices", "path_values", "path_jacobian", "path_kernel", "path_activations",
    "check_homogeneous", "check_path_network", "path_objective_fn", "path_kernel_diagonal_fn",
    "path_kernel_trace_fn", "convergence_estimate", "ConvergenceFit", "fit_convergence_scale",
]

Array = jax.Array
Weights = Sequence[Array]
Mask = Sequence[Array]
ApplyFn = Callable[[Any, Array], Array]

DEFAULT_MAX_PATHS = 4096
"""Largest number of paths the explicit enumeration accepts by default (``J_θ^v`` is paths × parameters)."""

_HOMOGENEITY_ALPHAS = (0.25, 0.5, 2.0, 3.0)
_HOMOGENEITY_GRID = (-4.0, 4.0, 81)


# ---------------------------------------------------------------------------------------------------------------
# Validation.
# ---------------------------------------------------------------------------------------------------------------


def _check_weights(weights: Weights) -> list[Array]:
  """The kernels as floating arrays, or ValueError naming ``weights[i]`` (bias, non-2-D, chain mismatch)."""
  if isinstance(weights, (jax.Array, np.ndarray)) or not isinstance(weights, Sequence) or isinstance(weights, str):
    raise ValueError("weights must be a sequence of 2-D kernels (fan_in, fan_out), layer 1 first; "
                     f"got {type(weights).__name__} (for a parameter tree use path_kernel_trace_fn)")
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


def _check_mask(mask: Mask | None, weights: list[Array]) -> list[Array] | None:
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


def _check_x(x: Array | None, n_in: int, dtype, *, nonnegative: bool) -> Array | None:
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


def _check_power(power: float) -> None:
  if isinstance(power, bool):
    raise ValueError(f"power must be a number > 0 (1: R_sf, 2: R_pk); got {power!r}")
  check_positive("power", power)


def _masked(weights: list[Array], mask: list[Array] | None) -> list[Array]:
  return weights if mask is None else [w * m.astype(w.dtype) for w, m in zip(weights, mask)]


def _apply_mask(grads: list[Array], mask: list[Array] | None) -> list[Array]:
  return grads if mask is None else [g * m.astype(g.dtype) for g, m in zip(grads, mask)]


def _input(ws: list[Array], x: Array | None) -> Array:
  return jnp.ones((ws[0].shape[0],), ws[0].dtype) if x is None else x


def _squared(weights: list[Array], mask: list[Array] | None) -> list[Array]:
  return [w * w for w in _masked(weights, mask)]


# ---------------------------------------------------------------------------------------------------------------
# Path objectives R(x, θ) of a dense chain.
# ---------------------------------------------------------------------------------------------------------------


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


def path_objective(weights: Weights, x: Array | None = None, *, power: float = 1) -> Array:
  """``R(x, θ) = 1ᵀ (|W_L|^p)ᵀ … (|W_1|^p)ᵀ x``, the output sum of the linear net on ``|θ|^p`` ([P] eq. 15-16).

  ``power=1`` with ``x = 1`` is SynFlow's ``R_sf = 1ᵀ(Π_l |θ^l|)1`` (eq. 16); ``power=2`` is the path-kernel
  objective ``R_pk(x, θ) = 1ᵀ(Π_l (θ^l)²) x`` (eq. 15). Summing over paths, ``R = Σ_p |v_p(θ)|^p x_{s(p)}``.
  Overflows in float32 for deep or large-scale nets: use :func:`log_path_objective` there.

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
  ws = _check_weights(weights)
  x = _check_x(x, ws[0].shape[0], ws[0].dtype, nonnegative=False)
  _check_power(power)
  return _objective_program(ws, x, power)[0]


@jax.jit
def _objective_program(ws: list[Array], x: Array | None, power: Array) -> tuple[Array, Array]:
  """``(R, log R)``: one compiled program for every power and both forms (the log needs ``x >= 0``)."""
  mats, x = [jnp.abs(w) ** jnp.asarray(power, w.dtype) for w in ws], _input(ws, x)
  return jnp.sum(_chain(mats, x)), _log_chain_sum(mats, x)


def log_path_objective(weights: Weights, x: Array | None = None, *, power: float = 1) -> Array:
  """``log R(x, θ)`` of :func:`path_objective`, safe at any depth ([P] eq. 15-16).

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
  ws = _check_weights(weights)
  x = _check_x(x, ws[0].shape[0], ws[0].dtype, nonnegative=True)
  _check_power(power)
  return _objective_program(ws, x, power)[1]


# ---------------------------------------------------------------------------------------------------------------
# The Path Kernel's diagonal and trace by one gradient ([P] eq. 14-15).
# ---------------------------------------------------------------------------------------------------------------


def path_kernel_diagonal(weights: Weights, x: Array | None = None, *, mask: Mask | None = None) -> list[Array]:
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
  ws = _check_weights(weights)
  ms = _check_mask(mask, ws)
  x = _check_x(x, ws[0].shape[0], ws[0].dtype, nonnegative=False)
  return _diagonal_program(ws, ms, x)[0]


@jax.jit
def _diagonal_program(ws: list[Array], ms: list[Array] | None, x: Array | None) -> tuple[list[Array], Array]:
  """The diagonal per kernel and its per-layer sums."""
  x = _input(ws, x)
  grads = _apply_mask(jax.grad(lambda s: jnp.sum(_chain(s, x)))(_squared(ws, ms)), ms)
  return grads, jnp.stack([jnp.sum(g) for g in grads])


def _log_grads(ws: list[Array], ms: list[Array] | None, x: Array | None) -> tuple[Array, list[Array]]:
  """``log R_pk`` and ``∂ log R_pk / ∂S`` (masked) at ``S = (θ ⊙ m)²``."""
  x = _input(ws, x)
  log_r, grads = jax.value_and_grad(lambda s: _log_chain_sum(s, x))(_squared(ws, ms))
  return log_r, _apply_mask(grads, ms)


def _log(x: Array) -> Array:
  """``log x`` for ``x >= 0`` with ``log 0 = −inf`` and no NaN gradient."""
  positive = x > 0
  return jnp.where(positive, jnp.log(jnp.where(positive, x, 1.0)), -jnp.inf)


def log_path_kernel_diagonal(weights: Weights, x: Array | None = None, *,
                             mask: Mask | None = None) -> list[Array]:
  """``log ∂R_pk(x, θ)/∂(θ_j²)`` per weight, safe at any depth (see :func:`path_kernel_diagonal`).

  Computed as ``log R_pk + log ∂(log R_pk)/∂S_j`` with the renormalised objective of :func:`log_path_objective`:
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
  ws = _check_weights(weights)
  ms = _check_mask(mask, ws)
  x = _check_x(x, ws[0].shape[0], ws[0].dtype, nonnegative=True)
  return _log_program(ws, ms, x)["log_diagonal"]


def path_kernel_trace(weights: Weights, *, x: Array | None = None, mask: Mask | None = None,
                      per_layer: bool = False) -> Array:
  """``Tr Π_θ = Σ_p Σ_j (∂v_p/∂θ_j)² = Σ_j ∂R_pk(1, θ)/∂(θ_j²)`` by one gradient ([P] eq. 14-15).

  Depends on the weights only (not on φ). Overflows in float32 for deep or large-scale nets: use
  :func:`log_path_kernel_trace` there.

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
  ws = _check_weights(weights)
  ms = _check_mask(mask, ws)
  x = _check_x(x, ws[0].shape[0], ws[0].dtype, nonnegative=False)
  layers = _diagonal_program(ws, ms, x)[1]
  return layers if per_layer else _sum(layers)


_sum = jax.jit(jnp.sum)


def log_path_kernel_trace(weights: Weights, *, x: Array | None = None, mask: Mask | None = None,
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
  ws = _check_weights(weights)
  ms = _check_mask(mask, ws)
  return ws, ms, _check_x(x, ws[0].shape[0], ws[0].dtype, nonnegative=True)


@jax.jit
def _log_program(ws: list[Array], ms: list[Array] | None, x: Array | None) -> dict[str, Any]:
  """Everything in log space in one compiled program (shared by the log functions and :func:`path_statistics`)."""
  log_r, grads = _log_grads(ws, ms, x)
  layers = jnp.stack([log_r + _log(jnp.sum(g)) for g in grads])
  return {
      "log_diagonal": [log_r + _log(g) for g in grads], "layers": layers, "log_r": log_r,
      "total": jax.nn.logsumexp(layers) if len(ws) > 1 else layers[0],
      "log_sf": _log_chain_sum([jnp.abs(w) for w in _masked(ws, ms)], _input(ws, x)),
  }


def path_statistics(weights: Weights, *, x: Array | None = None, mask: Mask | None = None) -> PathStatistics:
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


# ---------------------------------------------------------------------------------------------------------------
# Explicit enumeration (tiny nets; the oracle of the tests).
# ---------------------------------------------------------------------------------------------------------------


def path_count(weights: Weights) -> int:
  """Number of input-to-output paths of a dense chain: the product of its layer widths ``n_0 n_1 … n_L``."""
  ws = _check_weights(weights)
  return math.prod([ws[0].shape[0]] + [w.shape[1] for w in ws])


def path_indices(weights: Weights, *, max_paths: int = DEFAULT_MAX_PATHS) -> np.ndarray:
  """The units ``(i_0, i_1, …, i_L)`` each path passes, one row per path, in lexicographic order.

  Path ``p`` runs from input ``i_0`` through hidden units ``i_1 … i_{L−1}`` to output ``i_L``; it uses the weights
  ``W_l[i_{l−1}, i_l]``. Every function of the enumeration orders paths this way.

  Args:
    weights: the kernels, layer 1 first.
    max_paths: refuse larger networks (the enumeration is for tiny nets).

  Returns:
    An integer array ``(P, L + 1)``.

  Raises:
    ValueError: bad ``weights``, or more than ``max_paths`` paths.
  """
  ws = _check_weights(weights)
  max_paths = check_int("max_paths", max_paths, 1)
  widths = [ws[0].shape[0]] + [w.shape[1] for w in ws]
  count = math.prod(widths)
  if count > max_paths:
    raise ValueError(f"weights has {count} paths (the product of the layer widths {widths}); explicit path "
                     f"enumeration is limited to max_paths={max_paths}: use path_kernel_trace for larger networks")
  return np.indices(widths).reshape(len(widths), -1).T


def _path_factors(ws: list[Array], idx: Array) -> list[Array]:
  """Per layer, the weight each path uses: ``W_l[i_{l−1}, i_l]`` for all paths, ``(P,)`` each."""
  return [w[idx[:, l], idx[:, l + 1]] for l, w in enumerate(ws)]


def path_values(weights: Weights, *, mask: Mask | None = None, max_paths: int = DEFAULT_MAX_PATHS) -> Array:
  """``v_p(θ) = Π_j θ_j^{p_j}``, the product of the weights along each path ([P] eq. 9).

  Args:
    weights: the kernels, layer 1 first.
    mask: one 0/1 array per kernel (values at ``θ ⊙ m``).
    max_paths: the size limit of :func:`path_indices`.

  Returns:
    ``(P,)`` in the order of :func:`path_indices`.

  Raises:
    ValueError: bad input or too many paths.
  """
  ws = _check_weights(weights)
  ms = _check_mask(mask, ws)
  return _values_program(ws, ms, jnp.asarray(path_indices(ws, max_paths=max_paths)))


@jax.jit
def _values_program(ws: list[Array], ms: list[Array] | None, idx: Array) -> Array:
  factors = _path_factors(_masked(ws, ms), idx)
  value = factors[0]
  for f in factors[1:]:
    value = value * f
  return value


def path_jacobian(weights: Weights, *, mask: Mask | None = None, max_paths: int = DEFAULT_MAX_PATHS) -> Array:
  """``J_θ^v = ∂v/∂θ`` (paths × parameters): ``∂v_p/∂θ_j = Π_{i ∈ p, i ≠ j} θ_i`` if ``j ∈ p``, else 0 ([P] §3).

  Columns are the parameters in order: ``weights[0]`` row-major, then ``weights[1]``, … A pruned weight is not a
  parameter: its column is zero (and every path through it has ``v_p = 0``).

  Args:
    weights: the kernels, layer 1 first.
    mask: one 0/1 array per kernel.
    max_paths: the size limit of :func:`path_indices`.

  Returns:
    ``(P, M)`` with ``M`` the number of weights.

  Raises:
    ValueError: bad input or too many paths.
  """
  ws = _check_weights(weights)
  ms = _check_mask(mask, ws)
  return _jacobian_program(ws, ms, jnp.asarray(path_indices(ws, max_paths=max_paths)))


@jax.jit
def _jacobian_program(ws: list[Array], ms: list[Array] | None, idx: Array) -> Array:
  factors = _path_factors(_masked(ws, ms), idx)
  rows = jnp.arange(idx.shape[0])
  offsets = np.cumsum([0] + [w.size for w in ws])
  jac = jnp.zeros((idx.shape[0], int(offsets[-1])), ws[0].dtype)
  for l, w in enumerate(ws):
    others = jnp.ones_like(factors[0])
    for k, f in enumerate(factors):
      if k != l:
        others = others * f
    if ms is not None:
      others = others * ms[l][idx[:, l], idx[:, l + 1]].astype(others.dtype)
    jac = jac.at[rows, offsets[l] + idx[:, l] * w.shape[1] + idx[:, l + 1]].set(others)
  return jac


def path_kernel(weights: Weights, *, mask: Mask | None = None, max_paths: int = DEFAULT_MAX_PATHS) -> Array:
  """The Path Kernel ``Π_θ = J_θ^v J_θ^vᵀ`` (paths × paths), [P] §3; ``Π(p, p) = Σ_j (∂v_p/∂θ_j)²``.

  Args:
    weights: the kernels, layer 1 first.
    mask: one 0/1 array per kernel (pruned weights are not parameters).
    max_paths: the size limit of :func:`path_indices`.

  Returns:
    ``(P, P)``, positive semi-definite.

  Raises:
    ValueError: bad input or too many paths.
  """
  jac = path_jacobian(weights, mask=mask, max_paths=max_paths)
  return _gram(jac)


_gram = jax.jit(lambda jac: jac @ jac.T)


def check_homogeneous(activation: ActivationLike, name: str = "activation") -> Activation:
  """The activation, or ValueError naming ``name`` unless ``φ(αh) = αφ(h)`` for ``α > 0`` (positive homogeneity).

  Checked numerically on a grid of ``h ∈ [−4, 4]`` and ``α ∈ {0.25, 0.5, 2, 3}`` to a relative 1e-4: ReLU, leaky
  ReLU and linear pass; tanh, erf, GELU and the like fail. The path decomposition of [P] eq. 9 needs it.

  Args:
    activation: a registry name, callable or :class:`~theory.activations.Activation`.
    name: the argument name used in the error.

  Returns:
    The resolved :class:`~theory.activations.Activation`.

  Raises:
    ValueError: unknown or non-homogeneous activation.
  """
  act = get_activation(activation)
  h = np.linspace(*_HOMOGENEITY_GRID[:2], _HOMOGENEITY_GRID[2])
  with jax.ensure_compile_time_eval():  # evaluated now even inside jit (unless the activation's params are traced)
    scaled_inputs, scaled_outputs = _homogeneity_program(act, jnp.asarray(h, jnp.result_type(float)))
  if not is_concrete((scaled_inputs, scaled_outputs)):
    return act  # traced activation parameters: cannot check here
  for k, alpha in enumerate(_HOMOGENEITY_ALPHAS):
    a, b = np.asarray(scaled_inputs[k], np.float64), np.asarray(scaled_outputs[k], np.float64)
    bad = np.abs(a - b) > 1e-4 * (1.0 + np.abs(b))
    if np.any(bad) or not np.all(np.isfinite(a)):
      i = int(np.argmax(bad))
      raise ValueError(
          f"{name} must be positively homogeneous, φ(αh) = αφ(h) for α > 0 (relu, leaky_relu, linear), for the "
          f"path decomposition; {act.name!r} is not: φ({alpha}·{float(h[i]):.3g}) = {a[i]:.6g} but "
          f"{alpha}·φ({float(h[i]):.3g}) = {b[i]:.6g}")
  return act


@jax.jit
def _homogeneity_program(act: Activation, h: Array) -> tuple[Array, Array]:
  """``φ(αh)`` and ``αφ(h)`` for every α of the check, stacked."""
  alphas = jnp.asarray(_HOMOGENEITY_ALPHAS, h.dtype)[:, None]
  return act(alphas * h), alphas * act(h)


def path_activations(weights: Weights, x: Array, activation: ActivationLike = "relu", *,
                     max_paths: int = DEFAULT_MAX_PATHS) -> Array:
  """``J_v^f(x)``: ``(J_v^f)_{k,p} = 1[p ∈ P_{s→k}] a_p(x, θ) x_s``, so that ``f(x) = J_v^f(x) v(θ)`` ([P] eq. 9-10).

  ``a_p(x, θ)`` is the product, over the hidden units ``i_1 … i_{L−1}`` of the path, of the activation's slope at
  the unit's pre-activation ``h``: ``φ(1)`` where ``h > 0`` and ``−φ(−1)`` where ``h <= 0`` (for ReLU the
  indicator ``1(h > 0)`` of [P]). A unit at exactly ``h = 0`` outputs 0 whichever slope is used, so ``f(x)`` does
  not depend on that choice. The network is ``f(x) = φ(…φ(x W_1)…) W_L`` (no activation after the last layer); for
  a pruned net pass ``θ ⊙ m`` as ``weights``.

  Args:
    weights: the kernels, layer 1 first.
    x: inputs ``(n, d)`` (or one input ``(d,)``), ``d`` the fan_in of ``weights[0]``.
    activation: a positively homogeneous activation (:func:`check_homogeneous`).
    max_paths: the size limit of :func:`path_indices`.

  Returns:
    ``(n, K, P)`` (or ``(K, P)`` for one input), ``K`` the outputs, paths in the order of :func:`path_indices`.

  Raises:
    ValueError: bad ``weights`` or ``x``, a non-homogeneous activation, or too many paths.
  """
  ws = _check_weights(weights)
  act = check_homogeneous(activation)
  idx = path_indices(ws, max_paths=max_paths)
  x = jnp.asarray(x)
  x = x if x.dtype == ws[0].dtype else x.astype(ws[0].dtype)
  single = x.ndim == 1
  xs = x[None] if single else x
  if xs.ndim != 2 or xs.shape[1] != ws[0].shape[0]:
    raise ValueError(f"x must have shape (n, {ws[0].shape[0]}) or ({ws[0].shape[0]},) (the fan_in of weights[0]); "
                     f"got {x.shape}")
  check_finite("x", xs)
  jac = _activations_program(ws, xs, jnp.asarray(idx), act)
  return jac[0] if single else jac


@jax.jit
def _activations_program(ws: list[Array], xs: Array, idx: Array, act: Activation) -> Array:
  one = jnp.ones((), ws[0].dtype)
  up, down = act(one), -act(-one)
  weight = xs[:, idx[:, 0]]  # (n, P): x_s
  h = xs
  for l, w in enumerate(ws[:-1]):
    h = h @ w
    slope = jnp.where(h > 0, up, down)  # (n, n_l)
    weight = weight * slope[:, idx[:, l + 1]]
    h = act(h)
  outputs = jax.nn.one_hot(idx[:, -1], ws[-1].shape[1], dtype=ws[0].dtype).T  # (K, P)
  return weight[:, None, :] * outputs[None]


# ---------------------------------------------------------------------------------------------------------------
# Any bias-free homogeneous network apply_fn(params, x).
# ---------------------------------------------------------------------------------------------------------------


def _check_input_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
  if isinstance(input_shape, (int, np.integer)) or not isinstance(input_shape, Sequence) or not input_shape:
    raise ValueError(f"input_shape must be the shape of one example, a non-empty tuple of integers >= 1; "
                     f"got {input_shape!r}")
  return tuple(check_int(f"input_shape[{i}]", n, 1) for i, n in enumerate(input_shape))


def _leaf_dtype(params: Any):
  leaves = jax.tree_util.tree_leaves(params)
  if not leaves:
    raise ValueError("params must hold at least one array; got an empty tree")
  return jnp.result_type(*leaves, float)


def check_path_network(apply_fn: ApplyFn, params: Any, input_shape: Sequence[int], *,
                       check_homogeneity: bool = True) -> tuple[int, ...]:
  """Checks that ``apply_fn(params, x)`` is a bias-free, positively homogeneous network; returns ``input_shape``.

  Two checks, before anything is traced: no leaf of ``params`` has ``bias`` in its key path, and ``f(2x) = 2 f(x)``
  (to a relative 1e-4 in float32, 1e-9 in float64) on a fixed random positive batch of two inputs. A ReLU network
  with biases, batch norm in training mode, or a tanh/erf/GELU activation fails the second. Skipped for traced
  ``params`` (inside ``jit``/``vmap``): validate outside first.

  Args:
    apply_fn: ``apply_fn(params, x)`` on a batch ``x`` of shape ``(n, *input_shape)``.
    params: its parameter pytree.
    input_shape: the shape of one example.
    check_homogeneity: run the numerical homogeneity check (one forward pass of two examples).

  Returns:
    ``input_shape`` as a tuple of ints.

  Raises:
    ValueError: a bad ``input_shape``, biases where paths need none, or a non-homogeneous network.
  """
  shape = _check_input_shape(input_shape)
  flat, _ = jax.tree_util.tree_flatten_with_path(params)
  biases = [key_path_name(p) for p, _ in flat if "bias" in key_path_name(p).lower()]
  if biases:
    raise ValueError(f"params has biases where paths need none ({', '.join(biases[:4])}"
                     f"{', …' if len(biases) > 4 else ''}): the path decomposition of [P] eq. 9 needs a bias-free "
                     "network; build it without biases (use_bias=False)")
  if not check_homogeneity or not is_concrete(params):
    return shape
  dtype = _leaf_dtype(params)
  x = jnp.asarray(np.random.default_rng(0).uniform(0.5, 1.5, (2, *shape)), dtype)
  forward = jax.jit(apply_fn)  # one compile for both calls
  y1 = np.asarray(forward(params, x), np.float64)
  y2 = np.asarray(forward(params, 2 * x), np.float64)
  scale = max(float(np.max(np.abs(2 * y1))), np.finfo(np.float64).tiny)
  rtol = 1e-9 if dtype == jnp.float64 else 1e-4
  error = float(np.max(np.abs(y2 - 2 * y1))) / scale
  if not (np.isfinite(error) and error <= rtol):
    raise ValueError(f"apply_fn is not positively homogeneous in its input: f(2x) differs from 2·f(x) by {error:.3g} "
                     "(relative) on a random positive x. A non-homogeneous activation (tanh, erf, gelu, ...) or "
                     "hidden biases/normalisation: paths need a bias-free network with relu, leaky_relu or linear "
                     "activations")
  return shape


def _check_tree_mask(mask: Any, params: Any) -> None:
  """ValueError unless ``mask`` is ``None`` or a pytree like ``params`` with arrays of the same shapes or ``None``."""
  if mask is None:
    return

  def check(m, p):
    if m is not None and jnp.shape(m) != jnp.shape(p):
      raise ValueError(f"mask leaf of shape {jnp.shape(m)} for a parameter of shape {jnp.shape(p)}")

  try:
    jax.tree.map(check, mask, params, is_leaf=lambda v: v is None)
  except ValueError as error:
    raise ValueError(f"mask must be a pytree shaped like params (arrays or None leaves): {error}") from None


def _tree_multipliers(mask: Any, params: Any) -> Any:
  """0/1 multipliers like ``params``: the mask's arrays, ones where it is ``None`` (or everywhere without one)."""
  if mask is None:
    return jax.tree.map(jnp.ones_like, params)
  return jax.tree.map(lambda m, p: jnp.ones_like(p) if m is None else jnp.asarray(m).astype(p.dtype), mask, params,
                      is_leaf=lambda v: v is None)


def _fn_input(x: Array | None, shape: tuple[int, ...], dtype) -> Array:
  if x is None:
    return jnp.asarray(np.ones((1, *shape)), dtype)
  if jnp.shape(x) != shape:
    raise ValueError(f"x must be one input of shape {shape} (input_shape); got {jnp.shape(x)}")
  check_nonnegative("x", x)
  return jnp.asarray(x, dtype)[None]


def path_objective_fn(apply_fn: ApplyFn, params: Any, input_shape: Sequence[int], *, x: Array | None = None,
                      power: float = 1, check: bool = True) -> Array:
  """``R(x, θ) = Σ_k f_k(x; |θ|^power)`` of any bias-free homogeneous network ([P] eq. 15-16).

  On non-negative weights and inputs a network with ReLU or leaky ReLU computes its linear network (every
  pre-activation is >= 0), so ``R`` is one forward pass of ``apply_fn`` itself. This assumes ``φ(h) = h`` for
  ``h > 0`` (ReLU, leaky ReLU, linear); another positive slope ``c`` would multiply each path by ``c`` per hidden
  unit. Fixed linear operations with no parameter (average pooling, scalings) weight each path by their factor.

  Args:
    apply_fn: ``apply_fn(params, x)`` on a batch ``(n, *input_shape)``.
    params: its parameters (no biases).
    input_shape: the shape of one example.
    x: one non-negative input of shape ``input_shape`` (default ones).
    power: the exponent ``p > 0`` applied to ``|θ|`` (1: ``R_sf``, 2: ``R_pk``).
    check: run :func:`check_path_network` first.

  Returns:
    ``R`` as a scalar.

  Raises:
    ValueError: see :func:`check_path_network`; bad ``x`` or ``power``.
  """
  shape = check_path_network(apply_fn, params, input_shape) if check else _check_input_shape(input_shape)
  _check_power(power)
  return _fn_objective_program(apply_fn, params, _fn_input(x, shape, _leaf_dtype(params)), power)


@functools.partial(jax.jit, static_argnums=0)
def _fn_objective_program(apply_fn: ApplyFn, params: Any, inputs: Array, power: Array) -> Array:
  return jnp.sum(apply_fn(jax.tree.map(lambda p: jnp.abs(p) ** jnp.asarray(power, p.dtype), params), inputs))


def path_kernel_diagonal_fn(apply_fn: ApplyFn, params: Any, input_shape: Sequence[int], *,
                            x: Array | None = None, mask: Any = None, check: bool = True) -> Any:
  """``∂R_pk(x, θ)/∂(θ²)`` for every parameter of any bias-free homogeneous network ([P] eq. 15).

  One backward pass of ``apply_fn`` at the squared parameters ``(θ ⊙ m)²`` and a non-negative input (see
  :func:`path_objective_fn` for the assumptions), masked: pruned entries are 0.

  Args:
    apply_fn: ``apply_fn(params, x)``.
    params: its parameters (no biases).
    input_shape: the shape of one example.
    x: one non-negative input of shape ``input_shape`` (default ones).
    mask: a pytree like ``params`` of 0/1 or boolean arrays, ``None`` leaves meaning "all kept" (mfprune's masks).
    check: run :func:`check_path_network` first.

  Returns:
    A pytree like ``params``.

  Raises:
    ValueError: see :func:`check_path_network`; a mask that does not fit ``params``; bad ``x``.
  """
  shape = check_path_network(apply_fn, params, input_shape) if check else _check_input_shape(input_shape)
  inputs = _fn_input(x, shape, _leaf_dtype(params))
  _check_tree_mask(mask, params)
  return _fn_diagonal_program(apply_fn, params, mask, inputs)


@functools.partial(jax.jit, static_argnums=0)
def _fn_diagonal_program(apply_fn: ApplyFn, params: Any, mask: Any, inputs: Array) -> Any:
  m = _tree_multipliers(mask, params)
  squared = jax.tree.map(lambda p, k: (p * k) ** 2, params, m)
  grads = jax.grad(lambda s: jnp.sum(apply_fn(s, inputs)))(squared)
  return jax.tree.map(lambda g, k: g * k, grads, m)


def path_kernel_trace_fn(apply_fn: ApplyFn, params: Any, input_shape: Sequence[int], *, x: Array | None = None,
                         mask: Any = None, per_leaf: bool = False, check: bool = True) -> Any:
  """``Tr Π_θ`` of any bias-free homogeneous network by one gradient ([P] eq. 14-15).

  The sum of :func:`path_kernel_diagonal_fn` over all (kept) parameters. Exact for networks whose only fixed
  linear factors are 1 (dense and convolution chains, identity skips); a fixed factor ``c`` (average pooling,
  ``1/√L`` branch scalings) weights the paths through it by ``c``, as in ``R_pk`` itself. No renormalisation: deep
  networks may overflow in float32 (``mfprune.paths.path_kernel_trace`` works in log space for mfprune models).

  Args:
    apply_fn: ``apply_fn(params, x)``.
    params: its parameters (no biases).
    input_shape: the shape of one example.
    x: one non-negative input (default ones).
    mask: a pytree like ``params`` (``None`` leaves: all kept).
    per_leaf: return a pytree of per-leaf sums instead of the total.
    check: run :func:`check_path_network` first.

  Returns:
    A scalar, or a pytree like ``params`` of scalars.

  Raises:
    ValueError: see :func:`path_kernel_diagonal_fn`.
  """
  shape = check_path_network(apply_fn, params, input_shape) if check else _check_input_shape(input_shape)
  _check_tree_mask(mask, params)
  sums = _fn_trace_program(apply_fn, params, mask, _fn_input(x, shape, _leaf_dtype(params)))
  return sums if per_leaf else _sum(jnp.stack(jax.tree_util.tree_leaves(sums)))


@functools.partial(jax.jit, static_argnums=0)
def _fn_trace_program(apply_fn: ApplyFn, params: Any, mask: Any, inputs: Array) -> Any:
  return jax.tree.map(jnp.sum, _fn_diagonal_program(apply_fn, params, mask, inputs))


# ---------------------------------------------------------------------------------------------------------------
# Convergence estimate of [P] Fig. 1.
# ---------------------------------------------------------------------------------------------------------------


def _check_decay(trace, learning_rate, t) -> None:
  check_nonnegative("trace", trace)
  check_positive("learning_rate", learning_rate)
  check_nonnegative("t", t)


def _decay(trace, learning_rate, t) -> tuple[Array, Array]:
  """``(e^{−η Tr t}, 1 − e^{−η Tr t})``, the second by ``expm1`` (exact for small ``η Tr t``)."""
  dtype = jnp.result_type(float)
  rate = jnp.asarray(learning_rate, dtype) * jnp.asarray(trace, dtype) * jnp.asarray(t, dtype)
  return jnp.exp(-rate), -jnp.expm1(-rate)


def convergence_estimate(trace: Array, learning_rate: Array, t: Array, *, scale: Array,
                         offset: Array | None = None) -> Array:
  """[P] Fig. 1's estimates: ``‖ω_t‖ ≈ a(1 − e^{−η Tr(Π) t})`` and ``‖f(X, θ_t)‖ ≈ (1 − e^{−η Tr(Π) t}) a +
  e^{−η Tr(Π) t} b``.

  From the linearised dynamics ([P] eq. 7-8; THEORY.md §7) with the NTK's spectrum replaced by ``Tr Π``: the
  weight change ``‖ω_t‖`` (``offset=None``, equal to ``offset = 0``) and the output norm ``‖f(X, θ_t)‖``
  (``offset = b``, its value at ``t = 0``). ``a`` and ``b`` are the free constants of [P], see
  :func:`fit_convergence_scale`. Broadcasts over its arguments; jit/vmap-able.

  Args:
    trace: ``Tr Π_θ >= 0`` (e.g. :func:`path_kernel_trace`; [P] uses the trace after one epoch).
    learning_rate: ``η > 0`` ([P]: 0.001).
    t: time(s) ``>= 0``, in the unit ``η`` refers to (steps or epochs).
    scale: ``a``.
    offset: ``b`` (``None``: the ``‖ω_t‖`` curve).

  Returns:
    The estimate, broadcast over the arguments.

  Raises:
    ValueError: negative ``trace`` or ``t``, ``learning_rate <= 0``, non-finite ``scale`` or ``offset``.
  """
  check_finite("scale", scale)
  if offset is not None:
    check_finite("offset", offset)
  _check_decay(trace, learning_rate, t)
  return _estimate_program(trace, learning_rate, t, scale, 0.0 if offset is None else offset)


@jax.jit
def _estimate_program(trace, learning_rate, t, scale, offset) -> Array:
  decay, rise = _decay(trace, learning_rate, t)
  return rise * scale + decay * offset


@pytree_dataclass
class ConvergenceFit:
  """The constants of [P] Fig. 1's curves (:func:`convergence_estimate`).

  Attributes:
    scale: ``a``.
    offset: ``b``; 0 for the ``‖ω_t‖`` curve.
  """

  scale: Array
  offset: Array


def fit_convergence_scale(trace: Array, learning_rate: Array, t_fit: Array, value: Array, *,
                          initial: Array | None = None) -> ConvergenceFit:
  """Fits [P] Fig. 1's constants from a value measured at one time ``t_fit`` ([P]: epoch 60).

  With one measurement only one constant can be fitted; ``b`` is the curve's value at ``t = 0`` (the estimate
  there is exactly ``b``), so it is taken from the measured initial value (our reading of [P]'s "free parameters
  a and b ... fit at epoch 60"):

  * ``initial=None`` (the ``‖ω_t‖`` curve, ``b = 0``): ``a = value / (1 − e^{−η Tr t_fit})``;
  * ``initial = ‖f(X, θ_0)‖``: ``b = initial`` and ``a = (value − e^{−η Tr t_fit} b) / (1 − e^{−η Tr t_fit})``.

  :func:`convergence_estimate` with the fit passes exactly through ``value`` at ``t_fit`` (and ``b`` at 0).

  Args:
    trace: ``Tr Π_θ > 0``.
    learning_rate: ``η > 0``.
    t_fit: the time of the measurement, ``> 0``.
    value: the measured ``‖ω‖`` or ``‖f(X, θ)‖`` at ``t_fit``.
    initial: the measured ``‖f(X, θ_0)‖`` (``None`` for the ``‖ω_t‖`` curve).

  Returns:
    A :class:`ConvergenceFit`.

  Raises:
    ValueError: ``trace <= 0`` or ``t_fit <= 0`` (the curve is flat: nothing to fit), ``learning_rate <= 0``,
      non-finite ``value`` or ``initial``.
  """
  check_positive("trace", trace)
  check_positive("t_fit", t_fit)
  check_finite("value", value)
  if initial is not None:
    check_finite("initial", initial)
  _check_decay(trace, learning_rate, t_fit)
  return _fit_program(trace, learning_rate, t_fit, value, 0.0 if initial is None else initial)


@jax.jit
def _fit_program(trace, learning_rate, t_fit, value, initial) -> ConvergenceFit:
  decay, rise = _decay(trace, learning_rate, t_fit)
  offset = jnp.asarray(initial, decay.dtype) * jnp.ones_like(decay)
  return ConvergenceFit((jnp.asarray(value, decay.dtype) - decay * offset) / rise, offset)
