"""Deterministic permutations and batches: each batch is a pure function of ``(n, batch_size, seed, step)``.

The permutations are a hash sort (SplitMix64), independent of NumPy's random generators, so they are the same on every
machine and NumPy version and a resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

_SALT_EPOCH, _SALT_VALIDATION, _SALT_DIGITS_TEST = 1, 2, 3  # independent permutation streams (see _permutation)
_MASK64 = (1 << 64) - 1


def _mix64(z: np.ndarray) -> np.ndarray:
  """The SplitMix64 finaliser on uint64 arrays (wrapping arithmetic): a bijection with good avalanche."""
  z = z + np.uint64(0x9E3779B97F4A7C15)
  z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
  z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
  return z ^ (z >> np.uint64(31))


def _permutation(n: int, *words: int) -> np.ndarray:
  """A permutation of ``range(n)`` that is a pure function of ``(n, words)``, independent of NumPy's RNGs.

  Each index gets a 64-bit hash of ``(words, index)``; sorting the hashes (stably) gives the permutation. Unlike
  ``np.random.Generator.permutation`` it cannot change with a NumPy upgrade, so a resumed run sees the same batches.
  """
  key = np.zeros(1, np.uint64)
  for word in words:
    key = _mix64(key ^ np.uint64(int(word) & _MASK64))
  hashes = _mix64(key + np.arange(n, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15))  # the SplitMix64 stream
  return np.argsort(hashes, kind="stable").astype(np.int64)


def _check_int(name: str, value: Any, low: int) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
    raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")
  return int(value)


def _check_batch_size(n: int, batch_size: int) -> None:
  _check_int("n", n, 1)
  if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or not 1 <= batch_size <= n:
    raise ValueError(f"batch_size must be an integer in [1, {n}] (the number of examples); got {batch_size!r}")


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
  """The order in which epoch ``epoch`` visits ``n`` examples: a pure function of ``(n, seed, epoch)``.

  Args:
    n: number of examples (>= 1).
    seed: any integer (taken modulo 2**64).
    epoch: epoch number (>= 0); each epoch gets an independent permutation.

  Returns:
    int64 array, a permutation of ``range(n)``. The same on every machine and NumPy version (a hash sort, not
    NumPy's random generators).
  """
  _check_int("n", n, 1)
  _check_int("epoch", epoch, 0)
  if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
    raise ValueError(f"seed must be an integer; got {seed!r}")
  return _cached_epoch_permutation(int(n), int(seed), int(epoch)).copy()


@functools.lru_cache(maxsize=4)
def _cached_epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
  """Computed once per epoch (20 ms for 100 000 examples) instead of once per step; read-only."""
  permutation = _permutation(n, _SALT_EPOCH, seed, epoch)
  permutation.flags.writeable = False
  return permutation


def batch_indices(n: int, batch_size: int, seed: int, step: int) -> np.ndarray:
  """Indices of the training batch of global step ``step`` (counted from 0 over all epochs).

  Epoch ``e = step // (n // batch_size)`` visits the examples in :func:`epoch_permutation` order ``(n, seed, e)``
  in consecutive batches of ``batch_size``; the last ``n % batch_size`` examples of each permutation are dropped.
  The batch is a pure function of ``(n, batch_size, seed, step)``, so resuming at step ``t`` reproduces the run.

  Args:
    n: number of examples.
    batch_size: examples per batch, in ``[1, n]``.
    seed: shuffling seed (any integer).
    step: global step, >= 0.

  Returns:
    int64 array of ``batch_size`` distinct indices into the data set.
  """
  _check_batch_size(n, batch_size)
  _check_int("step", step, 0)
  if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
    raise ValueError(f"seed must be an integer; got {seed!r}")
  epoch, position = divmod(int(step), n // batch_size)
  return _cached_epoch_permutation(int(n), int(seed), epoch)[position * batch_size:(position + 1) * batch_size].copy()
