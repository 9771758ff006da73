"""Per-layer ``q^l`` and ``c^l`` of a (pruned) network: measured on a finite network, predicted by mean-field theory,
and the two side by side ([R] §2.1 eq. 1-3, App. A, C; THEORY.md §2, §5).

:func:`layer_moments` measures the pre-activation variance ``q^l`` and the correlation ``c^l`` of two inputs on a
finite network (:func:`preactivations` finds the layers), :func:`predicted_moments` gives the wide-network
prediction (:func:`theory.maps.propagate`) for the dense net and for a pruned one whose layer ``l`` keeps the fraction
``α_l`` of its weights' squared norm (effective ``α_l σw²``, [R] §2.3 and App. C), and :func:`compare_moments` puts
both side by side.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import theory
from mfprune._checks import batch_array, masked
from mfprune.functional import ApplyFn, ModelFn, Params
from mfprune.masks import Mask
from mfprune.models.layers import Conv, Dense, record_outputs
from mfprune.repair import kept_variance_fraction
from theory._validation import check_nonnegative, check_positive
from theory.activations import ActivationLike
from theory.maps import Propagation

Array = jax.Array
PreactivationFn = Callable[[Params, Array], "Mapping[str, Array] | Sequence[Array]"]

__all__ = ["LayerMoments", "preactivations", "layer_names", "layer_moments", "MomentComparison", "predicted_moments",
           "compare_moments"]


def _module_preactivations(apply_fn: ModelFn, params: Params, x: Array) -> dict[str, Array]:
  """Outputs of every Dense/Conv layer of an mfprune model, keyed by the layer's parameter path."""
  module = apply_fn.module(params)
  names = {id(m): "/".join(str(p) for p in path) for path, m in nnx.iter_graph(module)
           if isinstance(m, (Dense, Conv))}
  with record_outputs() as records:
    module(x)
  out: dict[str, Array] = {}
  for layer, y in records:
    name = names.get(id(layer), f"<unnamed {type(layer).__name__}>")
    key, k = name, 1
    while key in out:  # a layer called twice (weight sharing): later calls get "#2", "#3", ...
      k += 1
      key = f"{name}#{k}"
    out[key] = y
  return out


@dataclasses.dataclass(frozen=True)
class _ModulePreactivations:
  """``(params, x) -> {name: h}`` of an mfprune model; hashable (by its ``ModelFn``) so compiled programs are reused."""

  apply_fn: ModelFn

  def __call__(self, params: Params, x: Array) -> dict[str, Array]:
    return _module_preactivations(self.apply_fn, params, x)


def _resolve_preactivations(apply_fn: ApplyFn, preactivation_fn: PreactivationFn | None) -> PreactivationFn:
  if preactivation_fn is not None:
    return preactivation_fn
  if isinstance(apply_fn, ModelFn):
    return _ModulePreactivations(apply_fn)
  own = getattr(apply_fn, "preactivations", None)
  if callable(own):
    return own
  raise TypeError(
      "per-layer pre-activations need an apply_fn from mfprune.functional.split/init_fn (an mfprune model), an "
      "apply_fn with a .preactivations(params, x) method, or preactivation_fn=(params, x) -> {name: array} or "
      f"[array, ...]; got {type(apply_fn).__name__}")


def _named(outputs: Mapping[str, Array] | Sequence[Array]) -> dict[str, Array]:
  if isinstance(outputs, Mapping):
    return dict(outputs)
  return {str(i): h for i, h in enumerate(outputs)}


def preactivations(apply_fn: ApplyFn, params: Params, x: Array, *, mask: Mask | None = None,
                   preactivation_fn: PreactivationFn | None = None) -> dict[str, Array]:
  """The pre-activations ``h^l(x)`` of every dense and convolution layer, in network order ([R] eq. 1-3).

  For mfprune's models (``apply_fn`` from :func:`mfprune.functional.split` or ``init_fn``) these are the outputs of
  every :class:`~mfprune.models.layers.Dense` and :class:`~mfprune.models.layers.Conv` call (bias included, before
  any batch norm or activation), collected with :func:`mfprune.models.layers.record_outputs`; keys are the layer's
  path, i.e. ``masks.path_name`` of its kernel without ``/kernel`` (``"layers/0"``), so the order is
  :func:`mfprune.functional.layer_order`'s kernel order. Other models supply ``preactivation_fn`` or an
  ``apply_fn.preactivations`` method returning ``{name: array}`` or a list (named ``"0"``, ``"1"``, ...).

  Args:
    apply_fn: ``apply_fn(params, x)``.
    params: the parameters.
    x: a batch of inputs ``(n, ...)``.
    mask: optional mask, applied with ``masks.apply_mask``.
    preactivation_fn: overrides how pre-activations are found.

  Returns:
    ``{layer name: array (n, ..., units)}`` in network order (when called outside ``jax.jit``: a dict returned
    from a jitted function comes back with sorted keys; :func:`layer_names` gives the order).

  Raises:
    TypeError: ``apply_fn`` is not an mfprune model and no ``preactivation_fn`` is given.
  """
  fn = _resolve_preactivations(apply_fn, preactivation_fn)
  return _named(fn(masked(params, mask), batch_array("x", x)))


def layer_names(apply_fn: ApplyFn, params: Params, x: Array, *,
                preactivation_fn: PreactivationFn | None = None) -> list[str]:
  """Names of the layers :func:`layer_moments` reports, in network order, found by tracing only.

  ``params`` and ``x`` may be ``jax.ShapeDtypeStruct`` trees (e.g. ``jax.eval_shape(init, key)``): nothing runs.

  Returns:
    Layer names (kernel paths without ``/kernel`` for mfprune models).
  """
  fn = _resolve_preactivations(apply_fn, preactivation_fn)
  return [name for name, _ in _layer_shapes(fn, params, x)]


@dataclasses.dataclass(frozen=True)
class LayerMoments:
  """Empirical mean-field statistics of one layer's pre-activations.

  Attributes:
    name: the layer's parameter path (``"layers/0"``; its kernel is ``"layers/0/kernel"``).
    q: ``q^l``, the mean of ``h²`` over units, positions and the examples of ``x``.
    c: ``c^l``, the per-pair correlation of ``h(x_i)`` and ``h(x'_i)`` averaged over pairs; ``None`` without
      ``x_other``.
    q_other: ``q^l`` of ``x_other`` (``None`` without it).
    units: units (dense) or channels (conv) of the layer.
    positions: spatial positions per example (1 for dense layers).
  """

  name: str
  q: float
  c: float | None
  q_other: float | None
  units: int
  positions: int

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


def _pooled_moments(h: Array, h_other: Array | None):
  """``(q, q_other, c)`` of one layer, pooling units and positions per example (see :func:`layer_moments`)."""
  h = h.reshape(h.shape[0], -1)
  sq = jnp.sum(h * h, axis=1)
  q = jnp.mean(sq) / h.shape[1]
  if h_other is None:
    return q, None, None
  g = h_other.reshape(h_other.shape[0], -1)
  sq_other = jnp.sum(g * g, axis=1)
  scale = jnp.sqrt(sq * sq_other)
  c = jnp.sum(h * g, axis=1) / jnp.where(scale > 0, scale, jnp.nan)  # all-zero signals: undefined (NaN)
  return q, jnp.mean(sq_other) / g.shape[1], jnp.mean(c)


def _moments_program(fn: PreactivationFn, params: Params, x: Array, x_other: Array | None) -> list:
  """Per-layer ``(q, q_other, c)`` as a list in network order (a returned dict would come back key-sorted)."""
  hx = _named(fn(params, x))
  ho = _named(fn(params, x_other)) if x_other is not None else None
  if ho is not None and list(ho) != list(hx):
    raise ValueError("x and x_other produced different layers; pre-activations must not depend on the input")
  return [_pooled_moments(h, None if ho is None else ho[k]) for k, h in hx.items()]


def _layer_shapes(fn: PreactivationFn, params: Params, x: Array) -> list[tuple[str, tuple[int, ...]]]:
  """``[(name, shape)]`` of the pre-activations in network order, without running the network."""
  names: list[str] = []

  def shapes(p, a):
    out = _named(fn(p, a))
    names.extend(out)
    return list(out.values())

  return list(zip(names, (h.shape for h in jax.eval_shape(shapes, params, x))))


_moments_jit = jax.jit(_moments_program, static_argnums=0)


def layer_moments(apply_fn: ApplyFn, params: Params, x: Array, x_other: Array | None = None, *,
                  mask: Mask | None = None, preactivation_fn: PreactivationFn | None = None) -> list[LayerMoments]:
  """Measured ``q^l`` and ``c^l`` of every dense/conv layer, in network order ([R] §2.1 eq. 1-3, App. A).

  With ``h^l(x) ∈ R^M`` a layer's pre-activations flattened over positions and units (``M = positions ×
  units``)::

      q^l = mean_i ‖h^l(x_i)‖² / M
      c^l = mean_i  ⟨h^l(x_i), h^l(x'_i)⟩ / (‖h^l(x_i)‖ ‖h^l(x'_i)‖)

  For a wide network the average over units estimates the expectation over the random weights, so these estimate
  the mean-field ``q^l(x)`` and ``c^l(x, x')`` ([R] App. A.1), averaged over the examples (``q``) and over the
  pairs ``(x_i, x'_i)`` (``c``). For a convolution we pair each position of ``x_i`` with the same position of
  ``x'_i``: ``q`` and ``c`` estimate the position-diagonal kernel ``κ^l_{α,α}`` of [R] App. A.1 averaged over
  ``α``. Its recursion involves only diagonal entries and is the FFNN one when the statistics do not depend on
  the position (exact at layer 1 with circular padding: ``q^1 = σb² + σw² ‖x‖²/d`` over the flattened input),
  which is what :func:`predicted_moments` assumes. (The per-channel average kernel ``K^l = N⁻² Σ_{α,α'}
  κ^l_{α,α'}`` that [R] uses in its proofs also averages pairs of different positions: the kernel of the
  spatially averaged signal, a different quantity, not measured here.) A pair whose pre-activations are all zero
  has an undefined correlation (NaN). ``x`` and ``x_other`` go through the network as two separate batches.

  Args:
    apply_fn: ``apply_fn(params, x)``; see :func:`preactivations` for which models work as they are.
    params: the parameters.
    x: inputs ``(n, ...)``.
    x_other: partner inputs, same shape as ``x`` (pairs ``(x_i, x'_i)``); ``None`` to measure ``q`` only.
    mask: optional mask, applied with ``masks.apply_mask``.
    preactivation_fn: overrides how pre-activations are found (see :func:`preactivations`).

  Returns:
    One :class:`LayerMoments` per layer, in network order.

  Raises:
    ValueError: ``x`` is not a batch, or ``x_other`` has another shape.
    TypeError: pre-activations cannot be found (see :func:`preactivations`).
  """
  x = batch_array("x", x)
  if x_other is not None:
    x_other = jnp.asarray(x_other)
    if x_other.shape != x.shape:
      raise ValueError(f"x_other must have the shape of x {x.shape} (pairs x_i, x'_i); got {x_other.shape}")
  fn = _resolve_preactivations(apply_fn, preactivation_fn)
  params = masked(params, mask)
  shapes = _layer_shapes(fn, params, x)
  try:
    hash(fn)
  except TypeError:  # an unhashable preactivation_fn cannot be a static argument: run it unjitted
    stats = _moments_program(fn, params, x, x_other)
  else:
    stats = _moments_jit(fn, params, x, x_other)
  table = []
  for (name, shape), (q, q_other, c) in zip(shapes, stats):
    table.append(LayerMoments(
        name=name, q=float(q), c=None if c is None else float(c), q_other=None if q_other is None else float(q_other),
        units=int(shape[-1]) if len(shape) > 1 else 1, positions=int(math.prod(shape[1:-1]))))
  return table


# ---------------------------------------------------------------------------------------------------------------
# Mean-field predictions for dense and pruned networks ([R] App. A, C; THEORY.md §2, §5).
# ---------------------------------------------------------------------------------------------------------------


def predicted_moments(activation: ActivationLike, *, sigma_w: float, sigma_b: float, depth: int, q1, c1=None,
                      q1_other=None, alphas: Sequence[float] | None = None,
                      order: int = theory.DEFAULT_ORDER) -> Propagation:
  """Mean-field ``q^l`` and ``c^l``, ``l = 1..depth``, of a dense or pruned FFNN/CNN ([R] App. A.1, C).

  :func:`theory.maps.propagate` (the one recursion; its docstring has the formulas, the pruned first layer and
  ``α_l = 0``) with keyword scales and ``c1`` defaulting to ``None``, the variance only: ``α_l`` is the fraction of
  layer ``l``'s squared weights a mask keeps (``mfprune.repair.kept_variance_fraction``), which multiplies its
  effective ``σw²`` ([R] App. C, proof of Proposition 1; THEORY.md §5). ``q1`` is the *dense* first layer
  ``σb² + σw² ‖x‖²/d`` (:func:`theory.maps.input_kernel`; [R] eq. 10).

  Args:
    activation: registry name, callable or :class:`theory.Activation`.
    sigma_w: weight standard deviation ``σw > 0`` (times ``√fan_in``).
    sigma_b: bias standard deviation ``σb >= 0``.
    depth: number of layers ``L >= 1`` (an mfprune ``MLP(depth=L)`` has ``L`` dense layers).
    q1: first-layer variance of the dense net, ``>= σb²`` when ``alphas`` is given; a scalar or one per example.
    c1: first-layer correlation of the two inputs in ``[-1, 1]``; ``None`` to propagate ``q`` only.
    q1_other: first-layer variance of the second input; defaults to ``q1``.
    alphas: one ``α_l >= 0`` per layer (``None``: the dense net, all ``α_l = 1``).
    order: quadrature order.

  Returns:
    :class:`theory.maps.Propagation` with ``q``, ``q_other`` and ``c`` of shape ``(depth, *shape of q1)``;
    ``c`` is ``None`` (and ``q_other`` equals ``q``) when ``c1`` is ``None``.

  Raises:
    ValueError: unknown activation, or an argument outside its range (the message names it).
  """
  return theory.propagate(activation, sigma_b, sigma_w, depth, q1, c1=c1, q1_other=q1_other, alphas=alphas,
                          order=order)


@dataclasses.dataclass(frozen=True)
class MomentComparison:
  """One layer's measured and predicted ``q^l`` and ``c^l`` (a row of :func:`compare_moments`).

  Attributes:
    layer: the layer's parameter path.
    alpha: ``α_l``, the kept fraction of the layer's squared weights (1 without a mask).
    q_measured: :attr:`LayerMoments.q` of the (masked) network.
    q_predicted: the dense mean-field prediction (all ``α = 1``).
    q_pruned_predicted: the prediction with ``α_l σw²`` per layer ([R] App. C, proof of Proposition 1); equals
      ``q_predicted`` for a dense net.
    c_measured: :attr:`LayerMoments.c` (``None`` without ``x_other``).
    c_predicted: dense prediction of ``c^l``.
    c_pruned_predicted: pruned prediction of ``c^l``.
  """

  layer: str
  alpha: float
  q_measured: float
  q_predicted: float
  q_pruned_predicted: float
  c_measured: float | None
  c_predicted: float | None
  c_pruned_predicted: float | None

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


def _layer_alphas(alphas: Mapping[str, float] | Sequence[float] | None, mask: Mask | None, params: Params,
                  names: list[str]) -> list[float]:
  if alphas is None and mask is not None:
    alphas = kept_variance_fraction(params, mask)
  if alphas is None:
    return [1.0] * len(names)
  if isinstance(alphas, Mapping):
    values = []
    for name in names:
      for key in (name, f"{name}/kernel"):
        if key in alphas:
          values.append(float(alphas[key]))
          break
      else:
        raise ValueError(f"alphas has no entry for layer {name!r} (keys: {sorted(alphas)[:6]})")
    return values
  values = [float(a) for a in alphas]
  if len(values) != len(names):
    raise ValueError(f"alphas must give one value per layer ({len(names)}); got {len(values)}")
  return values


def compare_moments(apply_fn: ApplyFn, params: Params, x: Array, x_other: Array | None, *,
                    activation: ActivationLike, sigma_w: float, sigma_b: float, mask: Mask | None = None,
                    alphas: Mapping[str, float] | Sequence[float] | None = None,
                    preactivation_fn: PreactivationFn | None = None,
                    order: int = theory.DEFAULT_ORDER) -> list[MomentComparison]:
  """Measured against predicted ``q^l`` and ``c^l`` for every layer of a Gaussian-initialised FFNN or vanilla CNN.

  The measurement is :func:`layer_moments` of ``masks.apply_mask(params, mask)``. The predictions are
  :func:`predicted_moments` started, per example (pair), from :func:`theory.maps.input_kernel` of the flattened
  ``(x_i, x'_i)`` (``q^1 = σb² + σw² ‖x_i‖²/d``; for a circular-padded CNN the position average of the first
  layer's kernel is the same), then averaged over the examples (pairs) as the measurement is. The theory assumes
  a plain chain of dense/conv layers with ``W ~ N(0, σw²/fan_in)``, ``B ~ N(0, σb²)`` and ``φ`` between them
  (mfprune's ``MLP`` and ``VanillaCNN``); residual connections, pooling and batch norm are outside it.

  Args:
    apply_fn: ``apply_fn(params, x)``.
    params: dense parameters (the mask is applied here).
    x: inputs ``(n, ...)``.
    x_other: partner inputs of the same shape, or ``None`` (no ``c`` columns).
    activation: the model's activation (registry name, callable or :class:`theory.Activation`).
    sigma_w: the σw the weights were drawn with.
    sigma_b: the σb the biases were drawn with.
    mask: optional mask; then ``α_l`` comes from ``mfprune.repair.kept_variance_fraction(params, mask)`` unless
      ``alphas`` is given.
    alphas: ``α_l`` per layer, as ``{layer or kernel path: α}`` or a list in network order.
    preactivation_fn: see :func:`preactivations`.
    order: quadrature order.

  Returns:
    One :class:`MomentComparison` per layer, in network order.
  """
  theory.get_activation(activation)  # fail early on an unknown activation
  measured = layer_moments(apply_fn, params, x, x_other, mask=mask, preactivation_fn=preactivation_fn)
  names = [m.name for m in measured]
  layer_alphas = _layer_alphas(alphas, mask, params, names)
  x = jnp.asarray(x)
  flat = x.reshape(x.shape[0], -1)
  flat_other = flat if x_other is None else jnp.asarray(x_other).reshape(x.shape[0], -1)
  check_positive("sigma_w", sigma_w)
  check_nonnegative("sigma_b", sigma_b)
  q1, q1_other, c1 = jax.vmap(lambda a, b: theory.input_kernel(a, b, sigma_b, sigma_w))(flat, flat_other)
  kwargs = dict(sigma_w=sigma_w, sigma_b=sigma_b, depth=len(names), q1=q1, order=order)
  if x_other is not None:
    kwargs.update(c1=c1, q1_other=q1_other)
  dense = predicted_moments(activation, **kwargs)
  pruned = predicted_moments(activation, alphas=layer_alphas, **kwargs)
  mean = lambda a: np.asarray(jnp.mean(a, axis=-1), dtype=np.float64)
  q_dense, q_pruned = mean(dense.q), mean(pruned.q)
  c_dense = None if dense.c is None else mean(dense.c)
  c_pruned = None if pruned.c is None else mean(pruned.c)
  rows = []
  for l, (m, a) in enumerate(zip(measured, layer_alphas)):
    rows.append(MomentComparison(
        layer=m.name, alpha=a, q_measured=m.q, q_predicted=float(q_dense[l]), q_pruned_predicted=float(q_pruned[l]),
        c_measured=m.c, c_predicted=None if c_dense is None else float(c_dense[l]),
        c_pruned_predicted=None if c_pruned is None else float(c_pruned[l])))
  return rows
