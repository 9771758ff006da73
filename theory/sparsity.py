"""Critical sparsity and layer collapse: exact ``s_cr`` from scores, the bounds of [R], and mean-field predictions.

Pruning at initialization keeps the ``k`` highest scores of the whole network; the **critical sparsity** ``s_cr`` is
the smallest sparsity at which some layer keeps no weight ([R] §2.2; THEORY.md §3). This module holds

* :func:`critical_sparsity`, :func:`critical_keep_count`, :func:`layer_death_sparsity`, :func:`layer_death_order`:
  the exact ``s_cr`` of one set of scores, under mfprune's selection rule (see *Tie rule* below);
* :func:`theorem1_bound`: [R] Theorem 1, ``E[s_cr] <= (1/L)(1 + log(κ L N²)/κ)`` for SBP off the EOC;
* :func:`proposition4_bound` and :func:`mbp_threshold`: [R] Proposition 4 (magnitude pruning, large depth), with
  :func:`half_normal_quantile` and :func:`half_normal_isf` for the quantiles ``Q_x`` of ``|Z|``;
* :func:`proposition5_probability`: [R] Proposition 5 (magnitude pruning, large width);
* :func:`rescaling_target` and :func:`lottery_keep_probability`: the EOC rescaling target of [R] Proposition 1 /
  Algorithm 1 and the Bernoulli keep probability of the weak lottery ticket, [R] Theorems 3-4;
* :func:`kept_fraction_from_moments`, :func:`critical_sparsity_from_moments`, :func:`predicted_kept_fraction` and
  :func:`predicted_critical_sparsity`: the per-layer share that SBP keeps and the critical sparsity predicted from the
  mean-field score profile ``m_l`` (:func:`theory.gradients.gradient_moments`) with Gaussian scores (or products of
  two independent Gaussians).

**Tie rule.** mfprune keeps exactly ``k = M − round(s·M)`` weights (at least one) out of ``M``, the highest scores,
ties to the earliest weight in parameter order (leaves in ``jax.tree_util`` order, entries in row-major order;
:mod:`mfprune.masks`). Rank the weights ``0, 1, ..., M − 1`` in that order and let ``R_l`` be the rank of layer
``l``'s best-ranked weight; layer ``l`` keeps nothing iff ``k <= R_l``. The sparsities mfprune can reach are
``s = 1 − k/M``, ``k = 1..M``, so the critical sparsity is ``s_cr = 1 − R/M`` with ``R = max_l R_l``: the smallest
reachable sparsity at which some layer is empty (``keep_count(M, s_cr) = R``). Without ties this is [R]'s
``s_cr = 1 − #{j : score_j > min_l max_{i∈l} score_i}/M``. With one layer ``R = 0`` and ``s_cr = 1``: the layer that
holds the best weight is never emptied, since one weight always stays. Scores are ordered as mfprune orders them,
through their bit patterns: ``−0.0 < +0.0`` and NaN above ``+inf``.

References: [R] Hayou et al., Robust Pruning at Initialization (ICLR 2021). ``docs/sparsity.md`` explains the choices
where the paper is ambiguous (the log base of Theorem 1, the reading of γ in Propositions 4-5, the rescaling target).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Literal, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erfc, erfinv, log_ndtr, ndtri

from theory import eoc, gaussian, gradients, maps
from theory._pytree import pytree_dataclass, static_field
from theory._validation import check_finite, check_int, check_nonnegative, check_positive, is_concrete, positive_float
from theory.activations import ActivationLike, get_activation

__all__ = [
    "critical_sparsity", "critical_keep_count", "layer_death_sparsity", "layer_death_order",
    "Theorem1Bound", "theorem1_bound",
    "half_normal_quantile", "half_normal_isf", "mbp_threshold", "Proposition4Bound", "proposition4",
    "proposition4_bound", "proposition5_probability", "GAMMA_READINGS", "DEFAULT_EPSILON_GRID",
    "rescaling_target", "lottery_keep_probability", "KEEP_PROBABILITY_RTOL",
    "SCORE_LAWS", "kept_fraction_from_moments", "PredictedCriticalSparsity", "critical_sparsity_from_moments",
    "predicted_kept_fraction", "predicted_critical_sparsity",
]

Array = jax.Array
GammaReading = Literal["std", "variance"]
GAMMA_READINGS: tuple[str, ...] = ("std", "variance")
DEFAULT_EPSILON_GRID = tuple(float(e) for e in np.linspace(0.005, 1.995, 399))
"""The grid of ε ∈ (0, 2) over which Proposition 4's infimum is taken."""
KEEP_PROBABILITY_RTOL = 1e-5
"""Relative slack when comparing ``σw`` with ``σw,EOC`` (the EOC solver works in float32 by default)."""

_U_GRID = (-7.0, 4.0, 441)
"""``log10`` range and size of the grid of ``u = −log(1 − x)`` on which Proposition 4's condition is scanned."""


def _float(x) -> Array:
  return jnp.asarray(x, gaussian.float_dtype())


def _steps(dtype) -> int:
  """Bisection halvings: round-off of a bracket of width ~1e3 in ``dtype``."""
  return 64 if jnp.finfo(dtype).bits == 64 else 44


# ---------------------------------------------------------------------------------------------------------------
# Exact critical sparsity from one set of scores.
# ---------------------------------------------------------------------------------------------------------------


def _sortable_keys(x: Array) -> Array:
  """Unsigned integers ordered as the floats are (``−inf < ... < −0.0 < +0.0 < ... < +inf < NaN``).

  The same map as :mod:`mfprune.masks` (which :mod:`theory` may not import), so both order scores alike.
  """
  if x.dtype not in (jnp.float32, jnp.float64):
    x = x.astype(jnp.float32)
  utype = jnp.uint64 if x.dtype == jnp.float64 else jnp.uint32
  bits = jax.lax.bitcast_convert_type(x, utype)
  sign = jnp.asarray(1, utype) << (8 * x.dtype.itemsize - 1)
  return jnp.where((bits & sign) != 0, ~bits, bits | sign)


def _leaves(scores: Any) -> list[Array]:
  """The layers of ``scores`` (leaves in tree order), validated: at least one, none empty."""
  leaves = jax.tree_util.tree_leaves(scores)
  if not leaves:
    raise ValueError("scores must hold at least one layer (a sequence or pytree of arrays); got none")
  leaves = [jnp.asarray(x) for x in leaves]
  sizes = [int(x.size) for x in leaves]
  if min(sizes) == 0:
    raise ValueError(f"every layer of scores must hold at least one score; got layer sizes {sizes}")
  return leaves


def _layer_keys(leaves: list[Array]) -> tuple[list[Array], list[int], np.ndarray]:
  """Flattened sort keys per layer (cast as :func:`mfprune.masks.global_top_k` does), sizes and offsets."""
  dtype = jnp.result_type(*leaves)
  keys = [_sortable_keys(x.reshape(-1).astype(dtype)) for x in leaves]
  sizes = [int(x.size) for x in leaves]
  return keys, sizes, np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)


def _maxima(keys: list[Array], offsets: np.ndarray) -> tuple[Array, Array]:
  """Each layer's largest key and the global index of its earliest occurrence."""
  best = jnp.stack([jnp.max(k) for k in keys])
  first = jnp.stack([int(o) + jnp.argmax(k) for k, o in zip(keys, offsets)])
  return best, first


def _rank_of(keys: list[Array], offsets: np.ndarray, value: Array, position: Array) -> Array:
  """The rank (from 0) of the weight at global ``position`` whose key is ``value``: the number ranked before it."""
  count = 0
  for k, o in zip(keys, offsets):
    index = int(o) + jnp.arange(k.shape[0])
    count = count + jnp.sum(k > value) + jnp.sum((k == value) & (index < position))
  return count


@jax.jit
def _critical_rank(leaves: list[Array]) -> Array:
  keys, _, offsets = _layer_keys(leaves)
  best, first = _maxima(keys, offsets)
  lowest = jnp.min(best)
  # Among the layers whose maximum is the lowest, the one whose earliest maximum comes last is ranked lowest.
  position = jnp.max(jnp.where(best == lowest, first, -1))
  return _rank_of(keys, offsets, lowest, position)


@jax.jit
def _death_ranks(leaves: list[Array]) -> Array:
  keys, _, offsets = _layer_keys(leaves)
  best, first = _maxima(keys, offsets)
  return jnp.stack([_rank_of(keys, offsets, best[l], first[l]) for l in range(len(keys))])


@jax.jit
def _death_order(leaves: list[Array]) -> Array:
  keys, _, offsets = _layer_keys(leaves)
  best, first = _maxima(keys, offsets)
  return jnp.lexsort((-first, best))


def critical_keep_count(scores: Sequence[Array] | Any) -> Array:
  """``R = max_l R_l``: the largest number of kept weights at which global top-k leaves some layer empty.

  ``R_l`` is the rank (from 0, in mfprune's order: higher score first, ties to the earliest weight in parameter order)
  of layer ``l``'s best-ranked weight; layer ``l`` is empty once at most ``R_l`` weights are kept (module docstring,
  *Tie rule*). ``R = 0`` for a single layer (it is never emptied). One pass over the scores; runs under ``jit`` and
  ``vmap``.

  Args:
    scores: one array of scores per layer (any shapes), or a pytree of them (leaves in tree order, as mfprune's
      parameter order); higher means keep.

  Returns:
    ``R`` as an integer scalar.
  """
  return _critical_rank(_leaves(scores))


def critical_sparsity(scores: Sequence[Array] | Any) -> Array:
  """The exact critical sparsity ``s_cr`` of one set of per-layer scores ([R] §2.2; THEORY.md §3).

  A layer dies once the global threshold passes its largest score, so ``s_cr = 1 − R/M`` with ``M`` the number of
  weights and ``R`` from :func:`critical_keep_count`: the smallest sparsity ``s = 1 − k/M`` at which mfprune's
  global top-k (``k = M − round(s·M)`` kept, ties to the earliest weight in parameter order) empties a layer. Without
  ties, ``s_cr = 1 − #{j : score_j > min_l max_{i∈l} score_i}/M`` ([R]). ``mfprune.prune`` at ``s_cr`` empties a
  layer and at ``s_cr − 1/M`` none. ``s_cr = 1`` for a single layer (one weight always stays).

  Args:
    scores: one array of scores per layer (any shapes), or a pytree of them (leaves in tree order); higher = keep.

  Returns:
    ``s_cr`` as a float scalar (``jit``/``vmap``-able).
  """
  leaves = _leaves(scores)
  total = sum(int(x.size) for x in leaves)
  return 1.0 - _critical_rank(leaves).astype(gaussian.float_dtype()) / total


def layer_death_sparsity(scores: Sequence[Array] | Any) -> Array:
  """Per layer, the smallest sparsity ``1 − R_l/M`` at which global top-k leaves it empty (mfprune's tie rule).

  ``1.0`` for the layer that holds the best-ranked weight (never emptied). The minimum over layers is
  :func:`critical_sparsity`. Costs one pass over all scores per layer; runs under ``jit`` and ``vmap``.

  Args:
    scores: one array of scores per layer, or a pytree of them (leaves in tree order); higher = keep.

  Returns:
    Array of shape ``(n_layers,)``.
  """
  leaves = _leaves(scores)
  total = sum(int(x.size) for x in leaves)
  return 1.0 - _death_ranks(leaves).astype(gaussian.float_dtype()) / total


def layer_death_order(scores: Sequence[Array] | Any) -> Array:
  """Layer indices in the order global pruning empties them: the first dies first.

  Layers are sorted by their largest score, lowest first; among equal maxima, by mfprune's tie rule the layer whose
  earliest maximum comes later in parameter order dies first. The last index is the layer holding the best-ranked
  weight (never emptied). Runs under ``jit`` and ``vmap``.

  Args:
    scores: one array of scores per layer, or a pytree of them (leaves in tree order); higher = keep.

  Returns:
    Integer array of shape ``(n_layers,)``, a permutation of ``0..n_layers − 1``.
  """
  return _death_order(_leaves(scores))


# ---------------------------------------------------------------------------------------------------------------
# Theorem 1 (SBP off the EOC).
# ---------------------------------------------------------------------------------------------------------------


def _json_float(value: float) -> float | None:
  return float(value) if math.isfinite(value) else None


@pytree_dataclass
class Theorem1Bound:
  """[R] Theorem 1: ``E[s_cr] <= (1/L)(1 + log(κ L N²)/κ) + O(1/(κ² √(L N²)))``, ``κ = |log χ|/8``.

  Attributes:
    chi: ``χ = f'(1)`` at ``q*``.
    kappa: ``κ = |ln χ|/8`` (natural log: it comes from ``χ^L = e^{L ln χ}``).
    leading: the leading term ``(1/L)(1 + log_b(κ L N²)/κ)`` in the chosen base ``b``; ``inf`` on the EOC; it can
      exceed 1, or turn negative when ``κ L N² < 1``.
    bound: ``leading`` where it says something, else the trivial ``1`` (``s_cr <= 1`` always); the ``O(·)``
      remainder is not included (its constant is not given by the paper), so this is the leading-order bound only.
    remainder_scale: ``1/(κ² √(L N²))``, the rate of the dropped remainder (its constant is unknown).
    vacuous: ``True`` when the leading term says nothing: ``leading >= 1``, ``κ L N² <= 1`` (the proof's
      ``ε = log(κLN²)/(κL)`` is then not in ``(0, 1)`` and the formula can even turn negative), or on the EOC.
    phase: ``"ordered"`` (χ < 1, the case [R] proves), ``"chaotic"`` (χ > 1, "similar" per [R]) or ``"eoc"``.
    depth: ``L``.
    width: ``N``.
    log_base: the base ``b`` of the outer logarithm.
    message: one sentence saying what the number means.
  """

  chi: float
  kappa: float
  leading: float
  bound: float
  remainder_scale: float
  vacuous: bool = static_field()
  phase: str = static_field()
  depth: int = static_field()
  width: int = static_field()
  log_base: float = static_field()
  message: str = static_field()

  def to_dict(self) -> dict[str, Any]:
    """JSON-ready values (``None`` for ±∞ and NaN)."""
    return {
        "chi": _json_float(self.chi), "kappa": _json_float(self.kappa), "leading": _json_float(self.leading),
        "bound": _json_float(self.bound), "remainder_scale": _json_float(self.remainder_scale),
        "vacuous": self.vacuous, "phase": self.phase, "depth": self.depth, "width": self.width,
        "log_base": self.log_base, "message": self.message,
    }


@functools.partial(jax.jit, static_argnums=(3,))
def _chi(act, sigma_b: Array, sigma_w: Array, order: int) -> Array:
  return eoc._chi_scalar(act, sigma_b, sigma_w, order)[1]  # χ at the stable q*, exactly as theory.phase


def _chi_from_theory(activation, sigma_b, sigma_w) -> float:
  check_nonnegative("sigma_b", sigma_b)
  check_positive("sigma_w", sigma_w)
  chi = float(_chi(get_activation(activation), _float(sigma_b), _float(sigma_w), maps.ORDER))
  if not math.isfinite(chi):
    raise ValueError(f"chi is not finite at (sigma_b={sigma_b}, sigma_w={sigma_w}) for activation {activation!r}")
  return chi


def theorem1_bound(*, depth: int, width: int, chi: float | None = None, activation: ActivationLike | None = None,
                   sigma_b: float | None = None, sigma_w: float | None = None, kappa: float | None = None,
                   log_base: float = math.e) -> Theorem1Bound:
  """[R] Theorem 1 (§2.2, App. C): the leading-order upper bound on ``E[s_cr]`` of SBP off the EOC.

  ``E[s_cr] <= (1/L)(1 + log(κ L N²)/κ) + O(1/(κ² √(L N²)))`` with ``κ = |log χ(σb, σw)|/8`` for an FFNN or CNN of
  depth ``L`` and width ``N`` (``M_l = N²``). The ``O(·)`` term has no known constant, so only the leading term is
  computed (``remainder_scale`` gives its rate). [R] proves the ordered phase (χ < 1) and says the chaotic phase is
  similar; the same formula is applied to χ > 1 and the phase is reported.

  The log base: [R] writes ``log``; its example (L = N = 100, κ = 0.2: "about 27%", measured 22%) matches log10
  (27.5%), while the natural log gives 62.0%. The proof's logarithms are natural (it sets ``χ^{εL/8} = 1/(κLN²)``),
  so the default is ``math.e``; pass ``log_base=10`` for the paper's number. κ itself always uses the natural log.

  On the EOC (χ = 1) κ = 0 and the theorem says nothing: the result is returned with ``vacuous=True``,
  ``leading = inf``, ``bound = 1`` and a message, not raised, so that sweeps across the EOC work. Near the EOC
  (``κ L N² <= 1``) and wherever the leading term is ``>= 1`` the result is vacuous too, with ``bound = 1``.

  Args:
    depth: ``L >= 1``.
    width: ``N >= 1``.
    chi: ``χ > 0``. Give exactly one of ``chi``, ``kappa`` or (``activation``, ``sigma_b``, ``sigma_w``).
    activation: with ``sigma_b >= 0`` and ``sigma_w > 0``: χ is :func:`theory.phase`'s χ at the stable ``q*``.
    sigma_b: bias standard deviation.
    sigma_w: weight standard deviation.
    kappa: ``κ >= 0`` directly (the paper's example gives κ = 0.2); the phase is then reported as ordered.
    log_base: base of the outer logarithm, ``> 0`` and ``!= 1`` (default ``e``).

  Returns:
    A :class:`Theorem1Bound`.
  """
  depth = check_int("depth", depth, 1)
  width = check_int("width", width, 1)
  check_positive("log_base", log_base)
  if log_base == 1:
    raise ValueError("log_base must be > 0 and != 1; got 1")
  given = [chi is not None, kappa is not None, activation is not None]
  if sum(given) != 1:
    raise ValueError("give exactly one of chi, kappa or (activation, sigma_b, sigma_w)")
  if activation is not None:
    if sigma_b is None or sigma_w is None:
      raise ValueError("activation needs sigma_b and sigma_w")
    chi = _chi_from_theory(activation, sigma_b, sigma_w)
  elif sigma_b is not None or sigma_w is not None:
    raise ValueError("sigma_b and sigma_w are only used with activation")
  if kappa is not None:
    check_finite("kappa", kappa)
    if kappa < 0:
      raise ValueError(f"kappa must be >= 0; got {kappa}")
    kappa = float(kappa)
    chi = math.exp(-8.0 * kappa)
  else:
    check_positive("chi", chi)
    chi = float(chi)
    # |log χ| within theory.phase's tolerance is the EOC: a solver's σw_EOC gives χ = 1 − O(1e-7) in float32.
    kappa = abs(math.log(chi)) / 8.0 if abs(math.log(chi)) > eoc.PHASE_TOLERANCE else 0.0
  phase = "eoc" if kappa == 0 else ("ordered" if chi < 1 else "chaotic")
  total = depth * width**2
  if kappa == 0:
    return Theorem1Bound(chi, 0.0, math.inf, 1.0, math.inf, True, phase, depth, width, float(log_base),
                         "on the EOC (chi = 1) kappa = 0 and Theorem 1 gives no bound")
  leading = (1.0 + math.log(kappa * total) / math.log(log_base) / kappa) / depth
  remainder = 1.0 / (kappa**2 * math.sqrt(total))
  if kappa * total <= 1:
    vacuous, message = True, ("kappa*L*N^2 <= 1 (too close to the EOC for this size): the leading term is outside "
                              "the theorem's range and says nothing")
  elif leading >= 1:
    vacuous, message = True, "the leading term is >= 1: the bound says nothing (s_cr <= 1 always)"
  else:
    vacuous, message = False, (f"leading-order bound on E[s_cr] ({phase} phase); the O(1/(kappa^2 sqrt(L N^2))) "
                               "remainder has no known constant and is not included")
  return Theorem1Bound(chi, kappa, leading, 1.0 if vacuous else leading, remainder, vacuous, phase, depth, width,
                       float(log_base), message)


# ---------------------------------------------------------------------------------------------------------------
# Magnitude-based pruning: Propositions 4 and 5.
# ---------------------------------------------------------------------------------------------------------------


@jax.jit
def _isf_from_log(log_t: Array) -> Array:
  """``Q`` with ``log P(|Z| > Q) = log_t`` (``log_t <= 0``), accurate from ``t`` near 1 down to ``e^{-1e30}``.

  Near ``t = 1`` it is ``√2 erfinv(1 − t)``; in the tail a start from ``ndtri`` (or, where ``t/2`` would
  underflow, from ``Q² ≈ w − log w − log 2π``, ``w = −2 log(t/2)``) is refined by Newton steps on
  ``log 2 + log_ndtr(−Q) = log_t``, all in logs.
  """
  log_t = jnp.minimum(log_t, 0.0)
  dtype = log_t.dtype
  p = -jnp.expm1(log_t)  # 1 − t, exact for t near 1
  central = jnp.sqrt(2.0) * erfinv(jnp.clip(p, 0.0, 0.5))
  log_half = log_t - jnp.log(2.0)
  tiny = jnp.log(jnp.finfo(dtype).tiny) + 10.0
  start_ndtri = -ndtri(jnp.exp(jnp.maximum(log_half, tiny)))
  w = -2.0 * jnp.minimum(log_half, -1.0)
  start_tail = jnp.sqrt(jnp.maximum(w - jnp.log(w) - jnp.log(2.0 * jnp.pi), 1.0))
  q = jnp.where(log_half > tiny, start_ndtri, start_tail)
  q = jnp.maximum(q, 0.5)
  for _ in range(4):
    log_sf = log_ndtr(-q)
    # d/dQ log Φ(−Q) = −ϕ(Q)/Φ(−Q); far out, the Mills-ratio series avoids the cancellation of two huge logs.
    exact = -jnp.exp(-0.5 * q * q - 0.5 * jnp.log(2.0 * jnp.pi) - log_sf)
    slope = jnp.where(q > 30.0, -(q + 1.0 / q - 2.0 / q**3), exact)
    q = jnp.maximum(q - (log_sf - log_half) / slope, 0.5)
  return jnp.where(p <= 0.5, central, q)


def _check_range(name: str, value: Any, valid, what: str) -> None:
  """``ValueError`` naming ``name`` and its offending entries unless ``valid(array)`` holds everywhere."""
  if not is_concrete(value):
    return
  array = np.asarray(value, np.float64)
  bad = array[~valid(array)]
  if bad.size:
    raise ValueError(f"{name} must {what}; got {bad.ravel()[:3].tolist()}")


def half_normal_quantile(x) -> Array:
  """``Q_x``, the ``x``-quantile of ``|Z|``, ``Z ~ N(0, 1)``: ``P(|Z| <= Q_x) = x`` ([R] App. E).

  Computed from ``log(1 − x)`` (:func:`half_normal_isf`), so it stays accurate for ``x`` near 1.

  Args:
    x: probabilities in ``[0, 1]`` (any shape); ``Q_1 = inf``.

  Returns:
    ``Q_x``, shaped like ``x``.
  """
  x = _float(x)
  _check_range("x", x, lambda a: (a >= 0) & (a <= 1), "lie in [0, 1] (a probability)")
  return jnp.where(x >= 1, jnp.inf, _isf_from_log(jnp.log1p(-jnp.where(x >= 1, 0.5, x))))


def half_normal_isf(t=None, *, log_t=None) -> Array:
  """The inverse survival function of ``|Z|``: ``Q_{1−t}`` with ``P(|Z| > Q_{1−t}) = t`` ([R] App. E).

  For tiny tails use this, not ``half_normal_quantile(1 − t)``: ``1 − t`` rounds to 1 once ``t`` is below the
  precision. ``log_t`` reaches tails that underflow the float type (``t = e^{−1e4}`` is fine).

  Args:
    t: tail probabilities in ``(0, 1]``.
    log_t: ``log t <= 0`` instead of ``t`` (give exactly one).

  Returns:
    ``Q_{1−t}``.
  """
  if (t is None) == (log_t is None):
    raise ValueError("give exactly one of t or log_t")
  if t is not None:
    t = _float(t)
    _check_range("t", t, lambda a: (a > 0) & (a <= 1), "lie in (0, 1] (a tail probability; 0 after underflow: "
                 "pass log_t)")
    log_t = jnp.log(t)
  else:
    log_t = _float(log_t)
    _check_range("log_t", log_t, lambda a: a <= 0, "be <= 0")
  return _isf_from_log(log_t)


def _check_reading(gamma_reading: str) -> str:
  if gamma_reading not in GAMMA_READINGS:
    raise ValueError(f"gamma_reading must be one of {GAMMA_READINGS}; got {gamma_reading!r}")
  return gamma_reading


def _check_gamma(gamma) -> None:
  check_finite("gamma", gamma)
  _check_range("gamma", gamma, lambda a: a > 1, "be > 1 (layer l0's alpha over the next largest)")


def _std_ratio(gamma, gamma_reading: str) -> Array:
  """The ratio ``r`` of weight standard deviations, from γ under the chosen reading."""
  gamma = _float(gamma)
  return jnp.sqrt(gamma) if gamma_reading == "variance" else gamma


def _condition_gap(u: Array, epsilon: Array, r: Array) -> Array:
  """``log P(|Z| > r Q_x) − log (1−x)^{r^{2−ε}}`` at ``x = 1 − e^{−u}``; [R]'s condition holds iff it is < 0."""
  g = r ** (2.0 - epsilon)
  return jnp.log(2.0) + log_ndtr(-r * _isf_from_log(-u)) + g * u


def _threshold_u(epsilon: Array, r: Array) -> Array:
  """``u_ε = −log(1 − x_{ε,γ})`` for scalar ε and ratio ``r``: 0 when the condition always holds, inf when never."""
  dtype = r.dtype
  low, high, points = _U_GRID
  grid = jnp.logspace(low, high, points, dtype=dtype)
  gap = _condition_gap(grid, epsilon, r)
  fails = gap >= 0
  last = points - 1 - jnp.argmax(fails[::-1])
  lo = jnp.log(grid[last])
  hi = jnp.log(grid[jnp.minimum(last + 1, points - 1)])

  def step(_, bracket):
    a, b = bracket
    mid = 0.5 * (a + b)
    failing = _condition_gap(jnp.exp(mid), epsilon, r) >= 0
    return jnp.where(failing, mid, a), jnp.where(failing, b, mid)

  a, b = jax.lax.fori_loop(0, _steps(dtype), step, (lo, hi))
  root = jnp.exp(0.5 * (a + b))
  return jnp.where(jnp.any(fails), jnp.where(fails[-1], jnp.inf, root), 0.0)


_CHUNK = 128
"""(ε, r) pairs are solved in fixed-size batches, so one compiled program serves every input shape."""

_threshold_batch = jax.jit(jax.vmap(_threshold_u))


def _thresholds(epsilon: Array, r: Array) -> Array:
  epsilon, r = jnp.broadcast_arrays(epsilon, r)
  shape = epsilon.shape
  if not is_concrete((epsilon, r)):  # traced: one program for this shape
    return jax.vmap(_threshold_u)(epsilon.reshape(-1), r.reshape(-1)).reshape(shape)
  flat_e, flat_r = epsilon.reshape(-1), r.reshape(-1)
  pad = -flat_e.shape[0] % _CHUNK
  flat_e = jnp.concatenate([flat_e, jnp.ones((pad,), flat_e.dtype)])
  flat_r = jnp.concatenate([flat_r, jnp.full((pad,), 2.0, flat_r.dtype)])
  parts = [_threshold_batch(flat_e[i:i + _CHUNK], flat_r[i:i + _CHUNK]) for i in range(0, flat_e.shape[0], _CHUNK)]
  return jnp.concatenate(parts)[: math.prod(shape)].reshape(shape)


def _check_epsilon(epsilon) -> None:
  check_finite("epsilon", epsilon)
  _check_range("epsilon", epsilon, lambda a: (a > 0) & (a < 2), "lie in the open interval (0, 2)")


def mbp_threshold(epsilon, gamma, *, gamma_reading: GammaReading = "variance") -> Array:
  """``x_{ε,γ} = inf{y ∈ (0,1) : ∀x > y, r Q_x > Q_{1−(1−x)^{r^{2−ε}}}}`` ([R] Proposition 4, App. E).

  ``Q_x`` is the ``x``-quantile of ``|Z|`` and ``r`` the ratio of weight standard deviations: ``r = √γ`` with
  ``gamma_reading="variance"`` (γ = α_{l0}/α_l, the ratio of the ``v_l = α_l N`` of [R], as the proposition defines
  it) and ``r = γ`` with ``"std"`` (the formula as printed; THEORY.md §4). Since ``Q`` is increasing, the condition
  is ``log P(|Z| > r Q_x) < r^{2−ε} log(1 − x)``; it is scanned on a log grid of ``u = −log(1 − x)`` from ``1e-7``
  to ``1e4`` and the last failure is refined by bisection, all in logs (no ``1 − t`` ever rounds to 1). A failure
  region narrower than the grid spacing (about 6% in ``u``) could be missed.

  Args:
    epsilon: values in ``(0, 2)`` (any shape, broadcast against ``gamma``).
    gamma: ``γ > 1``.
    gamma_reading: ``"variance"`` (default) or ``"std"``.

  Returns:
    ``x_{ε,γ}`` in ``[0, 1]``: 0 when the condition holds for every ``x``, 1 when it fails up to ``u = 1e4``.
  """
  _check_reading(gamma_reading)
  _check_epsilon(epsilon)
  _check_gamma(gamma)
  u = _thresholds(_float(epsilon), _std_ratio(gamma, gamma_reading))
  return -jnp.expm1(-u)


@pytree_dataclass
class Proposition4Bound:
  """[R] Proposition 4 evaluated: ``inf_ε {x_ε + ζ N² (1 − x_ε)^{1+G}/(1+G)}``, ``G = r^{2−ε}``.

  Attributes:
    bound: the infimum over the ε grid (the leading term; the ``O(1/√(L N²))`` remainder has no known constant).
    epsilon: the minimising ε.
    x: ``x_{ε,γ}`` at that ε.
    gamma: γ as given.
    std_ratio: ``r``, the ratio of weight standard deviations used (``√γ`` or ``γ``).
    width: ``N``.
    zeta: ``ζ_{l0} = M_{l0}/N²``.
    gamma_reading: ``"variance"`` or ``"std"``.
  """

  bound: float
  epsilon: float
  x: float
  gamma: float
  std_ratio: float
  width: int = static_field()
  zeta: float = static_field()
  gamma_reading: str = static_field()

  def to_dict(self) -> dict[str, Any]:
    """JSON-ready values."""
    return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def proposition4(gamma: float, *, width: int, zeta: float = 1.0, epsilon_grid: Sequence[float] | None = None,
                 gamma_reading: GammaReading = "variance") -> Proposition4Bound:
  """[R] Proposition 4 (magnitude pruning, large depth; App. E) with the minimising ε.

  For layer ``l0`` with the largest ``α`` (``v_l = α_l N``, so the smallest weight variance ``σw²/v_l``) and
  ``γ = min_{l≠l0} α_{l0}/α_l``::

      E[s_cr] <= inf_{ε∈(0,2)} { x_{ε,γ} + ζ_{l0} N²/(1 + G) · (1 − x_{ε,γ})^{1+G} } + O(1/√(L N²)),  G = r^{2−ε}

  with ``x_{ε,γ}`` from :func:`mbp_threshold` and ``ζ_{l0} = M_{l0}/N²`` ([R] §2.1: ``M_l = ζ_l N²``); the second
  term is the integral over ``x > x_ε`` of ``P(s_cr >= x) <= ζ_{l0} N² (1 − x)^G`` from the proof. The proof
  measures sparsity over the layers other than ``l0`` (``k_x = (1 − x) Σ_{l≠l0} M_l``), which differs from ``s_cr``
  by at most ``M_{l0}/Σ_l M_l``. The remainder has no known constant and is left out.

  The reading of γ (THEORY.md §4): the proof compares ``|X|`` with ``γ|Z|``, i.e. treats γ as a ratio of standard
  deviations, but with ``v_l = α_l N`` the standard-deviation ratio is ``√γ``. ``"variance"`` (default) takes γ as
  defined (α ratio) and evaluates the formula at ``r = √γ``; ``"std"`` evaluates it as printed, ``r = γ``. Neither
  reproduces [R] Table 7 (docs/sparsity.md): at N = 100, ζ = 1 and γ = 2, 5, 10 the variance reading gives 0.996,
  0.936, 0.812 and the std reading 0.961, 0.599, 0.327 (paper: 5.77, 0.81, 0.72; measured ≈1, 0.79, 0.69).

  Args:
    gamma: ``γ > 1``.
    width: ``N >= 1``.
    zeta: ``ζ_{l0} = M_{l0}/N² > 0`` (1 for an ``N × N`` layer).
    epsilon_grid: the ε values in ``(0, 2)`` over which the infimum is taken (default :data:`DEFAULT_EPSILON_GRID`,
      399 points from 0.005 to 1.995).
    gamma_reading: ``"variance"`` (default) or ``"std"``.

  Returns:
    A :class:`Proposition4Bound`.
  """
  _check_reading(gamma_reading)
  _check_gamma(gamma)
  width = check_int("width", width, 1)
  check_positive("zeta", zeta)
  grid = np.asarray(DEFAULT_EPSILON_GRID if epsilon_grid is None else epsilon_grid, np.float64).reshape(-1)
  if grid.size == 0:
    raise ValueError("epsilon_grid must hold at least one value in (0, 2)")
  _check_epsilon(grid)
  r = _std_ratio(float(gamma), gamma_reading)
  u = _thresholds(_float(grid), r)
  g = r ** (2.0 - _float(grid))
  tail = jnp.exp(math.log(zeta * width**2) - jnp.log1p(g) - (1.0 + g) * u)
  values = -jnp.expm1(-u) + tail
  best = int(jnp.argmin(values))
  return Proposition4Bound(float(values[best]), float(grid[best]), float(-jnp.expm1(-u[best])), float(gamma),
                           float(r), width, float(zeta), gamma_reading)


def proposition4_bound(gamma: float, *, width: int, zeta: float = 1.0, epsilon_grid: Sequence[float] | None = None,
                       gamma_reading: GammaReading = "variance") -> float:
  """The bound of [R] Proposition 4 as a float; see :func:`proposition4` for the formula and the arguments."""
  return proposition4(gamma, width=width, zeta=zeta, epsilon_grid=epsilon_grid, gamma_reading=gamma_reading).bound


def proposition5_probability(gamma: float, *, depth: int, width: int,
                             gamma_reading: GammaReading = "variance") -> float:
  """[R] Proposition 5 (magnitude pruning, large width; App. E): layer ``l0`` is emptied first with probability

  ``P(PR_{l0}) >= 1 − L π² / (4 (r − 1)² log(N)²) + o(1/log(N)²)``, clipped at 0,

  where ``r`` is the ratio of weight standard deviations between the other layers and ``l0``. [R] defines
  ``γ = min_{k≠l0} α_{l0}/α_k`` (a variance ratio) but its proof compares ``max|X|`` with ``γ_k max|Y|`` (a
  standard-deviation ratio): the same ambiguity as Proposition 4, resolved the same way (``"variance"``:
  ``r = √γ``; ``"std"``: ``r = γ``, the formula as printed). The ``o(·)`` term is left out.

  Args:
    gamma: ``γ > 1``.
    depth: ``L >= 1``.
    width: ``N >= 2`` (``log N > 0``).
    gamma_reading: ``"variance"`` (default) or ``"std"``.

  Returns:
    The lower bound in ``[0, 1)``.
  """
  _check_reading(gamma_reading)
  _check_gamma(gamma)
  depth = check_int("depth", depth, 1)
  width = check_int("width", width, 2)
  r = math.sqrt(gamma) if gamma_reading == "variance" else float(gamma)
  return max(0.0, 1.0 - depth * math.pi**2 / (4.0 * (r - 1.0) ** 2 * math.log(width) ** 2))


# ---------------------------------------------------------------------------------------------------------------
# Rescaling target and weak lottery tickets.
# ---------------------------------------------------------------------------------------------------------------


def rescaling_target(sigma_w, *, fan_in=None, v=None) -> Array:
  """The squared norm a kept row should have after the EOC rescaling trick ([R] Prop. 1, eq. 6-7, Algorithm 1).

  Each kept row (output neuron; for a CNN an output channel, over input channels and window) is given the squared
  norm its dense row had in expectation: with ``W ~ N(0, σw²/v_l)`` and ``fan_in`` weights per row that is
  ``fan_in · σw²/v_l``, i.e. ``σw²`` with the usual ``v_l = fan_in`` (``N_{l−1}``, or ``n_{l−1}(2k+1)``). Algorithm 1
  as printed sets it to 1, which is right only for weights standardised by σw (THEORY.md §5; docs/sparsity.md).

  Args:
    sigma_w: weight standard deviation, ``> 0``.
    fan_in: weights per row, ``> 0``; needed when ``v`` is given.
    v: the variance scaling ``v_l > 0`` (weights ``N(0, σw²/v_l)``); defaults to ``fan_in``.

  Returns:
    ``σw² · fan_in / v`` (``σw²`` without ``v``); traceable in all arguments.
  """
  check_positive("sigma_w", sigma_w)
  target = _float(sigma_w) ** 2
  if v is None:
    if fan_in is not None:
      check_positive("fan_in", fan_in)
    return target
  if fan_in is None:
    raise ValueError("v needs fan_in (the number of weights per row): the target is sigma_w^2 * fan_in / v")
  check_positive("fan_in", fan_in)
  check_positive("v", v)
  return target * _float(fan_in) / _float(v)


def lottery_keep_probability(sigma_w: float, sigma_w_eoc: float) -> float:
  """Keep probability ``p = σ²_{w,EOC} / σ²_w`` of the EOC winning ticket ([R] App. H, Theorems 3-4).

  A Bernoulli(p) mask multiplies the effective ``σw²`` by ``p`` in expectation, so it turns a net initialised with
  ``(σb, σw)`` into one initialised at ``(σb, σw,EOC)``. Pruning can only lower the variance, hence ``σw >= σw,EOC``
  (equality, up to a relative ``1e-5`` for the solver's float32, gives ``p = 1``). Per layer (Theorem 4) call it
  with each layer's ``σ_{w,l}``.

  Args:
    sigma_w: the initialisation's weight scale, ``> 0``.
    sigma_w_eoc: the EOC weight scale at the same ``σb`` (:func:`theory.eoc_sigma_w`), ``> 0``.

  Returns:
    ``p`` in ``(0, 1]``.

  Raises:
    ValueError: a non-positive or non-finite argument, or ``sigma_w < sigma_w_eoc`` (no mask raises the variance).
  """
  sigma_w = positive_float("sigma_w", sigma_w, "the initialisation's weight scale")
  sigma_w_eoc = positive_float("sigma_w_eoc", sigma_w_eoc, "the EOC weight scale")
  if sigma_w < sigma_w_eoc * (1 - KEEP_PROBABILITY_RTOL):
    raise ValueError(f"sigma_w must be >= sigma_w_eoc = {sigma_w_eoc:.6g} (pruning can only lower the effective "
                     f"variance, so no Bernoulli mask reaches the EOC from below); got sigma_w = {sigma_w:.6g}")
  return min(1.0, (sigma_w_eoc / sigma_w) ** 2)


# ---------------------------------------------------------------------------------------------------------------
# Predicted SBP kept share per layer and critical sparsity (Gaussian scores).
# ---------------------------------------------------------------------------------------------------------------


def _check_sparsity(sparsity) -> None:
  check_finite("sparsity", sparsity)
  _check_range("sparsity", sparsity, lambda a: (a >= 0) & (a < 1), "be in [0, 1) (fraction of prunable weights "
               "removed)")


def _check_profile(m, sizes) -> tuple[Array, Array]:
  m, sizes = _float(m), _float(sizes)
  if m.ndim != 1 or m.shape[0] == 0:
    raise ValueError(f"m must be a non-empty 1-D array (one second moment per layer); got shape {m.shape}")
  if sizes.shape != m.shape:
    raise ValueError(f"sizes must give one layer size per entry of m ({m.shape[0]}); got shape {sizes.shape}")
  if is_concrete(m):
    values = np.asarray(m, np.float64)
    bad = values[~(np.isfinite(values) & (values > 0))]
    if bad.size:
      raise ValueError(f"m must be finite and > 0 in every layer; got {bad[:3].tolist()} (0 or inf: the profile "
                       "spans more than the float range, enable jax_enable_x64)")
  check_positive("sizes", sizes)
  return m, sizes


SCORE_LAWS: tuple[str, ...] = ("gaussian", "product")
ScoreLaw = Literal["gaussian", "product"]
_PRODUCT_ORDER = 48
"""Gauss–Legendre nodes of the rule for the product law's survival function."""


def _check_law(score_law: str) -> str:
  if score_law not in SCORE_LAWS:
    raise ValueError(f"score_law must be one of {SCORE_LAWS}; got {score_law!r}")
  return score_law


def _survival(z: Array, law: str) -> Array:
  """``P(S > z)`` for a score ``S`` of unit second moment: ``|Z|`` (``"gaussian"``) or ``|X Y|`` (``"product"``).

  The product of two independent standard normals has ``P(|XY| > z) = E_X[erfc(z / (√2 |X|))]``, integrated over
  ``|X|`` by a sinh-mapped Gauss–Legendre rule (:mod:`theory.gaussian`) whose node scale ``min(1, z)`` resolves the
  integrand's rise near ``|X| ≈ z``.
  """
  if law == "gaussian":
    return erfc(z / jnp.sqrt(2.0))
  finite = jnp.where(jnp.isfinite(z), z, 1.0)
  scale = jnp.clip(finite, 1e-10, 1.0)
  x, w = gaussian._segment(jnp.zeros_like(z), jnp.ones_like(z), gaussian.Z_MAX, scale, _PRODUCT_ORDER)
  inner = jnp.sum(w * erfc(finite[..., None] / (jnp.sqrt(2.0) * x)), axis=-1)
  return jnp.where(jnp.isfinite(z), jnp.clip(2.0 * inner, 0.0, 1.0), 0.0)


def _log_threshold(log_m: Array, weights: Array, sparsity: Array, law: str) -> Array:
  """``log t`` solving ``Σ_l w_l P(√m_l S > t) = 1 − s`` (``Σ w = 1``), by bisection in ``log t``.

  The bracket ``[½ min log m − 69, ½ max log m + 7]`` (``t/√m`` from ``1e-30`` to ``1e3``) holds the root for every
  ``s`` in ``[1e-15, 1)``: every layer keeps all at the low end, none at the high end.
  """
  lo = 0.5 * jnp.min(log_m) + math.log(1e-30)
  hi = 0.5 * jnp.max(log_m) + math.log(1e3)
  excess = lambda y: jnp.sum(weights * _survival(jnp.exp(y - 0.5 * log_m), law)) - (1.0 - sparsity)

  def step(_, bracket):
    a, b = bracket
    mid = 0.5 * (a + b)
    above = excess(mid) > 0
    return jnp.where(above, mid, a), jnp.where(above, b, mid)

  a, b = jax.lax.fori_loop(0, _steps(log_m.dtype), step, (lo, hi))
  return 0.5 * (a + b)


def _shares(log_m: Array, weights: Array, sparsity: Array, law: str) -> Array:
  """Each layer's kept share ``P(√m_l S > t(s))``; exactly 1 at ``s = 0``."""
  share = _survival(jnp.exp(_log_threshold(log_m, weights, sparsity, law) - 0.5 * log_m), law)
  return jnp.where(sparsity > 0, share, jnp.ones_like(share))


@functools.partial(jax.jit, static_argnums=(3,))
def _kept_fraction(m: Array, sizes: Array, sparsity: Array, law: str) -> Array:
  log_m = jnp.log(m)
  weights = sizes / jnp.sum(sizes)
  return jnp.vectorize(lambda s: _shares(log_m, weights, s, law), signature="()->(l)")(sparsity)


def kept_fraction_from_moments(m, sizes, sparsity, *, score_law: ScoreLaw = "gaussian") -> Array:
  """The share of each layer kept by global pruning when layer ``l`` holds iid scores ``√m_l S``.

  One global threshold ``t`` keeps ``1 − s`` of all weights: ``Σ_l M_l P(√m_l S > t) = (1 − s) Σ_l M_l``, solved by
  bisection in ``log t`` (``m_l`` may span many orders of magnitude off the EOC); layer ``l`` keeps
  ``P(S > t/√m_l)``. This is the large-``M`` limit, where the threshold is the deterministic quantile. Only ratios of
  ``m`` and of ``sizes`` matter. The score law (unit second moment):

  * ``"gaussian"`` (default): ``S = |Z|``, the Gaussian score approximation ``W ∂L/∂W ~ N(0, m_l)``; the share is
    ``erfc(t/√(2 m_l))``.
  * ``"product"``: ``S = |X Y|``, ``X, Y`` iid ``N(0, 1)``: the weight times an independent Gaussian gradient
    (gradient independence, [R] Approximation 2). Its tail is exponential, not Gaussian; it fits SNIP on a tanh MLP
    better (docs/sparsity.md).

  Args:
    m: ``(L,)`` score second moments ``m_l > 0`` (e.g. ``gradient_moments(...).m``).
    sizes: ``(L,)`` weights per layer ``M_l > 0``.
    sparsity: ``s`` in ``[0, 1)``, a scalar or an array (the result gets a trailing layer axis).
    score_law: ``"gaussian"`` or ``"product"``.

  Returns:
    Shares in ``[0, 1]`` of shape ``(*sparsity.shape, L)`` whose ``M``-weighted mean is ``1 − s``.
  """
  _check_law(score_law)
  m, sizes = _check_profile(m, sizes)
  _check_sparsity(sparsity)
  return _kept_fraction(m, sizes, _float(sparsity), score_law)


@pytree_dataclass
class PredictedCriticalSparsity:
  """``s_cr`` predicted from iid scores ``√m_l S`` in layers of ``M_l`` weights (see
  :func:`critical_sparsity_from_moments`).

  Attributes:
    mean: ``E[s_cr] = ∫_0^1 P(s_cr > s) ds``.
    median: the sparsity where ``P(s_cr > s) = 1/2``.
    expected_count: the smallest sparsity at which some layer's expected kept count ``M_l P(score > t)`` is below 1.
    first_layer: the layer most likely to be empty at the median (index from 0).
    sparsities: the grid of ``s`` (``n,``).
    survival: ``P(s_cr > s)`` on that grid.
  """

  mean: Array
  median: Array
  expected_count: Array
  first_layer: Array
  sparsities: Array
  survival: Array

  def to_dict(self) -> dict[str, Any]:
    """The scalar fields as JSON-ready numbers."""
    return {"mean": float(self.mean), "median": float(self.median), "expected_count": float(self.expected_count),
            "first_layer": int(self.first_layer)}


def _sparsity_grid(total: float, dtype) -> np.ndarray:
  """``[0, 1 − 1/M]``: a uniform grid joined with one uniform in ``−log(1 − s)`` (fine near 1)."""
  top = 1.0 - 1.0 / total
  uniform = np.linspace(0.0, top, 1025)
  logs = -np.expm1(-np.linspace(0.0, math.log(total), 2049))
  grid = np.unique(np.clip(np.concatenate([uniform, logs]), 0.0, top))
  return grid.astype(dtype)


@functools.partial(jax.jit, static_argnums=(3, 4))
def _critical(m: Array, sizes: Array, grid: Array, steps: int, law: str) -> PredictedCriticalSparsity:
  log_m = jnp.log(m)
  weights = sizes / jnp.sum(sizes)

  def log_empty(s):  # log P(layer l keeps nothing) = M_l log(1 − p_l)
    return sizes * jnp.log1p(-jnp.minimum(_shares(log_m, weights, s, law), 1.0))

  def log_alive(s):  # log P(no layer is empty)
    return jnp.sum(jnp.log(-jnp.expm1(jnp.minimum(log_empty(s), 0.0))))

  survival = jnp.exp(jax.vmap(log_alive)(grid))
  mean = jnp.sum(0.5 * (survival[1:] + survival[:-1]) * jnp.diff(grid))

  def first_crossing(hit):  # smallest s in [0, grid[-1]] where the monotone predicate turns True
    def step(_, bracket):
      a, b = bracket
      mid = 0.5 * (a + b)
      now = hit(mid)
      return jnp.where(now, a, mid), jnp.where(now, mid, b)

    a, b = jax.lax.fori_loop(0, steps, step, (jnp.zeros((), grid.dtype), grid[-1]))
    return 0.5 * (a + b)

  median = first_crossing(lambda s: log_alive(s) <= jnp.log(0.5))
  expected_count = first_crossing(lambda s: jnp.min(sizes * _shares(log_m, weights, s, law)) < 1.0)
  first_layer = jnp.argmax(log_empty(median))
  return PredictedCriticalSparsity(mean, median, expected_count, first_layer, grid, survival)


def critical_sparsity_from_moments(m, sizes, *, score_law: ScoreLaw = "gaussian") -> PredictedCriticalSparsity:
  """The critical sparsity when layer ``l`` holds ``M_l`` iid scores ``√m_l S`` (extreme values).

  At sparsity ``s`` the global threshold is the deterministic ``t(s)`` of :func:`kept_fraction_from_moments` (it
  concentrates over ``Σ M_l`` weights), each weight of layer ``l`` survives with ``p_l(s) = P(√m_l S > t)``, and
  layer ``l`` is empty with probability ``(1 − p_l)^{M_l}``, independently across layers. Hence
  ``P(s_cr > s) = Π_l (1 − (1 − p_l(s))^{M_l})`` and ``E[s_cr] = ∫_0^1 P(s_cr > s) ds`` (trapezoid on about 3000
  sparsities, dense near 1). Also reported: the median, and the simpler rule "the first sparsity at which some
  layer's expected kept count ``M_l p_l`` drops below 1" (there ``P(layer empty) ≈ e^{−1}``).

  Args:
    m: ``(L,)`` score second moments ``m_l > 0``.
    sizes: ``(L,)`` weights per layer ``M_l >= 1`` (absolute counts: the extreme values depend on them).
    score_law: ``"gaussian"`` (default) or ``"product"`` (:func:`kept_fraction_from_moments`).

  Returns:
    A :class:`PredictedCriticalSparsity`.
  """
  _check_law(score_law)
  m, sizes = _check_profile(m, sizes)
  if not is_concrete(sizes):
    raise ValueError("sizes must be concrete (the sparsity grid depends on the total number of weights)")
  total = float(np.sum(np.asarray(sizes, np.float64)))
  if total < 2:
    raise ValueError(f"sizes must add up to at least 2 weights; got {total}")
  grid = jnp.asarray(_sparsity_grid(total, np.dtype(m.dtype)))
  return _critical(m, sizes, grid, _steps(m.dtype), score_law)


def _profile(activation, sigma_b, sigma_w, depth, architecture, widths, width, receptive_field, n_blocks, q1,
             order) -> tuple[Array, Array]:
  """``(m_l/m_L, M_l)`` from :func:`theory.gradients.gradient_moments` and the widths."""
  depth = check_int("depth", depth, 1)
  maps.check_architecture(architecture)
  receptive_field = check_int("receptive_field", receptive_field, 1)
  if widths is not None and width is not None:
    raise ValueError("give widths (N_0..N_L) or width (all layers), not both")
  if width is not None:
    width = check_int("width", width, 1)
    widths = [width] * (depth + 1)
  moments = gradients.gradient_moments(activation, sigma_b, sigma_w, depth, q1=q1, architecture=architecture,
                                       widths=widths, receptive_field=receptive_field, n_blocks=n_blocks, order=order)
  if widths is None:
    sizes = np.ones(depth)
  else:
    n = np.asarray(widths, np.float64)
    sizes = n[:-1] * n[1:] * receptive_field
  return moments.m, _float(sizes)


def predicted_kept_fraction(activation: ActivationLike, *, sigma_b, sigma_w, depth: int, sparsity,
                            architecture: maps.Architecture = "ffnn", widths: Sequence[float] | None = None,
                            width: int | None = None, receptive_field: int = 1, n_blocks: int | None = None,
                            q1=None, score_law: ScoreLaw = "gaussian", order: int = maps.ORDER) -> Array:
  """The share of each layer that SBP (SNIP) keeps at ``sparsity``, predicted by mean-field theory ([R] §2.2-3).

  The score ``W ∂L/∂W`` of layer ``l`` is taken as ``N(0, m_l)`` with ``m_l`` the mean-field second moment of
  :func:`theory.gradients.gradient_moments` (Gaussian score approximation; THEORY.md §3), and layer sizes
  ``M_l = N_{l−1} N_l (2k+1)``; then :func:`kept_fraction_from_moments` (``score_law="product"`` for
  ``|W|·|∂L/∂W|`` as a product of independent Gaussians). Off the EOC the profile is steep (whole layers
  at the input end are dropped in the ordered phase, Theorem 1); on the EOC and for Stable ResNets it is flat
  ([R] Fig. 1-2).

  Args:
    activation: name, callable or Activation.
    sigma_b: bias standard deviation, ``>= 0``.
    sigma_w: weight standard deviation, ``> 0``.
    depth: ``L >= 1``.
    sparsity: ``s`` in ``[0, 1)``, scalar or array.
    architecture: ``"ffnn"``, ``"cnn"``, ``"resnet"`` or ``"stable_resnet"``.
    widths: ``N_0..N_L`` (``depth + 1`` numbers); or give ``width`` for equal widths; neither: equal layer sizes.
    width: one width ``N`` for all layers (input included).
    receptive_field: ``2k + 1`` for a 1-D CNN.
    n_blocks: Stable ResNet's ``L`` (default ``depth − 1``).
    q1: first-layer variance (default ``σb² + σw²``, a unit-variance input).
    score_law: ``"gaussian"`` (default) or ``"product"`` (:func:`kept_fraction_from_moments`).
    order: quadrature order.

  Returns:
    Shares of shape ``(*sparsity.shape, depth)``, index ``l − 1`` for layer ``l``.
  """
  _check_sparsity(sparsity)
  _check_law(score_law)
  m, sizes = _profile(activation, sigma_b, sigma_w, depth, architecture, widths, width, receptive_field, n_blocks,
                      q1, order)
  return kept_fraction_from_moments(m, sizes, sparsity, score_law=score_law)


def predicted_critical_sparsity(activation: ActivationLike, *, sigma_b, sigma_w, depth: int,
                                architecture: maps.Architecture = "ffnn", widths: Sequence[float] | None = None,
                                width: int | None = None, receptive_field: int = 1, n_blocks: int | None = None,
                                q1=None, score_law: ScoreLaw = "gaussian",
                                order: int = maps.ORDER) -> PredictedCriticalSparsity:
  """``s_cr`` of SBP predicted from the mean-field profile ``m_l`` with Gaussian scores.

  :func:`critical_sparsity_from_moments` of ``m_l`` (:func:`theory.gradients.gradient_moments`) and the layer sizes
  ``M_l = N_{l−1} N_l (2k+1)``, which must be given (``width`` or ``widths``) since the extreme values depend on
  them. Same arguments as :func:`predicted_kept_fraction`, without ``sparsity``.

  Returns:
    A :class:`PredictedCriticalSparsity`.
  """
  if widths is None and width is None:
    raise ValueError("predicted_critical_sparsity needs the layer sizes: pass width (equal widths) or widths")
  _check_law(score_law)
  m, sizes = _profile(activation, sigma_b, sigma_w, depth, architecture, widths, width, receptive_field, n_blocks,
                      q1, order)
  return critical_sparsity_from_moments(m, sizes, score_law=score_law)
