"""[R]'s bounds on the critical sparsity: Theorem 1 (SBP off the EOC) and Propositions 4-5 (magnitude pruning).

* :func:`theorem1_bound`: [R] Theorem 1, ``E[s_cr] <= (1/L)(1 + log(κ L N²)/κ)`` for SBP off the EOC (§2.2, App. C);
* :func:`proposition4` / :func:`proposition4_bound` and :func:`mbp_threshold`: [R] Proposition 4 (magnitude pruning,
  large depth; App. E), with :func:`half_normal_quantile` and :func:`half_normal_isf` for the quantiles ``Q_x`` of
  ``|Z|``, and :func:`proposition4_parameters`, which reads ``l0``, ``γ`` and ``ζ`` off a network's layers;
* :func:`proposition5_probability`: [R] Proposition 5 (magnitude pruning, large width).

Notation: [R] writes ``v_l = α_l N`` for the fan-in of layer ``l``; here that ratio is the *fan-in ratio* ``v_l/N``
(:attr:`Proposition4Parameters.fan_in_ratios`), because everywhere else in mfprune ``α_l`` is the kept-variance
fraction of a pruned layer ([R] App. C; :func:`theory.maps.propagate`). ``docs/sparsity.md`` explains the choices
where the paper is ambiguous (the log base of Theorem 1, the reading of γ in Propositions 4-5).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Literal, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erfinv, log_ndtr, ndtri

from theory import eoc, maps
from theory._pytree import pytree_dataclass, static_field
from theory._validation import check_finite, check_int, check_nonnegative, check_positive, is_concrete
from theory.activations import ActivationLike, get_activation
from theory.sparsity._common import as_float, bisection_steps, check_range

__all__ = [
    "Theorem1Bound", "theorem1_bound",
    "half_normal_quantile", "half_normal_isf", "mbp_threshold", "Proposition4Bound", "proposition4",
    "proposition4_bound", "Proposition4Parameters", "proposition4_parameters", "proposition5_probability",
    "GAMMA_READINGS", "DEFAULT_EPSILON_GRID",
]

Array = jax.Array
GammaReading = Literal["std", "variance"]
GAMMA_READINGS: tuple[str, ...] = ("std", "variance")
DEFAULT_EPSILON_GRID = tuple(float(e) for e in np.linspace(0.005, 1.995, 399))
"""The grid of ε ∈ (0, 2) over which Proposition 4's infimum is taken."""

_U_GRID = (-7.0, 4.0, 441)
"""``log10`` range and size of the grid of ``u = −log(1 − x)`` on which Proposition 4's condition is scanned."""


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
  chi = float(_chi(get_activation(activation), as_float(sigma_b), as_float(sigma_w), maps.ORDER))
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


def half_normal_quantile(x) -> Array:
  """``Q_x``, the ``x``-quantile of ``|Z|``, ``Z ~ N(0, 1)``: ``P(|Z| <= Q_x) = x`` ([R] App. E).

  Computed from ``log(1 − x)`` (:func:`half_normal_isf`), so it stays accurate for ``x`` near 1.

  Args:
    x: probabilities in ``[0, 1]`` (any shape); ``Q_1 = inf``.

  Returns:
    ``Q_x``, shaped like ``x``.
  """
  x = as_float(x)
  check_range("x", x, lambda a: (a >= 0) & (a <= 1), "lie in [0, 1] (a probability)")
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
    t = as_float(t)
    check_range("t", t, lambda a: (a > 0) & (a <= 1), "lie in (0, 1] (a tail probability; 0 after underflow: "
                 "pass log_t)")
    log_t = jnp.log(t)
  else:
    log_t = as_float(log_t)
    check_range("log_t", log_t, lambda a: a <= 0, "be <= 0")
  return _isf_from_log(log_t)


def _check_reading(gamma_reading: str) -> str:
  if gamma_reading not in GAMMA_READINGS:
    raise ValueError(f"gamma_reading must be one of {GAMMA_READINGS}; got {gamma_reading!r}")
  return gamma_reading


def _check_gamma(gamma) -> None:
  check_finite("gamma", gamma)
  check_range("gamma", gamma, lambda a: a > 1, "be > 1 (layer l0's fan-in ratio over the next largest)")


def _std_ratio(gamma, gamma_reading: str) -> Array:
  """The ratio ``r`` of weight standard deviations, from γ under the chosen reading."""
  gamma = as_float(gamma)
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

  a, b = jax.lax.fori_loop(0, bisection_steps(dtype), step, (lo, hi))
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
  check_range("epsilon", epsilon, lambda a: (a > 0) & (a < 2), "lie in the open interval (0, 2)")


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
  u = _thresholds(as_float(epsilon), _std_ratio(gamma, gamma_reading))
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
  u = _thresholds(as_float(grid), r)
  g = r ** (2.0 - as_float(grid))
  tail = jnp.exp(math.log(zeta * width**2) - jnp.log1p(g) - (1.0 + g) * u)
  values = -jnp.expm1(-u) + tail
  best = int(jnp.argmin(values))
  return Proposition4Bound(float(values[best]), float(grid[best]), float(-jnp.expm1(-u[best])), float(gamma),
                           float(r), width, float(zeta), gamma_reading)


def proposition4_bound(gamma: float, *, width: int, zeta: float = 1.0, epsilon_grid: Sequence[float] | None = None,
                       gamma_reading: GammaReading = "variance") -> float:
  """The bound of [R] Proposition 4 as a float; see :func:`proposition4` for the formula and the arguments."""
  return proposition4(gamma, width=width, zeta=zeta, epsilon_grid=epsilon_grid, gamma_reading=gamma_reading).bound


@dataclasses.dataclass(frozen=True)
class Proposition4Parameters:
  """The quantities of [R] Proposition 4 read off a network's layers (:func:`proposition4_parameters`).

  Attributes:
    layer: ``l0``, the index (in the order given) of the layer with the largest fan-in ratio.
    gamma: ``γ = min_{l≠l0} (v_{l0}/N)/(v_l/N)``, the largest fan-in ratio over the next largest (``> 1``).
    zeta: ``ζ_{l0} = M_{l0}/N²``, layer ``l0``'s size in units of ``N²`` ([R] §2.1).
    fan_in_ratios: ``v_l/N`` for every layer ([R]'s ``α_l``).
  """

  layer: int
  gamma: float
  zeta: float
  fan_in_ratios: tuple[float, ...]

  def to_dict(self) -> dict[str, Any]:
    return {"layer": self.layer, "gamma": self.gamma, "zeta": self.zeta, "fan_in_ratios": list(self.fan_in_ratios)}


def proposition4_parameters(fan_ins: Sequence[int], sizes: Sequence[int], *, width: int) -> Proposition4Parameters:
  """``l0``, ``γ`` and ``ζ`` of [R] Proposition 4 for a network whose layer ``l`` has ``v_l`` inputs per unit and
  ``M_l`` weights ([R] §2.1, App. E: ``v_l = α_l N``, ``M_l = ζ_l N²``).

  Proposition 4 is about the layer ``l0`` with the smallest weight variance ``σw²/v_l``, i.e. the largest fan-in
  ratio ``v_l/N``, and needs it to be the only one: ``γ = min_{l≠l0} v_{l0}/v_l > 1``.

  Args:
    fan_ins: ``v_l`` per layer (``prod(kernel.shape[:-1])``), at least two layers.
    sizes: ``M_l`` per layer (weights in the layer), same length.
    width: the network's width ``N >= 1`` (hidden units, or channels of a CNN).

  Returns:
    A :class:`Proposition4Parameters`.

  Raises:
    ValueError: fewer than two layers, lengths that differ, non-positive entries, or no single layer with the
      largest fan-in ratio (then Proposition 4 does not apply: ``γ`` would be ``<= 1``).
  """
  width = check_int("width", width, 1)
  fan_ins = np.asarray(fan_ins, np.float64).reshape(-1)
  sizes = np.asarray(sizes, np.float64).reshape(-1)
  if fan_ins.size < 2:
    raise ValueError(f"fan_ins must list at least two layers (Proposition 4 compares l0 with the others); got "
                     f"{fan_ins.size}")
  if sizes.shape != fan_ins.shape:
    raise ValueError(f"sizes must give one layer size per fan-in ({fan_ins.size}); got {sizes.size}")
  check_positive("fan_ins", fan_ins)
  check_positive("sizes", sizes)
  ratios = fan_ins / width
  l0 = int(np.argmax(ratios))
  others = np.delete(ratios, l0)
  if not ratios[l0] > others.max():
    raise ValueError("no single layer has the largest fan-in ratio v_l/N (Proposition 4 needs gamma > 1); fan-in "
                     f"ratios {np.round(ratios, 6).tolist()}")
  return Proposition4Parameters(layer=l0, gamma=float(ratios[l0] / others.max()), zeta=float(sizes[l0] / width**2),
                                fan_in_ratios=tuple(float(r) for r in ratios))


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

