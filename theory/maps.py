"""Mean-field maps of wide random networks: variance, covariance and correlation maps, q*, χ, depth scales.

Networks at initialization ([R] §2.1, eq. 1-3; THEORY.md §1): ``y^l = F_l(W^l, y^{l-1}) + B^l`` with
``W^l ~ N(0, σw²/v_l)`` and ``B^l ~ N(0, σb²)``. In the wide limit (Approximation 1 of [R]) every pre-activation is
a centred Gaussian and the layer-to-layer statistics obey ([R] App. A.1, B.1; THEORY.md §2)::

    variance map      q^l        = V(q^{l-1}) = σb² + σw² E[φ(√q^{l-1} Z)²]
    covariance map    q^l(x, x') = σb² + σw² E[φ(u1) φ(u2)]
    correlation map   f(c)       = (σb² + σw² E[φ(u1) φ(u2)]) / q*         at q1 = q2 = q*
    χ                 f'(1)      = σw² E[φ'(√q* Z)²]
    f'(c)                        = σw² E[φ'(u1) φ'(u2)]                    (Gaussian integration by parts)

A CNN's per-channel average kernel obeys the same recursion ([R] App. A.1, B.2), so everything here holds for CNNs.
Residual networks ([R] eq. 8, App. A.1) add the block's output to its input, and Stable ResNets ([R] eq. 9,
Proposition 2) scale the block by ``1/√L``, ``L`` the number of residual blocks (see :func:`propagate`).

All functions take the activation as a registry name, a callable or an :class:`~theory.activations.Activation`,
run under ``jax.jit``/``jax.vmap``/``jax.grad`` (σb, σw, q, c and activation parameters are all traceable), and
compute in float32, or float64 when ``jax_enable_x64`` is on.
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import jax
import jax.numpy as jnp

from theory import _roots, dual, gaussian
from theory._pytree import pytree_dataclass
from theory._validation import check_int, check_interval, check_nonnegative, check_positive, is_concrete
from theory.activations import Activation, ActivationLike, get_activation

Array = jax.Array
Architecture = Literal["ffnn", "cnn", "resnet", "stable_resnet"]
ARCHITECTURES: tuple[str, ...] = ("ffnn", "cnn", "resnet", "stable_resnet")

Q_GRID = (1e-12, 1e12, 193)
"""Log-spaced grid ``(low, high, points)`` on which fixed points of the variance map are bracketed."""

Q_DIVERGED = Q_GRID[1]
"""Variances beyond this count as diverging (the variance map has no finite attracting fixed point)."""

ORDER = gaussian.DEFAULT_ORDER


def _float(x) -> Array:
  return jnp.asarray(x, gaussian.float_dtype())


def _validated(activation: ActivationLike, sigma_b, sigma_w) -> tuple[Activation, Array, Array]:
  """Resolves the activation and checks ``σb >= 0`` and ``σw > 0``."""
  check_nonnegative("sigma_b", sigma_b)
  check_positive("sigma_w", sigma_w)
  return get_activation(activation), _float(sigma_b), _float(sigma_w)


def check_architecture(architecture: str) -> str:
  """Returns ``architecture`` or raises ``ValueError`` naming the valid choices."""
  if architecture not in ARCHITECTURES:
    raise ValueError(f"architecture must be one of {ARCHITECTURES}; got {architecture!r}")
  return architecture


# ---------------------------------------------------------------------------------------------------------------
# One-layer maps.
# ---------------------------------------------------------------------------------------------------------------


def variance_map(activation: ActivationLike, sigma_b, sigma_w, q, *, order: int = ORDER) -> Array:
  """The variance map ``V(q) = σb² + σw² E[φ(√q Z)²]`` ([R] App. A.1; THEORY.md §2).

  Args:
    activation: name, callable or :class:`~theory.activations.Activation`.
    sigma_b: bias standard deviation, ``>= 0``.
    sigma_w: weight standard deviation (times ``√fan_in``), ``> 0``.
    q: pre-activation variance of the previous layer, ``>= 0``.
    order: quadrature order.

  Returns:
    The next layer's pre-activation variance.
  """
  act, sigma_b, sigma_w = _validated(activation, sigma_b, sigma_w)
  check_nonnegative("q", q)
  return sigma_b**2 + sigma_w**2 * act.second_moment(_float(q), order)


def variance_map_slope(activation: ActivationLike, sigma_b, sigma_w, q, *, order: int = ORDER) -> Array:
  """``dV/dq = σw² E[φ'(√q Z)² + φ(√q Z) φ''(√q Z)]`` (Stein's lemma; Schoenholz et al. 2017).

  A fixed point ``q*`` is stable iff this slope is below 1 there, and ``ξ_q = −1/log(dV/dq(q*))``.
  The Stein form stays finite at ``q = 0`` and is right for ReLU-like φ (the kink's delta meets φ(0) = 0).

  Args:
    activation: name, callable or Activation.
    sigma_b: bias standard deviation, ``>= 0`` (the slope does not depend on it; kept for a uniform signature).
    sigma_w: weight standard deviation, ``> 0``.
    q: variance, ``>= 0``.
    order: quadrature order.

  Returns:
    The slope of the variance map at ``q``.
  """
  act, _, sigma_w = _validated(activation, sigma_b, sigma_w)
  check_nonnegative("q", q)
  return _variance_slope(act, sigma_w, _float(q), order)


def _variance_slope(act: Activation, sigma_w: Array, q: Array, order: int) -> Array:
  curvature = gaussian.expect(lambda u: act(u) * act.second_derivative(u), q, order)
  return sigma_w**2 * (act.derivative_second_moment(q, order) + curvature)


def chi_at(activation: ActivationLike, sigma_b, sigma_w, q, *, order: int = ORDER) -> Array:
  """``χ(q) = σw² E[φ'(√q Z)²]``, the gradient-variance multiplier of one layer ([R] App. B.1.2-B.1.3).

  Args:
    activation: name, callable or Activation.
    sigma_b: bias standard deviation, ``>= 0`` (χ at a given ``q`` does not depend on it; kept so that every map
      takes ``(activation, sigma_b, sigma_w, ...)`` in that order).
    sigma_w: weight standard deviation, ``> 0``.
    q: pre-activation variance, ``>= 0``.
    order: quadrature order.

  Returns:
    ``χ`` at variance ``q``; at ``q = q*`` this is ``χ(σb, σw) = f'(1)``.
  """
  act, _, sigma_w = _validated(activation, sigma_b, sigma_w)
  check_nonnegative("q", q)
  return sigma_w**2 * act.derivative_second_moment(_float(q), order)


def covariance_map(activation: ActivationLike, sigma_b, sigma_w, q1, q2, c, *,
                   order: int = ORDER) -> tuple[Array, Array, Array]:
  """One FFNN layer's map of the pre-activation kernel of two inputs ([R] App. A.1, B.1.1).

  Args:
    activation: name, callable or Activation.
    sigma_b: bias standard deviation, ``>= 0``.
    sigma_w: weight standard deviation, ``> 0``.
    q1: variance for the first input, ``>= 0``.
    q2: variance for the second input, ``>= 0``.
    c: correlation of the two pre-activations, in ``[-1, 1]``.
    order: quadrature order.

  Returns:
    ``(q1', q2', c')`` of the next layer, with ``q' = V(q)`` and
    ``c' = (σb² + σw² E[φ(u1) φ(u2)]) / √(q1' q2')``.
  """
  act, sigma_b, sigma_w = _validated(activation, sigma_b, sigma_w)
  for name, value in (("q1", q1), ("q2", q2)):
    check_nonnegative(name, value)
  check_interval("c", c, -1.0, 1.0)
  return _ffnn_layer(act, sigma_b, sigma_w, _float(q1), _float(q2), _float(c), order)


def _ffnn_layer(act, sigma_b, sigma_w, q1, q2, c, order):
  q1_next = sigma_b**2 + sigma_w**2 * act.second_moment(q1, order)
  q2_next = sigma_b**2 + sigma_w**2 * act.second_moment(q2, order)
  cov = sigma_b**2 + sigma_w**2 * act.cross_moment(q1, q2, c, order)
  return q1_next, q2_next, _correlation(cov, q1_next, q2_next)


def _correlation(cov, q1, q2):
  scale = jnp.sqrt(q1 * q2)
  return jnp.clip(jnp.where(scale > 0, cov / jnp.where(scale > 0, scale, 1.0), 1.0), -1.0, 1.0)


def correlation_map(activation: ActivationLike, sigma_b, sigma_w, c, *, q=None, order: int = ORDER) -> Array:
  """The correlation map ``f(c) = (σb² + σw² E[φ(u1) φ(u2)]) / V(q)`` at ``q1 = q2 = q`` ([R] eq. 15).

  At the fixed point ``q = q*`` the denominator ``V(q*)`` is ``q*`` and this is the paper's ``f``: ``f(1) = 1``,
  ``f`` is increasing, and strictly convex for non-linear φ ([R] App. B.1.4). At any other ``q`` it is the exact
  next-layer correlation of two inputs of variance ``q`` (still ``f(1) = 1``); that is also how a diverging variance
  (ReLU-like φ in the chaotic phase) is handled, at ``q = Q_DIVERGED``.

  Args:
    activation: name, callable or Activation.
    sigma_b: bias standard deviation, ``>= 0``.
    sigma_w: weight standard deviation, ``> 0``.
    c: correlation(s) in ``[-1, 1]``.
    q: the variance at which to evaluate; defaults to ``q*`` (:func:`q_star`). At ``q = 0`` (σb = 0 with
      φ(0) = 0) the map is evaluated in its small-variance limit (at ``q = 1e-12``).
    order: quadrature order.

  Returns:
    ``f(c)``, shaped like ``c``.
  """
  act, sigma_b, sigma_w = _validated(activation, sigma_b, sigma_w)
  check_interval("c", c, -1.0, 1.0)
  q = _q_eval(_q_or_star(act, sigma_b, sigma_w, q, order))
  return _correlation_map(act, sigma_b, sigma_w, q, _float(c), order)


def _cross_moments(act, q, c, order) -> dual.DualMoments:
  """``E[φ(u1)φ(u2)]`` and ``E[φ'(u1)φ'(u2)]`` at ``q1 = q2 = q`` by :func:`theory.dual.dual_moments` (one Hermite
  expansion at ``q``, a Mehler sum per correlation; at ``c = 1`` the 1-D moments, exactly)."""
  return dual._dual_moments(act, q, q, c, order, dual.default_degree(), jnp.asarray(dual.default_tolerance(), c.dtype),
                            exact=c == 1.0, shared=True)


def _correlation_map(act, sigma_b, sigma_w, q, c, order):
  next_q = sigma_b**2 + sigma_w**2 * act.second_moment(q, order)
  return (sigma_b**2 + sigma_w**2 * _cross_moments(act, q, c, order).value) / next_q


def correlation_map_slope(activation: ActivationLike, sigma_b, sigma_w, c, *, q=None,
                          order: int = ORDER) -> Array:
  """``f'(c) = σw² q E[φ'(u1) φ'(u2)] / V(q)`` at ``q1 = q2 = q`` (Gaussian integration by parts; THEORY.md §2).

  At ``q = q*`` this is ``σw² E[φ'(u1) φ'(u2)]``, and ``f'(1) = χ``. Same arguments as :func:`correlation_map`.

  Returns:
    ``f'(c)``, shaped like ``c``.
  """
  act, sigma_b, sigma_w = _validated(activation, sigma_b, sigma_w)
  check_interval("c", c, -1.0, 1.0)
  q = _q_eval(_q_or_star(act, sigma_b, sigma_w, q, order))
  return _correlation_map_slope(act, sigma_b, sigma_w, q, _float(c), order)


def _correlation_map_slope(act, sigma_b, sigma_w, q, c, order):
  next_q = sigma_b**2 + sigma_w**2 * act.second_moment(q, order)
  return sigma_w**2 * q * _cross_moments(act, q, c, order).slope / next_q


def _q_or_star(act, sigma_b, sigma_w, q, order):
  if q is None:
    return _q_star(act, sigma_b, sigma_w, sigma_b**2 + sigma_w**2, order)
  check_nonnegative("q", q)
  return _float(q)


# ---------------------------------------------------------------------------------------------------------------
# Fixed points.
# ---------------------------------------------------------------------------------------------------------------


def q_grid(dtype=None) -> Array:
  """The variance grid ``{0} ∪ logspace(Q_GRID)`` used to bracket fixed points."""
  low, high, points = Q_GRID
  grid = jnp.logspace(math.log10(low), math.log10(high), points, dtype=dtype or gaussian.float_dtype())
  return jnp.concatenate([jnp.zeros((1,), grid.dtype), grid])


def q_star(activation: ActivationLike, sigma_b, sigma_w, *, q_init=None, order: int = ORDER) -> Array:
  """The attracting fixed point ``q*`` of the variance map ([R] App. B.1.3; THEORY.md §2).

  Iterating ``V`` from ``q_init`` converges monotonically (``V`` is increasing) to the nearest fixed point in the
  direction of the flow; that point is stable (``dV/dq(q*) <= 1``) by construction. It is found by bracketing
  ``V(q) − q`` on a log grid (:data:`Q_GRID`) and bisecting, then one Newton step carries the implicit-function
  derivatives, so ``jax.grad`` of ``q*`` in σb, σw or activation parameters is exact.

  Args:
    activation: name, callable or Activation.
    sigma_b: bias standard deviation, ``>= 0``.
    sigma_w: weight standard deviation, ``> 0``.
    q_init: starting variance; defaults to ``σb² + σw²``, the first-layer variance of a unit-variance input
      (``‖x‖²/d = 1``). Matters only when the variance map has several stable fixed points.
    order: quadrature order.

  Returns:
    ``q*``; ``+inf`` when the variance grows without bound (e.g. ReLU with σw > √2), ``0`` when it decays to 0
    (σb = 0, φ(0) = 0, ordered phase).
  """
  act, sigma_b, sigma_w = _validated(activation, sigma_b, sigma_w)
  if q_init is None:
    q_init = sigma_b**2 + sigma_w**2
  check_nonnegative("q_init", q_init)
  return _q_star(act, sigma_b, sigma_w, _float(q_init), order)


@functools.partial(jax.jit, static_argnums=(4,))
def _q_star(act: Activation, sigma_b: Array, sigma_w: Array, q_init: Array, order: int) -> Array:
  sigma_b, sigma_w, q_init = jnp.broadcast_arrays(sigma_b, sigma_w, q_init)
  solve = lambda b, w, q0: _q_star_scalar(act, b, w, q0, order)
  for _ in range(sigma_b.ndim):
    solve = jax.vmap(solve)
  return solve(sigma_b, sigma_w, q_init)


def _q_star_scalar(act, sigma_b, sigma_w, q_init, order):
  gap = lambda q: sigma_b**2 + sigma_w**2 * act.second_moment(q, order) - q
  solution = jax.lax.stop_gradient(_bracket_fixed_point(gap, q_init))
  # One Newton step at the solution: its value is unchanged, its derivative is the implicit-function one.
  finite = jnp.isfinite(solution)
  q0 = jnp.where(finite, solution, 1.0)
  slope = _variance_slope(act, jax.lax.stop_gradient(sigma_w), q0, order)
  step = gap(q0) / jnp.where(slope < 1.0, 1.0 - slope, 1.0)
  newton = q0 + jnp.where((slope < 1.0) & (q0 > 0), step, 0.0)
  return jnp.where(finite, newton, solution)


def _bracket_fixed_point(gap, q_init):
  grid = q_grid(q_init.dtype)
  values = gap(grid)
  at_init = gap(q_init)
  steps = _roots.bisection_steps(q_init.dtype)
  # Upward flow: first grid point above q_init where the gap is no longer positive.
  up_candidates = (grid > q_init) & (values <= 0)
  up_found = jnp.any(up_candidates)
  k_up = jnp.argmax(up_candidates)
  up_lo = jnp.maximum(grid[jnp.maximum(k_up - 1, 0)], q_init)
  up_root = _roots.bisect(gap, up_lo, grid[k_up], steps)
  # Downward flow: last grid point below q_init where the gap is still non-negative (grid[0] = 0 always is).
  down_candidates = (grid < q_init) & (values >= 0)
  k_down = grid.shape[0] - 1 - jnp.argmax(down_candidates[::-1])
  down_hi = jnp.minimum(grid[jnp.minimum(k_down + 1, grid.shape[0] - 1)], q_init)
  down_root = _roots.bisect(gap, grid[k_down], down_hi, steps)
  down_root = jnp.where(values[k_down] == 0, grid[k_down], down_root)
  upward = jnp.where(up_found, up_root, jnp.inf)
  return jnp.where(at_init > 0, upward, jnp.where(at_init < 0, down_root, q_init))


def correlation_fixed_point(activation: ActivationLike, sigma_b, sigma_w, *, order: int = ORDER) -> Array:
  """The stable fixed point ``c*`` of the correlation map ([R] App. B.1.4).

  ``c* = 1`` in the ordered phase and on the EOC; in the chaotic phase ``f`` has a second fixed point ``c* < 1``,
  which is the stable one. Found by bracketing ``f(c) − c`` on a grid dense near ``c = 1`` and bisecting.

  Args:
    activation: name, callable or Activation.
    sigma_b: bias standard deviation, ``>= 0``.
    sigma_w: weight standard deviation, ``> 0``.
    order: quadrature order.

  Returns:
    ``c*`` in ``[-1, 1]``.
  """
  act, sigma_b, sigma_w = _validated(activation, sigma_b, sigma_w)

  def scalar(b, w):
    return _c_star(act, b, w, _q_star_scalar(act, b, w, b**2 + w**2, order), order)

  return jnp.vectorize(scalar)(sigma_b, sigma_w)


def _q_eval(q: Array) -> Array:
  """Where to evaluate a map "at q*": a diverging variance is evaluated at :data:`Q_DIVERGED` (its large-q limit)
  and ``q* = 0`` at ``1e-12`` (its small-variance limit)."""
  return jnp.clip(jnp.where(jnp.isfinite(q), q, Q_DIVERGED), 1e-12, Q_DIVERGED)


def _c_star(act, sigma_b, sigma_w, q, order):
  """Stable fixed point of the correlation map for scalar σb, σw, q."""
  q = _q_eval(q)
  chi = _correlation_map_slope(act, sigma_b, sigma_w, q, jnp.ones_like(q), order)
  f_minus_c = lambda c: _correlation_map(act, sigma_b, sigma_w, q, c, order) - c
  dtype = q.dtype
  closest = 1e-10 if jnp.finfo(dtype).bits == 64 else 1e-5
  grid = 1.0 - jnp.logspace(math.log10(2.0), math.log10(closest), 96, dtype=dtype)  # from −1 up to 1 − closest
  values = f_minus_c(grid)
  crossing = (values[:-1] > 0) & (values[1:] <= 0)
  found = jnp.any(crossing)
  k = jnp.argmax(crossing)
  root = _roots.bisect(f_minus_c, grid[k], grid[k + 1], _roots.bisection_steps(dtype))
  chaotic = chi > 1.0
  return jnp.where(chaotic, jnp.where(found, root, grid[-1]), 1.0)


# ---------------------------------------------------------------------------------------------------------------
# Depth.
# ---------------------------------------------------------------------------------------------------------------


@pytree_dataclass
class Propagation:
  """Layer-by-layer pre-activation statistics of two inputs; index ``l − 1`` holds layer ``l``.

  Attributes:
    q: variance ``q^l(x)`` for the first input.
    q_other: variance ``q^l(x')`` for the second input.
    c: correlation ``c^l(x, x')``.
  """

  q: Array
  q_other: Array
  c: Array


def input_kernel(x, x_other, sigma_b, sigma_w) -> tuple[Array, Array, Array]:
  """First-layer statistics ``q^1 = σb² + σw² ‖x‖²/d`` and ``c^1`` of two inputs ([R] eq. 13; THEORY.md §2).

  Args:
    x: first input, shape ``(d,)``.
    x_other: second input, shape ``(d,)``.
    sigma_b: bias standard deviation, ``>= 0``.
    sigma_w: weight standard deviation, ``> 0``.

  Returns:
    ``(q1, q1_other, c1)`` to pass to :func:`propagate`.
  """
  check_nonnegative("sigma_b", sigma_b)
  check_positive("sigma_w", sigma_w)
  x, x_other = _float(x), _float(x_other)
  if x.shape != x_other.shape or x.ndim != 1:
    raise ValueError(f"x and x_other must be vectors of one shape; got {x.shape} and {x_other.shape}")
  d = x.shape[0]
  q1 = sigma_b**2 + sigma_w**2 * jnp.dot(x, x) / d
  q2 = sigma_b**2 + sigma_w**2 * jnp.dot(x_other, x_other) / d
  cov = sigma_b**2 + sigma_w**2 * jnp.dot(x, x_other) / d
  return q1, q2, _correlation(cov, q1, q2)


def residual_scale(architecture: str, depth: int, n_blocks: int | None) -> float:
  """Variance weight of a residual block's output: 1 for ResNet, ``1/L`` for Stable ResNet ([R] eq. 9)."""
  if architecture != "stable_resnet":
    return 1.0
  blocks = depth - 1 if n_blocks is None else check_int("n_blocks", n_blocks, 1)
  return 1.0 / max(blocks, 1)


def check_alphas(alphas, depth: int) -> Array | None:
  """``alphas`` as a float array of ``depth`` kept-variance fractions ``α_l >= 0``, or ``ValueError`` naming it."""
  if alphas is None:
    return None
  values = _float(alphas).reshape(-1)
  if values.shape[0] != depth:
    raise ValueError(f"alphas must give one value per layer (depth = {depth}); got {values.shape[0]}")
  if is_concrete(values) and not bool(jnp.all(jnp.isfinite(values) & (values >= 0))):
    raise ValueError(f"alphas must be finite and >= 0 (kept fraction of each layer's squared weights); got "
                     f"{[float(a) for a in values]}")
  return values


def propagate(
    activation: ActivationLike,
    sigma_b,
    sigma_w,
    depth: int,
    q1,
    *,
    c1=1.0,
    q1_other=None,
    alphas=None,
    architecture: Architecture = "ffnn",
    n_blocks: int | None = None,
    order: int = ORDER,
) -> Propagation:
  """The sequences ``q^l`` and ``c^l`` for ``l = 1..depth`` of a dense or pruned network ([R] App. A.1, B.1.1, C).

  * ``"ffnn"``/``"cnn"``: ``q^l = V(q^{l-1})`` and the covariance map (a CNN's channel-averaged kernel obeys the
    FFNN recursion, [R] App. A.1, B.2).
  * ``"resnet"`` ([R] eq. 8): layer 1 is a plain layer, every later layer a block ``y^l = y^{l-1} + F(y^{l-1})``
    with ``F = W φ(·) + B``, so ``q^l = q^{l-1} + V(q^{l-1})`` and likewise for the covariance.
  * ``"stable_resnet"`` ([R] eq. 9, Proposition 2): ``y^l = y^{l-1} + F(y^{l-1})/√L``, so
    ``q^l = q^{l-1} + V(q^{l-1})/L``; for ReLU with σb = 0 this is ``q^l = (1 + σw²/(2L)) q^{l-1}``. We scale the
    whole block, bias included, by ``1/√L`` (the paper writes ``F(W^l, y^{l-1})``, which carries the bias in its
    FFNN form, eq. 2).

  **Pruned networks** (``alphas``): a mask keeping the fraction ``α_l = Σ_kept W² / Σ W²`` of layer ``l``'s squared
  weights multiplies its effective ``σw²`` by ``α_l`` ([R] App. C, proof of Proposition 1; THEORY.md §5;
  ``mfprune.repair.kept_variance_fraction`` measures it), so layer ``l`` maps with ``√α_l σw``::

      q^l = σb² + α_l σw² E[φ(√q^{l-1} Z)²]                       (l >= 2)

  ``q1`` is the *dense* first layer ``σb² + σw² ‖x‖²/d`` (:func:`input_kernel`), which becomes
  ``σb² + α_1 (q1 − σb²)``, and its covariance likewise. A layer with ``α_l = 0`` is fully pruned: an FFNN layer
  then carries only its bias (``q^l = σb²``, ``c^l = 1``).

  ``q1``, ``c1`` and ``q1_other`` may be arrays (one entry per example or pair), broadcast together; the result has
  their shape after the layer axis. The recursion runs as one compiled ``lax.scan``.

  Args:
    activation: name, callable or Activation.
    sigma_b: bias standard deviation, ``>= 0``.
    sigma_w: weight standard deviation, ``> 0``.
    depth: number of layers ``L >= 1``.
    q1: first-layer variance ``q^1`` (see :func:`input_kernel`), ``>= 0`` (``>= σb²`` with ``alphas``).
    c1: first-layer correlation of the two inputs, in ``[-1, 1]``; ``None`` to propagate the variance only.
    q1_other: first-layer variance of the second input; defaults to ``q1``.
    alphas: one kept-variance fraction ``α_l >= 0`` per layer; ``None`` for the dense network.
    architecture: ``"ffnn"``, ``"cnn"``, ``"resnet"`` or ``"stable_resnet"``.
    n_blocks: Stable ResNet's ``L`` (number of residual blocks); defaults to ``depth − 1``.
    order: quadrature order.

  Returns:
    A :class:`Propagation` with arrays of shape ``(depth, *broadcast shape of q1, c1, q1_other)``; with
    ``c1=None``, ``c`` is ``None`` and ``q_other`` is ``q``.

  Raises:
    ValueError: unknown activation or architecture, or an argument outside its range (the message names it).
  """
  act, sigma_b, sigma_w = _validated(activation, sigma_b, sigma_w)
  depth = check_int("depth", depth, 1)
  check_architecture(architecture)
  check_nonnegative("q1", q1)
  alphas = check_alphas(alphas, depth)
  q = _float(q1)
  with_c = c1 is not None
  if with_c:
    check_interval("c1", c1, -1.0, 1.0)
    q_other = q if q1_other is None else _float(q1_other)
    check_nonnegative("q1_other", q_other)
    c = _float(c1)
    shape = jnp.broadcast_shapes(q.shape, q_other.shape, c.shape)
    q, q_other, c = (jnp.broadcast_to(v, shape) for v in (q, q_other, c))
  else:
    q_other, c = None, None
  if alphas is not None:
    sb2 = float(sigma_b) ** 2 if is_concrete(sigma_b) else None
    for name, value in (("q1", q), ("q1_other", q_other)):
      if value is not None and sb2 is not None and is_concrete(value) and bool(jnp.any(value < sb2 * (1 - 1e-5))):
        raise ValueError(f"{name} must be >= sigma_b**2 = {sb2} when alphas is given (q1 = σb² + σw² ‖x‖²/d)")
  scale = residual_scale(architecture, depth, n_blocks)
  residual = architecture in ("resnet", "stable_resnet")
  qs, qos, cs = _propagate(act, sigma_b, sigma_w, q, q_other, c, alphas, depth, residual, scale, order)
  return Propagation(q=qs, q_other=qos if with_c else qs, c=cs)


@functools.partial(jax.jit, static_argnums=(7, 8, 9, 10))
def _propagate(act, sigma_b, sigma_w, q1, q2, c1, alphas, depth, residual, scale, order):
  """The recursion of :func:`propagate` on validated arguments (``c1 is None``: variance only)."""
  if alphas is None:
    alphas = jnp.ones((depth,), q1.dtype)
  else:  # the pruned first layer: its weight part σw²‖x‖²/d scaled by α_1
    a, sb2 = alphas[0], sigma_b**2
    if c1 is not None:
      cov = sb2 + a * (c1 * jnp.sqrt(q1 * q2) - sb2)
      q1, q2 = sb2 + a * jnp.maximum(q1 - sb2, 0.0), sb2 + a * jnp.maximum(q2 - sb2, 0.0)
      c1 = _correlation(cov, q1, q2)
    else:
      q1 = sb2 + a * jnp.maximum(q1 - sb2, 0.0)

  def block(q, w):
    return scale * (sigma_b**2 + w**2 * act.second_moment(q, order))

  def layer(state, a):
    qa, qb, c = state
    w = jnp.sqrt(a) * sigma_w  # α_l σw²: the effective weight variance of a pruned layer
    if c is None:
      new = (qa + block(qa, w) if residual else sigma_b**2 + w**2 * act.second_moment(qa, order), None, None)
    elif residual:
      cov = c * jnp.sqrt(qa * qb)
      new_qa, new_qb = qa + block(qa, w), qb + block(qb, w)
      new_cov = cov + scale * (sigma_b**2 + w**2 * act.cross_moment(qa, qb, c, order))
      new = (new_qa, new_qb, _correlation(new_cov, new_qa, new_qb))
    else:
      new = _ffnn_layer(act, sigma_b, w, qa, qb, c, order)
    return new, new

  first = (q1, q2, c1)
  _, rest = jax.lax.scan(layer, first, alphas[1:])
  stack = lambda v0, vs: None if v0 is None else jnp.concatenate([jnp.expand_dims(v0, 0), vs])
  return tuple(stack(v0, vs) for v0, vs in zip(first, rest))


def depth_scales(activation: ActivationLike, sigma_b, sigma_w, *, order: int = ORDER) -> tuple[Array, Array]:
  """Depth scales of the variance and the correlation (Schoenholz et al. 2017; THEORY.md §2).

  ``ξ_q = −1 / log(dV/dq(q*))`` with ``dV/dq = χ + σw² E[φ''(√q* Z) φ(√q* Z)]``, and
  ``ξ_c = −1 / log(f'(c*))`` at the stable correlation fixed point ``c*`` (``f'(c*) = χ`` in the ordered phase).

  Args:
    activation: name, callable or Activation.
    sigma_b: bias standard deviation, ``>= 0``.
    sigma_w: weight standard deviation, ``> 0``.
    order: quadrature order.

  Returns:
    ``(ξ_q, ξ_c)``; ``+inf`` where the convergence is slower than exponential (the EOC for ``ξ_c``, a marginal or
    diverging variance for ``ξ_q``).
  """
  act, sigma_b, sigma_w = _validated(activation, sigma_b, sigma_w)

  def scalar(b, w):
    q = _q_star_scalar(act, b, w, b**2 + w**2, order)
    return _depth_scales(act, b, w, q, _c_star(act, b, w, q, order), order)

  return jnp.vectorize(scalar)(sigma_b, sigma_w)


def _depth_scales(act, sigma_b, sigma_w, q, c, order):
  finite = jnp.isfinite(q)
  slope = _variance_slope(act, sigma_w, jnp.where(finite, q, 1.0), order)
  xi_q = jnp.where(finite & (slope < 1.0) & (slope > 0.0), -1.0 / jnp.log(jnp.where(slope > 0, slope, 0.5)),
                   jnp.where(finite & (slope == 0.0), 0.0, jnp.inf))
  slope_c = _correlation_map_slope(act, sigma_b, sigma_w, _q_eval(q), c, order)
  xi_c = jnp.where((slope_c < 1.0) & (slope_c > 0.0), -1.0 / jnp.log(jnp.where(slope_c > 0, slope_c, 0.5)),
                   jnp.where(slope_c == 0.0, 0.0, jnp.inf))
  return xi_q, xi_c
