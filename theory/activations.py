"""Activation functions φ and the Gaussian moments that the mean-field maps need.

An :class:`Activation` is a JAX pytree: its numeric parameters (leaky ReLU's slope, ELU's α) are leaves, so
``jax.vmap`` and ``jax.grad`` reach them; its name and function are static. Derivatives φ', φ'' come from autodiff.

The maps of THEORY.md §2 ([R] App. A.1, B.1) use four moments of a centred Gaussian pre-activation, which
:class:`Activation` provides::

    second_moment(q)                     E[φ(√q Z)²]
    derivative_second_moment(q)          E[φ'(√q Z)²]
    cross_moment(q1, q2, c)              E[φ(u1) φ(u2)]
    derivative_cross_moment(q1, q2, c)   E[φ'(u1) φ'(u2)]

with ``u1, u2`` as in :func:`theory.gaussian.expect2`. ReLU, leaky ReLU, linear and erf use closed forms (the
arc-cosine kernel of Cho & Saul 2009 and the arcsine kernel of Williams 1997); every other activation, and any
callable a user passes, uses the quadrature of :mod:`theory.gaussian`, which splits the line at 0. A kink of φ away
from 0 (hard-tanh, a shifted ReLU) is integrated without a split, so only to algebraic accuracy, and the slope
``dV/dq`` then misses the kink's delta in φ'' where φ ≠ 0: register such activations with a closed form.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from theory import gaussian
from theory._validation import check_finite, check_positive, is_concrete

Array = jax.Array


class ClosedForm(NamedTuple):
  """Closed-form Gaussian moments of an activation; each takes ``(params, ...)`` with ``params`` a dict."""

  second_moment: Callable[..., Array]
  derivative_second_moment: Callable[..., Array]
  cross_moment: Callable[..., Array]
  derivative_cross_moment: Callable[..., Array]


@dataclasses.dataclass(frozen=True)
class Activation:
  """A pointwise activation φ with its parameters and, where known, closed-form Gaussian moments.

  Attributes:
    name: registry name (or the callable's ``__name__``).
    fn: ``fn(x, **params) -> φ(x)``, elementwise and JAX-traceable.
    params: numeric parameters (pytree leaves, so they can be vmapped or differentiated).
    closed_form: closed-form moments, or ``None`` to integrate numerically.
  """

  name: str
  fn: Callable[..., Array]
  params: Mapping[str, Array] = dataclasses.field(default_factory=dict)
  closed_form: ClosedForm | None = None

  def __call__(self, x: Array) -> Array:
    """φ(x)."""
    return self.fn(x, **self.params)

  def derivative(self, x: Array) -> Array:
    """φ'(x) by autodiff."""
    return gaussian.derivative(self)(x)

  def second_derivative(self, x: Array) -> Array:
    """φ''(x) by autodiff (0 almost everywhere for piecewise-linear φ; the kink's delta is not represented)."""
    return gaussian.derivative(gaussian.derivative(self))(x)

  def with_params(self, **params: Any) -> "Activation":
    """A copy with some parameters replaced; raises ``ValueError`` for a name this activation does not take."""
    unknown = set(params) - set(self.params)
    if unknown:
      raise ValueError(
          f"activation {self.name!r} takes parameters {sorted(self.params)}; got unknown {sorted(unknown)}")
    return dataclasses.replace(self, params={**self.params, **params})

  # Gaussian moments ([R] App. B.1.1): closed form when registered, else the quadrature of theory.gaussian.

  def second_moment(self, q: Array, order: int = gaussian.DEFAULT_ORDER) -> Array:
    """``E[φ(√q Z)²]``."""
    if self.closed_form is not None:
      return self.closed_form.second_moment(self.params, _as_float(q))
    return gaussian.expect(lambda u: self(u) ** 2, q, order)

  def derivative_second_moment(self, q: Array, order: int = gaussian.DEFAULT_ORDER) -> Array:
    """``E[φ'(√q Z)²]``."""
    if self.closed_form is not None:
      return self.closed_form.derivative_second_moment(self.params, _as_float(q))
    return gaussian.expect(lambda u: self.derivative(u) ** 2, q, order)

  def cross_moment(self, q1: Array, q2: Array, c: Array, order: int = gaussian.DEFAULT_ORDER) -> Array:
    """``E[φ(u1) φ(u2)]`` with ``Var u1 = q1``, ``Var u2 = q2``, ``Corr(u1, u2) = c``."""
    if self.closed_form is not None:
      return _closed_cross(self.closed_form, self.params, *map(_as_float, (q1, q2, c)))
    return gaussian.expect2(self, self, q1, q2, c, order)

  def derivative_cross_moment(self, q1: Array, q2: Array, c: Array,
                              order: int = gaussian.DEFAULT_ORDER) -> Array:
    """``E[φ'(u1) φ'(u2)]``; equals ``∂/∂c E[φ(u1)φ(u2)] / √(q1 q2)`` (Price's theorem)."""
    if self.closed_form is not None:
      return self.closed_form.derivative_cross_moment(self.params, *map(_as_float, (q1, q2, c)))
    return gaussian.expect2(self.derivative, self.derivative, q1, q2, c, order)


def _flatten(act: Activation):
  keys = tuple(act.params)
  return tuple(act.params[k] for k in keys), (act.name, act.fn, keys, act.closed_form)


def _unflatten(aux, children) -> Activation:
  name, fn, keys, closed_form = aux
  return Activation(name, fn, dict(zip(keys, children)), closed_form)


jax.tree_util.register_pytree_node(Activation, _flatten, _unflatten)


def _as_float(x: Array) -> Array:
  return jnp.asarray(x, gaussian.float_dtype())


# Closed-form cross moments differentiate in c through Price's theorem: autodiff of c·arcsin(c) + √(1 − c²) would
# give ∞ − ∞ at c = ±1, while the true derivative √(q1 q2)·E[φ'φ'] is finite.
@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _closed_cross(form, params, q1, q2, c):
  return form.cross_moment(params, q1, q2, c)


@_closed_cross.defjvp
def _closed_cross_jvp(form, primals, tangents):
  params, q1, q2, c = primals
  dparams, dq1, dq2, dc = tangents
  value, d_rest = jax.jvp(lambda p, a, b: form.cross_moment(p, a, b, c), (params, q1, q2), (dparams, dq1, dq2))
  d_c = jnp.sqrt(q1 * q2) * form.derivative_cross_moment(params, q1, q2, c) * dc
  return value, d_rest + d_c


# ---------------------------------------------------------------------------------------------------------------
# Closed forms.
# Leaky ReLU with slope a: φ(u) = ((1 + a)/2) u + ((1 − a)/2)|u|, so with Σ12 = c√(q1 q2)
#   E[φ(u1)φ(u2)]   = ((1+a)/2)² Σ12 + ((1−a)/2)² (2/π)√(q1 q2)(√(1−c²) + c arcsin c)     (Cho & Saul 2009)
#   E[φ'(u1)φ'(u2)] = ((1+a)/2)² + ((1−a)/2)² (2/π) arcsin c
# ReLU is a = 0 and linear is a = 1. Erf (Williams 1997):
#   E[erf(u1)erf(u2)]   = (2/π) arcsin(2Σ12 / √((1 + 2q1)(1 + 2q2)))
#   E[erf'(u1)erf'(u2)] = (4/π) / √((1 + 2q1)(1 + 2q2) − 4Σ12²)
# ---------------------------------------------------------------------------------------------------------------


def _leaky_halves(params):
  a = params["negative_slope"]
  return (1.0 + a) / 2.0, (1.0 - a) / 2.0


def _leaky_second_moment(params, q):
  even, odd = _leaky_halves(params)
  return (even**2 + odd**2) * q


def _leaky_derivative_second_moment(params, q):
  even, odd = _leaky_halves(params)
  return (even**2 + odd**2) * jnp.ones_like(q)


def _leaky_cross_moment(params, q1, q2, c):
  even, odd = _leaky_halves(params)
  scale = jnp.sqrt(q1 * q2)
  s = jnp.sqrt(jnp.clip((1.0 - c) * (1.0 + c), 0.0, None))
  return scale * (even**2 * c + odd**2 * (2.0 / math.pi) * (s + c * jnp.arcsin(c)))


def _leaky_derivative_cross_moment(params, q1, q2, c):
  even, odd = _leaky_halves(params)
  return even**2 + odd**2 * (2.0 / math.pi) * jnp.arcsin(c) + 0.0 * (q1 + q2)


_LEAKY_FORM = ClosedForm(_leaky_second_moment, _leaky_derivative_second_moment, _leaky_cross_moment,
                         _leaky_derivative_cross_moment)


def _fixed_slope(slope: float) -> Callable[[dict], dict]:
  return lambda params: {"negative_slope": jnp.asarray(slope, gaussian.float_dtype())}


def _bind_params(form: ClosedForm, make_params: Callable[[dict], dict]) -> ClosedForm:
  return ClosedForm(*(lambda p, *a, fn=fn: fn(make_params(p), *a) for fn in form))


def _erf_cross_moment(params, q1, q2, c):
  del params
  sigma12 = c * jnp.sqrt(q1 * q2)
  return (2.0 / math.pi) * jnp.arcsin(2.0 * sigma12 / jnp.sqrt((1.0 + 2.0 * q1) * (1.0 + 2.0 * q2)))


def _erf_derivative_cross_moment(params, q1, q2, c):
  del params
  sigma12 = c * jnp.sqrt(q1 * q2)
  return (4.0 / math.pi) / jnp.sqrt((1.0 + 2.0 * q1) * (1.0 + 2.0 * q2) - 4.0 * sigma12**2)


_ERF_FORM = ClosedForm(
    second_moment=lambda p, q: _erf_cross_moment(p, q, q, jnp.ones_like(q)),
    derivative_second_moment=lambda p, q: _erf_derivative_cross_moment(p, q, q, jnp.ones_like(q)),
    cross_moment=_erf_cross_moment,
    derivative_cross_moment=_erf_derivative_cross_moment,
)

# ---------------------------------------------------------------------------------------------------------------
# The registry.
# ---------------------------------------------------------------------------------------------------------------

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _relu(x):
  return jnp.maximum(x, 0.0)


def _leaky_relu(x, negative_slope):
  return jnp.where(x >= 0, x, negative_slope * x)


def _linear(x):
  return x


# The negative branch is evaluated at where(x > 0, 0, x) rather than min(x, 0): autodiff of min at a tie gives
# 1/2, which would halve φ'(0⁻).
def _elu(x, alpha):
  return jnp.where(x > 0, x, alpha * jnp.expm1(jnp.where(x > 0, 0.0, x)))


def _selu(x):
  return _SELU_SCALE * jnp.where(x > 0, x, _SELU_ALPHA * jnp.expm1(jnp.where(x > 0, 0.0, x)))


def _gelu(x):
  return jax.nn.gelu(x, approximate=False)


@dataclasses.dataclass(frozen=True)
class _Entry:
  fn: Callable[..., Array]
  defaults: Mapping[str, float]
  closed_form: ClosedForm | None
  description: str
  checks: Mapping[str, Callable[[str, Any], None]]


_REGISTRY: dict[str, _Entry] = {}


def register_activation(
    name: str,
    fn: Callable[..., Array],
    *,
    defaults: Mapping[str, float] | None = None,
    closed_form: ClosedForm | None = None,
    description: str = "",
    checks: Mapping[str, Callable[[str, Any], None]] | None = None,
) -> None:
  """Adds an activation to the registry so that every function of :mod:`theory` accepts it by name.

  Args:
    name: registry key (lower case).
    fn: ``fn(x, **params)``, elementwise and JAX-traceable.
    defaults: default values of the parameters ``fn`` takes.
    closed_form: closed-form Gaussian moments, if known; otherwise quadrature is used.
    description: one line shown by ``available_activations``.
    checks: per-parameter validators ``check(name, value)`` raising ``ValueError``.
  """
  _REGISTRY[name.lower()] = _Entry(fn, dict(defaults or {}), closed_form, description, dict(checks or {}))


register_activation("relu", _relu, closed_form=_bind_params(_LEAKY_FORM, _fixed_slope(0.0)),
                    description="max(x, 0); arc-cosine kernel in closed form")
register_activation("leaky_relu", _leaky_relu, defaults={"negative_slope": 0.01}, closed_form=_LEAKY_FORM,
                    checks={"negative_slope": check_finite},
                    description="x if x >= 0 else negative_slope·x; closed form")
register_activation("linear", _linear, closed_form=_bind_params(_LEAKY_FORM, _fixed_slope(1.0)),
                    description="identity; closed form")
register_activation("tanh", jnp.tanh, description="hyperbolic tangent")
register_activation("erf", jax.scipy.special.erf, closed_form=_ERF_FORM,
                    description="error function; arcsine kernel in closed form")
register_activation("sigmoid", jax.nn.sigmoid, description="logistic 1/(1 + e^-x)")
register_activation("softplus", jax.nn.softplus, description="log(1 + e^x)")
register_activation("elu", _elu, defaults={"alpha": 1.0}, checks={"alpha": check_positive},
                    description="x if x > 0 else alpha·(e^x − 1)")
register_activation("selu", _selu, description="scaled ELU of Klambauer et al. 2017")
register_activation("gelu", _gelu, description="x·Φ(x), exact (erf) form")
register_activation("silu", jax.nn.silu, description="x·sigmoid(x), also called swish")
register_activation("swish", jax.nn.silu, description="alias of silu")


def available_activations() -> dict[str, str]:
  """Registry names mapped to one-line descriptions."""
  return {name: entry.description for name, entry in sorted(_REGISTRY.items())}


ActivationLike = str | Callable[[Array], Array] | Activation


PROBE = np.linspace(-10.0, 10.0, 41)
"""Inputs at which a user's callable must give finite values (the bulk of every pre-activation the maps integrate)."""


def _check_finite_on_a_grid(name: str, fn: Callable) -> None:
  """ValueError when ``fn`` is NaN or infinite somewhere on :data:`PROBE` (an expectation of it would be NaN and
  read as "no EOC"); nothing is checked when the values cannot be inspected (``fn`` closes over a tracer)."""
  try:
    with jax.ensure_compile_time_eval():
      values = fn(jnp.asarray(PROBE, gaussian.float_dtype()))
  except Exception:  # noqa: BLE001 - a callable that fails on arrays fails later with its own error, where it is used
    return
  if not is_concrete(values):
    return
  values = np.asarray(values)
  bad = ~np.isfinite(values) if values.shape == PROBE.shape else np.zeros(PROBE.shape, bool)
  if bad.any():
    raise ValueError(f"activation {name!r} is not finite at x = {PROBE[bad][:4].tolist()} (got "
                     f"{values[bad][:4].tolist()}); the mean-field maps need a finite φ on the real line")


def get_activation(spec: ActivationLike, **params: Any) -> Activation:
  """Resolves a name, a callable or an :class:`Activation` to an :class:`Activation`.

  Args:
    spec: a registry name (see :func:`available_activations`), any elementwise JAX-traceable callable
      ``φ(x)``, or an :class:`Activation` (returned with ``params`` applied).
    **params: parameter values overriding the defaults, e.g. ``negative_slope=0.2`` for ``"leaky_relu"``.

  Returns:
    The activation.

  Raises:
    ValueError: unknown name, unknown parameter, a parameter outside its valid range, or a callable that is NaN or
      infinite on ``[-10, 10]`` (:data:`PROBE`).
  """
  if isinstance(spec, Activation):
    return spec.with_params(**params) if params else spec
  if isinstance(spec, str):
    entry = _REGISTRY.get(spec.lower())
    if entry is None:
      raise ValueError(f"unknown activation {spec!r}; choose one of {sorted(_REGISTRY)} or pass a callable")
    unknown = set(params) - set(entry.defaults)
    if unknown:
      raise ValueError(f"activation {spec!r} takes parameters {sorted(entry.defaults)}; got {sorted(unknown)}")
    values = {**entry.defaults, **params}
    for key, value in values.items():
      if key in entry.checks and is_concrete(value):
        entry.checks[key](f"{spec}.{key}", value)
    values = {k: jnp.asarray(v, gaussian.float_dtype()) for k, v in values.items()}
    return Activation(spec.lower(), entry.fn, values, entry.closed_form)
  if callable(spec):
    if params:
      raise ValueError("parameters can only be given with a registry name; close over them in your callable")
    name = getattr(spec, "__name__", "custom")
    _check_finite_on_a_grid(name, spec)
    return Activation(name, spec)
  raise ValueError(f"activation must be a name, a callable or an Activation; got {type(spec).__name__}")
