"""The convergence estimate of [P] Fig. 1 from the Path Kernel trace ([P] eq. 7-8; THEORY.md §7).

With the NTK's spectrum replaced by ``Tr Π``, the linearised dynamics give ``‖ω_t‖ ≈ a(1 − e^{−η Tr(Π) t})`` and
``‖f(X, θ_t)‖ ≈ (1 − e^{−η Tr(Π) t}) a + e^{−η Tr(Π) t} b``: :func:`convergence_estimate` and
:func:`fit_convergence_scale`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from theory._pytree import pytree_dataclass
from theory._validation import check_finite, check_nonnegative, check_positive

Array = jax.Array

__all__ = ["convergence_estimate", "ConvergenceFit", "fit_convergence_scale"]


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
