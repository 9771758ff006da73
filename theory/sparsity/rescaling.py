"""Keeping a pruned network on the EOC: the rescaling target of [R] Proposition 1 / Algorithm 1 and the keep
probability of the weak lottery ticket ([R] App. H, Theorems 3-4). ``mfprune.repair`` applies both."""

from __future__ import annotations

import jax

from theory._validation import check_positive, positive_float
from theory.sparsity._common import as_float

__all__ = ["rescaling_target", "lottery_keep_probability", "KEEP_PROBABILITY_RTOL"]

Array = jax.Array
KEEP_PROBABILITY_RTOL = 1e-5
"""Relative slack when comparing ``σw`` with ``σw,EOC`` (the EOC solver works in float32 by default)."""


def rescaling_target(sigma_w, *, fan_in=None, v=None) -> Array:
  """The squared norm a kept row should have after the EOC rescaling trick ([R] Prop. 1, eq. 6-7, Algorithm 1).

  Each kept row (output neuron; for a CNN an output channel, over input channels and window) is given the squared
  norm its dense row had in expectation: with ``W ~ N(0, σw²/v_l)`` and ``fan_in`` weights per row that is
  ``fan_in · σw²/v_l``, i.e. ``σw²`` with the usual ``v_l = fan_in`` (``N_{l−1}``, or ``n_{l−1}(2k+1)``). Algorithm 1
  as printed sets it to 1, which is right only for weights standardised by σw (THEORY.md §5; docs/sparsity.md).

  Args:
    sigma_w: weight standard deviation, ``> 0``.
    fan_in: weights per row, ``> 0``; needed when ``v`` is given.
    v: the variance scaling ``v_l > 0`` (weights ``N(0, σw²/v_l)``); defaults to ``fan_in``.

  Returns:
    ``σw² · fan_in / v`` (``σw²`` without ``v``); traceable in all arguments.
  """
  check_positive("sigma_w", sigma_w)
  target = as_float(sigma_w) ** 2
  if v is None:
    if fan_in is not None:
      check_positive("fan_in", fan_in)
    return target
  if fan_in is None:
    raise ValueError("v needs fan_in (the number of weights per row): the target is sigma_w^2 * fan_in / v")
  check_positive("fan_in", fan_in)
  check_positive("v", v)
  return target * as_float(fan_in) / as_float(v)


def lottery_keep_probability(sigma_w: float, sigma_w_eoc: float) -> float:
  """Keep probability ``p = σ²_{w,EOC} / σ²_w`` of the EOC winning ticket ([R] App. H, Theorems 3-4).

  A Bernoulli(p) mask multiplies the effective ``σw²`` by ``p`` in expectation, so it turns a net initialised with
  ``(σb, σw)`` into one initialised at ``(σb, σw,EOC)``. Pruning can only lower the variance, hence ``σw >= σw,EOC``
  (equality, up to a relative ``1e-5`` for the solver's float32, gives ``p = 1``). Per layer (Theorem 4) call it
  with each layer's ``σ_{w,l}``.

  Args:
    sigma_w: the initialisation's weight scale, ``> 0``.
    sigma_w_eoc: the EOC weight scale at the same ``σb`` (:func:`theory.eoc_sigma_w`), ``> 0``.

  Returns:
    ``p`` in ``(0, 1]``.

  Raises:
    ValueError: a non-positive or non-finite argument, or ``sigma_w < sigma_w_eoc`` (no mask raises the variance).
  """
  sigma_w = positive_float("sigma_w", sigma_w, "the initialisation's weight scale")
  sigma_w_eoc = positive_float("sigma_w_eoc", sigma_w_eoc, "the EOC weight scale")
  if sigma_w < sigma_w_eoc * (1 - KEEP_PROBABILITY_RTOL):
    raise ValueError(f"sigma_w must be >= sigma_w_eoc = {sigma_w_eoc:.6g} (pruning can only lower the effective "
                     f"variance, so no Bernoulli mask reaches the EOC from below); got sigma_w = {sigma_w:.6g}")
  return min(1.0, (sigma_w_eoc / sigma_w) ** 2)
