"""The pure pieces of a training step: state, forward pass with batch-norm state, train and eval steps, stacking."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from mfprune import data as data_lib
from mfprune import masks as masks_lib
from mfprune.functional import ModelFn
from mfprune.scores import cross_entropy
from mfprune.train.optim import keep_pruned_at_zero

Array = jax.Array
Params = Any
Mask = Any


class TrainState(NamedTuple):
  """What a training run carries from step to step (a pytree; with ``ensemble=True`` every leaf has a K axis).

  Attributes:
    step: the number of steps taken (a scalar int32 array).
    params: the (masked) parameters.
    model_state: non-parameter model state (batch-norm statistics) as a pure dict; ``{}`` if there is none.
    opt_state: the optimizer state.
  """

  step: Array
  params: Params
  model_state: Any
  opt_state: Any


def apply_model(apply_fn: Callable, params: Params, model_state: Any, x: Array, *,
                training: bool) -> tuple[Array, Any]:
  """Runs the network and returns ``(logits, new model state)``.

  For an :class:`~mfprune.functional.ModelFn` with batch-norm statistics, ``training=True`` normalises by batch
  statistics and updates the running averages; ``training=False`` uses the running averages. Any other
  ``apply_fn(params, x)`` is called as it is and its (empty) state passes through.
  """
  if not (isinstance(apply_fn, ModelFn) and model_state):
    return apply_fn(params, x), model_state
  module = nnx.merge(apply_fn.graphdef, params, model_state)
  if training:
    module.train()
  else:
    module.eval()
  logits = module(x)
  return logits, nnx.to_pure_dict(nnx.state(module, nnx.Not(nnx.Param)))


def initial_model_state(apply_fn: Callable) -> Any:
  """The model's non-parameter state (``apply_fn.rest`` for a ModelFn, else ``{}``)."""
  return apply_fn.rest if isinstance(apply_fn, ModelFn) else {}


def init_state(params: Params, mask: Mask, optimizer: optax.GradientTransformation,
               model_state: Any = None) -> TrainState:
  """Step 0: the masked parameters and a fresh optimizer state (vmap it for an ensemble)."""
  params = masks_lib.apply_mask(params, mask)
  return TrainState(jnp.zeros((), jnp.int32), params, {} if model_state is None else model_state,
                    optimizer.init(params))


def make_train_step(apply_fn: Callable, optimizer: optax.GradientTransformation, *,
                    augment: bool = False) -> Callable:
  """A pure training step ``(state, mask, x, y, key) -> (state, {"loss", "accuracy"})``.

  Softmax cross-entropy on integer labels; the update goes through :func:`keep_pruned_at_zero` with ``mask``, so
  ``jax.vmap(step, in_axes=(0, 0, None, None, None))`` trains K networks with different masks on the same batch.

  Args:
    apply_fn: ``apply_fn(params, x) -> logits`` (a :class:`~mfprune.functional.ModelFn` for batch norm).
    optimizer: the inner optax transformation (not yet wrapped).
    augment: apply :func:`mfprune.data.augment` (random crop and flip) with ``key`` first.

  Returns:
    The step function (not jitted: jit or vmap it as you need).
  """

  def loss_fn(params, model_state, x, y):
    logits, model_state = apply_model(apply_fn, params, model_state, x, training=True)
    return cross_entropy(logits, y), (logits, model_state)

  def step(state: TrainState, mask: Mask, x: Array, y: Array, key: Array):
    if augment:
      x = data_lib.augment(key, x)
    (loss, (logits, model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params, state.model_state, x, y)
    tx = keep_pruned_at_zero(optimizer, mask)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    accuracy = jnp.mean(jnp.argmax(logits, -1) == y)
    return TrainState(state.step + 1, params, model_state, opt_state), {"loss": loss, "accuracy": accuracy}

  return step


def make_eval_step(apply_fn: Callable) -> Callable:
  """A pure evaluation step ``(params, model_state, x, y) -> (summed loss, number correct)`` on one batch."""

  def step(params, model_state, x, y):
    logits, _ = apply_model(apply_fn, params, model_state, x, training=False)
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    return jnp.sum(losses), jnp.sum(jnp.argmax(logits, -1) == y)

  return step


def stack(trees: Sequence[Any]) -> Any:
  """Stacks K pytrees of one structure along a new leading axis (``None`` leaves stay ``None``): the input of
  ``train(..., ensemble=True)``, e.g. K masks of different sparsities."""
  return jax.tree.map(lambda *xs: None if xs[0] is None else jnp.stack(xs), *trees, is_leaf=lambda v: v is None)


def unstack(tree: Any) -> list[Any]:
  """The inverse of :func:`stack`."""
  leaves = [x for x in jax.tree.leaves(tree)]
  k = leaves[0].shape[0]
  return [jax.tree.map(lambda x: x[i], tree) for i in range(k)]
