"""Optimizers for pruned networks: the mask-preserving wrapper, the papers' optimizers and learning-rate schedules."""

from __future__ import annotations

from typing import Any

import numpy as np
import optax

from mfprune import masks as masks_lib

Mask = Any

OPTIMIZERS = ("sgd", "momentum", "adam")
LR_SCHEDULES = ("constant", "piecewise", "step")


def _check_count(name: str, value: Any, *, minimum: int = 0) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
    raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
  return int(value)


def keep_pruned_at_zero(inner: optax.GradientTransformation, mask: Mask) -> optax.GradientTransformation:
  """Wraps ``inner`` so that weights pruned by ``mask`` receive exactly zero updates.

  Gradients are masked before ``inner`` (so momentum and Adam moments of pruned weights stay zero) and updates are
  masked after it (so nothing the inner chain adds, weight decay or Adam's ε terms, reaches a pruned weight).
  Together with parameters that start at zero (:func:`mfprune.masks.apply_mask`), pruned weights are exactly zero
  for the whole run: ``0 + 0 = 0`` in floating point. The mask may be a traced value (``jax.vmap`` over masks).

  Args:
    inner: any optax transformation (its state has the shape it has without the wrapper).
    mask: boolean pytree like the parameters, ``None`` on unprunable leaves (:mod:`mfprune.masks`).

  Returns:
    An ``optax.GradientTransformation`` with ``inner``'s state.
  """

  def update(updates, state, params=None):
    updates, state = inner.update(masks_lib.apply_mask(updates, mask), state, params)
    return masks_lib.apply_mask(updates, mask), state

  return optax.GradientTransformation(inner.init, update)


def learning_rate_schedule(name: str, learning_rate: float, steps: int, *, decay: float = 0.1,
                           decay_every: int | None = None) -> optax.Schedule:
  """The learning-rate schedules of the papers.

  * ``"constant"``: ``learning_rate`` throughout ([R] §4.1: SGD, 10k iterations, lr 1e-3 for the deep MLPs).
  * ``"piecewise"``: multiplied by ``decay`` at 1/2 and at 3/4 of ``steps`` ([R] §4.2, after Wang et al. 2020).
  * ``"step"``: multiplied by ``decay`` every ``decay_every`` steps ([S] App. B: 0.1 every 20k iterations on
    MNIST, every 25k on CIFAR-10 and Tiny ImageNet).

  Args:
    name: one of :data:`LR_SCHEDULES`.
    learning_rate: the initial learning rate (> 0).
    steps: the length of the run (> 0); sets the piecewise boundaries.
    decay: the factor at each boundary, in (0, 1].
    decay_every: the step-decay period (> 0); required for ``"step"``.

  Returns:
    ``step -> learning rate`` (an optax schedule).
  """
  if not learning_rate > 0:
    raise ValueError(f"learning_rate must be > 0; got {learning_rate}")
  if not 0 < decay <= 1:
    raise ValueError(f"decay must be in (0, 1]; got {decay}")
  _check_count("steps", steps, minimum=1)
  if name == "constant":
    return optax.constant_schedule(learning_rate)
  if name == "piecewise":
    boundaries = sorted({max(1, steps // 2), max(1, (3 * steps) // 4)})
    return optax.piecewise_constant_schedule(learning_rate, {b: decay for b in boundaries})
  if name == "step":
    if decay_every is None or decay_every < 1:
      raise ValueError(f"the step schedule needs decay_every >= 1 (steps between decays); got {decay_every}")
    return optax.exponential_decay(learning_rate, decay_every, decay, staircase=True)
  raise ValueError(f"unknown learning-rate schedule {name!r}; choose one of {', '.join(LR_SCHEDULES)}")


def make_optimizer(name: str, learning_rate: float | optax.Schedule, *, momentum: float = 0.9,
                   nesterov: bool = False, weight_decay: float = 0.0) -> optax.GradientTransformation:
  """SGD, SGD with (Nesterov) momentum, or Adam, with coupled weight decay.

  Weight decay is added to the gradient before the optimizer (``g + λθ``, as PyTorch's SGD and the papers' code do),
  on every parameter. Wrap the result in :func:`keep_pruned_at_zero` to train a pruned network.

  Args:
    name: ``"sgd"``, ``"momentum"`` or ``"adam"``.
    learning_rate: a float or an optax schedule.
    momentum: the momentum coefficient for ``"momentum"``, in [0, 1).
    nesterov: Nesterov momentum.
    weight_decay: λ ≥ 0.

  Returns:
    The optax transformation.
  """
  if weight_decay < 0:
    raise ValueError(f"weight_decay must be >= 0; got {weight_decay}")
  if name == "sgd":
    core = optax.sgd(learning_rate)
  elif name == "momentum":
    if not 0 <= momentum < 1:
      raise ValueError(f"momentum must be in [0, 1); got {momentum}")
    core = optax.sgd(learning_rate, momentum=momentum, nesterov=nesterov)
  elif name == "adam":
    core = optax.adam(learning_rate)
  else:
    raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
  return optax.chain(optax.add_decayed_weights(weight_decay), core) if weight_decay else core


