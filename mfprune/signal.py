"""Signal propagation in (pruned) networks at initialization: Jacobian spectra, empirical per-layer ``q^l``, ``c^l``,
and the Monte-Carlo critical sparsity.

Two views of how well a random, possibly pruned, network carries a signal:

* **The input-output Jacobian** ``J_{0,K}(x) = ∂f(x)/∂x = Π_l D_l W_l`` ([S] eq. 4, 7; THEORY.md §6). [S] Table 1
  and Figure 2 report the mean, standard deviation and condition number ``s_max/s_min`` of its singular values;
  :func:`jacobian_singular_values` and :func:`jacobian_statistics` measure them.
* **The mean-field statistics** ``q^l`` (pre-activation variance) and ``c^l`` (correlation of two inputs) of
  [R] §2.1 eq. 1-3 and App. A (THEORY.md §2). :func:`layer_moments` measures them on a finite network,
  :func:`predicted_moments` gives the wide-network prediction from :mod:`theory.maps`, for the dense net and for a
  pruned one whose layer ``l`` keeps the fraction ``α_l`` of its weights' squared norm (effective ``α_l σw²``,
  [R] §2.3 and App. C; THEORY.md §5), and :func:`compare_moments` puts both side by side.

And one consequence for pruning: **the critical sparsity** ``s_cr``, the smallest sparsity at which global pruning
empties a whole layer ([R] §2.2; THEORY.md §3). :func:`critical_sparsity` estimates ``E[s_cr]`` over many random
initialisations (one ``jax.vmap``-ed, jitted program: one score and one sort per network), with a Student-t
interval, the layer that dies first, and every layer's kept fraction against sparsity; [R] Theorem 1 and
Proposition 4 (:mod:`theory.sparsity`) bound the same mean.

Masks are applied by the caller (``masks.apply_mask(params, mask)``) or through the ``mask=`` arguments here, which
do exactly that. Every function takes the ``(apply_fn, params)`` pair of :mod:`mfprune.functional`.
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
from flax import nnx

import theory
from mfprune import init as init_lib
from mfprune.functional import ApplyFn, ModelFn, Params, layer_order
from mfprune.masks import (Mask, Prunable, _sortable_keys, apply_mask, dense_mask, is_kernel, keep_count, layer_sizes,
                           named_leaves)
from mfprune.models.layers import Conv, Dense, record_outputs
from mfprune.pruning import as_batch
from mfprune.scores import Scorer, Stacked, available_scorers, get_scorer
from theory import gaussian
from theory._validation import check_int, check_interval, check_nonnegative, check_positive
from theory.activations import ActivationLike
from theory.maps import Propagation

Array = jax.Array
PreactivationFn = Callable[[Params, Array], "Mapping[str, Array] | Sequence[Array]"]

__all__ = [
    "JacobianStats", "jacobian_singular_values", "jacobian_statistics", "spectrum_statistics",
    "LayerMoments", "preactivations", "layer_names", "layer_moments",
    "MomentComparison", "predicted_moments", "compare_moments",
    "DEFAULT_SPARSITIES", "SeedCriticalSparsity", "CriticalSparsity", "critical_sparsity", "critical_sparsity_fn",
]


def _masked(params: Params, mask: Mask | None) -> Params:
  return params if mask is None else apply_mask(params, mask)


def _batch(name: str, x: Any) -> Array:
  """``x`` as an array with a leading batch axis of at least one example, or ValueError naming ``name``."""
  x = jnp.asarray(x)
  if x.ndim < 2 or x.shape[0] < 1:
    raise ValueError(f"{name} must be a batch of shape (n, ...) with n >= 1 and at least one feature axis; "
                     f"got shape {x.shape}")
  return x


def _check_batch_size(batch_size: int) -> int:
  if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
    raise ValueError(f"batch_size must be an integer >= 1; got {batch_size!r}")
  return int(batch_size)


# ---------------------------------------------------------------------------------------------------------------
# Input-output Jacobian ([S] eq. 4, 7, Table 1).
# ---------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class JacobianStats:
  """Statistics of input-output Jacobian singular values pooled over examples ([S] Table 1, Figure 2, App. C).

  Attributes:
    mean: mean of all singular values (every example's ``min(out, in)`` values pooled).
    std: their standard deviation (population, ``ddof = 0``).
    min: the smallest singular value.
    max: the largest singular value.
    condition_number: ``max / min`` over the pool, ``inf`` when ``min`` is 0 ([S] Table 1's "CN").
    count: number of singular values pooled (examples × ``min(out, in)``).
  """

  mean: float
  std: float
  min: float
  max: float
  condition_number: float
  count: int

  def to_dict(self) -> dict[str, float | int]:
    return dataclasses.asdict(self)


def _jacobian_chunk(apply_fn: ApplyFn, params: Params, x: Array) -> Array:
  """Singular values of ``∂f(x_i)/∂x_i`` for each row of ``x`` (one vmapped program)."""
  shape = x.shape[1:]
  d = math.prod(shape)

  def f(v):
    return apply_fn(params, v.reshape((1, *shape))).reshape(-1)

  out = math.prod(jax.eval_shape(f, jax.ShapeDtypeStruct((d,), x.dtype)).shape)
  # Reverse mode costs one pass per output, forward mode one per input: logits are usually far fewer.
  jacobian = jax.jacrev(f) if out <= d else jax.jacfwd(f)
  return jax.vmap(lambda v: jnp.linalg.svd(jacobian(v), compute_uv=False))(x.reshape(x.shape[0], d))


_jacobian_chunk_jit = jax.jit(_jacobian_chunk, static_argnums=0)


def jacobian_singular_values(apply_fn: ApplyFn, params: Params, x: Array, *, mask: Mask | None = None,
                             batch_size: int = 256) -> Array:
  """Singular values of each example's input-output Jacobian ``J_{0,K}(x_i) = ∂f(x_i)/∂x_i`` ([S] eq. 4, 7).

  ``f(x_i)`` is the network's output (logits) flattened and ``x_i`` the example flattened, so ``J`` is an
  ``out × in`` matrix (``in`` = the product of one example's dimensions). Each example goes through ``apply_fn`` as
  a batch of one, so the Jacobian is that of the per-example function; a model whose batch norm uses batch
  statistics (``model.train()``) should be split in eval mode for this. Jacobians come from ``jax.jacrev`` when
  ``out <= in`` (the usual case: one backward pass per logit) and ``jax.jacfwd`` otherwise, vmapped over examples
  in chunks of ``batch_size``.

  Args:
    apply_fn: ``apply_fn(params, x)`` (hashable: it is a static argument of the compiled program).
    params: the parameters.
    x: a batch of inputs ``(n, ...)``.
    mask: optional mask; the Jacobian is then that of ``masks.apply_mask(params, mask)``.
    batch_size: examples per compiled chunk (bounds the memory of the ``chunk × out × in`` Jacobians).

  Returns:
    Array ``(n, min(out, in))`` of singular values, each row in descending order.
  """
  x = _batch("x", x)
  batch_size = _check_batch_size(batch_size)
  params = _masked(params, mask)
  n = x.shape[0]
  size = min(n, batch_size)
  chunks = []
  for start in range(0, n, size):
    chunk = x[start:start + size]
    rows = chunk.shape[0]
    if rows < size:  # pad the last chunk so every chunk reuses one compiled program
      chunk = jnp.concatenate([chunk, jnp.zeros((size - rows, *x.shape[1:]), x.dtype)])
    chunks.append(_jacobian_chunk_jit(apply_fn, params, chunk)[:rows])
  return jnp.concatenate(chunks) if len(chunks) > 1 else chunks[0]


def spectrum_statistics(singular_values: Array) -> JacobianStats:
  """:class:`JacobianStats` of singular values of any shape, all pooled (e.g. several seeds stacked).

  Args:
    singular_values: non-negative values, e.g. the output of :func:`jacobian_singular_values`.

  Returns:
    Mean, standard deviation, min, max and condition number ``max/min`` (``inf`` if ``min`` is 0) of the pool.
  """
  values = np.asarray(singular_values, dtype=np.float64).reshape(-1)
  if values.size == 0:
    raise ValueError("singular_values must hold at least one value; got an empty array")
  if not np.all(np.isfinite(values)) or np.any(values < 0):
    raise ValueError("singular_values must be finite and >= 0 (a NaN or inf Jacobian means the forward pass "
                     "overflowed)")
  smin, smax = float(values.min()), float(values.max())
  condition = smax / smin if smin > 0 else math.inf
  return JacobianStats(mean=float(values.mean()), std=float(values.std()), min=smin, max=smax,
                       condition_number=condition, count=int(values.size))


def jacobian_statistics(apply_fn: ApplyFn, params: Params, x: Array, *, mask: Mask | None = None,
                        batch_size: int = 256) -> JacobianStats:
  """Mean, std and condition number of the input-output Jacobian's singular values ([S] Table 1, Figure 2).

  [S] measures the singular values of ``J_{0,K}`` over the training set and reports their mean, standard
  deviation and condition number ``s_max/s_min``, "the maximum and minimum Jacobian singular values" (Table 1
  caption); it does not say whether these are taken per example. We pool: all ``n · min(out, in)`` singular values
  of all examples form one sample, and ``condition_number`` is its largest value over its smallest (``inf`` when
  the smallest is 0, as in the last row of Table 1). Per-example statistics can be computed from
  :func:`jacobian_singular_values`.

  Args:
    apply_fn: ``apply_fn(params, x)``.
    params: the parameters.
    x: a batch of inputs ``(n, ...)`` (the paper uses the whole training set).
    mask: optional mask, applied with ``masks.apply_mask``.
    batch_size: examples per compiled chunk.

  Returns:
    A :class:`JacobianStats`.
  """
  return spectrum_statistics(jacobian_singular_values(apply_fn, params, x, mask=mask, batch_size=batch_size))


# ---------------------------------------------------------------------------------------------------------------
# Empirical per-layer q^l and c^l ([R] §2.1 eq. 1-3, App. A; THEORY.md §2).
# ---------------------------------------------------------------------------------------------------------------


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
  return _named(fn(_masked(params, mask), _batch("x", x)))


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
  x = _batch("x", x)
  if x_other is not None:
    x_other = jnp.asarray(x_other)
    if x_other.shape != x.shape:
      raise ValueError(f"x_other must have the shape of x {x.shape} (pairs x_i, x'_i); got {x_other.shape}")
  fn = _resolve_preactivations(apply_fn, preactivation_fn)
  params = _masked(params, mask)
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


def _check_alphas(alphas: Sequence[float] | None, depth: int) -> list[float] | None:
  if alphas is None:
    return None
  values = [float(a) for a in np.asarray(alphas, dtype=np.float64).reshape(-1)]
  if len(values) != depth:
    raise ValueError(f"alphas must give one value per layer (depth = {depth}); got {len(values)}")
  if not all(math.isfinite(a) and a >= 0 for a in values):
    raise ValueError(f"alphas must be finite and >= 0 (kept fraction of each layer's squared weights); got {values}")
  return values


def predicted_moments(activation: ActivationLike, *, sigma_w: float, sigma_b: float, depth: int, q1, c1=None,
                      q1_other=None, alphas: Sequence[float] | None = None,
                      order: int = theory.DEFAULT_ORDER) -> Propagation:
  """Mean-field ``q^l`` and ``c^l``, ``l = 1..depth``, of a dense or pruned FFNN/CNN ([R] App. A.1, C).

  Layer by layer with :func:`theory.maps.covariance_map` (or :func:`theory.maps.variance_map` without ``c1``)::

      q^l = σb² + α_l σw² E[φ(√q^{l-1} Z)²]                     (l >= 2)
      q^l(x, x') = σb² + α_l σw² E[φ(u1) φ(u2)]

  ``α_l`` models pruning: a mask keeping the fraction ``α_l = Σ_kept W² / Σ W²`` of layer ``l``'s squared weights
  multiplies its effective ``σw²`` by ``α_l`` ([R] App. C, proof of Proposition 1; THEORY.md §5; see
  ``mfprune.repair.kept_variance_fraction``). ``q1`` is the *dense* first layer, ``σb² + σw² ‖x‖²/d``
  (:func:`theory.maps.input_kernel`; [R] eq. 10); with ``alphas`` the first layer becomes
  ``σb² + α_1 (q1 − σb²)``, and its covariance likewise. A layer with ``α_l = 0`` is fully pruned:
  ``q^l = σb²`` and ``c^l = 1``. ``q1``, ``c1`` and ``q1_other`` may be arrays (one entry per example or pair);
  the result has a trailing axis to match. The recursion runs as one compiled ``lax.scan``.

  Args:
    activation: registry name, callable or :class:`theory.Activation`.
    sigma_w: weight standard deviation ``σw > 0`` (times ``√fan_in``).
    sigma_b: bias standard deviation ``σb >= 0``.
    depth: number of layers ``L >= 1`` (an mfprune ``MLP(depth=L)`` has ``L`` dense layers).
    q1: first-layer variance of the dense net, ``>= σb²`` when ``alphas`` is given.
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
  act = theory.get_activation(activation)
  depth = check_int("depth", depth, 1)
  check_positive("sigma_w", sigma_w)
  check_nonnegative("sigma_b", sigma_b)
  check_nonnegative("q1", q1)
  alphas = _check_alphas(alphas, depth)
  dtype = gaussian.float_dtype()
  q = jnp.asarray(q1, dtype)
  with_c = c1 is not None
  if with_c:
    check_interval("c1", c1, -1.0, 1.0)
    q_other = q if q1_other is None else jnp.asarray(q1_other, dtype)
    check_nonnegative("q1_other", q_other)
    c = jnp.asarray(c1, dtype)
    shape = jnp.broadcast_shapes(q.shape, q_other.shape, c.shape)
    q, q_other, c = (jnp.broadcast_to(v, shape) for v in (q, q_other, c))
  else:
    q_other, c = q, None
  sb2 = float(sigma_b)**2
  if alphas is not None:
    for name, value in (("q1", q), ("q1_other", q_other)):
      if np.any(np.asarray(value) < sb2 * (1 - 1e-5)):
        raise ValueError(f"{name} must be >= sigma_b**2 = {sb2} when alphas is given (q1 = σb² + σw² ‖x‖²/d)")
  alphas = jnp.ones((depth,), dtype) if alphas is None else jnp.asarray(alphas, dtype)
  qs, qos, cs = _predict(act, jnp.asarray(sigma_b, dtype), jnp.asarray(sigma_w, dtype), q, q_other, c, alphas,
                         order)
  return Propagation(q=qs, q_other=qos if with_c else qs, c=cs)


@functools.partial(jax.jit, static_argnums=(7,))
def _predict(act, sigma_b, sigma_w, q, q_other, c, alphas, order):
  """The layer recursion of :func:`predicted_moments` (validated arguments; ``c is None``: variance only)."""
  sb2 = sigma_b**2

  def first(v, a):
    return sb2 + a * jnp.maximum(v - sb2, 0.0)

  a = alphas[0]
  if c is not None:
    cov = sb2 + a * (c * jnp.sqrt(q * q_other) - sb2)
    q, q_other = first(q, a), first(q_other, a)
    c = _correlation(cov, q, q_other)
  else:
    q = q_other = first(q, a)

  def layer(state, a):
    # σw_eff = √α σw; α = 0 (a fully pruned layer) leaves q = σb², c = 1. No argument checks under jit.
    w = jnp.sqrt(a) * sigma_w
    qa, qb, cc = state
    if cc is None:
      new = (theory.variance_map(act, sigma_b, w, qa, order=order), None, None)
    else:
      new = theory.covariance_map(act, sigma_b, w, qa, qb, cc, order=order)
    return new, new

  init = (q, q_other if c is not None else None, c)
  _, rest = jax.lax.scan(layer, init, alphas[1:])
  stack = lambda v0, vs: None if v0 is None else jnp.concatenate([v0[None], vs])
  return tuple(stack(v0, vs) for v0, vs in zip(init, rest))


def _correlation(cov: Array, q1: Array, q2: Array) -> Array:
  """``cov/√(q1 q2)`` clipped to ``[-1, 1]``, 1 where both variances vanish (theory.maps' convention)."""
  scale = jnp.sqrt(q1 * q2)
  return jnp.clip(jnp.where(scale > 0, cov / jnp.where(scale > 0, scale, 1.0), 1.0), -1.0, 1.0)


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
    try:
      from mfprune.repair import kept_variance_fraction
    except ImportError as err:
      raise ImportError("compare_moments(mask=...) needs mfprune.repair.kept_variance_fraction; pass alphas= "
                        "instead") from err
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


# ---------------------------------------------------------------------------------------------------------------
# Monte-Carlo critical sparsity over random initialisations ([R] §2.2, Theorem 1, App. E; THEORY.md §3-4).
# ---------------------------------------------------------------------------------------------------------------

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


def _resolve_scorer(scorer: Any) -> tuple[str, Callable, bool, int]:
  """``(name, fn, uses_labels, default rounds)`` of a registry name, a :class:`Scorer` or a score function."""
  if isinstance(scorer, str):
    scorer = get_scorer(scorer)  # ValueError listing the registered names
  if isinstance(scorer, Scorer):
    return scorer.name, scorer.fn, scorer.uses_labels, scorer.rounds
  if callable(scorer):
    return getattr(scorer, "__name__", type(scorer).__name__), scorer, False, 1
  raise ValueError(f"scorer must be a registered name ({', '.join(available_scorers())}), a Scorer or a function "
                   f"(apply_fn, params, mask, batch, key) -> scores; got {scorer!r}")


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
  counts_array = np.asarray(counts, np.int64)
  by_count = np.argsort(counts_array, kind="stable")  # the grid in increasing keep count
  unsort = np.argsort(by_count, kind="stable")
  sorted_counts = counts_array[by_count]
  n = len(counts)

  def program(params: Params, batch: Any, key: Array) -> SeedCriticalSparsity:
    mask = dense_mask(params, prunable)
    # fold_in(key, 0): the key make_pruner gives round 0, so prune(..., key=key) scores exactly the same.
    scores = score_fn(apply_fn, params, mask, batch, jax.random.fold_in(key, 0), **dict(options))
    leaves = jax.tree_util.tree_leaves(scores)  # tree order = the parameter order of the tie rule
    sizes = np.array([x.size for x in leaves])
    total, layers = int(sizes.sum()), len(leaves)
    dtype = jnp.result_type(*leaves)
    flat = jnp.concatenate([x.reshape(-1).astype(dtype) for x in leaves])
    finite = jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves])
    # One sort per network: rank 0 is the best score; equal scores keep parameter order (masks' tie rule, on masks'
    # own float -> unsigned-integer keys, so -0.0 sorts below +0.0 there and here alike). Sorting on the pair
    # (key, position) is that order whatever the algorithm; XLA:CPU runs it ~20% faster than a stable argsort.
    ranks = jnp.arange(total, dtype=jnp.int32)
    _, order = jax.lax.sort((~_sortable_keys(flat), ranks), num_keys=2, is_stable=False)
    # Layer ids as a literal (np.repeat): jnp.repeat would make XLA constant-fold a cumsum over M for seconds.
    layer_of_rank = jnp.asarray(np.repeat(np.arange(layers, dtype=np.int32), sizes))[order]
    death_rank = jax.ops.segment_min(ranks, layer_of_rank, num_segments=layers)
    # Weight of rank r is kept at keep count k iff r < k. bucket(r) = #{grid counts <= r} does not depend on the
    # scores: a histogram over (bucket, layer) and a cumulative sum give every layer's kept count at every k.
    bucket = jnp.searchsorted(jnp.asarray(sorted_counts, jnp.int32), ranks, side="right").astype(jnp.int32)
    histogram = jax.ops.segment_sum(jnp.ones((total,), jnp.int32), bucket * layers + layer_of_rank,
                                    num_segments=(n + 1) * layers)
    kept = jnp.cumsum(histogram.reshape(n + 1, layers), axis=0)[:n][unsort]
    return SeedCriticalSparsity(death_rank=death_rank, kept=kept, finite=finite)

  return program


@functools.lru_cache(maxsize=16)
def _vmapped_program(apply_fn: ApplyFn, score_fn: Callable, options: tuple, prunable: Prunable,
                     counts: tuple[int, ...]) -> Callable:
  """``jit(vmap(program))`` over stacked parameters and keys (the batch is shared), cached by its settings."""
  return jax.jit(jax.vmap(_seed_program(apply_fn, score_fn, options, prunable, counts), in_axes=(0, None, 0)))


def critical_sparsity_fn(apply_fn: ApplyFn, scorer: Any, params: Params, *,
                         sparsities: Sequence[float] | None = None, prunable: Prunable = is_kernel,
                         scorer_options: Mapping[str, Any] | None = None
                         ) -> Callable[[Params, Any, Array], SeedCriticalSparsity]:
  """The pure one-network function that :func:`critical_sparsity` runs under ``jax.jit(jax.vmap(...))``.

  ``fn(params, batch, key)`` scores the network once with the scorer's one-shot score on the all-kept mask
  (``key`` as :func:`mfprune.prune` uses it), sorts the scores once, and returns a :class:`SeedCriticalSparsity`:
  every layer's death rank ``R_l`` and kept count at every grid sparsity (``masks.keep_count``), layers in tree
  order. ``jax.jit(fn)`` handles one network; benchmarks compare it with the vmapped program.

  Args:
    apply_fn: ``apply_fn(params, x)``.
    scorer: a registered scorer name, a :class:`mfprune.scores.Scorer` or a function
      ``(apply_fn, params, mask, batch, key) -> scores``.
    params: one parameter set (or its ``jax.eval_shape``): fixes the number of prunable weights ``M``.
    sparsities: the grid, each in ``[0, 1)`` (default :data:`DEFAULT_SPARSITIES`).
    prunable: which leaves are pruned (default dense/conv kernels).
    scorer_options: keyword options of the scorer (``temperature`` for GraSP, ...).

  Returns:
    ``fn(params, batch, key) -> SeedCriticalSparsity``.
  """
  _, fn, _, _ = _resolve_scorer(scorer)
  grid = _sparsity_grid(sparsities)
  total = sum(layer_sizes(dense_mask(params, prunable)))
  counts = tuple(keep_count(total, s) for s in grid)
  return _seed_program(apply_fn, fn, tuple(sorted((scorer_options or {}).items())), prunable, counts)


@dataclasses.dataclass(frozen=True)
class CriticalSparsity:
  """Monte-Carlo estimate of ``E[s_cr]`` and the per-layer kept fraction against sparsity ([R] §2.2, Theorem 1).

  Layers are the prunable leaves in network order (:func:`mfprune.functional.layer_order`) when data gave an input
  to trace, else in tree order (``layer_order`` says which).

  Attributes:
    method: the scorer's name.
    values: ``(n_seeds,)`` the exact ``s_cr`` of each network.
    mean: their mean, the estimate of ``E[s_cr]``.
    std: their sample standard deviation (``ddof = 1``); NaN for one seed.
    confidence: the interval's confidence level.
    interval: Student-t interval ``mean ± t_{(1+confidence)/2, n−1} · std/√n``; ``None`` for one seed.
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
    layer_order: ``"network"`` or ``"tree"``.
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
  layer_order: str

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
        "layer_order": self.layer_order, "layers": list(self.layers), "layer_sizes": list(self.layer_sizes),
        "total": self.total, "death_sparsity": self.death_sparsity.tolist(), "sparsities": self.sparsities.tolist(),
        "kept_fraction": self.kept_fraction.tolist(),
    }


def _seed_keys(key: Array | int, n_seeds: int) -> Array:
  if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
    key = jax.random.key(int(key))
  try:
    return jax.random.split(key, n_seeds)
  except (TypeError, ValueError) as error:
    raise ValueError(f"key must be an integer seed or a jax.random key; got {key!r} ({error})") from None


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


def _t_quantile(p: float, dof: int) -> float:
  """Student-t quantile (scipy, which scikit-learn, an mfprune dependency, installs)."""
  from scipy import stats

  return float(stats.t.ppf(p, dof))


def critical_sparsity(apply_fn: ApplyFn, init: Callable[[Array], Params], scorer: Any, *, n_seeds: int,
                      data: Any = None, key: Array | int = 0, sparsities: Sequence[float] | None = None,
                      confidence: float = 0.95, init_scheme: str | None = None,
                      init_options: Mapping[str, Any] | None = None,
                      scorer_options: Mapping[str, Any] | None = None,
                      prunable: Prunable = is_kernel) -> CriticalSparsity:
  """Monte-Carlo ``E[s_cr]`` over ``n_seeds`` random initialisations, and which layer dies first ([R] §2.2).

  The critical sparsity of one network ([R] §2.2) is ``s_cr = min{s : some layer is fully pruned}``. From one set
  of scores it is exact (THEORY.md §3): rank all ``M`` prunable weights by score (ties: the earlier weight in
  parameter order first, the rule of :mod:`mfprune.masks`); layer ``l`` is empty once the kept count ``k`` is at
  most ``R_l``, the rank of its best weight, i.e. from sparsity ``1 − R_l/M`` on; so
  ``s_cr = 1 − max_l R_l / M`` and the first layer to die is the argmax. This equals
  :func:`theory.sparsity.critical_sparsity` of the same scores, and ``mfprune.prune`` at ``s_cr`` empties that
  layer while at ``s_cr − 1/M`` it empties none (tested). [R]'s Theorem 1 bounds its mean for FFNN/CNN in the
  ordered phase, Proposition 4 for magnitude pruning (:mod:`theory.sparsity`).

  Seed ``i`` uses ``k_i = jax.random.split(key, n_seeds)[i]``: parameters
  ``pipeline.initial_params(init, k_i, init_scheme, **init_options)`` (``init(k_i)``, then, with a scheme,
  :func:`mfprune.init.initialise` with ``fold_in(k_i, 1)``), computed by one jitted function looped over the seeds
  (it compiles faster than a vmapped one, see ``_initialise_seeds``), and the scores
  ``mfprune.prune(..., key=fold_in(k_i, 2))`` computes. All networks share the batch ``data`` (the
  randomness is the initialisation's, as in [R]). Then one ``jax.jit(jax.vmap(...))`` program scores every
  network once, sorts its scores once, and derives ``s_cr``, every layer's death sparsity, and every layer's
  kept fraction on the whole grid from that sort (no re-scoring per sparsity).

  The kept-fraction curve: at grid sparsity ``s``, global top-k keeps ``k = masks.keep_count(M, s)`` weights
  (exactly the mask of ``masks.global_top_k(scores, k)``); ``kept_fraction[s, l]`` is the fraction of layer ``l``
  kept, averaged over the seeds. It is non-increasing in ``s``; its ``M_l``-weighted mean is ``k/M``, within
  ``1/(2M)`` of ``1 − s``; it is 0 from the largest of the seeds' death sparsities of that layer on.

  The interval is the Student-t interval of the mean, ``mean ± t_{(1+c)/2, n−1} · std/√n`` (``std`` with
  ``ddof = 1``): it assumes ``s_cr`` roughly normal across seeds or ``n`` large enough; with one seed it is
  undefined (``None``, ``std`` NaN).

  Iterative scorers (SynFlow's family, normally 100 rounds) are scored once, on the dense network: the
  critical sparsity of iterative pruning needs a pruning run per sparsity and is out of scope here
  (``iterative_scorer`` says when this happened).

  Args:
    apply_fn: ``apply_fn(params, x)`` (hashable: the compiled program is cached by it).
    init: ``key -> params``, traceable by ``jax.jit`` (``mfprune.functional.init_fn``, ``pipeline.model_fns``).
    scorer: a registered scorer name (``"snip"``, ``"magnitude"``, ...), a :class:`mfprune.scores.Scorer`, or a
      function ``(apply_fn, params, mask, batch, key) -> scores``.
    n_seeds: number of networks, ``>= 1``.
    data: a batch ``(inputs, labels)``, :class:`mfprune.scores.Stacked` batches, or an iterable whose first batch
      is used; ``None`` for ``random`` and ``magnitude``. Its inputs also give the network order of the layers.
    key: integer seed or PRNG key.
    sparsities: the kept-fraction grid, each in ``[0, 1)``; default ``0, 0.01, ..., 0.99``.
    confidence: level of the interval, in ``(0, 1)``.
    init_scheme: optional :func:`mfprune.init.initialise` scheme (``"gaussian"``, ``"eoc"``, ...).
    init_options: the scheme's options (``sigma_w``, ``sigma_b``, ``activation``, ...).
    scorer_options: the scorer's options (``temperature`` for GraSP, ...).
    prunable: which leaves are pruned (default dense/conv kernels).

  Returns:
    A :class:`CriticalSparsity`.

  Raises:
    ValueError: ``n_seeds < 1``, a sparsity outside ``[0, 1)``, ``confidence`` outside ``(0, 1)``, an unknown
      scorer or scheme, a labelled scorer without ``data``, or non-finite scores (naming the layers).
  """
  n_seeds = check_int("n_seeds", n_seeds, 1)
  try:
    confidence = float(confidence)
  except (TypeError, ValueError):
    raise ValueError(f"confidence must be a number in (0, 1); got {confidence!r}") from None
  if not 0.0 < confidence < 1.0:
    raise ValueError(f"confidence must be in (0, 1) (e.g. 0.95); got {confidence}")
  grid = _sparsity_grid(sparsities)
  name, score_fn, uses_labels, rounds = _resolve_scorer(scorer)
  batch = as_batch(data)
  if uses_labels and batch is None:
    raise ValueError(f"scorer {name!r} needs data=(inputs, labels)")
  keys = _seed_keys(key, n_seeds)
  if init_scheme is not None and init_scheme not in init_lib.SCHEMES:
    raise ValueError(f"unknown init_scheme {init_scheme!r}; available: {', '.join(init_lib.SCHEMES)}")
  params = _initialise_seeds(init, keys, init_scheme, dict(init_options or {}))
  first = jax.tree.map(lambda x: x[0], params)
  named = named_leaves(dense_mask(first, prunable))
  tree_names = [n for n, _ in named]
  sizes = np.array([int(np.size(m)) for _, m in named])
  total = int(sizes.sum())
  counts = tuple(keep_count(total, s) for s in grid)
  options = tuple(sorted((scorer_options or {}).items()))
  program = _vmapped_program(apply_fn, score_fn, options, prunable, counts)
  score_keys = jax.vmap(lambda k: jax.random.fold_in(k, 2))(keys)
  out = jax.device_get(program(params, batch, score_keys))
  finite = np.asarray(out.finite).all(axis=0)
  if not finite.all():
    bad = [n for n, ok in zip(tree_names, finite) if not ok]
    raise ValueError(f"scorer {name!r} produced NaN or infinite scores in {', '.join(bad)}; check the inputs and "
                     "parameters (or enable float64)")
  # Network order for the tables (tree order sorts dict keys: "blocks" before "stem").
  if batch is not None:
    inputs = batch.inputs[0] if isinstance(batch, Stacked) else batch[0]
    rank = {n: i for i, n in enumerate(layer_order(apply_fn, first, jnp.asarray(inputs)[:1]))}
    perm = np.array(sorted(range(len(tree_names)), key=lambda i: (rank.get(tree_names[i], len(rank)), i)))
    order_kind = "network"
  else:
    perm, order_kind = np.arange(len(tree_names)), "tree"
  death_rank = np.asarray(out.death_rank, np.int64)[:, perm]
  death = 1.0 - death_rank / total
  values = death.min(axis=1)
  first_dead_index = death.argmin(axis=1)
  layers = tuple(tree_names[i] for i in perm)
  kept_fraction = np.asarray(out.kept, np.float64)[:, :, perm] / sizes[perm]
  mean = float(values.mean())
  if n_seeds > 1:
    std = float(values.std(ddof=1))
    half = _t_quantile(0.5 + confidence / 2, n_seeds - 1) * std / math.sqrt(n_seeds)
    interval = (mean - half, mean + half)
  else:
    std, interval = math.nan, None
  return CriticalSparsity(
      method=name, values=values, mean=mean, std=std, confidence=confidence, interval=interval, layers=layers,
      layer_sizes=tuple(int(m) for m in sizes[perm]), death_sparsity=death,
      first_dead=tuple(layers[i] for i in first_dead_index), sparsities=grid, kept_fraction=kept_fraction.mean(axis=0),
      iterative_scorer=rounds > 1, layer_order=order_kind)
