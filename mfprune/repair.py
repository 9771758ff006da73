"""Repairs of a pruned network at initialization: EOC rescaling, weak lottery tickets, approximate isometry.

Pruning a network initialised on the edge of chaos (EOC) moves it off the EOC, and pruning an orthogonally
initialised network breaks its dynamical isometry. This module holds the data-free repairs of the papers, as pure
functions over parameter and mask pytrees (:mod:`mfprune.masks`: ``bool`` leaves on the prunable kernels, ``None``
elsewhere; kernels laid out ``(in, out)`` or ``(*window, in, out)``, fan-in ``prod(shape[:-1])``):

* **EOC rescaling trick** ([R] §2.3, Proposition 1, eq. 6-7, Algorithm 1): :func:`rescale_factors` and
  :func:`rescale` multiply the kept weights of each output neuron (or channel, or whole layer) so that it gets back
  the squared norm it had before pruning, which restores the effective ``σw²`` and puts the net back on the EOC.
* **Effective variance of a pruned layer** ([R] App. C, proof of Proposition 1): :func:`kept_variance_fraction`,
  the factor ``α_l`` by which pruning multiplies a layer's ``σw²``.
* **Weak lottery tickets** ([R] App. H, Theorems 3-4): :func:`lottery_keep_probability`, :func:`bernoulli_mask`
  and :func:`weak_lottery_mask`, a random mask that puts a net initialised with ``σw > σw,EOC`` on the EOC.
* **Approximate isometry** ([S] §5, eq. 8): :func:`orthogonality_score`, :func:`orthogonality_scores` and
  :func:`approximate_isometry`, gradient descent on the kept weights towards layerwise orthogonality.

Residual networks need no repair: they stay on the EOC after pruning ([R] Proposition 3), and the Stable ResNet
parameterisation of [R] eq. 9 (residual branches scaled by ``1/√L``, Proposition 2) is the model option
``mfprune.models.ResNet(..., stable=True)``, not a transformation of the parameters.

References: [R] Hayou et al., Robust Pruning at Initialization (ICLR 2021); [S] Lee et al., A Signal Propagation
Perspective for Pruning at Initialization (ICLR 2020). ``docs/repair.md`` explains the choices made where the
papers are ambiguous.
"""

from __future__ import annotations

import functools
import warnings
import zlib
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

import theory
from theory.sparsity import lottery_keep_probability  # the one definition ([R] App. H); re-exported here
from mfprune._keys import KeyLike, as_key
from mfprune import masks
from mfprune.init import fan_in
from mfprune.masks import Mask, Params, Prunable, is_kernel
from theory._validation import is_concrete, positive_float

__all__ = [
    "GRANULARITIES", "rescale_factors", "rescale", "kept_variance_fraction",
    "lottery_keep_probability", "layer_key", "bernoulli_mask", "weak_lottery_mask",
    "orthogonality_scores", "orthogonality_score", "approximate_isometry",
]

Array = jax.Array
Factors = Any  # pytree like params: float arrays broadcasting against the kernel (masked leaves) or None
GRANULARITIES = ("row", "layer")
"""The granularities of the rescaling trick: per output neuron or channel ([R] Algorithm 1), or per layer."""


def _is_none(x: Any) -> bool:
  return x is None


def _float_dtype(x: Array) -> jnp.dtype:
  """The dtype sums of squares of ``x`` are taken in: ``x``'s own float dtype, at least float32."""
  return jnp.promote_types(jnp.result_type(x), jnp.float32)


def _check_layers(params: Params, mask: Mask) -> None:
  """Validates ``mask`` against ``params`` and that every masked leaf is a matrix or a convolution kernel."""
  masks.check_mask(mask, params)
  flat = jax.tree_util.tree_flatten_with_path(mask, is_leaf=_is_none)[0]
  if not any(m is not None for _, m in flat):
    raise ValueError("mask has no prunable leaf (every entry is None); build one with masks.dense_mask or prune")
  for path, m in flat:
    if m is not None and jnp.ndim(m) < 2:
      raise ValueError(f"mask at {masks.path_name(path)!r} covers a parameter of shape {jnp.shape(m)}; the repairs "
                       "need kernels with at least 2 dimensions, (in, out) or (*window, in, out)")


def _mask_or_dense(params: Params, mask: Mask | None) -> Mask:
  return masks.dense_mask(params) if mask is None else mask


# ---------------------------------------------------------------------------------------------------------------
# EOC rescaling trick.
# ---------------------------------------------------------------------------------------------------------------


def _check_granularity(granularity: str) -> str:
  if granularity not in GRANULARITIES:
    raise ValueError(f"granularity must be one of {GRANULARITIES} (per output neuron/channel, or per layer); "
                     f"got {granularity!r}")
  return granularity


def _check_reference(reference: str | float) -> float | None:
  """``None`` for ``"dense"``, else the validated ``σw`` as a float."""
  if isinstance(reference, str):
    if reference != "dense":
      raise ValueError(f"reference must be 'dense' or a float sigma_w > 0; got {reference!r}")
    return None
  if isinstance(reference, bool):
    raise ValueError(f"reference must be 'dense' or a float sigma_w > 0; got {reference!r}")
  return positive_float("reference", reference, "the dense init's sigma_w, or 'dense'")


def _layer_factor(w: Array, m: Array, granularity: str, sigma_w: float | None) -> Array:
  """ρ for one kernel: shape ``(1, ..., 1, out)`` (row) or ``(1, ..., 1)`` (layer), in ``w``'s dtype."""
  dtype = _float_dtype(w)
  w2 = jnp.square(w.astype(dtype))
  axes = tuple(range(w.ndim - 1)) if granularity == "row" else tuple(range(w.ndim))
  kept = jnp.sum(jnp.where(m, w2, 0), axis=axes, keepdims=True)
  if sigma_w is None:
    target = jnp.sum(w2, axis=axes, keepdims=True)
  else:
    # [R] Prop. 1 / Alg. 1: each kept row gets its dense row's expected squared norm (theory.rescaling_target, σw²
    # with v_l = fan_in); a layer has `out` rows.
    rows = 1 if granularity == "row" else w.shape[-1]
    target = jnp.full_like(kept, theory.rescaling_target(sigma_w, fan_in=fan_in(w.shape)) * rows)
  some_kept = kept > 0
  factor = jnp.where(some_kept, jnp.sqrt(target / jnp.where(some_kept, kept, 1)), 1)
  return factor.astype(jnp.result_type(w))


def _warn_if_already_pruned(params: Params, mask: Mask) -> None:
  """Warns when every pruned weight is already exactly zero: then ``reference="dense"`` has nothing to restore."""
  if not is_concrete(params) or not is_concrete(mask):
    return
  pruned, nonzero = _pruned_weights(params, mask)
  if bool(pruned) and not bool(nonzero):
    warnings.warn("every pruned weight of params is already zero, so reference='dense' sees the pruned norms as the "
                  "dense ones and the factors are 1: pass the dense (unpruned) weights, or reference=sigma_w",
                  stacklevel=3)


@jax.jit
def _pruned_weights(params: Params, mask: Mask) -> tuple[Array, Array]:
  """Whether ``mask`` prunes any weight, and whether any pruned weight of ``params`` is nonzero."""
  pairs = [(m, w) for m, w in zip(jax.tree_util.tree_leaves(mask, is_leaf=_is_none), jax.tree_util.tree_leaves(params))
           if m is not None]
  pruned = jnp.any(jnp.stack([jnp.any(~m) for m, _ in pairs]))
  nonzero = jnp.any(jnp.stack([jnp.any(jnp.where(m, 0, w) != 0) for m, w in pairs]))
  return pruned, nonzero


def rescale_factors(params: Params, mask: Mask, *, granularity: str = "row",
                    reference: str | float = "dense") -> Factors:
  """The rescaling factors ρ of the EOC rescaling trick ([R] Proposition 1, eq. 6-7; Algorithm 1).

  Pruning multiplies a layer's effective ``σw²`` by ``α < 1`` ([R] App. C), which moves an EOC network into the
  ordered phase. Multiplying the kept weights of each output unit ``i`` by ``ρ_i = 1/√α_i`` undoes this. With
  ``α_i`` estimated from the kept weights, as in Algorithm 1:

  * ``reference="dense"`` (default): ``ρ_i² = Σ_j W_ij² / Σ_j δ_ij W_ij²``, so every kept row gets back exactly
    the squared norm its dense row had. Needs the dense weights (those the mask was computed on), not
    ``apply_mask``'d ones (a warning says so when every pruned weight is already zero).
  * ``reference=σw`` (a float): ``ρ_i² = σw² / Σ_j δ_ij W_ij²``, so every kept row gets squared norm ``σw²``,
    the expected squared norm of a dense row under mfprune's convention ``W ~ N(0, σw²/fan_in)``
    (``fan_in = prod(shape[:-1])``: ``fan_in`` entries of variance ``σw²/fan_in``). Algorithm 1 as printed,
    ``ρ_i = 1/√(Σ_j W_ij² δ_ij)``, is ``reference=1.0``: it sets every row's squared norm to 1, which is ``σw²``
    only for ``σw = 1``; its proof works with weights standardised by ``σw`` (THEORY.md §5).

  A *row* is one output neuron ``i`` of a dense kernel ``(in, out)`` (the column ``kernel[:, i]``; the paper's row
  ``W_i·`` of its ``(out, in)`` matrix) and one output channel of a convolution kernel ``(*window, in, out)``, summed
  over window and input channels (``ρ_{i,j,β}`` constant in ``j, β``, eq. 7). With ``granularity="layer"`` the sums
  run over the whole kernel (one factor per layer; ``reference=σw`` then targets ``out · σw²``).

  A row (or layer) whose kept weights are all zero gets factor 1: it stays zero, and no NaN or inf appears.

  Args:
    params: parameters (dense weights, e.g. at initialization).
    mask: a mask of ``params`` (``True`` = kept).
    granularity: ``"row"`` (per output neuron / channel, as [R]) or ``"layer"``.
    reference: ``"dense"`` or the dense initialisation's ``σw > 0``.

  Returns:
    A pytree like ``params``: on each masked kernel an array of shape ``(1, ..., 1, out)`` (row) or
    ``(1, ..., 1)`` (layer) that broadcasts against it, in its dtype; ``None`` elsewhere.

  Raises:
    ValueError: ``mask`` does not fit ``params``, a masked leaf is not a kernel, unknown ``granularity``, or a
      ``reference`` that is neither ``"dense"`` nor a finite number > 0.
  """
  _check_layers(params, mask)
  granularity = _check_granularity(granularity)
  sigma_w = _check_reference(reference)
  if sigma_w is None:
    _warn_if_already_pruned(params, mask)
  return _factors(params, mask, granularity, sigma_w)


@functools.partial(jax.jit, static_argnums=(2, 3))
def _factors(params: Params, mask: Mask, granularity: str, sigma_w: float | None) -> Factors:
  return jax.tree.map(lambda m, w: None if m is None else _layer_factor(w, m, granularity, sigma_w),
                      mask, params, is_leaf=_is_none)


@jax.jit
def _scaled(params: Params, mask: Mask, factors: Factors) -> Params:
  return jax.tree.map(lambda m, f, w: None if m is None else jnp.where(m, w * f, 0).astype(jnp.result_type(w)),
                      mask, factors, params, is_leaf=_is_none)


def rescale(params: Params, mask: Mask, *, granularity: str = "row", reference: str | float = "dense") -> Params:
  """The pruned and rescaled parameters ``ρ ⊙ δ ⊙ W`` of [R] eq. 6 (the pruned net back on the EOC).

  Pruned weights are exactly zero; biases and every other unmasked leaf are returned unchanged. See
  :func:`rescale_factors` for ``granularity``, ``reference`` and the formulas. Runs under ``jit`` and ``vmap``
  (the checks use shapes only; the already-pruned warning is skipped for traced values).

  Args:
    params: parameters (dense weights, e.g. at initialization).
    mask: a mask of ``params``.
    granularity: ``"row"`` or ``"layer"``.
    reference: ``"dense"`` or the dense initialisation's ``σw > 0``.

  Returns:
    New parameters with the structure of ``params``.
  """
  factors = rescale_factors(params, mask, granularity=granularity, reference=reference)
  scaled = _scaled(params, mask, factors)
  # leaves outside the mask are returned as they came (the same objects)
  return jax.tree.map(lambda m, w, s: w if m is None else s, mask, params, scaled, is_leaf=_is_none)


def kept_variance_fraction(params: Params, mask: Mask | None = None, *,
                           reference: Params | None = None) -> dict[str, float]:
  """Per layer, the factor ``α_l`` by which pruning multiplies the effective ``σw²`` ([R] App. C).

  ``α_l = Σ_kept W² / Σ W²_ref`` over the layer's kernel: the empirical ``E[N_{l−1} (W_11)² δ_11]`` of the proof of
  Proposition 1 (weights standardised so that the dense sum is 1). For a dense Gaussian layer with ``σw`` the pruned
  layer propagates variances as a dense one with ``σw² → α_l σw²``: ``q^l = α_l σw² E[φ(y^{l−1})²] + σb²``
  (:func:`theory.maps.propagate` with ``alphas``). A random mask keeping a fraction ``p`` gives ``α_l ≈ p``;
  magnitude pruning keeps the large weights, so ``α_l > p``; after the rescaling trick (:func:`rescale`, measured
  against the dense weights with ``reference``) ``α_l = 1``. A layer whose reference weights are all zero gets 1
  (pruning changes nothing there).

  Args:
    params: parameters: the dense weights with ``mask``, or weights already pruned (and repaired) with ``reference``.
    mask: a mask of ``params`` (``True`` = kept); ``None`` counts every entry of ``params`` (already pruned ones are
      zero).
    reference: the dense weights the fraction is taken of (default ``params`` itself).

  Returns:
    ``{layer path name ("layers/0/kernel"): α_l}`` in tree order, as Python floats.

  Raises:
    ValueError: ``mask`` or ``reference`` does not fit ``params``.
  """
  mask = _mask_or_dense(params, mask)
  masks.check_mask(mask, params)
  if reference is None:
    reference = params
  else:
    masks.check_mask(mask, reference, name="mask (for reference)")
  return {name: float(value) for name, value in masks.named_leaves(_fractions(params, mask, reference))}


@jax.jit
def _fractions(params: Params, mask: Mask, reference: Params) -> Any:

  def fraction(m, w, r):
    if m is None:
      return None
    total = jnp.sum(jnp.square(r.astype(_float_dtype(r))))
    kept = jnp.sum(jnp.where(m, jnp.square(w.astype(_float_dtype(w))), 0))
    return jnp.where(total > 0, kept / jnp.where(total > 0, total, 1), 1.0)

  return jax.tree.map(fraction, mask, params, reference, is_leaf=_is_none)


# ---------------------------------------------------------------------------------------------------------------
# Weak lottery tickets.
# ---------------------------------------------------------------------------------------------------------------


def _check_probability(name: str, value: Any) -> float:
  try:
    p = float(value)
  except (TypeError, ValueError):
    raise ValueError(f"{name} must be a number in (0, 1]; got {value!r}") from None
  if not 0.0 < p <= 1.0:
    raise ValueError(f"{name} must be in (0, 1] (fraction of the layer's weights kept); got {p}")
  return p


def _per_layer(value: float | Mapping[str, float], names: list[str], argument: str) -> dict[str, Any]:
  """``{name: value}`` for every layer, from one value or a mapping that must name exactly these layers."""
  if not isinstance(value, Mapping):
    return {name: value for name in names}
  missing = sorted(set(names) - set(value))
  unknown = sorted(set(value) - set(names))
  if missing or unknown:
    raise ValueError(f"{argument} must give one value per prunable layer {names[:5]}"
                     f"{'...' if len(names) > 5 else ''}; missing {missing[:5]}, not prunable layers {unknown[:5]}")
  return dict(value)


def layer_key(key: KeyLike, name: str) -> Array:
  """The key of layer ``name``: ``fold_in(key, crc32(name))``, independent of the other layers and of tree order."""
  return jax.random.fold_in(as_key(key), zlib.crc32(name.encode()) & 0x7FFFFFFF)


def bernoulli_mask(params: Params, key: KeyLike, keep_probability: float | Mapping[str, float], *,
                   prunable: Prunable = is_kernel) -> Mask:
  """A random mask keeping each prunable weight independently with probability ``p_l`` ([R] Theorem 4's ``δ``).

  Each layer draws from its own key :func:`layer_key` ``(key, name)``, so its mask depends only on the key and the
  layer's path: reproducible, and unchanged when other layers are added or renamed.

  Args:
    params: parameters.
    key: PRNG key (or an int seed).
    keep_probability: ``p`` in ``(0, 1]`` for every layer, or ``{layer path name: p_l}`` naming every prunable
      layer (``"layers/0/kernel"``, as :func:`mfprune.masks.named_leaves`).
    prunable: predicate on ``(path, leaf)`` selecting the prunable weights.

  Returns:
    A mask (``bool`` on prunable leaves, ``None`` elsewhere). Its kept fraction is random (binomial), not exact.

  Raises:
    ValueError: a probability outside ``(0, 1]``, a mapping that does not name exactly the prunable layers, or a
      ``prunable`` that selects nothing.
  """
  dense = masks.dense_mask(params, prunable)
  names = [name for name, _ in masks.named_leaves(dense)]
  probabilities = {name: _check_probability(f"keep_probability[{name!r}]" if isinstance(keep_probability, Mapping)
                                            else "keep_probability", p)
                   for name, p in _per_layer(keep_probability, names, "keep_probability").items()}

  def draw(path, m):
    if m is None:
      return None
    name = masks.path_name(path)
    return jax.random.bernoulli(layer_key(key, name), probabilities[name], jnp.shape(m))

  return jax.tree_util.tree_map_with_path(draw, dense, is_leaf=_is_none)


def weak_lottery_mask(params: Params, key: KeyLike, *, sigma_w: float | Mapping[str, float],
                      activation: theory.activations.ActivationLike, sigma_b: float,
                      prunable: Prunable = is_kernel, **eoc_options: Any) -> Mask:
  """A weak lottery ticket: a random subnetwork initialised on the EOC ([R] App. H, Theorems 3-4).

  Theorem 4: for a FFNN or CNN whose layer ``l`` is initialised ``W ~ N(0, σ²_{w,l}/fan_in)``, ``B ~ N(0, σb²)``
  with every ``σ_{w,l} > σw,EOC`` (the EOC value at this ``σb``), keeping each weight of layer ``l`` independently
  with probability ``p_l = σ²_{w,EOC}/σ²_{w,l}`` gives a subnetwork on the EOC: its variances propagate as a dense
  net's with ``σw = σw,EOC``. Theorem 3 is the case of one ``σw`` for all layers. The mask is random
  (:func:`bernoulli_mask`), not chosen by any saliency score; it needs no rescaling afterwards.

  Args:
    params: parameters (initialised with ``sigma_w``).
    key: PRNG key (or an int seed).
    sigma_w: the initialisation's ``σw``, one for all layers or ``{layer path name: σ_{w,l}}``.
    activation: the network's activation (name, callable or :class:`theory.Activation`).
    sigma_b: the initialisation's ``σb >= 0``.
    prunable: predicate selecting the prunable weights.
    **eoc_options: passed to :func:`theory.eoc_sigma_w` (e.g. ``order``).

  Returns:
    The mask.

  Raises:
    theory.NoEOCError: the activation has no EOC at ``sigma_b``.
    ValueError: some ``σ_{w,l} < σw,EOC`` or non-positive (see :func:`lottery_keep_probability`).
  """
  sigma_w_eoc = theory.eoc_sigma_w(activation, sigma_b, **eoc_options)
  names = [name for name, _ in masks.named_leaves(masks.dense_mask(params, prunable))]
  probabilities = {name: lottery_keep_probability(s, sigma_w_eoc)
                   for name, s in _per_layer(sigma_w, names, "sigma_w").items()}
  return bernoulli_mask(params, key, probabilities, prunable=prunable)


# ---------------------------------------------------------------------------------------------------------------
# Approximate isometry.
# ---------------------------------------------------------------------------------------------------------------


def _as_matrix(w: Array) -> Array:
  """A kernel ``(*window, in, out)`` as the ``(prod(window)·in, out)`` matrix (a dense kernel is unchanged)."""
  return jnp.reshape(w, (-1, w.shape[-1]))


def _gram(a: Array) -> Array:
  """Gram matrix on the smaller side of ``a`` (``(fan_in, out)``): ``a aᵀ`` if fan_in <= out, else ``aᵀ a``."""
  # full float32 matmuls: TF32 (the GPU default) would put a ~1e-3 floor on the score of an orthogonal matrix
  if a.shape[0] <= a.shape[1]:
    return jnp.matmul(a, a.T, precision=jax.lax.Precision.HIGHEST)
  return jnp.matmul(a.T, a, precision=jax.lax.Precision.HIGHEST)


def _gram_deviation(a: Array) -> Array:
  """``‖G(a) − I‖²_F`` for the smaller-side Gram ``G``."""
  g = _gram(a)
  return jnp.sum(jnp.square(g - jnp.eye(g.shape[0], dtype=g.dtype)))


def _matrices(params: Params, mask: Mask) -> tuple[list[str], list[Array], list[Array], list[tuple[int, ...]]]:
  """Names, ``(fan_in, out)`` weight and mask matrices, and kernel shapes of the masked layers, in tree order."""
  pairs = [(masks.path_name(p), m, w) for (p, m), w in
           zip(jax.tree_util.tree_flatten_with_path(mask, is_leaf=_is_none)[0], jax.tree_util.tree_leaves(params))
           if m is not None]
  return ([n for n, _, _ in pairs], [_as_matrix(w) for _, _, w in pairs],
          [_as_matrix(m) for _, m, _ in pairs], [jnp.shape(w) for _, _, w in pairs])


@jax.jit
def _scores(weights: list[Array], kept: list[Array], gain: Array) -> Array:
  return jnp.stack([jnp.sqrt(_gram_deviation(jnp.where(c, w.astype(_float_dtype(w)), 0) / gain))
                    for w, c in zip(weights, kept)])


def orthogonality_scores(params: Params, mask: Mask | None = None, *, gain: float = 1.0) -> dict[str, float]:
  """Per layer ``‖(C_l ⊙ W_l / g)ᵀ(C_l ⊙ W_l / g) − I‖_F``, the terms of [S]'s orthogonality score (§5).

  The Gram matrix is taken on the smaller side of the layer's ``(fan_in, out)`` matrix (a convolution kernel
  ``(*window, in, out)`` is flattened to ``(prod(window)·in, out)``): ``K Kᵀ`` (``fan_in × fan_in``, which is the
  paper's ``WᵀW`` for its ``(out, in)`` matrix ``W = Kᵀ``) when ``fan_in <= out``, else ``Kᵀ K`` (``out × out``).
  Identity is then reachable: the score is 0 exactly for semi-orthogonal matrices (what
  :func:`mfprune.init.orthogonal` draws). On the larger side the Gram has ``|fan_in − out|`` extra zero eigenvalues,
  so ``‖G_large − I‖²_F = ‖G_small − I‖²_F + |fan_in − out|``: same minimisers, an unreachable floor.

  Args:
    params: parameters.
    mask: a mask of ``params``; ``None`` for the dense network (every kernel, :func:`mfprune.masks.dense_mask`).
    gain: target scale ``g > 0``: the score measures ``C ⊙ W / g`` against ``I``, i.e. the Gram of ``C ⊙ W``
      against ``g² I``. The paper's score is ``g = 1``; use the mean-field ``σw`` for nets whose EOC ``σw ≠ 1``.

  Returns:
    ``{layer path name: score}`` in tree order, as Python floats.

  Raises:
    ValueError: ``mask`` does not fit ``params``, or ``gain`` is not a finite number > 0.
  """
  mask = _mask_or_dense(params, mask)
  _check_layers(params, mask)
  gain = positive_float("gain", gain, "target singular value")
  names, weights, kept, _ = _matrices(params, mask)
  values = np.asarray(_scores(weights, kept, jnp.asarray(gain)))
  return {name: float(v) for name, v in zip(names, values)}


def orthogonality_score(params: Params, mask: Mask | None = None, *, gain: float = 1.0) -> float:
  """[S]'s orthogonality score ``OS = Σ_l ‖(C_l ⊙ W_l)ᵀ(C_l ⊙ W_l) − I_l‖_F`` (§5, eq. 8; Table 2).

  The sum of :func:`orthogonality_scores` (same arguments and conventions).
  """
  return float(sum(orthogonality_scores(params, mask, gain=gain).values()))


@functools.partial(jax.jit, static_argnames=("steps", "optimizer"))
def _isometry_descent(units: list[Array], kept: list[Array], learning_rate: Array, steps: int,
                      optimizer: optax.GradientTransformation | None) -> tuple[list[Array], Array]:
  """Descent on ``Σ_l ¼‖G(C_l ⊙ V_l) − I‖²_F``; returns ``V`` and the per-layer scores ``(steps + 1, layers)``."""
  opt = optax.sgd(learning_rate) if optimizer is None else optimizer

  def loss(vs):
    per_layer = jnp.stack([0.25 * _gram_deviation(v * c) for v, c in zip(vs, kept)])
    return jnp.sum(per_layer), per_layer

  def step(carry, _):
    vs, state = carry
    (_, per_layer), grads = jax.value_and_grad(loss, has_aux=True)(vs)
    updates, state = opt.update(grads, state, vs)
    vs = [v * c for v, c in zip(optax.apply_updates(vs, updates), kept)]
    return (vs, state), per_layer

  (units, _), history = jax.lax.scan(step, (units, opt.init(units)), None, length=steps)
  history = jnp.concatenate([history, loss(units)[1][None]])
  return units, 2 * jnp.sqrt(history)


def approximate_isometry(params: Params, mask: Mask | None = None, *, steps: int = 1000,
                         learning_rate: float = 0.1, gain: float = 1.0,
                         optimizer: optax.GradientTransformation | None = None,
                         return_history: bool = False) -> Params | tuple[Params, dict[str, np.ndarray]]:
  """Approximate isometry (AI, [S] §5, eq. 8): makes each pruned layer as orthogonal as its sparsity allows.

  Minimises ``min_W ‖(C_l ⊙ W_l)ᵀ(C_l ⊙ W_l) − I_l‖_F`` for all layers together by gradient descent on the kept
  weights, starting from the given ones (data-free; one compiled program, a ``lax.scan`` over ``steps``). Choices,
  documented in ``docs/repair.md``:

  * Gram side: the smaller side of each ``(fan_in, out)`` matrix, so that ``I`` is reachable by a semi-orthogonal
    matrix (see :func:`orthogonality_scores`); for square layers both sides give the same norm.
  * Convolutions: the kernel ``(*window, in, out)`` is flattened to ``(prod(window)·in, out)``, as
    :func:`mfprune.init.orthogonal` does. Orthonormal columns of this matrix make ``Σ_β K_βᵀ K_β = I`` over the
    window taps ``β``: the convolution preserves the norm of white inputs on average, but is not an exact isometry
    (that is the Fourier-domain condition met by :func:`mfprune.init.delta_orthogonal`). A delta-orthogonal kernel
    with ``in = out`` scores 0 and is left as it is; AI does not otherwise produce delta-orthogonal kernels.
  * Scale: the target is ``gain² I`` (the descent runs on ``W / gain`` against ``I``, so ``learning_rate`` means the
    same at every gain). ``gain=1`` is the paper; the mean-field ``σw`` (e.g. the EOC value, √2 for ReLU) keeps
    an EOC net's scale.
  * Objective: per layer ``¼‖G − I‖²_F`` instead of the paper's ``‖G − I‖_F``. Both have the same minimisers; the
    square is smooth at the minimum, so plain gradient descent converges there (an orthogonal layer has zero
    gradient and is left unchanged), whereas the norm's gradient keeps length about ``2‖W‖`` up to the minimum
    and fixed-step descent stalls at a floor of order ``learning_rate``. With the ``¼`` a singular value ``s`` (in
    units of ``gain``) moves as ``s ← s − lr·s(s² − 1)``: stable at ``lr = 0.1`` for ``s`` up to about 4.5.
  * Optimiser: plain gradient descent (``optax.sgd``) with the paper's learning rate 0.1. The paper runs 10k steps
    "although it usually reaches convergence far before"; 1000 is the default here (pass ``steps=10_000`` for the
    paper's). Some sparse topologies cannot reach ``I`` (a row or column with no kept weight, or a descent that
    settles with a zero singular value): the score then stops at a floor.

  Pruned weights are exactly zero in the result; biases and unmasked leaves are unchanged.

  Args:
    params: parameters.
    mask: a mask of ``params``; ``None`` for the dense network.
    steps: number of descent steps, an integer ``>= 0``.
    learning_rate: step size ``> 0`` of the default ``optax.sgd`` (ignored when ``optimizer`` is given).
    gain: target singular value ``g > 0``.
    optimizer: any optax transformation to use instead of ``optax.sgd(learning_rate)`` (it is a static argument:
      pass the same object to reuse the compiled program).
    return_history: also return the per-layer orthogonality scores (at ``gain``) before each step and at the end.

  Returns:
    The new parameters; with ``return_history``, ``(params, {layer path name: scores of shape (steps + 1,)})``,
    whose last entries are the final per-layer scores.

  Raises:
    ValueError: ``mask`` does not fit ``params``, bad ``steps``, ``learning_rate`` or ``gain``, or a descent that
      diverged (lower ``learning_rate``).
  """
  mask = _mask_or_dense(params, mask)
  _check_layers(params, mask)
  if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
    raise ValueError(f"steps must be an integer >= 0 (number of gradient steps); got {steps!r}")
  learning_rate = positive_float("learning_rate", learning_rate, "gradient descent step size")
  gain = positive_float("gain", gain, "target singular value")
  names, weights, kept, shapes = _matrices(params, mask)
  dtypes = [jnp.result_type(w) for w in weights]
  units = [jnp.where(c, w.astype(_float_dtype(w)), 0) / gain for w, c in zip(weights, kept)]
  kept = [c.astype(u.dtype) for c, u in zip(kept, units)]
  units, history = _isometry_descent(units, kept, jnp.asarray(learning_rate, units[0].dtype), int(steps), optimizer)
  history = np.asarray(history)
  if not np.all(np.isfinite(history[-1])):
    bad = [n for n, v in zip(names, history[-1]) if not np.isfinite(v)]
    raise ValueError(f"approximate isometry diverged at {bad[:5]} (singular values of W/gain far above 1); lower "
                     f"learning_rate (got {learning_rate}) or choose a gain near the weights' scale (got {gain})")
  new = {name: (gain * u).reshape(shape).astype(dtype) for name, u, shape, dtype in zip(names, units, shapes, dtypes)}
  out = jax.tree_util.tree_map_with_path(
      lambda p, m, w: w if m is None else new[masks.path_name(p)], mask, params, is_leaf=_is_none)
  if return_history:
    return out, {name: history[:, i] for i, name in enumerate(names)}
  return out

