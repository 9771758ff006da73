"""The Path Kernel trace of any (pruned) model, exact and in log space ([P] §3, eq. 14-16; THEORY.md §7).

``Tr Π_θ = Σ_p Σ_j (∂v_p/∂θ_j)² = Σ_j ∂R_pk(1, θ)/∂(θ_j²)`` with ``R_pk(x, θ) = 1ᵀ(Π_l (θ^l)²) x``, the output sum
of the linearised network (no biases, identity activations) on the squared parameters: one backward pass
(:mod:`theory.paths` holds the formulas for dense chains and the enumeration oracle). Here it is computed for a model given as the
``(apply_fn, params)`` pair of :mod:`mfprune.functional`, at ``θ ⊙ mask``:

* mfprune's models (``apply_fn.linearised``, :func:`mfprune.functional.linearised`) divide the signal after every
  layer by a positive scalar held constant under differentiation (:func:`mfprune.models.layers.renormalise`), which
  keeps deep networks finite but makes the output ``R_pk / S`` with ``S`` the product of those scalars.
  :func:`mfprune.models.layers.record_scales` collects ``log S``, so ``log R_pk = log R̃ + log S`` and
  ``log ∂R_pk/∂(θ_j²) = log ∂R̃/∂(θ_j²) + log S`` exactly: finite logs at depth 100 in float32.
* a hand-written ``apply_fn`` without a linearised mode is checked to be bias-free and positively homogeneous
  (:func:`check_path_network`) and evaluated on the squared parameters and a non-negative input, where
  a ReLU network is its linear network; no renormalisation (it may overflow for deep nets in float32).

What counts. Pruned weights are no longer parameters: they add nothing (their diagonal entries are set to 0), and
the network is the one at ``θ ⊙ mask``. Biases are on no path (the linearised mode drops them; hand-written
networks must have none). Every other parameter the linearised network reads is a path weight: kernels, and the
batch-norm scales, which the linearised mode keeps as ``scale / √(var + ε)`` (their share is reported apart as
``log_other_trace``). Fixed factors that are not parameters (average pooling, batch norm's ``1/√(var + ε)``, the
Stable ResNet's ``1/√L``) weight the paths through them by their value, exactly as in ``R_pk``; max pooling
(VGG) keeps only the paths through each window's largest unit for the given input. For dense and convolution
chains without such factors (MLP, VanillaCNN, hand-written dense nets) the result is exactly ``Tr Π``. A model with
biases or a non-homogeneous activation gets the Path Kernel of its bias-free linearised network (SynFlow-L2's
objective); the NTK factorisation ``Θ = J_v^f Π J_v^fᵀ`` itself needs a bias-free ReLU-like network.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mfprune import functional
from mfprune.functional import ApplyFn, Params
from mfprune.masks import Mask, check_mask, dense_mask, named_leaves, path_name
from mfprune.models.layers import record_scales
from theory._pytree import pytree_dataclass, static_field
from theory._validation import check_int, check_nonnegative, is_concrete

Array = jax.Array
InputSpec = Sequence[int] | Array

__all__ = [
    "PathKernelTrace", "path_kernel_trace", "PathKernelDiagonal", "path_kernel_diagonal", "check_path_network",
]


@pytree_dataclass
class PathKernelTrace:
  """``Tr Π_θ`` of one network, per layer, with ``R_pk`` and ``R_sf``, as natural logs (``−inf`` for 0).

  Attributes:
    log_trace: ``log Tr Π_θ`` over every parameter on a path (the layers and ``log_other_trace``).
    log_layer_traces: ``(L,)``, ``log Σ_{j ∈ l} ∂R_pk/∂(θ_j²)`` over the kept weights of each prunable layer, in
      network order (:func:`mfprune.functional.layer_order`).
    log_other_trace: the share of the parameters outside the mask (batch-norm scales); ``−inf`` when none is on a
      path (MLP, VanillaCNN).
    log_r_pk: ``log R_pk(x, θ ⊙ m)`` ([P] eq. 15).
    log_r_sf: ``log R_sf(x, θ ⊙ m)`` ([P] eq. 16).
    layers: the prunable layers' parameter paths (``"layers/0/kernel"``), in the order of ``log_layer_traces``.
  """

  log_trace: Array
  log_layer_traces: Array
  log_other_trace: Array
  log_r_pk: Array
  log_r_sf: Array
  layers: tuple[str, ...] = static_field()

  @property
  def trace(self) -> float:
    """``Tr Π_θ`` (``inf`` when it exceeds float64)."""
    return _exp(self.log_trace)

  @property
  def layer_traces(self) -> list[float]:
    """Per-layer traces in linear space (float64; ``inf`` beyond its range)."""
    return [_exp(v) for v in np.asarray(self.log_layer_traces)]

  def to_dict(self) -> dict[str, Any]:
    """Plain numbers for JSON (``mfprune.report.write_json`` turns ``−inf`` into ``null``)."""
    return {
        "log_trace": float(self.log_trace), "trace": self.trace,
        "log_other_trace": float(self.log_other_trace), "log_r_pk": float(self.log_r_pk),
        "log_r_sf": float(self.log_r_sf),
        "layers": [{"name": name, "log_trace": float(v), "trace": _exp(v)}
                   for name, v in zip(self.layers, np.asarray(self.log_layer_traces))],
    }


@pytree_dataclass
class PathKernelDiagonal:
  """``∂R_pk(x, θ)/∂(θ²)`` per parameter, as ``diagonal · exp(log_scale)`` (the factor kept apart: it may overflow).

  Attributes:
    diagonal: a tree like ``params``: the renormalised diagonal, 0 at pruned weights and at parameters on no path.
    log_scale: ``log S``, the log of the product of the renormalisation factors (0 without renormalisation).
  """

  diagonal: Any
  log_scale: Array

  def exact(self) -> Any:
    """``diagonal · exp(log_scale)`` (overflows to ``inf`` where the true values exceed the dtype)."""
    factor = jnp.exp(self.log_scale)
    return jax.tree.map(lambda d: d * factor, self.diagonal)


def _exp(value) -> float:
  with np.errstate(over="ignore"):
    return float(np.exp(np.float64(value)))


def _log(x: Array) -> Array:
  positive = x > 0
  return jnp.where(positive, jnp.log(jnp.where(positive, x, 1.0)), -jnp.inf)


def _inputs(x_or_input_shape: InputSpec, params: Params) -> Array:
  """``ones((1, *shape))`` for a shape, or the batch ``x`` checked non-negative; ValueError naming the argument."""
  dtype = jnp.result_type(*jax.tree_util.tree_leaves(params), float)
  if isinstance(x_or_input_shape, (tuple, list)):
    if not x_or_input_shape:
      raise ValueError("x_or_input_shape must be the shape of one example (a non-empty tuple of integers >= 1) or "
                       "a batch of inputs; got ()")
    shape = tuple(check_int(f"x_or_input_shape[{i}]", n, 1) for i, n in enumerate(x_or_input_shape))
    return jnp.ones((1, *shape), dtype)
  x = jnp.asarray(x_or_input_shape)
  if x.ndim < 2 or x.shape[0] < 1 or min(x.shape) < 1:
    raise ValueError("x_or_input_shape must be the shape of one example, e.g. (8, 8, 1), or a batch of inputs "
                     f"(n, *input_shape) with n >= 1; got an array of shape {x.shape}")
  check_nonnegative("x_or_input_shape (the inputs)", x)
  return x.astype(dtype)


def _resolve_mask(params: Params, mask: Mask | None) -> Mask:
  if mask is None:
    return dense_mask(params)
  check_mask(mask, params)
  return mask


def _ones_where_none(mask: Mask, params: Params) -> Params:
  """0/1 multipliers like ``params``: the mask where it has an array, ones elsewhere."""
  return jax.tree.map(lambda m, p: jnp.ones_like(p) if m is None else m.astype(p.dtype), mask, params,
                      is_leaf=lambda v: v is None)


def _check_input_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
  if isinstance(input_shape, (int, np.integer)) or not isinstance(input_shape, Sequence) or not input_shape:
    raise ValueError(f"input_shape must be the shape of one example, a non-empty tuple of integers >= 1; "
                     f"got {input_shape!r}")
  return tuple(check_int(f"input_shape[{i}]", n, 1) for i, n in enumerate(input_shape))


def _leaf_dtype(params: Any):
  leaves = jax.tree_util.tree_leaves(params)
  if not leaves:
    raise ValueError("params must hold at least one array; got an empty tree")
  return jnp.result_type(*leaves, float)


def check_path_network(apply_fn: ApplyFn, params: Any, input_shape: Sequence[int], *,
                       check_homogeneity: bool = True) -> tuple[int, ...]:
  """Checks that ``apply_fn(params, x)`` is a bias-free, positively homogeneous network; returns ``input_shape``.

  Two checks, before anything is traced: no leaf of ``params`` has ``bias`` in its key path, and ``f(2x) = 2 f(x)``
  (to a relative 1e-4 in float32, 1e-9 in float64) on a fixed random positive batch of two inputs. A ReLU network
  with biases, batch norm in training mode, or a tanh/erf/GELU activation fails the second. Skipped for traced
  ``params`` (inside ``jit``/``vmap``): validate outside first.

  Args:
    apply_fn: ``apply_fn(params, x)`` on a batch ``x`` of shape ``(n, *input_shape)``.
    params: its parameter pytree.
    input_shape: the shape of one example.
    check_homogeneity: run the numerical homogeneity check (one forward pass of two examples).

  Returns:
    ``input_shape`` as a tuple of ints.

  Raises:
    ValueError: a bad ``input_shape``, biases where paths need none, or a non-homogeneous network.
  """
  shape = _check_input_shape(input_shape)
  flat, _ = jax.tree_util.tree_flatten_with_path(params)
  biases = [path_name(p) for p, _ in flat if "bias" in path_name(p).lower()]
  if biases:
    raise ValueError(f"params has biases where paths need none ({', '.join(biases[:4])}"
                     f"{', …' if len(biases) > 4 else ''}): the path decomposition of [P] eq. 9 needs a bias-free "
                     "network; build it without biases (use_bias=False)")
  if not check_homogeneity or not is_concrete(params):
    return shape
  dtype = _leaf_dtype(params)
  x = jnp.asarray(np.random.default_rng(0).uniform(0.5, 1.5, (2, *shape)), dtype)
  forward = jax.jit(apply_fn)  # one compile for both calls
  y1 = np.asarray(forward(params, x), np.float64)
  y2 = np.asarray(forward(params, 2 * x), np.float64)
  scale = max(float(np.max(np.abs(2 * y1))), np.finfo(np.float64).tiny)
  rtol = 1e-9 if dtype == jnp.float64 else 1e-4
  error = float(np.max(np.abs(y2 - 2 * y1))) / scale
  if not (np.isfinite(error) and error <= rtol):
    raise ValueError(f"apply_fn is not positively homogeneous in its input: f(2x) differs from 2·f(x) by {error:.3g} "
                     "(relative) on a random positive x. A non-homogeneous activation (tanh, erf, gelu, ...) or "
                     "hidden biases/normalisation: paths need a bias-free network with relu, leaky_relu or linear "
                     "activations")
  return shape


def _linear_fn(apply_fn: ApplyFn, input_shape: tuple[int, ...], params: Params) -> ApplyFn:
  """The network ``R`` is read from: the model's linearised mode, or a checked hand-written ``apply_fn``."""
  if hasattr(apply_fn, "linearised"):
    return functional.linearised(apply_fn)
  check_path_network(apply_fn, params, input_shape)
  return apply_fn


def _objective(fn: ApplyFn, params: Params, x: Array) -> tuple[Array, Array]:
  """``(R̃, log S)``: the renormalised output sum and the log of the factor it was divided by."""
  with record_scales() as logs:
    out = fn(params, x)
  log_scale = functools.reduce(jnp.add, logs, jnp.zeros((), out.dtype))
  return jnp.sum(out), log_scale


@functools.partial(jax.jit, static_argnums=0)
def _program(fn: ApplyFn, params: Params, mask: Mask, x: Array) -> dict[str, Any]:
  """Renormalised ``R_pk``, its gradient with respect to ``(θ ⊙ m)²`` (masked) and that gradient's sum per leaf,
  ``log S``, and ``log R_sf``."""
  multipliers = _ones_where_none(mask, params)
  theta = jax.tree.map(lambda p, m: p * m, params, multipliers)
  squared = jax.tree.map(lambda p: p * p, theta)
  (r_pk, log_scale), grads = jax.value_and_grad(lambda s: _objective(fn, s, x), has_aux=True)(squared)
  grads = jax.tree.map(lambda g, m: g * m, grads, multipliers)
  r_sf, log_scale_sf = _objective(fn, jax.tree.map(jnp.abs, theta), x)
  return {"r_pk": r_pk, "log_scale": log_scale, "grads": grads, "sums": jax.tree.map(jnp.sum, grads),
          "log_r_sf": _log(r_sf) + log_scale_sf}


def _run(apply_fn: ApplyFn, params: Params, x_or_input_shape: InputSpec, mask: Mask | None):
  x = _inputs(x_or_input_shape, params)
  mask = _resolve_mask(params, mask)
  fn = _linear_fn(apply_fn, tuple(x.shape[1:]), params)
  return x, mask, _program(fn, params, mask, x)


def path_kernel_diagonal(apply_fn: ApplyFn, params: Params, x_or_input_shape: InputSpec, *,
                         mask: Mask | None = None) -> PathKernelDiagonal:
  """``∂R_pk(x, θ)/∂(θ²)`` for every parameter of a model at ``θ ⊙ mask`` ([P] eq. 15).

  At ``x = 1`` the entry of weight ``j`` is ``Σ_p (∂v_p/∂θ_j)²``, the diagonal of ``J_θ^vᵀ J_θ^v``. SynFlow-L2's
  score is ``θ ⊙ ∂R_pk/∂θ = 2 θ² ⊙`` this diagonal (:func:`mfprune.scores.synflow_l2`, up to its positive
  renormalisation factor).

  Args:
    apply_fn: the model's ``apply_fn`` (:func:`mfprune.functional.split`), or a hand-written bias-free
      homogeneous one.
    params: its parameters.
    x_or_input_shape: the shape of one example (the input is all ones: the Path Kernel itself), or a non-negative
      batch ``(n, *input_shape)`` whose paths are weighted by their inputs (``R`` summed over the batch).
    mask: a mask from :mod:`mfprune.masks` (default: everything kept).

  Returns:
    A :class:`PathKernelDiagonal` (the values are ``diagonal · exp(log_scale)``).

  Raises:
    ValueError: a bad input spec, a mask that does not fit, or (hand-written ``apply_fn``) biases or a
      non-homogeneous network.
  """
  out = _run(apply_fn, params, x_or_input_shape, mask)[2]
  return PathKernelDiagonal(out["grads"], out["log_scale"])


def path_kernel_trace(apply_fn: ApplyFn, params: Params, x_or_input_shape: InputSpec, *,
                      mask: Mask | None = None) -> PathKernelTrace:
  """``Tr Π_θ`` (total and per layer), ``R_pk`` and ``R_sf`` of a model at ``θ ⊙ mask``, as exact logs ([P] eq. 14-16).

  One compiled program: a forward and backward pass of the linearised network on ``(θ ⊙ m)²`` and a forward pass
  on ``|θ ⊙ m|``. The renormalisation of mfprune's linearised models is undone in log space (module docstring), so
  the values are exact, not up to a factor, and finite for depth-100 networks in float32. Works for the MLP,
  VanillaCNN, VGG, ResNet and LeNet5 models and for hand-written bias-free ReLU ``apply_fn``.

  Args:
    apply_fn: the model's ``apply_fn`` or a hand-written bias-free homogeneous one.
    params: its parameters.
    x_or_input_shape: the shape of one example (input all ones: ``Tr Π``), or a non-negative batch
      ``(n, *input_shape)`` (each path weighted by its input, summed over the batch).
    mask: a mask from :mod:`mfprune.masks` (default: all kept); its array leaves are the per-layer rows.

  Returns:
    A :class:`PathKernelTrace`.

  Raises:
    ValueError: see :func:`path_kernel_diagonal`.
  """
  x, mask, out = _run(apply_fn, params, x_or_input_shape, mask)
  names = [name for name, _ in named_leaves(mask)]
  in_mask = set(names)
  order = {name: i for i, name in enumerate(functional.layer_order(apply_fn, params, x))}
  names.sort(key=lambda n: order.get(n, len(order)))
  # Assembled in NumPy, in the program's dtype (a handful of scalars: no further compiles).
  sums = {n: np.asarray(v) for n, v in named_leaves(out["sums"])}
  log_scale = np.asarray(out["log_scale"])
  dtype = log_scale.dtype
  with np.errstate(divide="ignore"):
    layer_logs = np.array([np.log(sums[n]) for n in names], dtype) + log_scale
    other = sum((sums[n] for n in sums if n not in in_mask), dtype.type(0))
    log_other = np.log(other).astype(dtype) + log_scale
    log_r_pk = np.log(np.asarray(out["r_pk"])) + log_scale
  log_trace = np.logaddexp.reduce(np.concatenate([layer_logs, [log_other]])).astype(dtype)
  return PathKernelTrace(jnp.asarray(log_trace), jnp.asarray(layer_logs), jnp.asarray(log_other),
                         jnp.asarray(log_r_pk), out["log_r_sf"], tuple(names))
