"""Pruning masks as pytrees shaped like the parameters, and exact top-k selection.

A mask has the tree structure of ``params``: a ``bool`` array for every prunable weight (``True`` = kept) and
``None`` for everything else (biases, normalisation parameters). By default the prunable weights are the kernels of
dense and convolution layers ([P] A.4.2; [R] eq. 4); pass ``prunable=`` to choose others by path.

Selection keeps an exact number of weights. **Tie rule:** among scores equal to the threshold, the weights that come
first in parameter order (leaves in ``jax.tree_util`` order, entries in row-major order) are kept. ``round(s·M)``
weights are pruned at sparsity ``s`` out of ``M`` (ties to even), but never all of them: at least one weight stays.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mfprune.files import atomic_write
from theory._pytree import key_path_name
from theory.sparsity.exact import sortable_keys  # the tie rule's score order, shared with theory.sparsity

Array = jax.Array
Params = Any
Mask = Any  # pytree like params: bool arrays (prunable) or None
Scores = Any  # pytree like params: float arrays (prunable) or None
KeyPath = tuple[Any, ...]
Prunable = Callable[[KeyPath, Any], bool]
COLLAPSE_ACTIONS = ("raise", "warn", "ignore")


class LayerCollapseError(ValueError):
  """A mask removes every weight of at least one layer (the network can no longer carry a signal)."""


def _is_none(x: Any) -> bool:
  return x is None


def path_name(path: KeyPath) -> str:
  """``"layers/0/kernel"`` for a ``jax.tree_util`` key path."""
  return key_path_name(path)


def is_kernel(path: KeyPath, leaf: Any) -> bool:
  """Default prunable predicate: leaves named ``kernel`` with at least 2 dimensions (dense and conv weights)."""
  return bool(path) and path_name(path[-1:]) == "kernel" and np.ndim(leaf) >= 2


def dense_mask(params: Params, prunable: Prunable = is_kernel) -> Mask:
  """The all-kept mask: ``True`` arrays on prunable leaves, ``None`` elsewhere.

  Raises:
    ValueError: when ``prunable`` selects no leaf.
  """
  mask = jax.tree_util.tree_map_with_path(
      lambda p, x: jnp.ones(jnp.shape(x), bool) if prunable(p, x) else None, params)
  if not jax.tree_util.tree_leaves(mask):
    raise ValueError("prunable selects no parameter; the default keeps leaves named 'kernel' with ndim >= 2")
  return mask


def named_leaves(tree: Any) -> list[tuple[str, Any]]:
  """``[(path name, leaf)]`` of the non-``None`` leaves of a mask or scores tree, in tree order."""
  flat, _ = jax.tree_util.tree_flatten_with_path(tree)
  return [(path_name(p), x) for p, x in flat]


def apply_mask(params: Params, mask: Mask) -> Params:
  """``params`` with pruned weights set to zero (leaves where the mask is ``None`` untouched)."""
  return jax.tree.map(lambda m, p: p if m is None else p * m.astype(p.dtype), mask, params, is_leaf=_is_none)


def check_mask(mask: Mask, params: Params, *, name: str = "mask") -> None:
  """Raises ValueError naming the first path where ``mask`` does not fit ``params`` (structure, shape or dtype)."""
  mask_paths = {path_name(p): x for p, x in jax.tree_util.tree_flatten_with_path(mask, is_leaf=_is_none)[0]}
  param_paths = {path_name(p): x for p, x in jax.tree_util.tree_flatten_with_path(params)[0]}
  missing = sorted(set(param_paths) - set(mask_paths))
  extra = sorted(set(mask_paths) - set(param_paths))
  if missing or extra:
    raise ValueError(f"{name} does not fit the model: parameters without a mask entry {missing[:5]}, "
                     f"mask entries that are not parameters {extra[:5]}")
  for key, m in mask_paths.items():
    if m is None:
      continue
    if jnp.shape(m) != jnp.shape(param_paths[key]):
      raise ValueError(f"{name} does not fit the model at {key!r}: mask shape {jnp.shape(m)}, "
                       f"parameter shape {jnp.shape(param_paths[key])}")
    if jnp.asarray(m).dtype != jnp.bool_:
      raise ValueError(f"{name} at {key!r} must be boolean; got {jnp.asarray(m).dtype}")


def check_sparsity(sparsity: float, name: str = "sparsity") -> float:
  """Validates a sparsity in ``[0, 1)`` (the fraction of prunable weights removed)."""
  try:
    value = float(sparsity)
  except (TypeError, ValueError):
    raise ValueError(f"{name} must be a number in [0, 1); got {sparsity!r}") from None
  if not 0.0 <= value < 1.0:
    raise ValueError(f"{name} must be in [0, 1) (fraction of prunable weights removed); got {value}")
  return value


def keep_count(total: int, sparsity: float) -> int:
  """Weights kept at ``sparsity`` out of ``total``: ``total − round(sparsity·total)``, and at least 1."""
  sparsity = check_sparsity(sparsity)
  return max(1, total - int(np.rint(sparsity * total)))


def _kth_largest_key(keys: Array, k: Array) -> Array:
  """Exact k-th largest of unsigned integer ``keys`` by a bitwise binary search: one pass over ``keys`` per bit."""
  nbits = 8 * keys.dtype.itemsize
  one = jnp.asarray(1, keys.dtype)

  def step(i, prefix):
    candidate = prefix | (one << (nbits - 1 - i).astype(keys.dtype))
    return jnp.where(jnp.sum(keys >= candidate) >= k, candidate, prefix)

  return jax.lax.fori_loop(0, nbits, step, jnp.zeros((), keys.dtype))


def top_k_mask(scores: Array, k: Array | int) -> Array:
  """Boolean mask of exactly ``k`` largest entries of ``scores`` (any shape), ties to the earliest entries.

  Runs under ``jit`` and ``vmap`` with a traced ``k``; costs a fixed number of passes over the scores (32 in
  float32) instead of a sort. ``k`` is clipped to ``[0, scores.size]``.
  """
  flat = scores.reshape(-1)
  k = jnp.clip(jnp.asarray(k, jnp.int32), 0, flat.size)
  keys = sortable_keys(flat)
  threshold = _kth_largest_key(keys, k)
  greater = keys > threshold
  tied = keys == threshold
  room = k - jnp.sum(greater)
  # The tie rule needs a running count only when the tied scores do not all fit (skipped otherwise: ~40% faster).
  keep = jax.lax.cond(jnp.sum(tied) <= room, lambda: greater | tied,
                      lambda: greater | (tied & (jnp.cumsum(tied) <= room)))
  keep = keep & (k > 0)
  return keep.reshape(scores.shape)


def global_top_k(scores: Scores, k: Array | int) -> Mask:
  """Keeps the ``k`` highest scores across all layers (global pruning, [R] §2.2, [P] A.4.1).

  Args:
    scores: pytree like params with float arrays on prunable leaves and ``None`` elsewhere.
    k: number of weights to keep (may be traced).

  Returns:
    The mask (same tree structure as ``scores``).
  """
  leaves, treedef = jax.tree_util.tree_flatten(scores)
  if not leaves:
    raise ValueError("scores have no prunable leaf")
  sizes = [x.size for x in leaves]
  dtype = jnp.result_type(*leaves)
  keep = top_k_mask(jnp.concatenate([x.reshape(-1).astype(dtype) for x in leaves]), k)
  parts = jnp.split(keep, np.cumsum(sizes)[:-1])
  return jax.tree_util.tree_unflatten(treedef, [p.reshape(x.shape) for p, x in zip(parts, leaves)])


def layerwise_top_k(scores: Scores, ks: Sequence[Array | int]) -> Mask:
  """Keeps ``ks[i]`` highest scores within the ``i``-th prunable leaf (tree order).

  Args:
    scores: pytree like params with float arrays on prunable leaves and ``None`` elsewhere.
    ks: one count per prunable leaf.
  """
  leaves, treedef = jax.tree_util.tree_flatten(scores)
  if len(ks) != len(leaves):
    raise ValueError(f"ks must give one count per prunable layer ({len(leaves)}); got {len(ks)}")
  return jax.tree_util.tree_unflatten(treedef, [top_k_mask(x, k) for x, k in zip(leaves, ks)])


def layer_sizes(mask_or_scores: Any) -> list[int]:
  """Number of prunable weights in each prunable leaf, in tree order."""
  return [int(np.size(x)) for x in jax.tree_util.tree_leaves(mask_or_scores)]


@dataclasses.dataclass(frozen=True)
class LayerDensity:
  """Kept weights of one prunable layer."""

  name: str
  kept: int
  total: int

  @property
  def fraction(self) -> float:
    """Kept fraction ``kept / total`` (the density)."""
    return self.kept / self.total if self.total else 0.0

  def to_dict(self) -> dict[str, Any]:
    return {"name": self.name, "kept": self.kept, "total": self.total, "fraction": self.fraction}


def density(mask: Mask, layer_order: Sequence[str] | None = None) -> list[LayerDensity]:
  """Per-layer density table of a mask.

  Args:
    mask: a mask.
    layer_order: parameter paths giving the row order (e.g. :func:`mfprune.functional.layer_order`, network order);
      layers it does not name follow in tree order. Default: tree order (alphabetical keys).
  """
  table = [LayerDensity(name, int(np.sum(np.asarray(m))), int(np.size(m))) for name, m in named_leaves(mask)]
  if layer_order is not None:
    rank = {name: i for i, name in enumerate(layer_order)}
    table.sort(key=lambda d: rank.get(d.name, len(rank)))
  return table


def sparsity_of(mask: Mask) -> float:
  """Overall fraction of prunable weights removed."""
  table = density(mask)
  total = sum(d.total for d in table)
  return 1.0 - sum(d.kept for d in table) / total


def collapsed_layers(mask: Mask) -> list[str]:
  """Names of the prunable layers with no weight left."""
  return [d.name for d in density(mask) if d.kept == 0]


def check_collapse(mask: Mask, on_collapse: str = "raise") -> list[str]:
  """Guards against a mask that wipes out a whole layer (the layer collapse of [R] §2.2, Theorem 1).

  Args:
    mask: a mask.
    on_collapse: ``"raise"`` (:class:`LayerCollapseError`), ``"warn"`` (``UserWarning``) or ``"ignore"``.

  Returns:
    The collapsed layers' names.
  """
  if on_collapse not in COLLAPSE_ACTIONS:
    raise ValueError(f"on_collapse must be one of {COLLAPSE_ACTIONS}; got {on_collapse!r}")
  dead = collapsed_layers(mask)
  if dead and on_collapse != "ignore":
    message = (f"the mask removes every weight of {len(dead)} layer(s): {', '.join(dead)} "
               f"(sparsity {sparsity_of(mask):.4g} is at or beyond this network's critical sparsity)")
    if on_collapse == "raise":
      raise LayerCollapseError(message)
    warnings.warn(message, stacklevel=2)
  return dead


def save_mask(path: str | os.PathLike, mask: Mask) -> Path:
  """Writes ``mask`` as ``.npz`` keyed by parameter path (``layers/0/kernel``), atomically."""
  arrays = {name: np.asarray(m, bool) for name, m in named_leaves(mask)}
  return atomic_write(path, lambda handle: np.savez_compressed(handle, **arrays))


def load_mask(path: str | os.PathLike, params: Params) -> Mask:
  """Reads a mask written by :func:`save_mask` and fits it to ``params``.

  Leaves of ``params`` named in the file get its boolean array; all others get ``None``.

  Raises:
    FileNotFoundError: no file at ``path``.
    ValueError: a file that is not a complete ``.npz`` mask, a key in it that is not a parameter of this model, or a
      shape that differs.
  """
  path = Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"no mask file at {path}")
  try:
    with np.load(path) as data:
      stored = {k: data[k] for k in data.files}
  except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:  # truncated, or not written by save_mask
    raise ValueError(f"mask file {path} is not a readable .npz mask (truncated, or not written by save_mask): "
                     f"{error}") from None
  flat, treedef = jax.tree_util.tree_flatten_with_path(params)
  names = [path_name(p) for p, _ in flat]
  unknown = sorted(set(stored) - set(names))
  if unknown:
    raise ValueError(f"mask file {path} does not fit the model: {unknown[:5]} are not parameters of it "
                     f"(its parameters: {names[:5]}{'...' if len(names) > 5 else ''})")
  leaves = []
  for name, (_, x) in zip(names, flat):
    if name in stored:
      m = stored[name]
      if m.shape != jnp.shape(x):
        raise ValueError(f"mask file {path} does not fit the model at {name!r}: mask shape {m.shape}, "
                         f"parameter shape {jnp.shape(x)}")
      leaves.append(jnp.asarray(m, bool))
    else:
      leaves.append(None)
  if not stored:
    raise ValueError(f"mask file {path} holds no mask arrays")
  return jax.tree_util.tree_unflatten(treedef, leaves)
