"""Dual kernels ``E[φ(u1)φ(u2)]`` and ``E[φ'(u1)φ'(u2)]`` by the Hermite (Mehler) expansion, exact to a stated bound.

The mean-field kernels need, for every pair of inputs and every layer, the two Gaussian moments of [R] App. B.1.1
(THEORY.md §2, §8) with ``(u1, u2) ~ N(0, [[q1, c√(q1 q2)], [c√(q1 q2), q2]])``. The 2-D quadrature of
:mod:`theory.gaussian` costs ``8·order²`` evaluations of φ per pair; here the cost per pair is a polynomial of degree
``K`` in ``c``, whatever the quadrature order, and the per-input work is a 1-D quadrature.

**Mehler's formula.** Let ``h_k = He_k/√k!`` be the normalised probabilists' Hermite polynomials, orthonormal under
``N(0, 1)``, and ``a_k(q) = E[φ(√q Z) h_k(Z)]`` the coefficients of ``z ↦ φ(√q z)``. For standard Gaussians with
correlation ``c``, ``E[h_j(Z1) h_k(Z2)] = δ_jk c^k`` (Mehler 1866; O'Donnell, *Analysis of Boolean Functions*, 2014,
Prop. 11.33), so with ``u_i = √q_i Z_i``::

    E[φ(u1) φ(u2)] = Σ_k a_k(q1) a_k(q2) c^k,

the *dual activation* of Daniely, Frostig & Singer (2016), here at unequal variances. The same holds for φ' with its
own coefficients ``b_k(q)``; differentiating ``φ(√q z)`` in ``z`` gives the identity ``b_k = √((k+1)/q) a_{k+1}``
(a test checks it), but ``b_k`` is projected directly, on the same nodes, so that its tail is measured (below).

**Error bound.** Truncating at degree ``K`` leaves ``R_K = Σ_{k>K} a_k a'_k c^k``; by Cauchy–Schwarz and Parseval::

    |R_K| ≤ |c|^{K+1} t_K t'_K,        t_K² = Σ_{k>K} a_k² = E[φ(√q Z)²] − Σ_{k≤K} a_k².

``t_K²`` is the larger of the quadrature norm of the residual ``φ(√q z) − Σ_{k≤K} a_k h_k(z)`` (accurate when the
tail is tiny, where the difference of the two sums would cancel to ``ε·E[φ²]``) and that difference (which also counts
the residual beyond the rule's ``|z| <= Z_MAX``, where Hermite polynomials of high degree live: up to 15% of the tail)
less its rounding floor ``4ε·E[φ²]``, so the bound is as reliable as the 1-D rule, whose relative error is below 1e-13 (:mod:`theory.gaussian`). At ``c = ±1`` all terms of ``R_K`` have one sign and the bound is attained, so it is not
loose where it matters. A pair whose bound exceeds ``tolerance · √(E[φ(u1)²] E[φ(u2)²])`` (the Cauchy–Schwarz scale
of the entry) for either moment is integrated exactly instead, by :func:`theory.gaussian.expect2_pairs` (one node set
for both moments). Inputs met with themselves (``q1 = q2``, ``c = 1``: the kernel's diagonal) take the 1-D second
moments exactly.

**When pairs fall back.** Coefficients decay fast for smooth φ at moderate variance (tanh at ``q = 1``: ``t_128 ≈
1e-7`` relative, so every pair, ``c = 1`` included, passes in float32) and slowly for a kink (ELU's φ', SELU:
algebraically, ``t_K ~ K^{-1/4}`` to ``K^{-3/4}``) or a large variance (``φ(√q z)`` varies on the scale ``1/√q``;
tanh's poles at ``z = ±iπ/(2√q)`` make ``a_k`` decay like ``exp(−(π/2)√(2k/q))``). Those fall back when ``|c|`` is
close to 1: ELU's ``E[φ'φ']`` at ``q = 1`` for ``|c| > 0.95`` at ``K = 128``, SELU's for ``|c| > 0.92``. The kernel
benchmark (``experiments/bench_kernels.py``) reports how many.

**Cost.** Per input and layer ``O(K · order)`` (the coefficients by the three-term recurrence on the split rule's
``2·max(order, K/2)`` nodes); per pair ``2K`` multiply-adds for both moments; fallback pairs ``8·order²`` nodes each,
run in blocks that are skipped when empty (so their cost is proportional to their number; under ``jax.vmap`` the
skip becomes a select and every block is integrated).

**Derivatives.** Everything is differentiable (``jax.grad``/``jax.jvp`` through variances, correlations and
activation parameters) and jit/vmap-able. The ``c``-derivative of a Mehler sum is the differentiated polynomial, whose
truncation error is up to ``K`` times the value's; fallback pairs use the Price's-theorem JVP of
:mod:`theory.gaussian`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from theory import gaussian
from theory._pytree import pytree_dataclass
from theory._validation import check_int, check_interval, check_nonnegative, check_positive, is_concrete
from theory.activations import ActivationLike, get_activation

__all__ = ["DEGREE", "TOLERANCE", "DualMoments", "HermiteExpansion", "default_degree", "default_tolerance",
           "dual_moments", "hermite_expansion", "mehler_sum"]

Array = jax.Array

DEGREE = {"float32": 128, "float64": 256}
"""Default truncation degree ``K`` by dtype: the per-pair cost is ``2K`` multiply-adds for both moments."""

TOLERANCE = {"float32": 1e-7, "float64": 1e-12}
"""Default bound on the truncation error relative to ``√(E[φ(u1)²] E[φ(u2)²])``, by dtype."""

_CHUNK_NODES = 1 << 20
"""Fallback quadrature runs over at most this many (pair × node) values at a time (4-8 MB per array: on two CPU
cores 2^18-2^20 ran 2.5x faster than 2^22-2^23, which leave the cache)."""

_CHUNKS_PER_BLOCK = 16
"""Fallback pairs are integrated in blocks of this many chunks; a block without fallback pairs is skipped."""


def default_degree() -> int:
  """The truncation degree for the floating dtype in force (:data:`DEGREE`)."""
  return DEGREE[jnp.dtype(gaussian.float_dtype()).name]


def default_tolerance() -> float:
  """The relative truncation tolerance for the floating dtype in force (:data:`TOLERANCE`)."""
  return TOLERANCE[jnp.dtype(gaussian.float_dtype()).name]


@pytree_dataclass
class HermiteExpansion:
  """Normalised Hermite coefficients of ``z ↦ f(√q z)`` at one or many variances ``q``.

  Attributes:
    coefficients: ``a_0..a_K``, shape ``q.shape + (K + 1,)``: ``f(√q z) = Σ_k a_k h_k(z)``.
    tail: ``t_K = (Σ_{k>K} a_k²)^{1/2}``, shape ``q.shape``: the L² norm of the truncation residual.
    second_moment: ``E[f(√q Z)²]``, shape ``q.shape``.
  """

  coefficients: Array
  tail: Array
  second_moment: Array


@pytree_dataclass
class DualMoments:
  """The two cross moments of :func:`dual_moments` and where quadrature was used.

  Attributes:
    value: ``E[φ(u1) φ(u2)]``.
    slope: ``E[φ'(u1) φ'(u2)]``.
    integrated: boolean, True where the pair was integrated by quadrature (its Mehler bound exceeded the tolerance);
      all False for a closed-form activation.
  """

  value: Array
  slope: Array
  integrated: Array


# ---------------------------------------------------------------------------------------------------------------
# Coefficients (per input).
# ---------------------------------------------------------------------------------------------------------------


def _expansion_order(order: int, degree: int) -> int:
  """Nodes per half-line for the projection: enough to resolve ``h_K`` (K/2 per half-line; tested up to K = 256)."""
  return max(order, (degree + 1) // 2)


@functools.partial(jax.checkpoint, static_argnums=(0, 2, 3))
def _expansions(evaluate, q: Array, degree: int, order: int) -> tuple[HermiteExpansion, ...]:
  """Expansions of every function ``evaluate`` returns, on one node set.

  ``evaluate(u)`` returns a tuple of arrays shaped like ``u`` (e.g. φ and φ' from one ``jax.jvp``). The coefficients
  come from the recurrence ``h_{k+1} = (z h_k − √k h_{k−1})/√(k+1)`` in one scan that also subtracts each term from
  the residual, so memory is ``O(q.size · nodes)``; ``jax.checkpoint`` keeps reverse mode from storing every step
  beyond one layer's.
  """
  shape = q.shape
  q = q.reshape(-1)  # a flat batch: trailing unit axes, as in (n, 1), made the reductions 3x slower
  z, w = gaussian.split_rule(q, _expansion_order(order, degree))  # (q.size, nodes)
  values = jnp.stack(evaluate(jnp.sqrt(q)[..., None] * z))  # (m,) + q.shape + (nodes,)
  weighted = w * values

  def step(carry, k):
    h_prev, h, residual = carry
    a = jnp.sum(weighted * h, axis=-1)
    residual = residual - a[..., None] * h
    h_next = (z * h - jnp.sqrt(k) * h_prev) * jax.lax.rsqrt(k + 1.0)
    return (h, h_next, residual), a

  init = (jnp.zeros_like(z), jnp.ones_like(z), values)
  (_, _, residual), coefficients = jax.lax.scan(step, init, jnp.arange(degree + 1, dtype=z.dtype))
  coefficients = jnp.moveaxis(coefficients, 0, -1)  # (m, q.size, K + 1)
  second = jnp.sum(weighted * values, axis=-1)
  # The residual's norm on the rule's nodes misses the part beyond Z_MAX, where h_k of high degree live (up to 15%
  # of the tail); Parseval's difference sees it but cancels to ε·E[f²]. The larger of the two bounds the tail.
  # Parseval's difference is counted above its rounding floor, 4ε·E[f²].
  floor = 4.0 * jnp.finfo(second.dtype).eps * second
  parseval = second - jnp.sum(coefficients**2, axis=-1) - floor
  tail = jnp.sqrt(jnp.maximum(jnp.sum(w * residual**2, axis=-1), parseval))
  return tuple(HermiteExpansion(a.reshape(shape + a.shape[-1:]), t.reshape(shape), m.reshape(shape))
               for a, t, m in zip(coefficients, tail, second))


def hermite_expansion(f, q, *, degree: int | None = None, order: int = gaussian.DEFAULT_ORDER) -> HermiteExpansion:
  """The normalised Hermite coefficients of ``z ↦ f(√q z)`` up to ``degree``, with the tail's norm.

  Args:
    f: elementwise JAX-traceable function (an :class:`~theory.activations.Activation` or any callable).
    q: variance(s) ``>= 0``, any shape.
    degree: truncation degree ``K >= 0``; defaults to :func:`default_degree`.
    order: quadrature order of the projection (nodes per half-line; at least ``(K + 1)/2`` are used).

  Returns:
    :class:`HermiteExpansion` with coefficients of shape ``q.shape + (K + 1,)``.
  """
  check_nonnegative("q", q)
  degree = default_degree() if degree is None else check_int("degree", degree, 0)
  order = check_int("order", order, 1)
  return _expansions(lambda u: (f(u),), jnp.asarray(q, gaussian.float_dtype()), degree, order)[0]


# ---------------------------------------------------------------------------------------------------------------
# Per-pair sums.
# ---------------------------------------------------------------------------------------------------------------


def _horner(term, c: Array, degree: int) -> Array:
  """``Σ_{k=0}^{degree} term(k) c^k`` by Horner's rule (``term(k)`` broadcasts against ``c``)."""

  def body(i, acc):
    return acc * c + term(degree - 1 - i)

  return jax.lax.fori_loop(0, degree, body, jnp.broadcast_to(term(degree), c.shape).astype(c.dtype), unroll=8)


@jax.custom_jvp
def _mehler(a1: Array, a2: Array, c: Array) -> Array:
  """``Σ_k a1_k a2_k c^k`` with the coefficient axis last (``a1``, ``a2`` broadcast against ``c``)."""
  degree = a1.shape[-1] - 1
  return _horner(lambda k: a1[..., k] * a2[..., k], c, degree)


@_mehler.defjvp
def _mehler_jvp(primals, tangents):
  # A custom rule so that reverse mode does not store the n1·n2 accumulator at every degree: the tangent is two
  # more Horner sums, linear in (da1, da2, dc).
  a1, a2, c = primals
  da1, da2, dc = tangents
  degree = a1.shape[-1] - 1
  value = _mehler(a1, a2, c)
  tangent = _horner(lambda k: da1[..., k] * a2[..., k] + a1[..., k] * da2[..., k], c, degree)
  if degree > 0:
    tangent = tangent + dc * _horner(lambda k: (k + 1.0) * a1[..., k + 1] * a2[..., k + 1], c, degree - 1)
  return value, tangent


def mehler_sum(e1: HermiteExpansion, e2: HermiteExpansion, c) -> tuple[Array, Array]:
  """``Σ_{k≤K} a_k(q1) a_k(q2) c^k ≈ E[f(√q1 Z1) f(√q2 Z2)]`` and its truncation bound ``|c|^{K+1} t_K t'_K``.

  Args:
    e1: expansion at the first variances (shape ``S1``).
    e2: expansion of the same function at the second variances (shape ``S2``, same degree).
    c: correlations in ``[-1, 1]``, broadcasting with ``S1`` and ``S2``.

  Returns:
    ``(value, bound)`` with the broadcast shape.
  """
  if e1.coefficients.shape[-1] != e2.coefficients.shape[-1]:
    raise ValueError(f"e1 and e2 must have one degree; got {e1.coefficients.shape[-1] - 1} and "
                     f"{e2.coefficients.shape[-1] - 1}")
  check_interval("c", c, -1.0, 1.0)
  c = jnp.asarray(c, e1.coefficients.dtype)
  return _mehler_with_bound(e1, e2, c)


def _mehler_with_bound(e1: HermiteExpansion, e2: HermiteExpansion, c: Array) -> tuple[Array, Array]:
  shape = jnp.broadcast_shapes(e1.tail.shape, e2.tail.shape, c.shape)
  c = jnp.broadcast_to(c, shape)
  degree = e1.coefficients.shape[-1] - 1
  value = _mehler(e1.coefficients, e2.coefficients, c)
  bound = jnp.abs(c) ** (degree + 1) * e1.tail * e2.tail
  return value, bound


# ---------------------------------------------------------------------------------------------------------------
# Fallback (pairs whose bound is too large).
# ---------------------------------------------------------------------------------------------------------------


def _integrate_where(act, need: Array, q1: Array, q2: Array, c: Array, order: int) -> tuple[Array, Array, Array]:
  """Both moments by quadrature at the pairs where ``need`` is True.

  Returns ``(indices, values, slopes)``: flat indices into ``need`` (padded with ``need.size``, out of range) and
  the moments there. The flagged pairs are compacted first, then integrated in blocks; a block past the last one is
  skipped by ``lax.cond``.
  """
  size = need.size
  flat = lambda v: jnp.broadcast_to(v, need.shape).reshape(-1)
  q1, q2, c, need = flat(q1), flat(q2), flat(c), need.reshape(-1)
  chunk = max(1, min(size, _CHUNK_NODES // (8 * order * order)))
  block = chunk * max(1, min(_CHUNKS_PER_BLOCK, -(-size // chunk)))
  blocks = -(-size // block)
  (indices,) = jnp.nonzero(need, size=blocks * block, fill_value=size)
  count = jnp.sum(need)
  pairs = ((act, act), (act.derivative, act.derivative))

  @jax.checkpoint  # reverse mode keeps the block's inputs, not its nodes
  def integrate(selected):
    parts = tuple(jnp.take(v, selected, mode="clip").reshape(-1, chunk) for v in (q1, q2, c))
    values, slopes = jax.lax.map(lambda args: gaussian._integrate_pairs(pairs, order, *args), parts)
    return values.reshape(-1), slopes.reshape(-1)

  def skip(selected):
    return (jnp.zeros(selected.shape, q1.dtype),) * 2

  def body(_, start):
    selected = jax.lax.dynamic_slice(indices, (start,), (block,))
    return None, jax.lax.cond(start < count, integrate, skip, selected)

  _, (values, slopes) = jax.lax.scan(body, None, jnp.arange(blocks) * block)
  return indices, values.reshape(-1), slopes.reshape(-1)


# ---------------------------------------------------------------------------------------------------------------
# The evaluator.
# ---------------------------------------------------------------------------------------------------------------


def dual_moments(activation: ActivationLike, q1, q2, c, *, order: int = gaussian.DEFAULT_ORDER, degree: int | None = None,
                 tolerance=None) -> DualMoments:
  """``E[φ(u1) φ(u2)]`` and ``E[φ'(u1) φ'(u2)]`` for ``Var u_i = q_i``, ``Corr(u1, u2) = c``, by Mehler's formula.

  Closed forms (relu, leaky_relu, linear, erf: :mod:`theory.activations`) take priority. Otherwise the coefficients
  are computed once per entry of ``q1`` and of ``q2`` (pass them unbroadcast, e.g. ``(n1, 1)`` and ``(1, n2)``,
  so that the per-input work is done once per input), every pair is a Mehler sum of degree ``degree``, and pairs
  whose truncation bound exceeds ``tolerance`` (relative to ``√(E[φ(u1)²] E[φ(u2)²])``, for either moment) are
  integrated by :func:`theory.gaussian.expect2_pairs` at ``order`` (see the module docstring).

  Args:
    activation: registry name, callable or :class:`~theory.activations.Activation`.
    q1: variances of ``u1``, ``>= 0``.
    q2: variances of ``u2``, ``>= 0``.
    c: correlations in ``[-1, 1]``; ``q1``, ``q2`` and ``c`` broadcast together.
    order: quadrature order of the projection and of the fallback.
    degree: truncation degree ``K >= 1``; defaults to :func:`default_degree` (128 in float32, 256 in float64).
    tolerance: relative error bound ``> 0``; defaults to :func:`default_tolerance` (1e-7 in float32, 1e-12 in
      float64).

  Returns:
    :class:`DualMoments` with the broadcast shape.

  Raises:
    ValueError: a negative variance, ``c`` outside ``[-1, 1]``, ``degree < 1``, ``tolerance <= 0`` or an unknown
      activation.
  """
  act = get_activation(activation)
  check_nonnegative("q1", q1)
  check_nonnegative("q2", q2)
  check_interval("c", c, -1.0, 1.0)
  order = check_int("order", order, 1)
  degree = default_degree() if degree is None else check_int("degree", degree, 1)
  if tolerance is None:
    tolerance = default_tolerance()
  elif is_concrete(tolerance):
    check_positive("tolerance", tolerance)
  q1, q2, c = (jnp.asarray(v, gaussian.float_dtype()) for v in (q1, q2, c))
  return _dual_moments(act, q1, q2, c, order, degree, jnp.asarray(tolerance, q1.dtype))


def _dual_moments(act, q1: Array, q2: Array, c: Array, order: int, degree: int, tolerance: Array,
                  exact: Array | np.ndarray | None = None, skip: Array | np.ndarray | None = None,
                  shared: bool = False) -> DualMoments:
  """:func:`dual_moments` on validated arrays.

  ``shared=True`` says that ``q2`` holds the entries of ``q1`` in the same order (a set of inputs with itself), so
  the expansions are computed once.
  ``exact`` marks pairs with ``q1 = q2`` and ``c = 1`` (an input met with itself, or one variance ``q1`` used on
  both sides): they take the 1-D second moments at ``q1``, differentiated as functions of that one variance.
  ``skip`` marks pairs whose fallback is not needed (e.g. the lower triangle of a symmetric kernel, which the caller
  mirrors): they keep their Mehler values.
  """
  shape = jnp.broadcast_shapes(q1.shape, q2.shape, c.shape)
  if act.closed_form is not None:
    value, slope = act.cross_moment(q1, q2, c, order), act.derivative_cross_moment(q1, q2, c, order)
    return DualMoments(jnp.broadcast_to(value, shape), jnp.broadcast_to(slope, shape), jnp.zeros(shape, bool))

  def both(u):
    return jax.jvp(act, (u,), (jnp.ones_like(u),))

  phi1, dphi1 = _expansions(both, q1, degree, order)
  if shared:
    as_q2 = lambda e: jax.tree.map(lambda v: v.reshape(q2.shape + v.shape[q1.ndim:]), e)
    phi2, dphi2 = as_q2(phi1), as_q2(dphi1)
  else:
    phi2, dphi2 = _expansions(both, q2, degree, order)
  value, value_bound = _mehler_with_bound(phi1, phi2, c)
  slope, slope_bound = _mehler_with_bound(dphi1, dphi2, c)
  value_scale = jnp.sqrt(phi1.second_moment * phi2.second_moment)
  slope_scale = jnp.sqrt(dphi1.second_moment * dphi2.second_moment)
  need = (value_bound > tolerance * value_scale) | (slope_bound > tolerance * slope_scale)
  if exact is not None:
    # The 1-D moments, with c-tangents from Price's theorem for the value (q E[φ'²]) and from the differentiated
    # Mehler sum for the slope (Σ k b_k²); dc is 0 but carries c's tangent.
    exact = jnp.broadcast_to(exact, shape)
    dc = c - jax.lax.stop_gradient(c)
    k = jnp.arange(degree + 1, dtype=c.dtype)
    # The 1-D rule at ``order``, as everywhere in theory (so that f(1) = 1 holds to the last bit in theory.maps).
    second, derivative_second = act.second_moment(q1, order), act.derivative_second_moment(q1, order)
    value = jnp.where(exact, second + q1 * derivative_second * dc, value)
    slope = jnp.where(exact, derivative_second + jnp.sum(k * dphi1.coefficients**2, axis=-1) * dc, slope)
    need = need & ~exact
  if skip is not None:
    need = need & ~jnp.broadcast_to(skip, shape)

  def refine(moments):
    indices, values, slopes = _integrate_where(act, need, q1, q2, c, order)
    patch = lambda base, new: base.reshape(-1).at[indices].set(new, mode="drop").reshape(shape)
    return patch(moments[0], values), patch(moments[1], slopes)

  value, slope = jax.lax.cond(jnp.any(need), refine, lambda moments: moments, (value, slope))
  return DualMoments(value, slope, need)
