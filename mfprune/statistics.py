"""Summaries of Monte-Carlo samples (seeds, networks): the Student-t interval of a mean."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = ["check_confidence", "t_interval"]


def check_confidence(confidence: float) -> float:
  """``confidence`` as a float in ``(0, 1)``, or ``ValueError`` naming it."""
  try:
    value = float(confidence)
  except (TypeError, ValueError):
    raise ValueError(f"confidence must be a number in (0, 1); got {confidence!r}") from None
  if not 0.0 < value < 1.0:
    raise ValueError(f"confidence must be in (0, 1) (e.g. 0.95); got {value}")
  return value


def t_interval(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> tuple[float, float] | None:
  """Student-t interval of the mean: ``mean ± t_{(1+confidence)/2, n−1} · s/√n`` with ``s`` the sample standard
  deviation (``ddof = 1``).

  It assumes the values roughly normal or ``n`` large enough (e.g. the critical sparsities of ``n`` random
  networks, :func:`mfprune.signal.critical_sparsity`).

  Args:
    values: ``n`` finite samples.
    confidence: the level, in ``(0, 1)``.

  Returns:
    ``(low, high)``, or ``None`` for fewer than two values (the interval is undefined).

  Raises:
    ValueError: ``confidence`` outside ``(0, 1)`` or non-finite values.
  """
  from scipy import stats  # scikit-learn, an mfprune dependency, installs scipy

  confidence = check_confidence(confidence)
  values = np.asarray(values, np.float64).reshape(-1)
  if not np.all(np.isfinite(values)):
    raise ValueError(f"values must be finite; got {values[~np.isfinite(values)][:3].tolist()}")
  if values.size < 2:
    return None
  half = float(stats.t.ppf(0.5 + confidence / 2, values.size - 1)) * values.std(ddof=1) / math.sqrt(values.size)
  return float(values.mean() - half), float(values.mean() + half)
