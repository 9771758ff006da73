"""Data sets that need no files: scikit-learn's handwritten digits and synthetic Gaussian inputs."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from mfprune.data.batching import _SALT_DIGITS_TEST, _permutation
from mfprune.data.dataset import Dataset, Splits, _make_splits

DIGITS_TEST_FRACTION = 0.2
"""Digits has no official test split: this fraction (rounded) of the 1797 examples, chosen by a fixed permutation."""

_DIGITS_TEST_SEED = 20240  # fixed forever: the digits test split must not depend on the user's seed


def _digits_raw() -> tuple[np.ndarray, np.ndarray]:
  from sklearn.datasets import load_digits

  raw = load_digits()
  return raw.images.astype(np.float32)[..., None], raw.target.astype(np.int32)


def digits() -> Dataset:
  """All of scikit-learn's 1797 handwritten digits, 8×8×1, scaled to zero mean and unit variance overall.

  For a train/test split (1438/359, standardised with the training statistics) use ``load_splits("digits")``.
  """
  x, y = _digits_raw()
  mean, std = x.mean(), x.std()
  return Dataset("digits", (x - mean) / std, y, 10, np.array([mean], np.float64), np.array([std], np.float64))


def _digits_splits(validation_fraction: float, seed: int) -> Splits:
  x, y = _digits_raw()
  order = _permutation(len(x), _SALT_DIGITS_TEST, _DIGITS_TEST_SEED)
  count = int(round(DIGITS_TEST_FRACTION * len(x)))
  test, train = np.sort(order[:count]), np.sort(order[count:])
  return _make_splits("digits", 10, (x[train], y[train]), (x[test], y[test]), validation_fraction, seed)


def synthetic(input_shape: Sequence[int], num_classes: int = 10, size: int = 1024, seed: int = 0) -> Dataset:
  """Standard Gaussian inputs with uniform random labels: enough to score a model of any input shape."""
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((size, *input_shape)).astype(np.float32)
  return Dataset("synthetic", x, rng.integers(0, num_classes, size).astype(np.int32), num_classes)
