"""The edge of chaos (EOC): its curve σw(σb), the phase of any (σb, σw), and phase diagrams.

The EOC is the set of (σb, σw) with ``χ(σb, σw) = σw² E[φ'(√q* Z)²] = 1`` at the stable fixed point ``q*`` of the
variance map ([R] §2.2 "Edge of Chaos", App. B.1.3; THEORY.md §2). Ordered phase: χ < 1, correlations converge to 1
and gradients vanish exponentially; chaotic phase: χ > 1, correlations converge to c* < 1 and gradients explode.

Solving the EOC. Eliminating σw with ``σw² = 1 / E[φ'(√q Z)²]`` turns the two conditions (fixed point and χ = 1)
into one equation in ``q`` (Hayou et al. 2019)::

    G(q) = σb² + E[φ(√q Z)²] / E[φ'(√q Z)²] − q = 0.

Its roots are bracketed on a log grid of ``q`` (several may exist), refined by bisection, and each is checked for
stability of the variance map, ``dV/dq = 1 + σw² E[φ φ''] < 1``. The whole solve is one compiled, vmapped program
over a vector of σb; a final Newton step makes ``jax.grad`` of σw and q* in σb (and in activation parameters) the
implicit-function derivative.

Every EOC point carries a :class:`EOCStatus` that says what was found, so no answer is a silent NaN:

* ``OK``: a stable q* with χ = 1.
* ``UNSTABLE``: χ = 1 only at an unstable q* (the variance map runs away from it; SiLU/GELU at small σb). Reported
  with the smallest such root.
* ``NONE``: no EOC at this σb (plain softplus; ReLU, leaky ReLU and linear at σb > 0). σw and q* are NaN.
* ``LIMIT``: σb = 0 and φ(0) = 0: q* = 0 and the EOC is the limit σw = 1/√E[φ'(√q Z)²] as q → 0, i.e.
  1/|φ'(0)| for smooth φ (tanh: σw = 1) and the root mean square of the one-sided slopes at a kink (SELU).
* ``SINGLE_POINT``: σb = 0 with a positively homogeneous φ (ReLU, leaky ReLU, linear): every q is a fixed point,
  the EOC is the single point σw = 1/√E[φ'²] (ReLU: √2); q* is NaN because it is not unique.
"""

from __future__ import annotations

import enum
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from theory import _roots, gaussian, maps
from theory._pytree import json_numbers, pytree_dataclass
from theory._validation import check_nonnegative, check_positive
from theory.activations import Activation, ActivationLike, get_activation

Array = jax.Array

MAX_ROOTS = 4
"""At most this many roots of ``G(q)`` are refined per σb (the smallest ones)."""

PHASE_TOLERANCE = 1e-4
"""Default tolerance on ``|χ − 1|`` within which a point is classed as on the EOC."""


class EOCStatus(enum.IntEnum):
  """What the EOC solver found at one σb (see the module docstring)."""

  OK = 0
  UNSTABLE = 1
  NONE = 2
  LIMIT = 3
  SINGLE_POINT = 4

  @property
  def message(self) -> str:
    """One sentence for people."""
    return _STATUS_MESSAGES[self]


_STATUS_MESSAGES = {
    EOCStatus.OK: "EOC at a stable fixed point q*",
    EOCStatus.UNSTABLE: "chi = 1 only at an unstable fixed point q* (the variance map runs away from it)",
    EOCStatus.NONE: "no EOC at this sigma_b: chi = 1 has no solution with a finite fixed point q*",
    EOCStatus.LIMIT: ("sigma_b = 0 and phi(0) = 0: q* = 0 and the EOC is the limit sigma_w = 1/sqrt(E[phi'^2]) as "
                      "q -> 0, i.e. 1/|phi'(0)| for smooth phi"),
    EOCStatus.SINGLE_POINT: ("sigma_b = 0 with a positively homogeneous phi: every q is a fixed point and the EOC "
                             "is this single point"),
}


class Phase(enum.IntEnum):
  """Phase of a point (σb, σw) ([R] §2.2, App. B.1.3)."""

  ORDERED = 0
  EOC = 1
  CHAOTIC = 2


class NoEOCError(ValueError):
  """Raised by :func:`eoc_point` when the activation has no EOC at the requested σb."""


@pytree_dataclass
class EOCPoint:
  """Points on the EOC; fields are scalars for one σb, arrays for a curve (leaves of a pytree, so vmap-able).

  Attributes:
    sigma_b: bias standard deviation.
    sigma_w: weight standard deviation with χ = 1 (NaN where ``status`` is ``NONE``).
    q_star: fixed point of the variance map (NaN for ``NONE`` and ``SINGLE_POINT``).
    chi: χ at (σb, σw, q*), 1 up to round-off where the EOC exists.
    variance_slope: ``dV/dq`` at q*; the point is stable iff it is below 1.
    status: :class:`EOCStatus` codes.
  """

  sigma_b: Array
  sigma_w: Array
  q_star: Array
  chi: Array
  variance_slope: Array
  status: Array

  @property
  def exists(self) -> Array:
    """Whether an EOC σw exists (any status but ``NONE``)."""
    return self.status != EOCStatus.NONE

  @property
  def stable(self) -> Array:
    """Whether q* is a stable fixed point (status ``OK``, ``LIMIT`` or ``SINGLE_POINT``)."""
    return (self.status != EOCStatus.NONE) & (self.status != EOCStatus.UNSTABLE)

  def to_dict(self) -> dict[str, Any]:
    """JSON-ready lists: NaN becomes ``None`` and every status comes with its name and message."""
    codes = np.atleast_1d(np.asarray(self.status)).tolist()
    return {
        "sigma_b": _json_list(self.sigma_b),
        "sigma_w": _json_list(self.sigma_w),
        "q_star": _json_list(self.q_star),
        "chi": _json_list(self.chi),
        "variance_slope": _json_list(self.variance_slope),
        "status": [EOCStatus(c).name.lower() for c in codes],
        "status_messages": {EOCStatus(c).name.lower(): EOCStatus(c).message for c in sorted(set(codes))},
    }


def _json_list(values) -> list[float | None]:
  return json_numbers(np.atleast_1d(np.asarray(values)))


@pytree_dataclass
class PhasePoint:
  """Mean-field summary of one (σb, σw) (fields may be arrays for a batch).

  Attributes:
    sigma_b: bias standard deviation.
    sigma_w: weight standard deviation.
    q_star: attracting fixed point of the variance map (``inf`` when the variance diverges).
    chi: χ at q* (for a diverging variance, its large-q limit evaluated at :data:`theory.maps.Q_DIVERGED`).
    variance_slope: ``dV/dq`` at q* (``inf`` when the variance diverges).
    c_star: stable fixed point of the correlation map.
    xi_q: depth scale of the variance.
    xi_c: depth scale of the correlation (``inf`` for points classed as on the EOC).
    phase: :class:`Phase` codes.
  """

  sigma_b: Array
  sigma_w: Array
  q_star: Array
  chi: Array
  variance_slope: Array
  c_star: Array
  xi_q: Array
  xi_c: Array
  phase: Array

  def to_dict(self) -> dict[str, Any]:
    """JSON-ready values (``inf``/NaN become ``None``, the phase its name)."""
    out: dict[str, Any] = {}
    for name in ("sigma_b", "sigma_w", "q_star", "chi", "variance_slope", "c_star", "xi_q", "xi_c"):
      values = _json_list(getattr(self, name))
      out[name] = values[0] if np.ndim(getattr(self, name)) == 0 else values
    phases = [Phase(p).name.lower() for p in np.atleast_1d(np.asarray(self.phase)).tolist()]
    out["phase"] = phases[0] if np.ndim(self.phase) == 0 else phases
    return out


# ---------------------------------------------------------------------------------------------------------------
# The EOC curve.
# ---------------------------------------------------------------------------------------------------------------


def eoc_curve(activation: ActivationLike, sigma_b, *, order: int = maps.ORDER) -> EOCPoint:
  """The EOC σw for each σb, in one compiled call ([R] App. B.1.3; THEORY.md §2).

  Args:
    activation: name, callable or :class:`~theory.activations.Activation`.
    sigma_b: bias standard deviations ``>= 0``, any shape (typically a vector).
    order: quadrature order.

  Returns:
    An :class:`EOCPoint` whose fields have the shape of ``sigma_b``; read ``status`` before the numbers.
  """
  act = get_activation(activation)
  check_nonnegative("sigma_b", sigma_b)
  sigma_b = jnp.asarray(sigma_b, gaussian.float_dtype())
  flat = _eoc_batch(act, sigma_b.reshape(-1), order)
  return jax.tree_util.tree_map(lambda x: x.reshape(sigma_b.shape), flat)


def eoc_point(activation: ActivationLike, sigma_b: float, *, require_stable: bool = False,
              order: int = maps.ORDER) -> EOCPoint:
  """The EOC point at one σb, or an error that says why there is none.

  Args:
    activation: name, callable or Activation.
    sigma_b: bias standard deviation, ``>= 0``.
    require_stable: also raise when χ = 1 only at an unstable q*.
    order: quadrature order.

  Returns:
    A scalar :class:`EOCPoint`.

  Raises:
    NoEOCError: no EOC at this σb (or only an unstable one, with ``require_stable``).
  """
  point = eoc_curve(activation, sigma_b, order=order)
  status = EOCStatus(int(point.status))
  name = get_activation(activation).name
  if status == EOCStatus.NONE or (require_stable and status == EOCStatus.UNSTABLE):
    raise NoEOCError(f"activation {name!r} at sigma_b={float(sigma_b)}: {status.message}")
  return point


def eoc_sigma_w(activation: ActivationLike, sigma_b: float, **kwargs: Any) -> float:
  """The EOC σw at one σb as a float; raises :class:`NoEOCError` where there is none (see :func:`eoc_point`)."""
  return float(eoc_point(activation, sigma_b, **kwargs).sigma_w)


@functools.partial(jax.jit, static_argnums=(2,))
def _eoc_batch(act: Activation, sigma_b: Array, order: int) -> EOCPoint:
  return jax.vmap(lambda b: _eoc_scalar(act, b, order))(sigma_b)


def _eoc_scalar(act: Activation, sigma_b: Array, order: int) -> EOCPoint:
  dtype = sigma_b.dtype
  grid = maps.q_grid(dtype)[1:]
  m2 = lambda q: act.second_moment(q, order)
  d2 = lambda q: act.derivative_second_moment(q, order)
  gap = lambda q: sigma_b**2 + m2(q) / d2(q) - q

  values = gap(grid)
  indices, valid = _roots.sign_changes(values, MAX_ROOTS)
  # A sign change within round-off of G (|G| ~ eps·q from cancelling E[φ²]/E[φ'²] against q) is not a root.
  noise = 64 * jnp.finfo(dtype).eps * jnp.maximum(grid[indices + 1], sigma_b**2)
  valid &= jnp.maximum(jnp.abs(values[indices]), jnp.abs(values[indices + 1])) > noise
  roots = _roots.bisect(gap, grid[indices], grid[indices + 1], _roots.bisection_steps(dtype))
  # One Newton step at the (gradient-stopped) roots: same values, implicit-function derivatives in σb and in the
  # activation's parameters.
  roots = jax.lax.stop_gradient(roots)
  gap_value, gap_slope = jax.jvp(gap, (roots,), (jnp.ones_like(roots),))
  roots = roots - gap_value / jnp.where(gap_slope != 0, jax.lax.stop_gradient(gap_slope), 1.0)
  sigma_w_roots = jax.lax.rsqrt(d2(roots))
  slopes = maps._variance_slope(act, sigma_w_roots, roots, order)
  stable = valid & (slopes < 1.0)
  pick = jnp.where(jnp.any(stable), jnp.argmax(stable), jnp.argmax(valid))
  q_root, slope_root = roots[pick], slopes[pick]
  found = jnp.any(valid)
  status = jnp.where(jnp.any(stable), EOCStatus.OK, jnp.where(found, EOCStatus.UNSTABLE, EOCStatus.NONE))

  # Positively homogeneous φ (E[φ'²] independent of q): G(q) = σb² exactly, so no EOC unless σb = 0.
  d2_grid = d2(jnp.logspace(-6, 6, 25, dtype=dtype))
  homogeneous = (jnp.max(d2_grid) - jnp.min(d2_grid)) <= 1e-5 * jnp.max(jnp.abs(d2_grid))
  status = jnp.where(homogeneous, EOCStatus.NONE, status)
  # σb = 0 with φ(0) = 0: q* = 0 is the attracting point and G has no sign change near it. The limit σw is
  # 1/√E[φ'(√q Z)²] as q → 0, i.e. 1/|φ'(0)| for smooth φ (and the mean of both one-sided slopes' squares at a kink).
  zero, tiny = jnp.zeros((), dtype), jnp.asarray(1e-12, dtype)
  at_origin = (sigma_b == 0) & (jnp.abs(act(zero)) < 1e-12)
  unit_sigma_w = jax.lax.rsqrt(d2(jnp.ones((), dtype)))
  limit_sigma_w = jax.lax.rsqrt(d2(tiny))

  nan = jnp.full((), jnp.nan, dtype)
  status = jnp.where(at_origin, jnp.where(homogeneous, EOCStatus.SINGLE_POINT, EOCStatus.LIMIT), status)
  found &= ~homogeneous
  sigma_w = jnp.select([status == EOCStatus.SINGLE_POINT, status == EOCStatus.LIMIT, found],
                       [unit_sigma_w, limit_sigma_w, sigma_w_roots[pick]], nan)
  q_star = jnp.select([status == EOCStatus.SINGLE_POINT, status == EOCStatus.LIMIT, found], [nan, zero, q_root],
                      nan)
  q_for_chi = jnp.where(status == EOCStatus.SINGLE_POINT, 1.0, jnp.where(jnp.isfinite(q_star), q_star, 1.0))
  q_for_chi = jnp.maximum(q_for_chi, tiny)
  chi = jnp.where(status == EOCStatus.NONE, nan, sigma_w**2 * d2(q_for_chi))
  slope = jnp.where(status == EOCStatus.NONE, nan,
                    jnp.where(at_origin, maps._variance_slope(act, sigma_w, q_for_chi, order), slope_root))
  return EOCPoint(sigma_b, sigma_w, q_star, chi, slope, status.astype(jnp.int32))


# ---------------------------------------------------------------------------------------------------------------
# Phases.
# ---------------------------------------------------------------------------------------------------------------


def phase(activation: ActivationLike, sigma_b, sigma_w, *, tolerance: float = PHASE_TOLERANCE,
          order: int = maps.ORDER) -> PhasePoint:
  """Phase, q*, χ, c* and depth scales of (σb, σw) ([R] App. B.1.3-B.1.4; THEORY.md §2).

  Args:
    activation: name, callable or Activation.
    sigma_b: bias standard deviation(s), ``>= 0``.
    sigma_w: weight standard deviation(s), ``> 0`` (broadcast against ``sigma_b``).
    tolerance: ``|χ − 1| <= tolerance`` counts as the EOC.
    order: quadrature order.

  Returns:
    A :class:`PhasePoint` shaped like the broadcast of ``sigma_b`` and ``sigma_w``.
  """
  act = get_activation(activation)
  check_nonnegative("sigma_b", sigma_b)
  check_positive("sigma_w", sigma_w)
  check_positive("tolerance", tolerance)
  dtype = gaussian.float_dtype()
  sigma_b, sigma_w = jnp.broadcast_arrays(jnp.asarray(sigma_b, dtype), jnp.asarray(sigma_w, dtype))
  flat = _phase_batch(act, sigma_b.reshape(-1), sigma_w.reshape(-1), jnp.asarray(tolerance, dtype), order)
  return jax.tree_util.tree_map(lambda x: x.reshape(sigma_b.shape), flat)


PHASE_BATCH = 16
"""Points of a phase batch evaluated together; the rest are mapped over in sequence, which bounds memory (each
point brackets c* on a grid of 96 correlations, each a two-dimensional quadrature)."""


@functools.partial(jax.jit, static_argnums=(4,))
def _phase_batch(act, sigma_b, sigma_w, tolerance, order):
  point = lambda bw: _phase_scalar(act, bw[0], bw[1], tolerance, order)
  return jax.lax.map(point, (sigma_b, sigma_w), batch_size=PHASE_BATCH)


def _chi_scalar(act, sigma_b, sigma_w, order):
  """(q*, χ at q*) of one point; a diverging variance is evaluated at its large-q limit."""
  q = maps._q_star_scalar(act, sigma_b, sigma_w, sigma_b**2 + sigma_w**2, order)
  return q, sigma_w**2 * act.derivative_second_moment(maps._q_eval(q), order)


def _phase_code(chi, tolerance):
  return jnp.where(chi < 1.0 - tolerance, Phase.ORDERED,
                   jnp.where(chi > 1.0 + tolerance, Phase.CHAOTIC, Phase.EOC)).astype(jnp.int32)


def _phase_scalar(act, sigma_b, sigma_w, tolerance, order):
  q, chi = _chi_scalar(act, sigma_b, sigma_w, order)
  finite = jnp.isfinite(q)
  slope = jnp.where(finite, maps._variance_slope(act, sigma_w, jnp.where(finite, q, 1.0), order), jnp.inf)
  c_star = maps._c_star(act, sigma_b, sigma_w, q, order)
  xi_q, xi_c = maps._depth_scales(act, sigma_b, sigma_w, q, c_star, order)
  code = _phase_code(chi, tolerance)
  # On the EOC (within the tolerance) c* = 1 and c^l → 1 polynomially: no exponential scale.
  c_star = jnp.where(code == Phase.EOC, 1.0, c_star)
  xi_c = jnp.where(code == Phase.EOC, jnp.inf, xi_c)
  return PhasePoint(sigma_b, sigma_w, q, chi, slope, c_star, xi_q, xi_c, code)


@pytree_dataclass
class PhaseDiagram:
  """χ on a (σb, σw) grid, with the EOC curve over the same σb.

  Attributes:
    sigma_b: grid of σb, shape ``(B,)``.
    sigma_w: grid of σw, shape ``(W,)``.
    chi: χ at each (σw, σb), shape ``(W, B)`` (rows follow σw, for plotting with σb on the x-axis).
    phase: :class:`Phase` codes, shape ``(W, B)``.
    eoc: :class:`EOCPoint` curve over ``sigma_b``.
  """

  sigma_b: Array
  sigma_w: Array
  chi: Array
  phase: Array
  eoc: EOCPoint


def phase_diagram(activation: ActivationLike, sigma_b, sigma_w, *, tolerance: float = PHASE_TOLERANCE,
                  order: int = maps.ORDER) -> PhaseDiagram:
  """χ(σb, σw) on a grid and the EOC curve: the phase diagram of [R] App. B.1.3 / Schoenholz et al. 2017.

  Computes q* and χ only (use :func:`phase` for c* and the depth scales of chosen points).

  Args:
    activation: name, callable or Activation.
    sigma_b: 1-D grid of σb ``>= 0``.
    sigma_w: 1-D grid of σw ``> 0``.
    tolerance: EOC tolerance on ``|χ − 1|``.
    order: quadrature order.

  Returns:
    A :class:`PhaseDiagram`.
  """
  act = get_activation(activation)
  dtype = gaussian.float_dtype()
  sigma_b, sigma_w = jnp.asarray(sigma_b, dtype), jnp.asarray(sigma_w, dtype)
  if sigma_b.ndim != 1 or sigma_w.ndim != 1:
    raise ValueError(f"sigma_b and sigma_w must be 1-D grids; got shapes {sigma_b.shape} and {sigma_w.shape}")
  check_nonnegative("sigma_b", sigma_b)
  check_positive("sigma_w", sigma_w)
  check_positive("tolerance", tolerance)
  grid_b, grid_w = jnp.broadcast_arrays(sigma_b[None, :], sigma_w[:, None])
  chi = _chi_grid(act, grid_b.reshape(-1), grid_w.reshape(-1), order).reshape(grid_b.shape)
  return PhaseDiagram(sigma_b, sigma_w, chi, _phase_code(chi, tolerance), eoc_curve(act, sigma_b, order=order))


@functools.partial(jax.jit, static_argnums=(3,))
def _chi_grid(act, sigma_b, sigma_w, order):
  return jax.vmap(lambda b, w: _chi_scalar(act, b, w, order)[1])(sigma_b, sigma_w)
