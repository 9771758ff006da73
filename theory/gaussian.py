"""Gaussian expectations by quadrature, accurate for large variances and for activations with a kink at 0.

Every mean-field map is an expectation over one or two Gaussian pre-activations ([R] App. A.1, B.1; THEORY.md §2):

* one variable: ``E[f(√q Z)]`` with ``Z ~ N(0, 1)``;
* two correlated variables: ``E[f(u1) g(u2)]`` with ``u1 = √q1 Z1`` and ``u2 = √q2 (c Z1 + √(1 − c²) Z2)``,
  ``Z1, Z2`` iid ``N(0, 1)``, so ``Var u1 = q1``, ``Var u2 = q2`` and ``Corr(u1, u2) = c``.

The one-variable rule (:func:`split_rule`). Plain Gauss–Hermite fails twice over for activations: a saturating φ
at large q (φ'(√q z) lives in ``|z| ≲ 1/√q``, between the nodes) and a kink at 0 (SELU, ELU, ReLU), where it
converges only algebraically. We split the line at 0, write ``E[h(√q Z)] = ∫_0^∞ (h(√q z) + h(−√q z)) ϕ(z) dz``
and map ``z = a·sinh(t)`` with ``a = min(1, 1/√q)``, ``t ∈ [0, asinh(Z_MAX/a)]``, integrated by ``order``-point
Gauss–Legendre. The map resolves the scale of φ (1 in u) near 0 and the Gaussian's scale (√q) further out; each
half is smooth up to its end point, so convergence is exponential. With the default order the relative error
against adaptive integration is below 1e-13 for tanh, sigmoid, SELU and its derivative for q from 1e-3 to 1e4.

The two-variable rule (:func:`expect2`) integrates ``Z1`` with the split rule and, given ``Z1``, ``Z2`` by
Gauss–Hermite (``u2`` is then Gaussian with mean ``√q2 c z1`` and variance ``q2 (1 − c²)``). At ``c = ±1`` the
inner variance is zero and the rule is exactly the one-variable rule, so identities such as f(1) = 1 and
f'(1) = χ hold to round-off. Away from ``c = ±1`` the inner Gauss–Hermite step is exponentially accurate for smooth φ
at moderate ``q2 (1 − c²)`` and only algebraically accurate across a kink: that is why ReLU, leaky ReLU, linear and
erf use closed forms (:mod:`theory.activations`).

Differentiability. Differentiating a quadrature through ``√(1 − c²)`` gives ``0 · ∞`` at ``c = ±1``. The
two-variable expectation therefore carries its own JVP, built from Gaussian integration by parts (Price's theorem)::

    ∂/∂c  E[f(u1) g(u2)] = √(q1 q2) · E[f'(u1) g'(u2)]
    ∂/∂q1 E[f(u1) g(u2)] = E[u1 f'(u1) · g(u2)] / (2 q1)        (and symmetrically for q2)

Each right-hand side is again a two-variable expectation, so derivatives of every order are defined, finite at
``c = ±1``, and only need first derivatives of ``f`` and ``g`` (so they are right for ReLU, whose second derivative
autodiff gets wrong). Derivatives with respect to ``q`` require ``q > 0``.

The quadrature ``order`` (nodes per half-line, and Gauss–Hermite nodes of the inner integral) is an argument of
every function that integrates; :data:`DEFAULT_ORDER` is enough for float64 round-off in the cases above.
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from theory._validation import check_int, check_interval, check_nonnegative

Array = jax.Array
Elementwise = Callable[[Array], Array]

DEFAULT_ORDER = 64
"""Default quadrature order: Gauss–Legendre nodes per half-line, and Gauss–Hermite nodes of an inner integral."""

Z_MAX = 10.0
"""Where the split rule truncates the standard normal (its tail mass beyond is below 1e-22)."""


def float_dtype() -> jnp.dtype:
  """The floating dtype in force: float64 when ``jax_enable_x64`` is on, else float32."""
  return jnp.result_type(float)


@functools.lru_cache(maxsize=None)
def _hermite_rule(order: int) -> tuple[np.ndarray, np.ndarray]:
  nodes, weights = np.polynomial.hermite_e.hermegauss(order)
  return nodes, weights / np.sqrt(2.0 * np.pi)


def hermite_rule(order: int = DEFAULT_ORDER, dtype: jnp.dtype | None = None) -> tuple[Array, Array]:
  """Nodes and weights of the probabilists' Gauss–Hermite rule.

  Args:
    order: number of nodes, >= 1.
    dtype: floating dtype of the result; defaults to :func:`float_dtype`.

  Returns:
    ``(nodes, weights)``, each of shape ``(order,)``, with ``Σ weights = 1`` and
    ``Σ weights · h(nodes) ≈ E[h(Z)]`` for ``Z ~ N(0, 1)``.
  """
  order = check_int("order", order, 1)
  nodes, weights = _hermite_rule(order)
  dtype = float_dtype() if dtype is None else dtype
  return jnp.asarray(nodes, dtype), jnp.asarray(weights, dtype)


@functools.lru_cache(maxsize=None)
def _legendre_rule(order: int) -> tuple[np.ndarray, np.ndarray]:
  return np.polynomial.legendre.leggauss(order)


def split_rule(q: Array, order: int = DEFAULT_ORDER) -> tuple[Array, Array]:
  """Nodes and weights in ``z`` of the split, sinh-mapped rule for ``E[h(√q Z)]`` (see the module docstring).

  Args:
    q: variance(s) ``>= 0``, any shape.
    order: Gauss–Legendre nodes per half-line (the rule has ``2·order`` nodes).

  Returns:
    ``(z, weights)`` of shape ``q.shape + (2·order,)`` with ``Σ weights · h(√q z) ≈ E[h(√q Z)]``.
  """
  q = jnp.asarray(q, float_dtype())
  x, w = (jnp.asarray(v, q.dtype) for v in _legendre_rule(check_int("order", order, 1)))
  scale = jnp.minimum(1.0, jax.lax.rsqrt(jnp.maximum(q, 1e-30)))[..., None]
  t_max = jnp.arcsinh(Z_MAX / scale)
  t = 0.5 * t_max * (x + 1.0)
  z = scale * jnp.sinh(t)
  weights = 0.5 * t_max * w * scale * jnp.cosh(t) * jnp.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
  return jnp.concatenate([z, -z], axis=-1), jnp.concatenate([weights, weights], axis=-1)


def derivative(f: Elementwise) -> Elementwise:
  """The derivative of an elementwise function, by forward-mode autodiff (works on arrays of any shape)."""

  def f_prime(x: Array) -> Array:
    return jax.jvp(f, (x,), (jnp.ones_like(x),))[1]

  return f_prime


def expect(f: Elementwise, q: Array, order: int = DEFAULT_ORDER) -> Array:
  """``E[f(√q Z)]`` for ``Z ~ N(0, 1)``, by the split rule (:func:`split_rule`).

  Differentiable in ``q`` (for ``q > 0``) and in anything ``f`` closes over.

  Args:
    f: elementwise JAX-traceable function.
    q: variance(s) ``>= 0``; any shape, the result has the same shape.
    order: quadrature order (nodes per half-line).

  Returns:
    The expectation, one per entry of ``q``.
  """
  check_nonnegative("q", q)
  q = jnp.asarray(q, float_dtype())
  z, w = split_rule(q, order)
  return jnp.sum(w * f(jnp.sqrt(q)[..., None] * z), axis=-1)


def expect2(
    f: Elementwise,
    g: Elementwise,
    q1: Array,
    q2: Array,
    c: Array,
    order: int = DEFAULT_ORDER,
) -> Array:
  """``E[f(u1) g(u2)]`` for centred Gaussians with variances ``q1``, ``q2`` and correlation ``c``.

  ``u1 = √q1 Z1``, ``u2 = √q2 (c Z1 + √(1 − c²) Z2)`` ([R] App. B.1.1). The split rule in ``Z1`` and
  Gauss–Hermite in ``Z2`` given ``Z1``, with a Price's-theorem JVP (see the module docstring), so ``∂/∂c`` is
  finite and exact at ``c = ±1``.

  Args:
    f: elementwise function of ``u1``.
    g: elementwise function of ``u2``.
    q1: variance of ``u1``, ``>= 0`` (``> 0`` to differentiate in it).
    q2: variance of ``u2``, ``>= 0``.
    c: correlation in ``[-1, 1]``.
    order: quadrature order (``2·order²`` evaluations).

  Returns:
    The expectation, broadcast over the shapes of ``q1``, ``q2`` and ``c``.
  """
  check_nonnegative("q1", q1)
  check_nonnegative("q2", q2)
  check_interval("c", c, -1.0, 1.0)
  check_int("order", order, 1)
  dtype = float_dtype()
  q1, q2, c = (jnp.asarray(v, dtype) for v in (q1, q2, c))
  return _expect2(f, g, order, q1, q2, c)


def _expect2_quadrature(f: Elementwise, g: Elementwise, order: int, q1: Array, q2: Array, c: Array) -> Array:
  q1, q2, c = jnp.broadcast_arrays(q1, q2, c)
  z1, w1 = split_rule(q1, order)  # (..., 2·order)
  z2, w2 = hermite_rule(order, q1.dtype)  # (order,)
  s = jnp.sqrt(jnp.clip((1.0 - c) * (1.0 + c), 0.0, None))  # √(1 − c²) without cancellation near ±1
  e = lambda v: v[..., None, None]
  u1 = e(jnp.sqrt(q1)) * z1[..., :, None]
  u2 = e(jnp.sqrt(q2)) * (e(c) * z1[..., :, None] + e(s) * z2)
  return jnp.sum(w1[..., :, None] * w2 * f(u1) * g(u2), axis=(-2, -1))


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1, 2))
def _expect2(f: Elementwise, g: Elementwise, order: int, q1: Array, q2: Array, c: Array) -> Array:
  return _expect2_quadrature(f, g, order, q1, q2, c)


@_expect2.defjvp
def _expect2_jvp(f, g, order, primals, tangents):
  q1, q2, c = primals
  dq1, dq2, dc = tangents
  value = _expect2(f, g, order, q1, q2, c)
  f1, g1 = derivative(f), derivative(g)
  # ∂/∂q_i: E[u_i f'(u_i) ...] / (2 q_i); undefined at q_i = 0, where the tangent is taken as 0.
  safe1, safe2 = jnp.where(q1 > 0, q1, 1.0), jnp.where(q2 > 0, q2, 1.0)
  d_q1 = _expect2(lambda u: u * f1(u), g, order, q1, q2, c) / (2.0 * safe1)
  d_q2 = _expect2(f, lambda u: u * g1(u), order, q1, q2, c) / (2.0 * safe2)
  d_c = jnp.sqrt(q1 * q2) * _expect2(f1, g1, order, q1, q2, c)
  tangent = jnp.where(q1 > 0, d_q1 * dq1, 0.0) + jnp.where(q2 > 0, d_q2 * dq2, 0.0) + d_c * dc
  return value, tangent
