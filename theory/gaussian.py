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

The two-variable rule (:func:`expect2`) integrates ``Z1`` with the split rule (plus a short segment at the scale
``√(1 − c²)`` next to 0 on each side, :func:`_outer_rule`) and, given ``Z1 = z1``, ``Z2`` by the same kind of
sinh-mapped Gauss–Legendre segments: ``u2`` is then Gaussian with mean ``m = √q2 c z1`` and standard deviation
``s = √q2 √(1 − c²)``, so a kink of φ at ``u2 = 0`` sits at ``z2 = −m/s``, and the inner line is cut there, at the
Gaussian's centre and half-way between (four smooth segments, each anchored where its integrand varies fastest). At
``c = ±1`` the inner variance is zero and the rule is the one-variable rule (the extra segments have zero length), so
identities such as f(1) = 1 and f'(1) = χ hold to round-off. ReLU, leaky ReLU, linear and erf also have closed forms
(:mod:`theory.activations`), which the library uses and the tests compare against.

Differentiability. Differentiating a quadrature through ``√(1 − c²)`` gives ``0 · ∞`` at ``c = ±1``. The
two-variable expectation therefore carries its own JVP, built from Gaussian integration by parts (Price's theorem)::

    ∂/∂c  E[f(u1) g(u2)] = √(q1 q2) · E[f'(u1) g'(u2)]
    ∂/∂q1 E[f(u1) g(u2)] = E[u1 f'(u1) · g(u2)] / (2 q1)        (and symmetrically for q2)

Each right-hand side is again a two-variable expectation, so derivatives of every order are defined, finite at
``c = ±1``, and only need first derivatives of ``f`` and ``g`` (so they are right for ReLU, whose second derivative
autodiff gets wrong). Derivatives with respect to ``q`` require ``q > 0``.

The quadrature ``order`` (Gauss–Legendre nodes per segment) is an argument of every function that integrates; :data:`DEFAULT_ORDER` is enough for float64 round-off in the cases above.

Several expectations over the same ``(q1, q2, c)`` share one node set (:func:`expect2_pairs`): the mean-field
kernels need ``E[φφ]`` and ``E[φ'φ']`` together, and their JVPs need four more of the same kind.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from theory._validation import check_int, check_interval, check_nonnegative

Array = jax.Array
Elementwise = Callable[[Array], Array]

DEFAULT_ORDER = 64
"""Default quadrature order: Gauss–Legendre nodes per segment (2 segments in 1-D, 2 × 4 in 2-D)."""

Z_MAX = 10.0
"""Where the split rule truncates the standard normal (its tail mass beyond is below 1e-22)."""


def float_dtype() -> jnp.dtype:
  """The floating dtype in force: float64 when ``jax_enable_x64`` is on, else float32."""
  return jnp.result_type(float)


@functools.lru_cache(maxsize=None)
def _legendre_rule(order: int) -> tuple[np.ndarray, np.ndarray]:
  return np.polynomial.legendre.leggauss(order)


def _segment(anchor: Array, direction: Array, length: Array, scale: Array, order: int) -> tuple[Array, Array]:
  """Nodes and weights of ``∫ h(z) ϕ(z) dz`` over ``z = anchor + direction·scale·sinh(t)``, ``z`` running
  ``length`` away from ``anchor`` (arguments broadcast; the result gains a trailing axis of ``order`` nodes)."""
  x, w = (jnp.asarray(v, anchor.dtype) for v in _legendre_rule(order))
  e = lambda v: jnp.asarray(v, anchor.dtype)[..., None]
  t_max = jnp.arcsinh(e(length) / e(scale))
  t = 0.5 * t_max * (x + 1.0)
  z = e(anchor) + e(direction) * e(scale) * jnp.sinh(t)
  weights = 0.5 * t_max * w * e(scale) * jnp.cosh(t) * jnp.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
  return z, weights


def _resolution(variance: Array) -> Array:
  """Node scale in z: 1, or 1/√variance when φ(√variance·z) varies faster than the Gaussian."""
  return jnp.minimum(1.0, jax.lax.rsqrt(jnp.maximum(variance, 1e-30)))


def split_rule(q: Array, order: int = DEFAULT_ORDER) -> tuple[Array, Array]:
  """Nodes and weights in ``z`` of the split, sinh-mapped rule for ``E[h(√q Z)]`` (see the module docstring).

  Args:
    q: variance(s) ``>= 0``, any shape.
    order: Gauss–Legendre nodes per half-line (the rule has ``2·order`` nodes).

  Returns:
    ``(z, weights)`` of shape ``q.shape + (2·order,)`` with ``Σ weights · h(√q z) ≈ E[h(√q Z)]``.
  """
  q = jnp.asarray(q, float_dtype())
  order = check_int("order", order, 1)
  zero, scale = jnp.zeros_like(q), _resolution(q)
  halves = [_segment(zero, sign * jnp.ones_like(q), Z_MAX, scale, order) for sign in (1.0, -1.0)]
  return tuple(jnp.concatenate(parts, axis=-1) for parts in zip(*halves))


def _kink_rule(mean: Array, std: Array, order: int) -> tuple[Array, Array]:
  """Rule in ``z`` for ``E[g(mean + std·Z)]`` when ``g`` may have a kink at 0, i.e. at ``z* = −mean/std``.

  Four sinh-mapped segments: from ``z*`` outwards; from ``z*`` half-way to the Gaussian's centre 0 and from 0
  half-way back (each anchored at its own end, so the kink is resolved at the scale of ``g`` and the centre at the
  Gaussian's); from 0 outwards on the other side. ``z*`` is clipped to ``[−Z_MAX, Z_MAX]``: a kink further out sits
  where the Gaussian has no mass. (With three segments, the middle one anchored at the kink, a far kink, as at
  ``c → ±1``, pulled the nodes away from the Gaussian's bulk: 4e-5 relative error in ``E[tanh tanh]`` at
  ``c = 1 − 1e-7`` and order 16 against 2e-7 at ``c = 1``; now 2e-7 at both.)
  """
  kink = jnp.clip(-mean / jnp.where(std > 0, std, 1.0), -Z_MAX, Z_MAX)
  kink = jnp.where(std > 0, kink, 0.0)
  away = jnp.where(kink >= 0, 1.0, -1.0)  # direction from 0 towards (and past) the kink
  scale = _resolution(std**2)
  centre = jnp.zeros_like(kink)
  half = 0.5 * jnp.abs(kink)
  segments = [
      _segment(kink, away, Z_MAX - jnp.abs(kink), scale, order),  # the kink's outer side
      _segment(kink, -away, half, scale, order),  # from the kink half-way to the centre
      _segment(centre, away, half, scale, order),  # from the centre half-way to the kink
      _segment(centre, -away, Z_MAX, scale, order),  # the centre's other side
  ]
  return tuple(jnp.concatenate(parts, axis=-1) for parts in zip(*segments))


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

  ``u1 = √q1 Z1``, ``u2 = √q2 (c Z1 + √(1 − c²) Z2)`` ([R] App. B.1.1). The split rule in ``Z1`` and a
  four-segment rule cut at the kink in ``Z2`` given ``Z1``, with a Price's-theorem JVP (see the module docstring),
  so ``∂/∂c`` is finite and exact at ``c = ±1``.

  Args:
    f: elementwise function of ``u1``.
    g: elementwise function of ``u2``.
    q1: variance of ``u1``, ``>= 0`` (``> 0`` to differentiate in it).
    q2: variance of ``u2``, ``>= 0``.
    c: correlation in ``[-1, 1]``.
    order: quadrature order (about ``10·order²`` evaluations).

  Returns:
    The expectation, broadcast over the shapes of ``q1``, ``q2`` and ``c``.
  """
  return expect2_pairs(((f, g),), q1, q2, c, order)[0]


def expect2_pairs(
    pairs: Sequence[tuple[Elementwise, Elementwise]],
    q1: Array,
    q2: Array,
    c: Array,
    order: int = DEFAULT_ORDER,
) -> tuple[Array, ...]:
  """``E[f(u1) g(u2)]`` for several pairs ``(f, g)`` on one node set (as :func:`expect2`, which it generalises).

  The nodes depend only on ``(q1, q2, c)``, so the pairs share them: ``E[φφ]`` and ``E[φ'φ']`` together cost one
  rule, not two. Each expectation carries the Price's-theorem JVP of :func:`expect2`.

  Args:
    pairs: a non-empty sequence of ``(f, g)`` elementwise functions.
    q1: variance of ``u1``, ``>= 0``.
    q2: variance of ``u2``, ``>= 0``.
    c: correlation in ``[-1, 1]``.
    order: quadrature order.

  Returns:
    One expectation per pair, each broadcast over the shapes of ``q1``, ``q2`` and ``c``.
  """
  pairs = tuple(tuple(pair) for pair in pairs)
  if not pairs or any(len(pair) != 2 or not all(map(callable, pair)) for pair in pairs):
    raise ValueError(f"pairs must be a non-empty sequence of (f, g) callables; got {pairs!r}")
  check_nonnegative("q1", q1)
  check_nonnegative("q2", q2)
  check_interval("c", c, -1.0, 1.0)
  check_int("order", order, 1)
  dtype = float_dtype()
  q1, q2, c = (jnp.asarray(v, dtype) for v in (q1, q2, c))
  return _integrate_pairs(pairs, order, q1, q2, c)


def _outer_rule(q1: Array, q2: Array, c: Array, s: Array, order: int) -> tuple[Array, Array]:
  """The rule in ``Z1`` of :func:`expect2`: per half-line, ``[0, z_s]`` at the scale ``s = √(1 − c²)`` and
  ``[z_s, Z_MAX]`` as in :func:`split_rule` (at the finer of the scales of ``φ(√q1 z)`` and ``φ(√q2 c z)``), with
  ``z_s = min(10 s, 0.5)``.

  Given ``Z1 = z1`` the inner expectation smooths a kink of ``g`` at ``u2 = 0`` into a ramp of width ``s/|c|``
  around ``z1 = 0``; near ``c = ±1`` the split rule alone does not resolve it (1e-4 relative error in the step
  function's ``E[1(u1>0) 1(u2>0)]`` at ``c = 1 − 1e-7`` and order 64; 7e-11 with the extra segments, which carry
  ``max(order/4, 8)`` nodes each).
  """
  # Given Z1 = z1 the integrand varies on the scale of φ(√q1 z1) and, through u2's mean √q2 c z1, of √q2 |c|.
  zero, scale = jnp.zeros_like(q1), _resolution(jnp.maximum(q1, q2 * c * c))
  near = jnp.minimum(10.0 * s, 0.5)
  ramp = jnp.maximum(jnp.minimum(scale, s), 1e-30)
  parts = []
  for sign in (1.0, -1.0):
    direction = sign * jnp.ones_like(q1)
    parts.append(_segment(zero, direction, near, ramp, max(order // 4, 8)))
    parts.append(_segment(sign * near, direction, Z_MAX - near, scale, order))
  return tuple(jnp.concatenate(rule, axis=-1) for rule in zip(*parts))


class _Explicit:
  """An elementwise function ``f(u)`` rewritten as ``f(u, constants)``: the arrays it closes over (an activation's
  parameters, traced under ``jax.grad``) become an explicit argument, so that the custom JVP below can differentiate
  in them (a closure over a tracer would silently get a zero tangent)."""

  def __init__(self, fn: Callable, start: int, count: int):
    self.fn, self.start, self.count = fn, start, count

  def __call__(self, u: Array, constants: tuple) -> Array:
    own = constants[self.start:self.start + self.count]
    f = lambda v: self.fn(v, *own)
    for _ in range(jnp.ndim(u)):
      f = jax.vmap(f)
    return f(u)


def _explicit_derivative(f) -> Callable:
  return lambda u, constants: jax.jvp(lambda v: f(v, constants), (u,), (jnp.ones_like(u),))[1]


def _times_u(f) -> Callable:
  return lambda u, constants: u * f(u, constants)


def _integrate_pairs(pairs, order: int, q1: Array, q2: Array, c: Array) -> tuple[Array, ...]:
  """:func:`expect2_pairs` on validated arrays (the pairs' closed-over arrays made explicit)."""
  example = jnp.zeros((), q1.dtype)
  spec, constants = [], []
  for pair in pairs:
    explicit = []
    for fn in pair:
      converted, own = jax.closure_convert(lambda u, fn=fn: fn(u), example)  # a lambda: Activation is unhashable
      explicit.append(_Explicit(converted, len(constants), len(own)))
      constants.extend(own)
    spec.append(tuple(explicit))
  return _expect2(tuple(spec), order, tuple(constants), q1, q2, c)


def _expect2_quadrature(spec, order: int, constants: tuple, q1: Array, q2: Array, c: Array) -> tuple[Array, ...]:
  q1, q2, c = jnp.broadcast_arrays(q1, q2, c)
  s = jnp.sqrt(jnp.clip((1.0 - c) * (1.0 + c), 0.0, None))  # √(1 − c²) without cancellation near ±1
  z1, w1 = _outer_rule(q1, q2, c, s, order)  # (..., 2·(order + max(order/4, 8)))
  e = lambda v: v[..., None]
  # Given Z1 = z1, u2 = mean + std·Z2 with mean = √q2 c z1 and std = √q2 √(1 − c²).
  mean = e(jnp.sqrt(q2) * c) * z1
  std = jnp.broadcast_to(e(jnp.sqrt(q2) * s), mean.shape)
  z2, w2 = _kink_rule(mean, std, order)  # (..., outer nodes, 4·order)
  u1 = e(jnp.sqrt(q1)) * z1
  u2 = mean[..., None] + std[..., None] * z2
  return tuple(jnp.sum(w1 * f(u1, constants) * jnp.sum(w2 * g(u2, constants), axis=-1), axis=-1) for f, g in spec)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _expect2(spec, order: int, constants: tuple, q1: Array, q2: Array, c: Array) -> tuple[Array, ...]:
  return _expect2_quadrature(spec, order, constants, q1, q2, c)


def _expect2_jvp(spec, order, primals, tangents):
  constants, q1, q2, c = primals
  d_constants, dq1, dq2, dc = tangents
  values = _expect2(spec, order, constants, q1, q2, c)
  zero = lambda t: isinstance(t, jax.custom_derivatives.SymbolicZero)
  out = [jnp.zeros_like(v) for v in values]
  if not (zero(dq1) and zero(dq2) and zero(dc)):
    # Price's theorem per pair: ∂/∂q_i E[f g] = E[u_i f'(u_i) ...] / (2 q_i), ∂/∂c E[f g] = √(q1 q2) E[f' g'];
    # the 3·len(spec) expectations share one node set. The q-derivatives are undefined at q_i = 0, where the
    # tangent is taken as 0.
    moved = []
    for f, g in spec:
      f1, g1 = _explicit_derivative(f), _explicit_derivative(g)
      moved += [(_times_u(f1), g), (f, _times_u(g1)), (f1, g1)]
    slopes = _expect2(tuple(moved), order, constants, q1, q2, c)
    instantiate = lambda t: jnp.zeros_like(q1) if zero(t) else t
    dq1, dq2, dc = map(instantiate, (dq1, dq2, dc))
    safe1, safe2 = jnp.where(q1 > 0, q1, 1.0), jnp.where(q2 > 0, q2, 1.0)
    for i in range(len(spec)):
      d_q1, d_q2, d_c = slopes[3 * i:3 * i + 3]
      out[i] = out[i] + (jnp.where(q1 > 0, d_q1 / (2.0 * safe1) * dq1, 0.0)
                         + jnp.where(q2 > 0, d_q2 / (2.0 * safe2) * dq2, 0.0) + jnp.sqrt(q1 * q2) * d_c * dc)
  if constants and not all(map(zero, d_constants)):
    # The nodes do not depend on the functions' parameters: differentiate the integrand at fixed nodes.
    d_constants = tuple(jnp.zeros_like(k) if zero(t) else t for k, t in zip(constants, d_constants))
    _, by_constants = jax.jvp(lambda k: _expect2_quadrature(spec, order, k, q1, q2, c), (constants,),
                              (d_constants,))
    out = [o + t for o, t in zip(out, by_constants)]
  return values, tuple(out)


_expect2.defjvp(_expect2_jvp, symbolic_zeros=True)
