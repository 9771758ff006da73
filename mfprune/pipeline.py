"""From a model name to a pruned, repaired network ready to train: the steps the CLI, the demo and the experiments
share.

The steps are the ones a user would chain by hand (:mod:`mfprune.models`, :mod:`mfprune.init`,
:mod:`mfprune.pruning`, :mod:`mfprune.repair`); this module only fixes their order:

1. build the model's ``(apply_fn, init)`` (:func:`model_fns`);
2. initialise with a scheme, e.g. the EOC Gaussian of [R] §2.1 (:func:`initial_params`);
3. prune at initialisation (:func:`mfprune.prune`) and repair: the EOC rescaling trick of [R] Prop. 1 / Alg. 1
   and/or the approximate isometry of [S] eq. 8 (:func:`prune_and_repair`).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax

from mfprune._keys import KeyLike, as_key
from mfprune import functional
from mfprune import init as init_lib
from mfprune import masks as masks_lib
from mfprune import models, pruning, repair

Array = jax.Array
Params = Any
Mask = Any


def model_fns(name: str, *, input_shape: Sequence[int] | str, num_classes: int | None = None,
              **options: Any) -> tuple[functional.ModelFn, Callable[[Array], Params]]:
  """``(apply_fn, init)`` of a registered model: ``init(key)`` is jitted and vmaps over keys.

  Args:
    name: a model of :func:`mfprune.models.available_models`.
    input_shape: one example's shape or a data set name.
    num_classes: outputs (default: the data set's).
    **options: architecture options (``depth``, ``width``, ``activation``, ...).

  Returns:
    ``(apply_fn, init)`` from :func:`mfprune.functional.init_fn`.

  Raises:
    ValueError: unknown model or options it does not take.
  """
  return functional.init_fn(lambda key: models.create_model(name, input_shape=input_shape, num_classes=num_classes,
                                                            key=key, **options))


def initial_params(init: Callable[[Array], Params], key: KeyLike, scheme: str | None = None,
                   **options: Any) -> Params:
  """``init(key)``, then re-initialised by ``scheme`` (:func:`mfprune.init.initialise`) when one is given."""
  key = as_key(key)
  params = init(key)
  if scheme is None:
    return params
  return init_lib.initialise(scheme, params, jax.random.fold_in(key, 1), **options)


def prune_and_repair(apply_fn: Callable, params: Params, batch: Any = None, *, method: str | None, sparsity: float,
                     key: KeyLike = 0, rescale: str | None = None, rescale_reference: str | float = "dense",
                     isometry_steps: int = 0, isometry_gain: float = 1.0,
                     **prune_options: Any) -> tuple[Params, Mask]:
  """Prunes at initialisation, then repairs.

  Args:
    apply_fn: ``apply_fn(params, x)``.
    params: initial parameters.
    batch: data for data-dependent scores (see :func:`mfprune.prune`).
    method: a scorer name, or ``None`` (or sparsity 0) for the dense network.
    sparsity: fraction of prunable weights removed, in ``[0, 1)``.
    key: PRNG key or integer seed of the scores.
    rescale: ``"row"`` (per output neuron/channel, [R] Alg. 1) or ``"layer"`` to restore each kept row's (layer's)
      squared norm after pruning (:func:`mfprune.repair.rescale`); ``None`` for no rescaling.
    rescale_reference: ``"dense"`` or a σw (see :func:`mfprune.repair.rescale`).
    isometry_steps: steps of approximate isometry ([S] eq. 8; :func:`mfprune.repair.approximate_isometry`); 0: none.
    isometry_gain: the singular value AI aims at.
    **prune_options: more options of :func:`mfprune.prune` (``rounds``, ``scope``, ``on_collapse``, ...).

  Returns:
    ``(params, mask)`` with pruned weights exactly zero in ``params``.
  """
  sparsity = masks_lib.check_sparsity(sparsity)
  if rescale is not None and rescale not in repair.GRANULARITIES:
    raise ValueError(f"rescale must be None or one of {', '.join(repair.GRANULARITIES)}; got {rescale!r}")
  if method is None or sparsity == 0.0:
    mask = masks_lib.dense_mask(params)
  else:
    mask = pruning.prune(apply_fn, params, batch, method=method, sparsity=sparsity, key=key, **prune_options)
  if rescale is not None:
    params = repair.rescale(params, mask, granularity=rescale, reference=rescale_reference)
  if isometry_steps:
    params = repair.approximate_isometry(params, mask, steps=isometry_steps, gain=isometry_gain)
  return masks_lib.apply_mask(params, mask), mask

