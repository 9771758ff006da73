"""Paths enumerated one by one: the test oracle for tiny dense chains ([P] eq. 9-13; THEORY.md §7).

``f_k(x, θ) = Σ_s Σ_{p ∈ P_{s→k}} v_p(θ) a_p(x, θ) x_s`` with path values ``v_p(θ) = Π_j θ_j^{p_j}``: so ``∇_θ f =
J_v^f J_θ^v`` and the NTK factors as ``Θ = J_v^f Π_θ J_v^fᵀ`` with the Path Kernel ``Π_θ = J_θ^v J_θ^vᵀ``.
:func:`path_indices`, :func:`path_values`, :func:`path_jacobian` (``J_θ^v``), :func:`path_kernel` (``Π``) and
:func:`path_activations` (``J_v^f``) build them explicitly (``max_paths`` guards the size); :func:`check_homogeneous`
refuses activations the decomposition does not hold for. :mod:`theory.paths.chains` computes the same traces by one
gradient.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from theory._validation import check_finite, check_int, is_concrete
from theory.activations import Activation, ActivationLike, get_activation
from theory.paths._checks import Mask, Weights, check_mask, check_weights, masked

Array = jax.Array

__all__ = ["DEFAULT_MAX_PATHS", "path_count", "path_indices", "path_values", "path_jacobian", "path_kernel",
           "check_homogeneous", "path_activations"]

DEFAULT_MAX_PATHS = 4096
"""Largest number of paths the explicit enumeration accepts by default (``J_θ^v`` is paths × parameters)."""

_HOMOGENEITY_ALPHAS = (0.25, 0.5, 2.0, 3.0)
_HOMOGENEITY_GRID = (-4.0, 4.0, 81)


def path_count(weights: Weights) -> int:
  """Number of input-to-output paths of a dense chain: the product of its layer widths ``n_0 n_1 … n_L``."""
  ws = check_weights(weights)
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
  ws = check_weights(weights)
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
  ws = check_weights(weights)
  ms = check_mask(mask, ws)
  return _values_program(ws, ms, jnp.asarray(path_indices(ws, max_paths=max_paths)))


@jax.jit
def _values_program(ws: list[Array], ms: list[Array] | None, idx: Array) -> Array:
  factors = _path_factors(masked(ws, ms), idx)
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
  ws = check_weights(weights)
  ms = check_mask(mask, ws)
  return _jacobian_program(ws, ms, jnp.asarray(path_indices(ws, max_paths=max_paths)))


@jax.jit
def _jacobian_program(ws: list[Array], ms: list[Array] | None, idx: Array) -> Array:
  factors = _path_factors(masked(ws, ms), idx)
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
  ws = check_weights(weights)
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
