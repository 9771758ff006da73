"""Monte-Carlo critical sparsity over random initialisations ([R] §2.2, Theorem 1, App. E; THEORY.md §3-4).

**The critical sparsity** ``s_cr`` is the smallest sparsity at which global pruning empties a whole layer.
:func:`critical_sparsity` estimates ``E[s_cr]`` over many random initialisations (one ``jax.vmap``-ed, jitted program:
one score and one sort per network, :func:`theory.sparsity.layer_kept_counts`), with a Student-t interval, the layer
that dies first, and every layer's kept fraction against sparsity; [R] Theorem 1 and Proposition 4
(:mod:`theory.sparsity`) bound the same mean.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mfprune import init as init_lib
from mfprune._keys import KeyLike, as_key
from mfprune.functional import ApplyFn, Params, layer_order
from mfprune.masks import Prunable, dense_mask, is_kernel, keep_count, layer_sizes, named_leaves
from mfprune.pruning import as_batch
from mfprune.scores import Scorer, Stacked, available_scorers, get_scorer
from mfprune.statistics import check_confidence, t_interval
from theory import sparsity
from theory._validation import check_int

Array = jax.Array

__all__ = ["DEFAULT_SPARSITIES", "SeedCriticalSparsity", "CriticalSparsity", "critical_sparsity",
           "critical_sparsity_fn"]

DEFAULT_SPARSITIES = tuple(i / 100 for i in range(100))
"""The default sparsity grid of the kept-fraction curves: ``0, 0.01, ..., 0.99``."""


class SeedCriticalSparsity(NamedTuple):
  """What the compiled program of :func:`critical_sparsity_fn` returns for one network (layers in tree order).

  Attributes:
    death_rank: ``(L,)`` int32, ``R_l``: layer ``l`` keeps no weight once at most ``R_l`` weights are kept
      globally (``R_l`` is the rank, from 0, of the layer's best-ranked weight).
    kept: ``(n_sparsities, L)`` int32, the weights of each layer that global top-k keeps at each grid sparsity.
    finite: ``(L,)`` bool, whether every score of the layer was finite.
  """

  death_rank: Array
  kept: Array
  finite: Array


def _resolve_method(method: Any) -> tuple[str, Callable, bool, int]:
  """``(name, fn, uses_labels, default rounds)`` of a registry name, a :class:`Scorer` or a score function."""
  if isinstance(method, str):
    method = get_scorer(method)  # ValueError listing the registered names
  if isinstance(method, Scorer):
    return method.name, method.fn, method.uses_labels, method.rounds
  if callable(method):
    return getattr(method, "__name__", type(method).__name__), method, False, 1
  raise ValueError(f"method must be a registered name ({', '.join(available_scorers())}), a Scorer or a function "
                   f"(apply_fn, params, mask, batch, key) -> scores; got {method!r}")


def _sparsity_grid(sparsities: Sequence[float] | None) -> np.ndarray:
  """The grid as a float64 array, each value checked to lie in ``[0, 1)``."""
  grid = np.asarray(DEFAULT_SPARSITIES if sparsities is None else sparsities, dtype=np.float64).reshape(-1)
  if grid.size == 0:
    raise ValueError("sparsities must hold at least one sparsity in [0, 1); got an empty grid")
  bad = grid[~((grid >= 0.0) & (grid < 1.0))]  # NaN fails both comparisons
  if bad.size:
    raise ValueError(f"sparsities must lie in [0, 1) (fractions of prunable weights removed); got "
                     f"{bad[:3].tolist()}")
  return grid


def _seed_program(apply_fn: ApplyFn, score_fn: Callable, options: tuple, prunable: Prunable,
                  counts: tuple[int, ...]) -> Callable[[Params, Any, Array], SeedCriticalSparsity]:
  """The pure per-network function behind :func:`critical_sparsity_fn` (hashable arguments only)."""

  def program(params: Params, batch: Any, key: Array) -> SeedCriticalSparsity:
    mask = dense_mask(params, prunable)
    # fold_in(key, 0): the key make_pruner gives round 0, so prune(..., key=key) scores exactly the same.
    scores = score_fn(apply_fn, params, mask, batch, jax.random.fold_in(key, 0), **dict(options))
    leaves = jax.tree_util.tree_leaves(scores)  # tree order = the parameter order of the tie rule
    finite = jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves])
    # One sort per network, in masks' own order (theory.sparsity.sortable_keys): death ranks and kept counts.
    death_rank, kept = sparsity.layer_kept_counts(leaves, counts)
    return SeedCriticalSparsity(death_rank=death_rank, kept=kept, finite=finite)

  return program


@functools.lru_cache(maxsize=16)
def _vmapped_program(apply_fn: ApplyFn, score_fn: Callable, options: tuple, prunable: Prunable,
                     counts: tuple[int, ...]) -> Callable:
  """``jit(vmap(program))`` over stacked parameters and keys (the batch is shared), cached by its settings."""
  return jax.jit(jax.vmap(_seed_program(apply_fn, score_fn, options, prunable, counts), in_axes=(0, None, 0)))


def critical_sparsity_fn(apply_fn: ApplyFn, method: Any, params: Params, *,
                         sparsities: Sequence[float] | None = None, prunable: Prunable = is_kernel,
                         method_options: Mapping[str, Any] | None = None
                         ) -> Callable[[Params, Any, Array], SeedCriticalSparsity]:
  """The pure one-network function that :func:`critical_sparsity` runs under ``jax.jit(jax.vmap(...))``.

  ``fn(params, batch, key)`` scores the network once with the method's one-shot score on the all-kept mask
  (``key`` as :func:`mfprune.prune` uses it), sorts the scores once, and returns a :class:`SeedCriticalSparsity`:
  every layer's death rank ``R_l`` and kept count at every grid sparsity (``masks.keep_count``), layers in tree
  order. ``jax.jit(fn)`` handles one network; benchmarks compare it with the vmapped program.

  Args:
    apply_fn: ``apply_fn(params, x)``.
    method: a registered scorer name, a :class:`mfprune.scores.Scorer` or a function
      ``(apply_fn, params, mask, batch, key) -> scores``.
    params: one parameter set (or its ``jax.eval_shape``): fixes the number of prunable weights ``M``.
    sparsities: the grid, each in ``[0, 1)`` (default :data:`DEFAULT_SPARSITIES`).
    prunable: which leaves are pruned (default dense/conv kernels).
    method_options: keyword options of the scorer (``temperature`` for GraSP, ...).

  Returns:
    ``fn(params, batch, key) -> SeedCriticalSparsity``.
  """
  _, fn, _, _ = _resolve_method(method)
  grid = _sparsity_grid(sparsities)
  total = sum(layer_sizes(dense_mask(params, prunable)))
  counts = tuple(keep_count(total, s) for s in grid)
  return _seed_program(apply_fn, fn, tuple(sorted((method_options or {}).items())), prunable, counts)


@dataclasses.dataclass(frozen=True)
class CriticalSparsity:
  """Monte-Carlo estimate of ``E[s_cr]`` and the per-layer kept fraction against sparsity ([R] §2.2, Theorem 1).

  Layers are the prunable leaves in network order (:func:`mfprune.functional.layer_order`) when the batch gave an
  input to trace, else in tree order (``ordering`` says which).

  Attributes:
    method: the scorer's name.
    values: ``(n_seeds,)`` the exact ``s_cr`` of each network.
    mean: their mean, the estimate of ``E[s_cr]``.
    std: their sample standard deviation (``ddof = 1``); NaN for one seed.
    confidence: the interval's confidence level.
    interval: Student-t interval ``mean ± t_{(1+confidence)/2, n−1} · std/√n`` (:func:`mfprune.statistics.t_interval`);
      ``None`` for one seed.
    layers: prunable parameter paths.
    layer_sizes: prunable weights per layer ``M_l``.
    death_sparsity: ``(n_seeds, n_layers)``: the smallest sparsity at which the layer keeps no weight,
      ``1 − R_l/M``; ``1.0`` for the layer holding the best-scored weight (it is never emptied, as at least one
      weight is always kept). ``values`` is its minimum over layers.
    first_dead: per seed, the layer emptied first (the argmin of ``death_sparsity``; unique, see the tie rule).
    sparsities: ``(n_sparsities,)`` the grid.
    kept_fraction: ``(n_sparsities, n_layers)``: the fraction of each layer kept by global top-k at each grid
      sparsity, averaged over the seeds.
    iterative_scorer: the scorer is normally run in several rounds (SynFlow family); its one-shot score was used.
    ordering: ``"network"`` or ``"tree"``: the order of ``layers``.
  """

  method: str
  values: np.ndarray
  mean: float
  std: float
  confidence: float
  interval: tuple[float, float] | None
  layers: tuple[str, ...]
  layer_sizes: tuple[int, ...]
  death_sparsity: np.ndarray
  first_dead: tuple[str, ...]
  sparsities: np.ndarray
  kept_fraction: np.ndarray
  iterative_scorer: bool
  ordering: str

  @property
  def n_seeds(self) -> int:
    return int(self.values.shape[0])

  @property
  def total(self) -> int:
    """Prunable weights ``M = Σ_l M_l``."""
    return int(sum(self.layer_sizes))

  @property
  def first_dead_counts(self) -> dict[str, int]:
    """Layer -> number of seeds in which it died first, most frequent first (ties: network order)."""
    rank = {name: i for i, name in enumerate(self.layers)}
    counts = collections.Counter(self.first_dead)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], rank[item[0]])))

  @property
  def most_common_first_dead(self) -> str:
    """The layer most often emptied first (ties: the earliest in network order)."""
    return next(iter(self.first_dead_counts))

  def to_dict(self) -> dict[str, Any]:
    return {
        "method": self.method, "n_seeds": self.n_seeds, "values": self.values.tolist(), "mean": self.mean,
        "std": self.std, "confidence": self.confidence,
        "interval": None if self.interval is None else list(self.interval),
        "first_dead": list(self.first_dead), "first_dead_counts": self.first_dead_counts,
        "most_common_first_dead": self.most_common_first_dead, "iterative_scorer": self.iterative_scorer,
        "ordering": self.ordering, "layers": list(self.layers), "layer_sizes": list(self.layer_sizes),
        "total": self.total, "death_sparsity": self.death_sparsity.tolist(), "sparsities": self.sparsities.tolist(),
        "kept_fraction": self.kept_fraction.tolist(),
    }


def _seed_params_fn(init: Callable[[Array], Params], scheme: str | None, options: tuple) -> Callable:
  """``key -> params`` of one seed: ``pipeline.initial_params``' steps."""

  def one(key: Array) -> Params:
    params = init(key)
    if scheme is None:
      return params
    with jax.ensure_compile_time_eval():  # eoc solves for σw from constants with Python floats: do that now
      return init_lib.initialise(scheme, params, jax.random.fold_in(key, 1), **dict(options))

  return one


@functools.lru_cache(maxsize=16)
def _jitted_seed_params_fn(init: Callable[[Array], Params], scheme: str | None, options: tuple) -> Callable:
  return jax.jit(_seed_params_fn(init, scheme, options))


def _initialise_seeds(init: Callable[[Array], Params], keys: Array, scheme: str | None,
                      options: Mapping[str, Any]) -> Params:
  """Stacked parameters; seed ``i`` is ``pipeline.initial_params(init, keys[i], scheme, **options)`` under ``jit``.

  A loop over the seeds of one jitted function, not ``jax.vmap``: both run in milliseconds, but XLA compiles the
  random draws of a vmapped initialisation more slowly (measured on two CPU cores: 4.9 s against 2.4 s for a depth-5
  MLP's ``init``, 11.4 s against 9.9 s at depth 100; an eager ``vmap`` of ``mfprune.init`` takes 10-30 s), and the
  scoring program is where vmap pays. The scheme's work on constants (``eoc`` solves for σw) runs at trace time; a
  scheme that still needs concrete values runs eagerly, one seed at a time.
  """
  items = tuple(sorted(options.items()))
  try:
    fn = _jitted_seed_params_fn(init, scheme, items)
  except TypeError:  # unhashable init or options: no cache
    fn = jax.jit(_seed_params_fn(init, scheme, items))
  try:
    seeds = [fn(k) for k in keys]
  except jax.errors.JAXTypeError:
    eager = _seed_params_fn(init, scheme, items)
    seeds = [eager(k) for k in keys]
  return jax.tree.map(lambda *leaves: jnp.stack(leaves), *seeds)



def critical_sparsity(apply_fn: ApplyFn, init: Callable[[Array], Params], method: Any, *, n_seeds: int,
                      batch: Any = None, key: KeyLike = 0, sparsities: Sequence[float] | None = None,
                      confidence: float = 0.95, init_scheme: str | None = None,
                      init_options: Mapping[str, Any] | None = None,
                      method_options: Mapping[str, Any] | None = None,
                      prunable: Prunable = is_kernel) -> CriticalSparsity:
  """Monte-Carlo ``E[s_cr]`` over ``n_seeds`` random initialisations, and which layer dies first ([R] §2.2).

  The critical sparsity of one network ([R] §2.2) is ``s_cr = min{s : some layer is fully pruned}``. From one set
  of scores it is exact (THEORY.md §3): rank all ``M`` prunable weights by score (ties: the earlier weight in
  parameter order first, the rule of :mod:`mfprune.masks`); layer ``l`` is empty once the kept count ``k`` is at
  most ``R_l``, the rank of its best weight, i.e. from sparsity ``1 − R_l/M`` on; so
  ``s_cr = 1 − max_l R_l / M`` and the first layer to die is the argmax. This equals
  :func:`theory.sparsity.critical_sparsity_from_scores` of the same scores, and ``mfprune.prune`` at ``s_cr`` empties
  that layer while at ``s_cr − 1/M`` it empties none (tested). [R]'s Theorem 1 bounds its mean for FFNN/CNN in the
  ordered phase, Proposition 4 for magnitude pruning (:mod:`theory.sparsity`).

  Seed ``i`` uses ``k_i = jax.random.split(key, n_seeds)[i]``: parameters
  ``pipeline.initial_params(init, k_i, init_scheme, **init_options)`` (``init(k_i)``, then, with a scheme,
  :func:`mfprune.init.initialise` with ``fold_in(k_i, 1)``), computed by one jitted function looped over the seeds
  (it compiles faster than a vmapped one, see ``_initialise_seeds``), and the scores
  ``mfprune.prune(..., key=fold_in(k_i, 2))`` computes. All networks share ``batch`` (the randomness is the
  initialisation's, as in [R]). Then one ``jax.jit(jax.vmap(...))`` program scores every network once, sorts its
  scores once (:func:`theory.sparsity.layer_kept_counts`), and derives ``s_cr``, every layer's death sparsity, and
  every layer's kept fraction on the whole grid from that sort (no re-scoring per sparsity).

  The kept-fraction curve: at grid sparsity ``s``, global top-k keeps ``k = masks.keep_count(M, s)`` weights
  (exactly the mask of ``masks.global_top_k(scores, k)``); ``kept_fraction[s, l]`` is the fraction of layer ``l``
  kept, averaged over the seeds. It is non-increasing in ``s``; its ``M_l``-weighted mean is ``k/M``, within
  ``1/(2M)`` of ``1 − s``; it is 0 from the largest of the seeds' death sparsities of that layer on.

  The interval is the Student-t interval of the mean (:func:`mfprune.statistics.t_interval`): it assumes ``s_cr``
  roughly normal across seeds or ``n`` large enough; with one seed it is undefined (``None``, ``std`` NaN).

  Iterative scorers (SynFlow's family, normally 100 rounds) are scored once, on the dense network: the
  critical sparsity of iterative pruning needs a pruning run per sparsity and is out of scope here
  (``iterative_scorer`` says when this happened).

  Args:
    apply_fn: ``apply_fn(params, x)`` (hashable: the compiled program is cached by it).
    init: ``key -> params``, traceable by ``jax.jit`` (``mfprune.functional.init_fn``, ``pipeline.model_fns``).
    method: a registered scorer name (``"snip"``, ``"magnitude"``, ...), a :class:`mfprune.scores.Scorer`, or a
      function ``(apply_fn, params, mask, batch, key) -> scores``.
    n_seeds: number of networks, ``>= 1``.
    batch: a batch ``(inputs, labels)``, :class:`mfprune.scores.Stacked` batches, or an iterable whose first batch
      is used (as :func:`mfprune.prune`); ``None`` for ``random`` and ``magnitude``. Its inputs also give the
      network order of the layers.
    key: integer seed or PRNG key.
    sparsities: the kept-fraction grid, each in ``[0, 1)``; default ``0, 0.01, ..., 0.99``.
    confidence: level of the interval, in ``(0, 1)``.
    init_scheme: optional :func:`mfprune.init.initialise` scheme (``"gaussian"``, ``"eoc"``, ...).
    init_options: the scheme's options (``sigma_w``, ``sigma_b``, ``activation``, ...).
    method_options: the scorer's options (``temperature`` for GraSP, ...).
    prunable: which leaves are pruned (default dense/conv kernels).

  Returns:
    A :class:`CriticalSparsity`.

  Raises:
    ValueError: ``n_seeds < 1``, a sparsity outside ``[0, 1)``, ``confidence`` outside ``(0, 1)``, an unknown
      method or scheme, a labelled method without ``batch``, a bad ``key``, or non-finite scores (naming the layers).
  """
  n_seeds = check_int("n_seeds", n_seeds, 1)
  confidence = check_confidence(confidence)
  grid = _sparsity_grid(sparsities)
  name, score_fn, uses_labels, rounds = _resolve_method(method)
  batch = as_batch(batch)
  if uses_labels and batch is None:
    raise ValueError(f"method {name!r} needs batch=(inputs, labels)")
  keys = jax.random.split(as_key(key), n_seeds)
  if init_scheme is not None and init_scheme not in init_lib.SCHEMES:
    raise ValueError(f"unknown init_scheme {init_scheme!r}; available: {', '.join(init_lib.SCHEMES)}")
  params = _initialise_seeds(init, keys, init_scheme, dict(init_options or {}))
  first = jax.tree.map(lambda x: x[0], params)
  named = named_leaves(dense_mask(first, prunable))
  tree_names = [n for n, _ in named]
  sizes = np.array([int(np.size(m)) for _, m in named])
  total = int(sizes.sum())
  counts = tuple(keep_count(total, s) for s in grid)
  options = tuple(sorted((method_options or {}).items()))
  program = _vmapped_program(apply_fn, score_fn, options, prunable, counts)
  score_keys = jax.vmap(lambda k: jax.random.fold_in(k, 2))(keys)
  out = jax.device_get(program(params, batch, score_keys))
  finite = np.asarray(out.finite).all(axis=0)
  if not finite.all():
    bad = [n for n, ok in zip(tree_names, finite) if not ok]
    raise ValueError(f"method {name!r} produced NaN or infinite scores in {', '.join(bad)}; check the inputs and "
                     "parameters (or enable float64)")
  # Network order for the tables (tree order sorts dict keys: "blocks" before "stem").
  if batch is not None:
    inputs = batch.inputs[0] if isinstance(batch, Stacked) else batch[0]
    rank = {n: i for i, n in enumerate(layer_order(apply_fn, first, jnp.asarray(inputs)[:1]))}
    perm = np.array(sorted(range(len(tree_names)), key=lambda i: (rank.get(tree_names[i], len(rank)), i)))
    ordering = "network"
  else:
    perm, ordering = np.arange(len(tree_names)), "tree"
  death_rank = np.asarray(out.death_rank, np.int64)[:, perm]
  death = 1.0 - death_rank / total
  values = death.min(axis=1)
  first_dead_index = death.argmin(axis=1)
  layers = tuple(tree_names[i] for i in perm)
  kept_fraction = np.asarray(out.kept, np.float64)[:, :, perm] / sizes[perm]
  std = float(values.std(ddof=1)) if n_seeds > 1 else math.nan
  return CriticalSparsity(
      method=name, values=values, mean=float(values.mean()), std=std, confidence=confidence,
      interval=t_interval(values, confidence), layers=layers, layer_sizes=tuple(int(m) for m in sizes[perm]),
      death_sparsity=death, first_dead=tuple(layers[i] for i in first_dead_index), sparsities=grid,
      kept_fraction=kept_fraction.mean(axis=0), iterative_scorer=rounds > 1, ordering=ordering)
