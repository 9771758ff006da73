"""Data for pruning: scikit-learn's digits (embedded, the default) and synthetic Gaussian inputs of any shape.

The training issue extends this module with Fashion-MNIST/MNIST (IDX), CIFAR-10/100 and Tiny ImageNet readers.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import numpy as np

DATASETS = ("digits", "synthetic")


@dataclasses.dataclass(frozen=True)
class Dataset:
  """Examples ``x (n, H, W, C)`` (float32, standardised) and integer labels ``y (n,)``."""

  name: str
  x: np.ndarray
  y: np.ndarray
  num_classes: int

  @property
  def input_shape(self) -> tuple[int, ...]:
    return tuple(self.x.shape[1:])

  def batch(self, size: int, seed: int = 0) -> tuple[jax.Array, jax.Array]:
    """``size`` examples drawn without replacement by a seeded permutation (deterministic)."""
    if not 1 <= size <= len(self.x):
      raise ValueError(f"batch size must be in [1, {len(self.x)}] for {self.name}; got {size}")
    index = np.random.default_rng(seed).permutation(len(self.x))[:size]
    return jax.numpy.asarray(self.x[index]), jax.numpy.asarray(self.y[index])


def digits() -> Dataset:
  """scikit-learn's 1797 handwritten digits, 8×8×1, scaled to zero mean and unit variance overall."""
  from sklearn.datasets import load_digits

  raw = load_digits()
  x = raw.images.astype(np.float32)[..., None]
  x = (x - x.mean()) / x.std()
  return Dataset("digits", x, raw.target.astype(np.int32), 10)


def synthetic(input_shape: Sequence[int], num_classes: int = 10, size: int = 1024, seed: int = 0) -> Dataset:
  """Standard Gaussian inputs with uniform random labels: enough to score a model of any input shape."""
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((size, *input_shape)).astype(np.float32)
  return Dataset("synthetic", x, rng.integers(0, num_classes, size).astype(np.int32), num_classes)


def load(name: str, *, input_shape: Sequence[int] | None = None, num_classes: int = 10) -> Dataset:
  """A data set by name: ``"digits"`` or ``"synthetic"`` (which needs ``input_shape``)."""
  if name == "digits":
    return digits()
  if name == "synthetic":
    if input_shape is None:
      raise ValueError("synthetic data needs input_shape")
    return synthetic(input_shape, num_classes)
  raise ValueError(f"unknown data set {name!r}; available here: {', '.join(DATASETS)}")
