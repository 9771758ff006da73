"""The exact critical sparsity of one set of scores, under mfprune's tie rule ([R] §2.2; THEORY.md §3).

Pruning at initialization keeps the ``k`` highest scores of the whole network; the **critical sparsity** ``s_cr`` is
the smallest sparsity at which some layer keeps no weight. From one set of scores it is exact, no bisection: a layer
dies once the global threshold passes its largest score.

**Tie rule.** mfprune keeps exactly ``k = M − round(s·M)`` weights (at least one) out of ``M``, the highest scores,
ties to the earliest weight in parameter order (leaves in ``jax.tree_util`` order, entries in row-major order;
:mod:`mfprune.masks`). Scores are ordered through their bit patterns (:func:`sortable_keys`): ``−0.0 < +0.0`` and
NaN above ``+inf``. Rank the weights ``0, 1, ..., M − 1`` in that order and let ``R_l`` be the rank of layer ``l``'s
best-ranked weight; layer ``l`` keeps nothing iff ``k <= R_l``. The sparsities mfprune can reach are ``s = 1 − k/M``,
``k = 1..M``, so the critical sparsity is ``s_cr = 1 − R/M`` with ``R = max_l R_l``: the smallest reachable sparsity
at which some layer is empty (``keep_count(M, s_cr) = R``). Without ties this is [R]'s
``s_cr = 1 − #{j : score_j > min_l max_{i∈l} score_i}/M``. With one layer ``R = 0`` and ``s_cr = 1``: the layer that
holds the best weight is never emptied, since one weight always stays.

:func:`sortable_keys` is the one definition of that order: :mod:`mfprune.masks` selects weights with it, so masks,
these functions and :func:`layer_kept_counts` (the Monte-Carlo program of :mod:`mfprune.signal`) agree exactly.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from theory import gaussian

Array = jax.Array

__all__ = ["sortable_keys", "critical_keep_count", "critical_sparsity_from_scores", "layer_death_sparsity",
           "layer_death_order", "LayerKeptCounts", "layer_kept_counts"]


def sortable_keys(x: Array) -> Array:
  """Unsigned integers of the same width whose order is the floats' order (``−inf < … < −0.0 < +0.0 < … < +inf <
  NaN``): the ordering half of mfprune's tie rule (module docstring). Non-float32/64 input is cast to float32.

  Args:
    x: scores, any shape.

  Returns:
    ``uint32`` (float32 input) or ``uint64`` (float64) keys shaped like ``x``.
  """
  x = jnp.asarray(x)
  if x.dtype not in (jnp.float32, jnp.float64):
    x = x.astype(jnp.float32)
  utype = jnp.uint64 if x.dtype == jnp.float64 else jnp.uint32
  bits = jax.lax.bitcast_convert_type(x, utype)
  sign = jnp.asarray(1, utype) << (8 * x.dtype.itemsize - 1)
  return jnp.where((bits & sign) != 0, ~bits, bits | sign)


def _leaves(scores: Any) -> list[Array]:
  """The layers of ``scores`` (leaves in tree order), validated: at least one, none empty."""
  leaves = jax.tree_util.tree_leaves(scores)
  if not leaves:
    raise ValueError("scores must hold at least one layer (a sequence or pytree of arrays); got none")
  leaves = [jnp.asarray(x) for x in leaves]
  sizes = [int(x.size) for x in leaves]
  if min(sizes) == 0:
    raise ValueError(f"every layer of scores must hold at least one score; got layer sizes {sizes}")
  return leaves


def _layer_keys(leaves: list[Array]) -> tuple[list[Array], list[int], np.ndarray]:
  """Flattened sort keys per layer (cast as :func:`mfprune.masks.global_top_k` does), sizes and offsets."""
  dtype = jnp.result_type(*leaves)
  keys = [sortable_keys(x.reshape(-1).astype(dtype)) for x in leaves]
  sizes = [int(x.size) for x in leaves]
  return keys, sizes, np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)


def _maxima(keys: list[Array], offsets: np.ndarray) -> tuple[Array, Array]:
  """Each layer's largest key and the global index of its earliest occurrence."""
  best = jnp.stack([jnp.max(k) for k in keys])
  first = jnp.stack([int(o) + jnp.argmax(k) for k, o in zip(keys, offsets)])
  return best, first


def _rank_of(keys: list[Array], offsets: np.ndarray, value: Array, position: Array) -> Array:
  """The rank (from 0) of the weight at global ``position`` whose key is ``value``: the number ranked before it."""
  count = 0
  for k, o in zip(keys, offsets):
    index = int(o) + jnp.arange(k.shape[0])
    count = count + jnp.sum(k > value) + jnp.sum((k == value) & (index < position))
  return count


@jax.jit
def _critical_rank(leaves: list[Array]) -> Array:
  keys, _, offsets = _layer_keys(leaves)
  best, first = _maxima(keys, offsets)
  lowest = jnp.min(best)
  # Among the layers whose maximum is the lowest, the one whose earliest maximum comes last is ranked lowest.
  position = jnp.max(jnp.where(best == lowest, first, -1))
  return _rank_of(keys, offsets, lowest, position)


@jax.jit
def _death_ranks(leaves: list[Array]) -> Array:
  keys, _, offsets = _layer_keys(leaves)
  best, first = _maxima(keys, offsets)
  return jnp.stack([_rank_of(keys, offsets, best[l], first[l]) for l in range(len(keys))])


@jax.jit
def _death_order(leaves: list[Array]) -> Array:
  keys, _, offsets = _layer_keys(leaves)
  best, first = _maxima(keys, offsets)
  return jnp.lexsort((-first, best))


def critical_keep_count(scores: Sequence[Array] | Any) -> Array:
  """``R = max_l R_l``: the largest number of kept weights at which global top-k leaves some layer empty.

  ``R_l`` is the rank (from 0, in mfprune's order: higher score first, ties to the earliest weight in parameter order)
  of layer ``l``'s best-ranked weight; layer ``l`` is empty once at most ``R_l`` weights are kept (module docstring,
  *Tie rule*). ``R = 0`` for a single layer (it is never emptied). One pass over the scores; runs under ``jit`` and
  ``vmap``.

  Args:
    scores: one array of scores per layer (any shapes), or a pytree of them (leaves in tree order, as mfprune's
      parameter order); higher means keep.

  Returns:
    ``R`` as an integer scalar.
  """
  return _critical_rank(_leaves(scores))


def critical_sparsity_from_scores(scores: Sequence[Array] | Any) -> Array:
  """The exact critical sparsity ``s_cr`` of one set of per-layer scores ([R] §2.2; THEORY.md §3).

  A layer dies once the global threshold passes its largest score, so ``s_cr = 1 − R/M`` with ``M`` the number of
  weights and ``R`` from :func:`critical_keep_count`: the smallest sparsity ``s = 1 − k/M`` at which mfprune's
  global top-k (``k = M − round(s·M)`` kept, ties to the earliest weight in parameter order) empties a layer. Without
  ties, ``s_cr = 1 − #{j : score_j > min_l max_{i∈l} score_i}/M`` ([R]). ``mfprune.prune`` at ``s_cr`` empties a
  layer and at ``s_cr − 1/M`` none. ``s_cr = 1`` for a single layer (one weight always stays).

  Args:
    scores: one array of scores per layer (any shapes), or a pytree of them (leaves in tree order); higher = keep.

  Returns:
    ``s_cr`` as a float scalar (``jit``/``vmap``-able).
  """
  leaves = _leaves(scores)
  total = sum(int(x.size) for x in leaves)
  return 1.0 - _critical_rank(leaves).astype(gaussian.float_dtype()) / total


def layer_death_sparsity(scores: Sequence[Array] | Any) -> Array:
  """Per layer, the smallest sparsity ``1 − R_l/M`` at which global top-k leaves it empty (mfprune's tie rule).

  ``1.0`` for the layer that holds the best-ranked weight (never emptied). The minimum over layers is
  :func:`critical_sparsity_from_scores`. Costs one pass over all scores per layer; runs under ``jit`` and ``vmap``.

  Args:
    scores: one array of scores per layer, or a pytree of them (leaves in tree order); higher = keep.

  Returns:
    Array of shape ``(n_layers,)``.
  """
  leaves = _leaves(scores)
  total = sum(int(x.size) for x in leaves)
  return 1.0 - _death_ranks(leaves).astype(gaussian.float_dtype()) / total


def layer_death_order(scores: Sequence[Array] | Any) -> Array:
  """Layer indices in the order global pruning empties them: the first dies first.

  Layers are sorted by their largest score, lowest first; among equal maxima, by mfprune's tie rule the layer whose
  earliest maximum comes later in parameter order dies first. The last index is the layer holding the best-ranked
  weight (never emptied). Runs under ``jit`` and ``vmap``.

  Args:
    scores: one array of scores per layer, or a pytree of them (leaves in tree order); higher = keep.

  Returns:
    Integer array of shape ``(n_layers,)``, a permutation of ``0..n_layers − 1``.
  """
  return _death_order(_leaves(scores))



class LayerKeptCounts(NamedTuple):
  """What :func:`layer_kept_counts` returns (layers in tree order).

  Attributes:
    death_rank: ``(L,)`` int32, ``R_l``: layer ``l`` keeps no weight once at most ``R_l`` weights are kept globally.
    kept: ``(len(counts), L)`` int32, the weights of each layer that global top-k keeps at each keep count.
  """

  death_rank: Array
  kept: Array


def layer_kept_counts(scores: Sequence[Array] | Any, counts: Sequence[int]) -> LayerKeptCounts:
  """Every layer's death rank ``R_l`` and its kept count at each of several global keep counts, from one sort.

  The weights are ranked once by mfprune's tie rule (module docstring); the weight of rank ``r`` is kept at keep
  count ``k`` iff ``r < k``, so the kept counts of every layer at every ``k`` in ``counts`` are a histogram over
  (grid bucket, layer) and a cumulative sum, exactly the densities of ``mfprune.masks.global_top_k(scores, k)``.
  ``R_l`` is the smallest rank in layer ``l`` (as :func:`layer_death_sparsity`, which avoids the sort). One sort of
  all ``M`` scores: the per-network program of :func:`mfprune.signal.critical_sparsity` (jit/vmap-able).

  Args:
    scores: one array of scores per layer, or a pytree of them (leaves in tree order); higher = keep.
    counts: keep counts ``k`` (Python integers, any order; ``mfprune.masks.keep_count(M, s)`` of a sparsity grid).

  Returns:
    A :class:`LayerKeptCounts`; ``kept`` rows follow ``counts`` as given.
  """
  leaves = _leaves(scores)
  counts = tuple(int(k) for k in counts)
  if not counts:
    raise ValueError("counts must hold at least one keep count")
  return _kept_counts(leaves, counts)


@functools.partial(jax.jit, static_argnums=1)
def _kept_counts(leaves: list[Array], counts: tuple[int, ...]) -> LayerKeptCounts:
  counts_array = np.asarray(counts, np.int64)
  by_count = np.argsort(counts_array, kind="stable")  # the grid in increasing keep count
  unsort = np.argsort(by_count, kind="stable")
  sorted_counts = counts_array[by_count]
  n = len(counts)
  sizes = np.array([x.size for x in leaves])
  total, layers = int(sizes.sum()), len(leaves)
  dtype = jnp.result_type(*leaves)
  flat = jnp.concatenate([x.reshape(-1).astype(dtype) for x in leaves])
  # Rank 0 is the best score; equal scores keep parameter order. Sorting on the pair (key, position) is that order
  # whatever the algorithm; XLA:CPU runs it ~20% faster than a stable argsort.
  ranks = jnp.arange(total, dtype=jnp.int32)
  _, order = jax.lax.sort((~sortable_keys(flat), ranks), num_keys=2, is_stable=False)
  # Layer ids as a literal (np.repeat): jnp.repeat would make XLA constant-fold a cumsum over M for seconds.
  layer_of_rank = jnp.asarray(np.repeat(np.arange(layers, dtype=np.int32), sizes))[order]
  death_rank = jax.ops.segment_min(ranks, layer_of_rank, num_segments=layers)
  # bucket(r) = #{grid counts <= r} does not depend on the scores: a histogram over (bucket, layer) and a cumulative
  # sum give every layer's kept count at every k.
  bucket = jnp.searchsorted(jnp.asarray(sorted_counts, jnp.int32), ranks, side="right").astype(jnp.int32)
  histogram = jax.ops.segment_sum(jnp.ones((total,), jnp.int32), bucket * layers + layer_of_rank,
                                  num_segments=(n + 1) * layers)
  kept = jnp.cumsum(histogram.reshape(n + 1, layers), axis=0)[:n][unsort]
  return LayerKeptCounts(death_rank=death_rank, kept=kept)
