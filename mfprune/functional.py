"""Models as pure ``(apply_fn, params)`` pairs: the interface every scorer, mask and trainer in mfprune takes.

``params`` is a plain nested dict of arrays (``nnx.to_pure_dict`` of the model's ``nnx.Param`` state), so the same
code serves Flax NNX models (through :func:`split`), and Linen, Equinox or hand-written JAX models (write
``apply_fn(params, x)`` yourself). An ``apply_fn`` may also offer ``apply_fn.linearised(params, x)``, the
bias-free, activation-free network of SynFlow ([P] §3-4); :func:`split` provides it for mfprune's models.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Protocol

import jax
from flax import nnx

Array = jax.Array
Params = Any  # a pytree of arrays
ApplyFn = Callable[[Params, Array], Array]


class LinearisableApplyFn(Protocol):
  """An ``apply_fn`` that also evaluates its linearised network (optional; see :func:`linearised`)."""

  def __call__(self, params: Params, x: Array) -> Array: ...

  def linearised(self, params: Params, x: Array) -> Array: ...


@dataclasses.dataclass(frozen=True, eq=False)
class ModelFn:
  """Pure forward function of an NNX model: ``ModelFn(params, x)``; hashable by identity so it can be static.

  Attributes:
    graphdef: the model's structure (from ``nnx.split``).
    rest: every non-parameter state (batch-norm statistics) as a pure dict, held fixed.
  """

  graphdef: Any
  rest: Any

  def module(self, params: Params) -> nnx.Module:
    """The NNX module with these parameters."""
    return nnx.merge(self.graphdef, params, self.rest)

  def __call__(self, params: Params, x: Array) -> Array:
    return self.module(params)(x)

  def linearised(self, params: Params, x: Array) -> Array:
    """The model's ``linear=True`` forward: identity activations, no biases, rescaled layer by layer."""
    return self.module(params)(x, linear=True)


def split(model: nnx.Module) -> tuple[ModelFn, Params]:
  """Splits an NNX model into a pure ``apply_fn`` and its parameters.

  Batch-norm layers keep the mode the model is in (``model.train()``: batch statistics; ``model.eval()``: running
  averages); their statistics are frozen into ``apply_fn``, which never updates them.

  Args:
    model: an NNX module whose ``__call__(x)`` returns outputs (mfprune's models also take ``linear=``).

  Returns:
    ``(apply_fn, params)`` with ``params`` a nested dict of arrays keyed like the module's attributes.
  """
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  return ModelFn(graphdef, nnx.to_pure_dict(rest)), nnx.to_pure_dict(params)


def merge(apply_fn: ModelFn, params: Params) -> nnx.Module:
  """The inverse of :func:`split`: an NNX module holding ``params`` (e.g. pruned or trained ones)."""
  if not isinstance(apply_fn, ModelFn):
    raise TypeError(f"merge needs an apply_fn from mfprune.functional.split; got {type(apply_fn).__name__}")
  return apply_fn.module(params)


def linearised(apply_fn: ApplyFn | LinearisableApplyFn) -> ApplyFn:
  """``apply_fn.linearised`` when the model offers one, else ``apply_fn`` itself.

  A hand-written ``apply_fn`` without a linearised mode is used as it is: SynFlow then scores the network it
  computes on ``|θ|`` and a positive input, which equals the linearised one for bias-free nets with ReLU-like
  activations (positive inputs stay positive).
  """
  return getattr(apply_fn, "linearised", apply_fn)


def init_fn(model_fn: Callable[[jax.Array], nnx.Module]) -> tuple[ModelFn, Callable[[jax.Array], Params]]:
  """Turns a model constructor ``key -> module`` into ``apply_fn`` and a pure, jitted ``key -> params``.

  ``jax.vmap(init)(keys)`` initialises many networks in one compiled program (Monte-Carlo over seeds). Nothing is
  built eagerly: the structure comes from ``nnx.eval_shape`` and the non-parameter state (batch-norm statistics,
  the same for every key) from one compiled construction.

  Args:
    model_fn: builds the model from a PRNG key, e.g. ``lambda k: MLP(..., rngs=nnx.Rngs(params=k))``.

  Returns:
    ``(apply_fn, init)``.
  """
  graphdef, _, _ = nnx.split(nnx.eval_shape(lambda: model_fn(jax.random.key(0))), nnx.Param, ...)

  @jax.jit
  def init(key: jax.Array) -> Params:
    return nnx.to_pure_dict(nnx.state(model_fn(key), nnx.Param))

  rest = jax.jit(lambda key: nnx.to_pure_dict(nnx.state(model_fn(key), nnx.Not(nnx.Param))))(jax.random.key(0))
  return ModelFn(graphdef, rest), init


def layer_order(apply_fn: ApplyFn, params: Params, x: Array) -> list[str]:
  """Parameter paths (``"stem/kernel"``) in the order the forward pass first uses them: network order.

  Pytrees sort dictionary keys, so tree order is alphabetical (``blocks`` before ``stem``); tables and plots of
  layers read better in the order the signal meets them. Found from the traced program (``jax.make_jaxpr``), so
  it works for any ``apply_fn``; parameters the forward pass never reads come last, in tree order.
  """
  from mfprune.masks import path_name

  flat, _ = jax.tree_util.tree_flatten_with_path(params)
  jaxpr = jax.make_jaxpr(apply_fn)(params, x).jaxpr
  param_vars = jaxpr.invars[:len(flat)]
  first_use = {}
  for index, eqn in enumerate(jaxpr.eqns):
    for var in eqn.invars:
      if not hasattr(var, "val"):
        first_use.setdefault(var, index)
  position = [first_use.get(var, len(jaxpr.eqns)) for var in param_vars]
  order = sorted(range(len(flat)), key=lambda i: (position[i], i))
  return [path_name(flat[i][0]) for i in order]
