"""The :class:`Dataset` and :class:`Splits` types, per-channel standardisation, train/validation/test splitting, and
reading a (possibly gzipped) file."""

from __future__ import annotations

import dataclasses
import gzip
import os
from pathlib import Path

import jax
import numpy as np

from mfprune.data.batching import _SALT_VALIDATION, _check_batch_size, _permutation, batch_indices

PathLike = str | os.PathLike

INPUT_SHAPES: dict[str, tuple[tuple[int, ...], int]] = {
    "digits": ((8, 8, 1), 10),
    "mnist": ((28, 28, 1), 10),
    "fashion-mnist": ((28, 28, 1), 10),
    "cifar10": ((32, 32, 3), 10),
    "cifar100": ((32, 32, 3), 100),
    "tiny-imagenet": ((64, 64, 3), 200),
}
"""Data set name -> (shape of one example ``(H, W, C)``, number of classes); ``mfprune.models`` re-exports it."""


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Dataset:
  """Examples ``x (n, H, W, C)`` (float32, standardised) and integer labels ``y (n,)``.

  ``mean`` and ``std`` (per channel, in the raw units of the files: 0-255 for images, 0-16 for digits) are the
  statistics ``x`` was standardised with, ``x = (raw - mean) / std``; ``None`` when ``x`` is not standardised.
  """

  name: str
  x: np.ndarray
  y: np.ndarray
  num_classes: int
  mean: np.ndarray | None = None
  std: np.ndarray | None = None

  def __post_init__(self):
    if np.ndim(self.x) < 2 or np.ndim(self.y) != 1 or len(self.x) != len(self.y):
      raise ValueError(f"{self.name}: x must be (n, ...) and y (n,) with the same n; got x {np.shape(self.x)} and "
                       f"y {np.shape(self.y)}")

  def __len__(self) -> int:
    return len(self.x)

  def __repr__(self) -> str:
    return f"Dataset({self.name!r}, n={len(self)}, input_shape={self.input_shape}, num_classes={self.num_classes})"

  @property
  def input_shape(self) -> tuple[int, ...]:
    return tuple(self.x.shape[1:])

  def batch(self, size: int, seed: int = 0) -> tuple[jax.Array, jax.Array]:
    """``size`` examples drawn without replacement by a seeded permutation (deterministic), as JAX arrays."""
    if not 1 <= size <= len(self.x):
      raise ValueError(f"batch size must be in [1, {len(self.x)}] for {self.name}; got {size}")
    index = np.random.default_rng(seed).permutation(len(self.x))[:size]
    return jax.numpy.asarray(self.x[index]), jax.numpy.asarray(self.y[index])

  def steps_per_epoch(self, batch_size: int) -> int:
    """Full batches per epoch (the last incomplete batch is dropped)."""
    _check_batch_size(len(self), batch_size)
    return len(self) // batch_size

  def batch_at(self, step: int, batch_size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The training batch of global step ``step``: ``(x, y)`` as NumPy arrays, indices from :func:`batch_indices`.

    NumPy (not JAX) arrays, so the caller decides where they go (``jax.device_put`` onto a sharding, say).
    """
    index = batch_indices(len(self), batch_size, seed, step)
    return self.x[index], self.y[index]


@dataclasses.dataclass(frozen=True, eq=False)
class Splits:
  """Train, optional validation, and test sets of one data set, standardised with the training statistics.

  Attributes:
    train: the training examples (without the validation ones).
    validation: examples held out of ``train`` by :func:`load_splits`'s ``validation_fraction``, or ``None``.
    test: the official test split (Tiny ImageNet: its val split; digits: a fixed 20% of the examples).
    mean: per-channel mean ``(C,)`` of the raw training examples (float64, raw units).
    std: per-channel standard deviation ``(C,)`` of the raw training examples (float64, raw units).
  """

  train: Dataset
  validation: Dataset | None
  test: Dataset
  mean: np.ndarray
  std: np.ndarray

  @property
  def name(self) -> str:
    return self.train.name

  @property
  def num_classes(self) -> int:
    return self.train.num_classes

  @property
  def input_shape(self) -> tuple[int, ...]:
    return self.train.input_shape

  def normalise(self, raw: np.ndarray) -> np.ndarray:
    """Raw examples (file units, channels last) -> standardised float32, as the splits were."""
    return _standardise(np.asarray(raw), self.mean, self.std)

  def denormalise(self, x: np.ndarray) -> np.ndarray:
    """Standardised examples -> raw units (float32; round and cast to uint8 to recover the image files' pixels)."""
    return np.asarray(x, np.float32) * self.std.astype(np.float32) + self.mean.astype(np.float32)



def _channel_stats(raw: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
  """Per-channel (last axis) mean and standard deviation in float64, a chunk of examples at a time."""
  axes = tuple(range(raw.ndim - 1))
  count = raw.size // raw.shape[-1]
  total = np.zeros(raw.shape[-1])
  for start in range(0, len(raw), chunk):
    total += raw[start:start + chunk].sum(axis=axes, dtype=np.float64)
  mean = total / count
  squares = np.zeros(raw.shape[-1])
  for start in range(0, len(raw), chunk):
    squares += np.square(raw[start:start + chunk].astype(np.float64) - mean).sum(axis=axes)
  std = np.sqrt(squares / count)
  return mean, np.where(std > 0, std, 1.0)  # a constant channel is only centred


def _standardise(raw: np.ndarray, mean: np.ndarray, std: np.ndarray, chunk: int = 4096) -> np.ndarray:
  """``(raw - mean) / std`` in float32, a chunk at a time (no float64 copy of a large uint8 array)."""
  out = np.empty(raw.shape, np.float32)
  mean32, std32 = mean.astype(np.float32), std.astype(np.float32)
  for start in range(0, len(raw), chunk):
    out[start:start + chunk] = (raw[start:start + chunk].astype(np.float32) - mean32) / std32
  return out


def _validation_indices(n: int, fraction: float, seed: int, name: str) -> tuple[np.ndarray, np.ndarray]:
  """Sorted ``(train, validation)`` indices: ``round(fraction * n)`` examples of a seeded permutation held out."""
  if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.number)) or not 0.0 <= fraction < 1.0:
    raise ValueError(f"validation_fraction must be in [0, 1); got {fraction!r}")
  if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
    raise ValueError(f"seed must be an integer; got {seed!r}")
  count = int(round(fraction * n))
  if fraction > 0 and not 1 <= count < n:
    raise ValueError(f"validation_fraction {fraction} of the {n} training examples of {name} leaves "
                     f"{count} for validation and {n - count} for training; both need at least one")
  order = _permutation(n, _SALT_VALIDATION, seed)
  return np.sort(order[count:]), np.sort(order[:count])


def _make_splits(name: str, num_classes: int, train: tuple[np.ndarray, np.ndarray],
                 test: tuple[np.ndarray, np.ndarray], validation_fraction: float, seed: int) -> Splits:
  """Holds out validation examples, computes the per-channel statistics of what is left, standardises all three."""
  x_train, y_train = train
  train_index, validation_index = _validation_indices(len(x_train), validation_fraction, seed, name)
  validation = None
  if len(validation_index):
    validation = (x_train[validation_index], y_train[validation_index])
    x_train, y_train = x_train[train_index], y_train[train_index]
  mean, std = _channel_stats(x_train)

  def dataset(x: np.ndarray, y: np.ndarray) -> Dataset:
    return Dataset(name, _standardise(x, mean, std), np.asarray(y, np.int32), num_classes, mean, std)

  return Splits(train=dataset(x_train, y_train), validation=None if validation is None else dataset(*validation),
                test=dataset(*test), mean=mean, std=std)


def _check_labels(labels: np.ndarray, count: int, num_classes: int, where: str) -> np.ndarray:
  labels = np.asarray(labels)
  if labels.shape != (count,) or not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"{where}: expected {count} integer labels (one per image); got {labels.dtype} {labels.shape}")
  if count and (labels.min() < 0 or labels.max() >= num_classes):
    raise ValueError(f"{where}: labels must lie in [0, {num_classes}); found {labels.min()}..{labels.max()}")
  return labels.astype(np.int32)


def read_file(path: Path) -> bytes:
  """A file's bytes, gunzipped when it starts with the gzip magic (whatever its name); a missing file raises
  ``FileNotFoundError`` naming it, corrupt gzip data ``ValueError``."""
  try:
    with open(path, "rb") as stream:
      content = stream.read()
  except FileNotFoundError:
    raise FileNotFoundError(f"{path}: no such file") from None
  if content[:2] == b"\x1f\x8b":
    try:
      content = gzip.decompress(content)
    except (OSError, EOFError, ValueError) as error:
      raise ValueError(f"{path}: corrupt or truncated gzip data ({error})") from None
  return content
