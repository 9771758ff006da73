"""The share of each layer that SBP keeps and the critical sparsity, predicted before pruning ([R] §2.2-3).

Layer ``l`` is taken to hold ``M_l`` iid scores ``√m_l S`` with ``m_l`` the mean-field score second moment
(:func:`theory.gradients.gradient_moments`) and ``S`` of unit second moment (a half-normal, or the product of two
independent Gaussians): :func:`kept_fraction_from_moments` and :func:`critical_sparsity_from_moments` from a profile
``m_l``, :func:`predicted_kept_fraction` and :func:`predicted_critical_sparsity` from the network's description.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Literal, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erfc

from theory import gaussian, gradients, maps
from theory._pytree import pytree_dataclass
from theory._validation import check_finite, check_int, check_positive, is_concrete
from theory.activations import ActivationLike
from theory.sparsity._common import as_float, bisection_steps, check_range

__all__ = ["SCORE_LAWS", "kept_fraction_from_moments", "PredictedCriticalSparsity", "critical_sparsity_from_moments",
           "predicted_kept_fraction", "predicted_critical_sparsity"]

Array = jax.Array


def _check_sparsity(sparsity) -> None:
  check_finite("sparsity", sparsity)
  check_range("sparsity", sparsity, lambda a: (a >= 0) & (a < 1), "be in [0, 1) (fraction of prunable weights "
               "removed)")


def _check_profile(m, sizes) -> tuple[Array, Array]:
  m, sizes = as_float(m), as_float(sizes)
  if m.ndim != 1 or m.shape[0] == 0:
    raise ValueError(f"m must be a non-empty 1-D array (one second moment per layer); got shape {m.shape}")
  if sizes.shape != m.shape:
    raise ValueError(f"sizes must give one layer size per entry of m ({m.shape[0]}); got shape {sizes.shape}")
  if is_concrete(m):
    values = np.asarray(m, np.float64)
    bad = values[~(np.isfinite(values) & (values > 0))]
    if bad.size:
      raise ValueError(f"m must be finite and > 0 in every layer; got {bad[:3].tolist()} (0 or inf: the profile "
                       "spans more than the float range, enable jax_enable_x64)")
  check_positive("sizes", sizes)
  return m, sizes


SCORE_LAWS: tuple[str, ...] = ("gaussian", "product")
ScoreLaw = Literal["gaussian", "product"]
_PRODUCT_ORDER = 48
"""Gauss–Legendre nodes of the rule for the product law's survival function."""


def _check_law(score_law: str) -> str:
  if score_law not in SCORE_LAWS:
    raise ValueError(f"score_law must be one of {SCORE_LAWS}; got {score_law!r}")
  return score_law


def _survival(z: Array, law: str) -> Array:
  """``P(S > z)`` for a score ``S`` of unit second moment: ``|Z|`` (``"gaussian"``) or ``|X Y|`` (``"product"``).

  The product of two independent standard normals has ``P(|XY| > z) = E_X[erfc(z / (√2 |X|))]``, integrated over
  ``|X|`` by a sinh-mapped Gauss–Legendre rule (:mod:`theory.gaussian`) whose node scale ``min(1, z)`` resolves the
  integrand's rise near ``|X| ≈ z``.
  """
  if law == "gaussian":
    return erfc(z / jnp.sqrt(2.0))
  finite = jnp.where(jnp.isfinite(z), z, 1.0)
  scale = jnp.clip(finite, 1e-10, 1.0)
  x, w = gaussian._segment(jnp.zeros_like(z), jnp.ones_like(z), gaussian.Z_MAX, scale, _PRODUCT_ORDER)
  inner = jnp.sum(w * erfc(finite[..., None] / (jnp.sqrt(2.0) * x)), axis=-1)
  return jnp.where(jnp.isfinite(z), jnp.clip(2.0 * inner, 0.0, 1.0), 0.0)


def _log_threshold(log_m: Array, weights: Array, sparsity: Array, law: str) -> Array:
  """``log t`` solving ``Σ_l w_l P(√m_l S > t) = 1 − s`` (``Σ w = 1``), by bisection in ``log t``.

  The bracket ``[½ min log m − 69, ½ max log m + 7]`` (``t/√m`` from ``1e-30`` to ``1e3``) holds the root for every
  ``s`` in ``[1e-15, 1)``: every layer keeps all at the low end, none at the high end.
  """
  lo = 0.5 * jnp.min(log_m) + math.log(1e-30)
  hi = 0.5 * jnp.max(log_m) + math.log(1e3)
  excess = lambda y: jnp.sum(weights * _survival(jnp.exp(y - 0.5 * log_m), law)) - (1.0 - sparsity)

  def step(_, bracket):
    a, b = bracket
    mid = 0.5 * (a + b)
    above = excess(mid) > 0
    return jnp.where(above, mid, a), jnp.where(above, b, mid)

  a, b = jax.lax.fori_loop(0, bisection_steps(log_m.dtype), step, (lo, hi))
  return 0.5 * (a + b)


def _shares(log_m: Array, weights: Array, sparsity: Array, law: str) -> Array:
  """Each layer's kept share ``P(√m_l S > t(s))``; exactly 1 at ``s = 0``."""
  share = _survival(jnp.exp(_log_threshold(log_m, weights, sparsity, law) - 0.5 * log_m), law)
  return jnp.where(sparsity > 0, share, jnp.ones_like(share))


@functools.partial(jax.jit, static_argnums=(3,))
def _kept_fraction(m: Array, sizes: Array, sparsity: Array, law: str) -> Array:
  log_m = jnp.log(m)
  weights = sizes / jnp.sum(sizes)
  return jnp.vectorize(lambda s: _shares(log_m, weights, s, law), signature="()->(l)")(sparsity)


def kept_fraction_from_moments(m, sizes, sparsity, *, score_law: ScoreLaw = "gaussian") -> Array:
  """The share of each layer kept by global pruning when layer ``l`` holds iid scores ``√m_l S``.

  One global threshold ``t`` keeps ``1 − s`` of all weights: ``Σ_l M_l P(√m_l S > t) = (1 − s) Σ_l M_l``, solved by
  bisection in ``log t`` (``m_l`` may span many orders of magnitude off the EOC); layer ``l`` keeps
  ``P(S > t/√m_l)``. This is the large-``M`` limit, where the threshold is the deterministic quantile. Only ratios of
  ``m`` and of ``sizes`` matter. The score law (unit second moment):

  * ``"gaussian"`` (default): ``S = |Z|``, the Gaussian score approximation ``W ∂L/∂W ~ N(0, m_l)``; the share is
    ``erfc(t/√(2 m_l))``.
  * ``"product"``: ``S = |X Y|``, ``X, Y`` iid ``N(0, 1)``: the weight times an independent Gaussian gradient
    (gradient independence, [R] Approximation 2). Its tail is exponential, not Gaussian; it fits SNIP on a tanh MLP
    better (docs/sparsity.md).

  Args:
    m: ``(L,)`` score second moments ``m_l > 0`` (e.g. ``gradient_moments(...).m``).
    sizes: ``(L,)`` weights per layer ``M_l > 0``.
    sparsity: ``s`` in ``[0, 1)``, a scalar or an array (the result gets a trailing layer axis).
    score_law: ``"gaussian"`` or ``"product"``.

  Returns:
    Shares in ``[0, 1]`` of shape ``(*sparsity.shape, L)`` whose ``M``-weighted mean is ``1 − s``.
  """
  _check_law(score_law)
  m, sizes = _check_profile(m, sizes)
  _check_sparsity(sparsity)
  return _kept_fraction(m, sizes, as_float(sparsity), score_law)


@pytree_dataclass
class PredictedCriticalSparsity:
  """``s_cr`` predicted from iid scores ``√m_l S`` in layers of ``M_l`` weights (see
  :func:`critical_sparsity_from_moments`).

  Attributes:
    mean: ``E[s_cr] = ∫_0^1 P(s_cr > s) ds``.
    median: the sparsity where ``P(s_cr > s) = 1/2``.
    expected_count: the smallest sparsity at which some layer's expected kept count ``M_l P(score > t)`` is below 1.
    first_layer: the layer most likely to be empty at the median (index from 0).
    sparsities: the grid of ``s`` (``n,``).
    survival: ``P(s_cr > s)`` on that grid.
  """

  mean: Array
  median: Array
  expected_count: Array
  first_layer: Array
  sparsities: Array
  survival: Array

  def to_dict(self) -> dict[str, Any]:
    """The scalar fields as JSON-ready numbers."""
    return {"mean": float(self.mean), "median": float(self.median), "expected_count": float(self.expected_count),
            "first_layer": int(self.first_layer)}


def _sparsity_grid(total: float, dtype) -> np.ndarray:
  """``[0, 1 − 1/M]``: a uniform grid joined with one uniform in ``−log(1 − s)`` (fine near 1)."""
  top = 1.0 - 1.0 / total
  uniform = np.linspace(0.0, top, 1025)
  logs = -np.expm1(-np.linspace(0.0, math.log(total), 2049))
  grid = np.unique(np.clip(np.concatenate([uniform, logs]), 0.0, top))
  return grid.astype(dtype)


@functools.partial(jax.jit, static_argnums=(3, 4))
def _critical(m: Array, sizes: Array, grid: Array, steps: int, law: str) -> PredictedCriticalSparsity:
  log_m = jnp.log(m)
  weights = sizes / jnp.sum(sizes)

  def log_empty(s):  # log P(layer l keeps nothing) = M_l log(1 − p_l)
    return sizes * jnp.log1p(-jnp.minimum(_shares(log_m, weights, s, law), 1.0))

  def log_alive(s):  # log P(no layer is empty)
    return jnp.sum(jnp.log(-jnp.expm1(jnp.minimum(log_empty(s), 0.0))))

  survival = jnp.exp(jax.vmap(log_alive)(grid))
  mean = jnp.sum(0.5 * (survival[1:] + survival[:-1]) * jnp.diff(grid))

  def first_crossing(hit):  # smallest s in [0, grid[-1]] where the monotone predicate turns True
    def step(_, bracket):
      a, b = bracket
      mid = 0.5 * (a + b)
      now = hit(mid)
      return jnp.where(now, a, mid), jnp.where(now, mid, b)

    a, b = jax.lax.fori_loop(0, steps, step, (jnp.zeros((), grid.dtype), grid[-1]))
    return 0.5 * (a + b)

  median = first_crossing(lambda s: log_alive(s) <= jnp.log(0.5))
  expected_count = first_crossing(lambda s: jnp.min(sizes * _shares(log_m, weights, s, law)) < 1.0)
  first_layer = jnp.argmax(log_empty(median))
  return PredictedCriticalSparsity(mean, median, expected_count, first_layer, grid, survival)


def critical_sparsity_from_moments(m, sizes, *, score_law: ScoreLaw = "gaussian") -> PredictedCriticalSparsity:
  """The critical sparsity when layer ``l`` holds ``M_l`` iid scores ``√m_l S`` (extreme values).

  At sparsity ``s`` the global threshold is the deterministic ``t(s)`` of :func:`kept_fraction_from_moments` (it
  concentrates over ``Σ M_l`` weights), each weight of layer ``l`` survives with ``p_l(s) = P(√m_l S > t)``, and
  layer ``l`` is empty with probability ``(1 − p_l)^{M_l}``, independently across layers. Hence
  ``P(s_cr > s) = Π_l (1 − (1 − p_l(s))^{M_l})`` and ``E[s_cr] = ∫_0^1 P(s_cr > s) ds`` (trapezoid on about 3000
  sparsities, dense near 1). Also reported: the median, and the simpler rule "the first sparsity at which some
  layer's expected kept count ``M_l p_l`` drops below 1" (there ``P(layer empty) ≈ e^{−1}``).

  Args:
    m: ``(L,)`` score second moments ``m_l > 0``.
    sizes: ``(L,)`` weights per layer ``M_l >= 1`` (absolute counts: the extreme values depend on them).
    score_law: ``"gaussian"`` (default) or ``"product"`` (:func:`kept_fraction_from_moments`).

  Returns:
    A :class:`PredictedCriticalSparsity`.
  """
  _check_law(score_law)
  m, sizes = _check_profile(m, sizes)
  if not is_concrete(sizes):
    raise ValueError("sizes must be concrete (the sparsity grid depends on the total number of weights)")
  total = float(np.sum(np.asarray(sizes, np.float64)))
  if total < 2:
    raise ValueError(f"sizes must add up to at least 2 weights; got {total}")
  grid = jnp.asarray(_sparsity_grid(total, np.dtype(m.dtype)))
  return _critical(m, sizes, grid, bisection_steps(m.dtype), score_law)


def _profile(activation, sigma_b, sigma_w, depth, architecture, widths, width, receptive_field, n_blocks, q1,
             order) -> tuple[Array, Array]:
  """``(m_l/m_L, M_l)`` from :func:`theory.gradients.gradient_moments` and the widths."""
  depth = check_int("depth", depth, 1)
  maps.check_architecture(architecture)
  receptive_field = check_int("receptive_field", receptive_field, 1)
  if widths is not None and width is not None:
    raise ValueError("give widths (N_0..N_L) or width (all layers), not both")
  if width is not None:
    width = check_int("width", width, 1)
    widths = [width] * (depth + 1)
  moments = gradients.gradient_moments(activation, sigma_b, sigma_w, depth, q1=q1, architecture=architecture,
                                       widths=widths, receptive_field=receptive_field, n_blocks=n_blocks, order=order)
  if widths is None:
    sizes = np.ones(depth)
  else:
    n = np.asarray(widths, np.float64)
    sizes = n[:-1] * n[1:] * receptive_field
  return moments.m, as_float(sizes)


def predicted_kept_fraction(activation: ActivationLike, *, sigma_b, sigma_w, depth: int, sparsity,
                            architecture: maps.Architecture = "ffnn", widths: Sequence[float] | None = None,
                            width: int | None = None, receptive_field: int = 1, n_blocks: int | None = None,
                            q1=None, score_law: ScoreLaw = "gaussian", order: int = maps.ORDER) -> Array:
  """The share of each layer that SBP (SNIP) keeps at ``sparsity``, predicted by mean-field theory ([R] §2.2-3).

  The score ``W ∂L/∂W`` of layer ``l`` is taken as ``N(0, m_l)`` with ``m_l`` the mean-field second moment of
  :func:`theory.gradients.gradient_moments` (Gaussian score approximation; THEORY.md §3), and layer sizes
  ``M_l = N_{l−1} N_l (2k+1)``; then :func:`kept_fraction_from_moments` (``score_law="product"`` for
  ``|W|·|∂L/∂W|`` as a product of independent Gaussians). Off the EOC the profile is steep (whole layers
  at the input end are dropped in the ordered phase, Theorem 1); on the EOC and for Stable ResNets it is flat
  ([R] Fig. 1-2).

  Args:
    activation: name, callable or Activation.
    sigma_b: bias standard deviation, ``>= 0``.
    sigma_w: weight standard deviation, ``> 0``.
    depth: ``L >= 1``.
    sparsity: ``s`` in ``[0, 1)``, scalar or array.
    architecture: ``"ffnn"``, ``"cnn"``, ``"resnet"`` or ``"stable_resnet"``.
    widths: ``N_0..N_L`` (``depth + 1`` numbers); or give ``width`` for equal widths; neither: equal layer sizes.
    width: one width ``N`` for all layers (input included).
    receptive_field: ``2k + 1`` for a 1-D CNN.
    n_blocks: Stable ResNet's ``L`` (default ``depth − 1``).
    q1: first-layer variance (default ``σb² + σw²``, a unit-variance input).
    score_law: ``"gaussian"`` (default) or ``"product"`` (:func:`kept_fraction_from_moments`).
    order: quadrature order.

  Returns:
    Shares of shape ``(*sparsity.shape, depth)``, index ``l − 1`` for layer ``l``.
  """
  _check_sparsity(sparsity)
  _check_law(score_law)
  m, sizes = _profile(activation, sigma_b, sigma_w, depth, architecture, widths, width, receptive_field, n_blocks,
                      q1, order)
  return kept_fraction_from_moments(m, sizes, sparsity, score_law=score_law)


def predicted_critical_sparsity(activation: ActivationLike, *, sigma_b, sigma_w, depth: int,
                                architecture: maps.Architecture = "ffnn", widths: Sequence[float] | None = None,
                                width: int | None = None, receptive_field: int = 1, n_blocks: int | None = None,
                                q1=None, score_law: ScoreLaw = "gaussian",
                                order: int = maps.ORDER) -> PredictedCriticalSparsity:
  """``s_cr`` of SBP predicted from the mean-field profile ``m_l`` with Gaussian scores.

  :func:`critical_sparsity_from_moments` of ``m_l`` (:func:`theory.gradients.gradient_moments`) and the layer sizes
  ``M_l = N_{l−1} N_l (2k+1)``, which must be given (``width`` or ``widths``) since the extreme values depend on
  them. Same arguments as :func:`predicted_kept_fraction`, without ``sparsity``.

  Returns:
    A :class:`PredictedCriticalSparsity`.
  """
  if widths is None and width is None:
    raise ValueError("predicted_critical_sparsity needs the layer sizes: pass width (equal widths) or widths")
  _check_law(score_law)
  m, sizes = _profile(activation, sigma_b, sigma_w, depth, architecture, widths, width, receptive_field, n_blocks,
                      q1, order)
  return critical_sparsity_from_moments(m, sizes, score_law=score_law)
