"""One-shot and iterative pruning, compiled into one program (the rounds run in ``lax.fori_loop``).

``prune`` scores the network, keeps the top-scored weights (globally or layer by layer), and, for iterative
methods, repeats on the pruned network with a shrinking keep fraction: SynFlow's exponential schedule keeps
``(1 − s)^{r/n}`` of the weights after round ``r`` of ``n`` (Tanaka et al. 2020; [P] §4.1). The pure function from
:func:`make_pruner` runs under ``jit`` and ``vmap`` (many seeds, parameter sets or masks in one program).
"""

from __future__ import annotations

import functools
import itertools
from typing import Any, Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np

from mfprune._keys import KeyLike, as_key
from mfprune import masks as masks_lib
from mfprune.masks import Mask, Prunable, is_kernel
from mfprune.scores import Batch, Stacked, get_scorer

Array = jax.Array
Params = Any
Pruner = Callable[[Params, Mask, Batch | None, Array], tuple[Mask, Array]]
SCHEDULES = ("exponential", "linear")
SCOPES = ("global", "layerwise")


def keep_schedule(sizes: list[int], sparsity: float, rounds: int, schedule: str = "exponential",
                  scope: str = "global") -> np.ndarray:
  """Weights kept after each round: shape ``(rounds,)`` (global) or ``(rounds, layers)`` (layerwise).

  Round ``r = 1..n`` keeps the fraction ``d_r = (1 − s)^{r/n}`` (exponential, SynFlow's) or ``1 − s·r/n`` (linear)
  of the prunable weights, counted with :func:`mfprune.masks.keep_count`, so the last round keeps exactly
  ``keep_count(M, s)``.
  """
  sparsity = masks_lib.check_sparsity(sparsity)
  if schedule not in SCHEDULES:
    raise ValueError(f"schedule must be one of {SCHEDULES}; got {schedule!r}")
  if scope not in SCOPES:
    raise ValueError(f"scope must be one of {SCOPES}; got {scope!r}")
  r = np.arange(1, rounds + 1) / rounds
  kept = (1.0 - sparsity) ** r if schedule == "exponential" else 1.0 - sparsity * r
  kept[-1] = 1.0 - sparsity
  totals = [sum(sizes)] if scope == "global" else list(sizes)
  counts = np.array([[masks_lib.keep_count(m, min(1.0 - d, sparsity)) for m in totals] for d in kept], np.int32)
  return counts[:, 0] if scope == "global" else counts


def make_pruner(apply_fn: Callable, method: str, counts: np.ndarray, *, scope: str = "global",
                **options: Any) -> Pruner:
  """A pure ``(params, mask, batch, key) -> (mask, finite)`` that runs every round of pruning.

  Args:
    apply_fn: the model's pure forward function.
    method: a registered scorer name (:func:`mfprune.scores.available_scorers`).
    counts: from :func:`keep_schedule`; its length is the number of rounds.
    scope: ``"global"`` or ``"layerwise"`` (must match ``counts``).
    **options: passed to the scorer (e.g. ``temperature`` for GraSP).

  Returns:
    The pruner. ``finite`` is a boolean per prunable layer: whether all scores of its kept weights were finite in
    every round (checked by :func:`prune`, which cannot raise inside compiled code).
  """
  score_fn = functools.partial(get_scorer(method).fn, **options)
  counts = jnp.asarray(counts)
  select = masks_lib.global_top_k if scope == "global" else masks_lib.layerwise_top_k

  def pruner(params: Params, mask: Mask, batch: Batch | None, key: Array) -> tuple[Mask, Array]:
    def round_(r, carry):
      mask, finite = carry
      scores = score_fn(apply_fn, params, mask, batch, jax.random.fold_in(key, r))
      mask_leaves = jax.tree_util.tree_leaves(mask)
      score_leaves = jax.tree_util.tree_leaves(scores)
      finite = finite & jnp.stack([jnp.all(jnp.isfinite(s) | ~m) for s, m in zip(score_leaves, mask_leaves)])
      scores = jax.tree.map(lambda s, m: jnp.where(m, s, -jnp.inf), scores, mask)
      return select(scores, counts[r]), finite

    n_layers = len(jax.tree_util.tree_leaves(mask))
    start = (mask, jnp.ones((n_layers,), bool))
    if counts.shape[0] == 1:
      # One-shot: no loop. XLA:CPU runs convolutions inside a while-loop body far slower than outside
      # (jax-ml/jax#12868): SNIP on ResNet32 took ~50x longer inside a one-round fori_loop.
      return round_(0, start)
    return jax.lax.fori_loop(0, counts.shape[0], round_, start)

  return pruner


@functools.lru_cache(maxsize=32)
def _compiled_pruner(apply_fn: Callable, method: str, scope: str, options: tuple) -> Callable:
  """The jitted pruner ``(params, mask, batch, key, counts)``, cached by its hashable settings. The keep counts are
  an argument: one compilation serves every sparsity with the same number of rounds (and the same shapes)."""

  def pruner(params, mask, batch, key, counts):
    return make_pruner(apply_fn, method, counts, scope=scope, **dict(options))(params, mask, batch, key)

  return jax.jit(pruner)


def as_batch(data: Batch | Iterable[tuple[Array, Array]] | None, num_batches: int = 1) -> Batch | None:
  """One batch ``(x, y)`` as is; an iterable of batches -> its first ``num_batches`` as :class:`Stacked`."""
  if data is None or isinstance(data, Stacked):
    return data
  if isinstance(data, tuple) and len(data) == 2 and hasattr(data[0], "shape"):
    return data
  if num_batches < 1:
    raise ValueError(f"num_batches must be >= 1; got {num_batches}")
  taken = list(itertools.islice(iter(data), num_batches))
  if len(taken) < num_batches:
    raise ValueError(f"the data iterator gave {len(taken)} batches; num_batches={num_batches} were asked for")
  shapes = {(np.shape(x), np.shape(y)) for x, y in taken}
  if len(shapes) != 1:
    raise ValueError(f"batches to accumulate must share one shape; got {sorted(shapes)}")
  return Stacked(jnp.stack([jnp.asarray(x) for x, _ in taken]), jnp.stack([jnp.asarray(y) for _, y in taken]))


def check_batch(apply_fn: Callable, params: Params, batch: Batch) -> None:
  """Checks that ``batch``'s inputs fit the model and that its integer labels index its outputs.

  Raises:
    ValueError: inputs the model cannot take (with the model's error), or labels outside ``[0, K)`` for a model
      with ``K`` outputs per example.
  """
  x, y = batch
  x = jnp.asarray(x)
  flat_x = x.reshape((-1,) + x.shape[2:]) if isinstance(batch, Stacked) else x
  try:
    out = jax.eval_shape(apply_fn, params, flat_x)
  except (TypeError, ValueError) as error:
    raise ValueError(f"batch inputs of shape {tuple(flat_x.shape)} do not fit the model: {error}") from None
  y = np.asarray(y)
  if y.size and np.issubdtype(y.dtype, np.integer):
    classes = int(out.shape[-1])
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= classes:
      raise ValueError(f"batch labels must be class indices in [0, {classes}) for a model with {classes} outputs; "
                       f"got labels from {low} to {high}")


def prune(apply_fn: Callable, params: Params, batch: Batch | Iterable | None = None, *, method: str = "snip",
          sparsity: float, key: KeyLike | None = None, rounds: int | None = None,
          schedule: str = "exponential", scope: str = "global", mask: Mask | None = None,
          prunable: Prunable = is_kernel, num_batches: int = 1, on_collapse: str = "raise",
          **options: Any) -> Mask:
  """Prunes a model at initialisation and returns the mask.

  Args:
    apply_fn: pure forward function ``apply_fn(params, x)`` (:func:`mfprune.functional.split`).
    params: the parameters (nested dict of arrays).
    batch: ``(inputs, integer labels)``, :class:`~mfprune.scores.Stacked` batches, or an iterable of batches of
      which the first ``num_batches`` are stacked (SNIP/GraSP then score the mean loss over them). Data-free
      methods read only the input shape; ``random`` and ``magnitude`` accept ``None``.
    method: registered scorer (``random``, ``magnitude``, ``snip``, ``snip_unsupervised``, ``grasp``, ``synflow``,
      ``synflow_l2``, ``synflow_dist``, ``synflow_l2_dist``).
    sparsity: fraction of prunable weights removed, in ``[0, 1)``.
    key: PRNG key or integer seed (random scores; default 0).
    rounds: pruning rounds; default 1, or 100 for the SynFlow family.
    schedule: ``"exponential"`` (SynFlow's) or ``"linear"`` keep fraction across rounds.
    scope: ``"global"`` (one threshold over all layers, as in every paper here) or ``"layerwise"`` (each layer
      keeps the same fraction).
    mask: an initial mask (weights it removes stay removed); default all prunable weights kept.
    prunable: which leaves may be pruned when ``mask`` is not given (default: dense/conv kernels).
    num_batches: batches taken from an iterable ``batch``.
    on_collapse: ``"raise"``, ``"warn"`` or ``"ignore"`` when a layer loses all its weights.
    **options: scorer options (``temperature=`` for GraSP, ``target=`` for snip_unsupervised, ``variant=`` for
      synflow_l2).

  Returns:
    The mask: ``True`` where weights are kept, ``None`` on non-prunable leaves.

  Raises:
    ValueError: bad sparsity, method, scorer option (naming the scorer's), schedule, scope, rounds or mask; a batch
      whose inputs do not fit the model or whose labels are not in ``[0, K)`` (:func:`check_batch`); non-finite
      scores (naming the layers); :class:`~mfprune.masks.LayerCollapseError` when ``on_collapse="raise"`` and a layer is wiped out.
  """
  scorer = get_scorer(method)
  scorer.check_options(options)
  sparsity = masks_lib.check_sparsity(sparsity)
  rounds = scorer.rounds if rounds is None else rounds
  if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)) or rounds < 1:
    raise ValueError(f"rounds must be an integer >= 1; got {rounds!r}")
  if on_collapse not in masks_lib.COLLAPSE_ACTIONS:
    raise ValueError(f"on_collapse must be one of {masks_lib.COLLAPSE_ACTIONS}; got {on_collapse!r}")
  if mask is None:
    mask = masks_lib.dense_mask(params, prunable)
  else:
    masks_lib.check_mask(mask, params)
  batch = as_batch(batch, num_batches)
  if scorer.uses_labels and batch is None:
    raise ValueError(f"method {method!r} needs batch=(inputs, labels)")
  if batch is not None:
    check_batch(apply_fn, params, batch)
  sizes = masks_lib.layer_sizes(mask)
  counts = keep_schedule(sizes, sparsity, rounds, schedule, scope)
  final = counts[-1]
  already = [d.kept for d in masks_lib.density(mask)]
  if np.any(np.asarray(already if scope == "layerwise" else [sum(already)]) < np.atleast_1d(final)):
    raise ValueError(f"the initial mask keeps {sum(already)} weights, fewer than the {int(np.sum(final))} "
                     f"that sparsity={sparsity} keeps")
  key = as_key(0 if key is None else key)
  pruner = _compiled_pruner(apply_fn, method, scope, tuple(sorted(options.items())))
  new_mask, finite = pruner(params, mask, batch, key, jnp.asarray(counts, jnp.int32))
  finite = np.asarray(finite)
  if not finite.all():
    names = [name for (name, _), ok in zip(masks_lib.named_leaves(mask), finite) if not ok]
    raise ValueError(f"method {method!r} produced NaN or infinite scores in {', '.join(names)}; check the inputs "
                     "and parameters (or enable float64)")
  masks_lib.check_collapse(new_mask, on_collapse)
  return new_mask
