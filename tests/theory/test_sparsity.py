"""theory.sparsity: exact s_cr from scores, [R] Theorem 1, Propositions 4-5, rescaling, predicted SBP profiles."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import theory
from theory import sparsity as sp
from theory.sparsity import kept_fraction
from tests.conftest import tol

TANH_EOC = 1.3955836296081543  # theory.eoc_sigma_w("tanh", 0.3), as a constant to spare the EOC solver's compile

# ---------------------------------------------------------------------------------------------------------------
# Exact critical sparsity against a brute-force search.
# ---------------------------------------------------------------------------------------------------------------


def _brute_force_kept(layers, k):
  """Plain NumPy: keep the k largest scores, ties to the earliest in parameter order; kept count per layer."""
  flat = np.concatenate([np.asarray(x, np.float64).ravel() for x in layers])
  order = np.lexsort((np.arange(flat.size), -flat))  # by score descending, then by position
  keep = np.zeros(flat.size, bool)
  keep[order[:k]] = True
  bounds = np.cumsum([0] + [np.size(x) for x in layers])
  return [int(keep[a:b].sum()) for a, b in zip(bounds[:-1], bounds[1:])]


def _brute_force(layers):
  """Scan every keep count k = M..1: the largest k leaving some layer empty, and per layer the largest such k."""
  total = sum(np.size(x) for x in layers)
  death_k = [0] * len(layers)
  for k in range(total, 0, -1):
    for l, kept in enumerate(_brute_force_kept(layers, k)):
      if kept == 0 and death_k[l] == 0:
        death_k[l] = k
  return max(death_k), death_k, total


def _random_layers(rng, shapes, ties):
  if ties:
    return [rng.integers(0, 4, size=s).astype(np.float32) for s in shapes]
  return [rng.standard_normal(s).astype(np.float32) for s in shapes]


@pytest.mark.parametrize("shapes", [[(3, 4), (1,), (5,)], [(2, 2, 2), (6,), (1,), (4,)], [(1,), (7,)]])
def test_critical_sparsity_matches_brute_force_with_ties(shapes):
  rng = np.random.default_rng(len(shapes))
  for trial in range(5):  # integer scores (many ties) and Gaussian scores, one compiled program per layout
    layers = _random_layers(rng, shapes, ties=trial < 4)
    keep, death_k, total = _brute_force(layers)
    assert int(sp.critical_keep_count(layers)) == keep
    assert float(sp.critical_sparsity_from_scores(layers)) == pytest.approx(1 - keep / total, abs=1e-6)
    np.testing.assert_allclose(sp.layer_death_sparsity(layers), [1 - k / total for k in death_k], atol=1e-6)
    # Death order: the largest death keep count dies first; the layer holding the best weight (k = 0) last.
    order = np.asarray(sp.layer_death_order(layers)).tolist()
    assert order == np.argsort(-np.asarray(death_k), kind="stable").tolist()


@pytest.mark.parametrize("ties", [True, False])
def test_layer_kept_counts_is_global_top_k_at_every_count(ties):
  """One sort gives every layer's kept count at every k (any order of the counts) and its death rank."""
  rng = np.random.default_rng(11)
  layers = _random_layers(rng, [(3, 4), (5,), (2, 3)], ties=ties)
  total = sum(np.size(x) for x in layers)
  counts = [7, 1, total, 12, 3]
  result = sp.layer_kept_counts(layers, counts)
  np.testing.assert_array_equal(result.kept, [_brute_force_kept(layers, k) for k in counts])
  _, death_k, _ = _brute_force(layers)
  np.testing.assert_array_equal(result.death_rank, death_k)  # R_l: empty at k <= R_l
  np.testing.assert_allclose(sp.layer_death_sparsity(layers), 1 - np.asarray(result.death_rank) / total, atol=1e-6)
  with pytest.raises(ValueError, match="at least one keep count"):
    sp.layer_kept_counts(layers, [])


def test_without_ties_it_is_the_papers_formula():
  rng = np.random.default_rng(7)
  layers = [rng.standard_normal(s) for s in [(40,), (30, 2), (25,)]]
  threshold = min(np.max(x) for x in layers)
  expected = 1 - sum(np.sum(x > threshold) for x in layers) / sum(x.size for x in layers)
  assert float(sp.critical_sparsity_from_scores(layers)) == pytest.approx(expected, abs=1e-6)


def test_one_layer_is_never_emptied_and_signed_zeros_follow_masks():
  assert float(sp.critical_sparsity_from_scores([jnp.ones((3, 3))])) == 1.0
  assert int(sp.critical_keep_count([jnp.array([5.0])])) == 0
  # mfprune orders −0.0 below +0.0: the first layer (max −0.0) dies first, after the single +0.0 weight is ranked.
  layers = [jnp.array([-0.0, -1.0]), jnp.array([0.0])]
  assert int(sp.critical_keep_count(layers)) == 1
  assert np.asarray(sp.layer_death_order(layers)).tolist() == [0, 1]


def test_agrees_with_mfprune_global_top_k():
  masks = pytest.importorskip("mfprune.masks")
  rng = np.random.default_rng(3)
  scores = {"a": jnp.asarray(rng.integers(0, 3, (4, 5)), jnp.float32), "b": jnp.asarray(rng.integers(0, 3, (6,)),
                                                                                         jnp.float32),
            "c": jnp.asarray(rng.integers(0, 3, (3, 3)), jnp.float32)}
  total = 20 + 6 + 9
  s_cr = float(sp.critical_sparsity_from_scores(scores))  # a dict: leaves in tree order, as mfprune
  keep = masks.keep_count(total, s_cr)
  assert keep == int(sp.critical_keep_count(scores))
  at = masks.global_top_k(scores, keep)
  assert any(int(jnp.sum(m)) == 0 for m in jax.tree_util.tree_leaves(at))
  before = masks.global_top_k(scores, keep + 1)
  assert all(int(jnp.sum(m)) > 0 for m in jax.tree_util.tree_leaves(before))


def test_jit_and_vmap():
  rng = np.random.default_rng(0)
  batch = [jnp.asarray(rng.integers(0, 5, (6, 4, 3)), jnp.float32), jnp.asarray(rng.standard_normal((6, 7)))]
  batched = jax.jit(jax.vmap(sp.critical_sparsity_from_scores))(batch)
  looped = [float(sp.critical_sparsity_from_scores([b[i] for b in batch])) for i in range(6)]
  np.testing.assert_allclose(batched, looped, atol=1e-7)
  orders = jax.vmap(sp.layer_death_order)(batch)
  assert orders.shape == (6, 2)


@pytest.mark.parametrize("scores, message", [
    ([], "scores must hold at least one layer"),
    ([jnp.ones(3), jnp.ones((0,))], "every layer of scores must hold at least one score"),
])
def test_critical_sparsity_bad_input(scores, message):
  with pytest.raises(ValueError, match=message):
    sp.critical_sparsity_from_scores(scores)


# ---------------------------------------------------------------------------------------------------------------
# Theorem 1.
# ---------------------------------------------------------------------------------------------------------------


def test_theorem1_reproduces_the_papers_example():
  # [R] §2.2: L = N = 100, κ = 0.2; the paper quotes "about 27%" (log10), the natural log gives 62%.
  natural = sp.theorem1_bound(depth=100, width=100, kappa=0.2)
  assert natural.leading == pytest.approx(0.62030, abs=1e-5)
  assert natural.bound == natural.leading and not natural.vacuous and natural.phase == "ordered"
  assert natural.remainder_scale == pytest.approx(1 / (0.04 * 1000))
  assert sp.theorem1_bound(depth=100, width=100, kappa=0.2, log_base=10).bound == pytest.approx(0.27505, abs=1e-5)
  same = sp.theorem1_bound(depth=100, width=100, chi=math.exp(-1.6))
  assert same.kappa == pytest.approx(0.2) and same.bound == pytest.approx(natural.bound)
  assert sp.theorem1_bound(depth=100, width=100, chi=math.exp(1.6)).phase == "chaotic"
  assert natural.to_dict()["bound"] == pytest.approx(0.6203, abs=1e-4)


@pytest.mark.parametrize("chis", [(0.3, 0.5, 0.7, 0.9), (1 / 0.3, 1 / 0.5, 1 / 0.7, 1 / 0.9)])
def test_theorem1_decreases_with_depth_and_away_from_the_eoc(chis):
  for chi in chis:
    values = [sp.theorem1_bound(depth=d, width=100, chi=chi).leading for d in (50, 100, 200, 400, 800)]
    assert np.all(np.diff(values) < 0)
  # chis run towards the EOC: |log χ| falls, the bound rises.
  values = [sp.theorem1_bound(depth=100, width=100, chi=chi).leading for chi in chis]
  assert np.all(np.diff(values) > 0)


def test_theorem1_from_an_activation():
  ordered = [sp.theorem1_bound(depth=200, width=100, activation="tanh", sigma_b=0.3, sigma_w=w) for w in (0.6, 1.0)]
  assert [b.phase for b in ordered] == ["ordered", "ordered"]
  assert ordered[1].chi == pytest.approx(0.7002581, rel=1e-5)  # theory.phase("tanh", 0.3, 1.0).chi (docs/theory.md)
  assert ordered[0].leading < ordered[1].leading  # further from the EOC (smaller σw): smaller bound
  chaotic = [sp.theorem1_bound(depth=200, width=100, activation="tanh", sigma_b=0.3, sigma_w=w) for w in (2.0, 4.0)]
  assert [b.phase for b in chaotic] == ["chaotic", "chaotic"] and chaotic[1].leading < chaotic[0].leading


def test_theorem1_on_the_eoc_and_out_of_range_is_vacuous():
  eoc = sp.theorem1_bound(depth=100, width=100, chi=1.0)
  assert eoc.vacuous and eoc.phase == "eoc" and math.isinf(eoc.leading) and eoc.bound == 1.0
  assert "EOC" in eoc.message and eoc.to_dict()["leading"] is None
  above = sp.theorem1_bound(depth=10, width=10, chi=0.99)  # leading term above 1
  assert above.vacuous and above.leading > 1 and above.bound == 1.0
  tiny = sp.theorem1_bound(depth=1, width=1, kappa=0.1)  # κ L N² <= 1: the log is negative
  assert tiny.vacuous and tiny.leading < 0 and tiny.bound == 1.0 and "outside" in tiny.message
  near = sp.theorem1_bound(depth=20, width=100, activation="tanh", sigma_b=0.3, sigma_w=TANH_EOC)
  assert near.vacuous and near.bound == 1.0


@pytest.mark.parametrize("kwargs, message", [
    (dict(depth=10, width=10, chi=0.0), "chi must be > 0"),
    (dict(depth=10, width=10, chi=-0.5), "chi must be > 0"),
    (dict(depth=0, width=10, chi=0.5), "depth must be an integer >= 1"),
    (dict(depth=10, width=0, chi=0.5), "width must be an integer >= 1"),
    (dict(depth=10, width=10), "give exactly one of chi, kappa or"),
    (dict(depth=10, width=10, chi=0.5, kappa=0.1), "give exactly one of chi, kappa or"),
    (dict(depth=10, width=10, activation="tanh", sigma_b=0.3), "activation needs sigma_b and sigma_w"),
    (dict(depth=10, width=10, activation="tanh", sigma_b=0.3, sigma_w=-1.0), "sigma_w must be > 0"),
    (dict(depth=10, width=10, activation="tanh", sigma_b=-0.3, sigma_w=1.0), "sigma_b must be >= 0"),
    (dict(depth=10, width=10, chi=0.5, sigma_w=1.0), "only used with activation"),
    (dict(depth=10, width=10, kappa=-0.1), "kappa must be >= 0"),
    (dict(depth=10, width=10, chi=0.5, log_base=1.0), "log_base must be > 0 and != 1"),
])
def test_theorem1_bad_input(kwargs, message):
  with pytest.raises(ValueError, match=message):
    sp.theorem1_bound(**kwargs)


# ---------------------------------------------------------------------------------------------------------------
# Quantiles of |Z|, Proposition 4 and Proposition 5.
# ---------------------------------------------------------------------------------------------------------------


def test_half_normal_quantiles_against_scipy():
  special = pytest.importorskip("scipy.special")
  x = np.array([0.0, 1e-6, 0.2, 0.5, 0.9, 0.999, 1 - 1e-6, 1.0])
  x = np.asarray(jnp.asarray(x), np.float64)  # the reference sees the input as rounded to the float type in force
  np.testing.assert_allclose(sp.half_normal_quantile(x), special.ndtri((1 + x) / 2), rtol=tol(2e-5, 1e-10),
                             atol=1e-12)  # Q_1 = inf on both sides
  t = np.array([1.0, 0.9, 0.3, 1e-3, 1e-12, 1e-30, 1e-36, 1e-200 if jax.config.jax_enable_x64 else 1e-37])
  np.testing.assert_allclose(sp.half_normal_isf(t), -special.ndtri(t / 2), rtol=tol(2e-5, 1e-10), atol=1e-12)
  # Tails below the float range: P(|Z| > Q) = t checked in logs.
  log_t = jnp.array([-1e-9, -0.5, -30.0, -1e3, -1e4, -1e5, -1e6, -1e8])
  q = sp.half_normal_isf(log_t=log_t)
  round_trip = np.log(2) + special.log_ndtr(-np.asarray(q, np.float64))
  np.testing.assert_allclose(round_trip, log_t, rtol=tol(1e-4, 1e-10), atol=tol(1e-7, 1e-15))


def test_mbp_threshold_satisfies_its_definition():
  special = pytest.importorskip("scipy.special")
  for gamma, reading in [(5.0, "std"), (10.0, "variance"), (3.0, "std")]:
    r = gamma if reading == "std" else math.sqrt(gamma)
    for epsilon in (0.2, 0.5, 0.8):  # ε < 1: the condition fails near x = 0 (at ε = 1 only 2nd-order terms decide)
      x_eps = float(sp.mbp_threshold(epsilon, gamma, gamma_reading=reading))
      assert 0.0 < x_eps < 1.0
      g = r ** (2 - epsilon)

      def holds(x):  # r Q_x > Q_{1−(1−x)^g}, in float64 with scipy's inverse survival function
        return r * special.ndtri((1 + x) / 2) > -special.ndtri((1 - x) ** g / 2)

      above = x_eps + (1 - x_eps) * np.array([1e-3, 0.05, 0.3, 0.7, 0.95])
      assert all(holds(x) for x in above)
      assert not holds(x_eps * (1 - 1e-3))


def test_proposition4_table7_values_for_both_readings():
  # [R] Table 7: N = L = 100, α_1 = γ, α_l = 1 otherwise; the paper reports 5.77, 0.81, 0.72 (docs/sparsity.md).
  variance = [sp.proposition4_bound(g, width=100) for g in (2, 5, 10)]
  std = [sp.proposition4_bound(g, width=100, gamma_reading="std") for g in (2, 5, 10)]
  np.testing.assert_allclose(variance, [0.9963, 0.9360, 0.8118], atol=2e-3)
  np.testing.assert_allclose(std, [0.9608, 0.5990, 0.3272], atol=2e-3)
  result = sp.proposition4(10, width=100)
  assert result.std_ratio == pytest.approx(math.sqrt(10), rel=1e-6) and 0 < result.epsilon < 2
  assert result.bound == pytest.approx(result.x + 1e4 / (1 + result.std_ratio ** (2 - result.epsilon))
                                       * (1 - result.x) ** (1 + result.std_ratio ** (2 - result.epsilon)), rel=1e-3)


def test_proposition4_against_monte_carlo_of_the_table7_setup():
  # α_1 = γ: layer 1's weights have standard deviation 1/√γ of the others'. 4 draws of L = N = 100.
  rng = np.random.default_rng(0)
  for gamma in (5.0, 10.0):
    values = []
    for _ in range(4):
      first = np.abs(rng.standard_normal(10_000)) / math.sqrt(gamma)
      rest = np.abs(rng.standard_normal(99 * 10_000))
      values.append(1 - np.sum(rest > first.max()) / (first.size + rest.size))
    measured = np.mean(values)
    assert sp.proposition4_bound(gamma, width=100) > measured - 0.02  # the variance reading bounds it
    assert sp.proposition4_bound(gamma, width=100, gamma_reading="std") < measured - 0.1  # the std reading does not


def test_proposition4_decreases_with_gamma_and_stays_finite():
  for reading in ("variance", "std"):
    values = [sp.proposition4_bound(g, width=100, gamma_reading=reading) for g in (1.5, 2, 3, 5, 10, 30, 100)]
    assert np.all(np.diff(values) < 0) and 0 < values[-1] < values[0] <= 1
  x = sp.mbp_threshold(jnp.array([1e-3, 0.5, 1.5, 1.999]), jnp.array([[1.0001], [1e3], [1e6]]))
  assert x.shape == (3, 4) and bool(jnp.all(jnp.isfinite(x))) and bool(jnp.all((x >= 0) & (x <= 1)))
  for gamma in (1.0001, 1e6):
    assert math.isfinite(sp.proposition4_bound(gamma, width=100, epsilon_grid=[1e-3, 1.0, 1.999]))


def test_proposition4_parameters_from_layer_shapes():
  """An MNIST-shaped MLP (784 → 100 × 8 → 10): layer 0 has the largest fan-in ratio 7.84 and ζ = 784·100/100²."""
  fan_ins = [784] + [100] * 9
  sizes = [784 * 100] + [100 * 100] * 8 + [100 * 10]
  setting = sp.proposition4_parameters(fan_ins, sizes, width=100)
  assert setting.layer == 0 and setting.gamma == pytest.approx(7.84) and setting.zeta == pytest.approx(7.84)
  assert setting.fan_in_ratios[:2] == pytest.approx((7.84, 1.0)) and setting.to_dict()["layer"] == 0
  # The largest ratio elsewhere: the read-out of a CNN on 8×8 digits (fan-in 64·C) beats the convolutions (9·C).
  assert sp.proposition4_parameters([9, 9 * 4, 64 * 4], [9 * 4, 9 * 16, 64 * 40], width=4).layer == 2
  with pytest.raises(ValueError, match="no single layer has the largest fan-in ratio"):
    sp.proposition4_parameters([64] + [100] * 9, sizes, width=100)
  with pytest.raises(ValueError, match="at least two layers"):
    sp.proposition4_parameters([784], [78400], width=100)
  with pytest.raises(ValueError, match="sizes must give one layer size per fan-in"):
    sp.proposition4_parameters([784, 100], [78400], width=100)


def test_proposition5():
  # 1 − L π² / (4 (r − 1)² log(N)²), r = √γ (variance reading) or γ (std reading).
  assert sp.proposition5_probability(9.0, depth=2, width=10**6) == pytest.approx(
      1 - 2 * math.pi**2 / (4 * 4 * math.log(1e6) ** 2))
  assert sp.proposition5_probability(3.0, depth=2, width=10**6, gamma_reading="std") == pytest.approx(
      1 - 2 * math.pi**2 / (4 * 4 * math.log(1e6) ** 2))
  assert sp.proposition5_probability(1.1, depth=100, width=100) == 0.0
  values = [sp.proposition5_probability(4.0, depth=5, width=n) for n in (10**3, 10**5, 10**7)]
  assert np.all(np.diff(values) > 0)


@pytest.mark.parametrize("call, message", [
    (lambda: sp.proposition4_bound(1.0, width=100), "gamma must be > 1"),
    (lambda: sp.proposition4_bound(0.5, width=100), "gamma must be > 1"),
    (lambda: sp.proposition4_bound(2.0, width=100, gamma_reading="sd"), "gamma_reading must be one of"),
    (lambda: sp.proposition4_bound(2.0, width=0), "width must be an integer >= 1"),
    (lambda: sp.proposition4_bound(2.0, width=100, zeta=0.0), "zeta must be > 0"),
    (lambda: sp.proposition4_bound(2.0, width=100, epsilon_grid=[0.5, 2.0]), r"epsilon must lie in the open"),
    (lambda: sp.proposition4_bound(2.0, width=100, epsilon_grid=[]), "epsilon_grid must hold at least one"),
    (lambda: sp.mbp_threshold(0.0, 2.0), r"epsilon must lie in the open interval \(0, 2\)"),
    (lambda: sp.mbp_threshold(0.5, 1.0), "gamma must be > 1"),
    (lambda: sp.mbp_threshold(0.5, 2.0, gamma_reading="both"), "gamma_reading must be one of"),
    (lambda: sp.proposition5_probability(1.0, depth=10, width=100), "gamma must be > 1"),
    (lambda: sp.proposition5_probability(2.0, depth=0, width=100), "depth must be an integer >= 1"),
    (lambda: sp.proposition5_probability(2.0, depth=10, width=1), "width must be an integer >= 2"),
    (lambda: sp.proposition5_probability(2.0, depth=10, width=100, gamma_reading="x"), "gamma_reading must be"),
    (lambda: sp.half_normal_quantile(1.5), r"x must lie in \[0, 1\]"),
    (lambda: sp.half_normal_isf(0.0), r"t must lie in \(0, 1\]"),
    (lambda: sp.half_normal_isf(log_t=0.5), "log_t must be <= 0"),
    (lambda: sp.half_normal_isf(), "give exactly one of t or log_t"),
])
def test_mbp_bad_input(call, message):
  with pytest.raises(ValueError, match=message):
    call()


# ---------------------------------------------------------------------------------------------------------------
# Rescaling target and weak lottery tickets.
# ---------------------------------------------------------------------------------------------------------------


def test_rescaling_target_is_the_dense_rows_expected_squared_norm():
  assert float(sp.rescaling_target(1.5)) == pytest.approx(2.25)
  assert float(sp.rescaling_target(1.5, fan_in=300)) == pytest.approx(2.25)
  assert float(sp.rescaling_target(1.5, fan_in=300, v=100)) == pytest.approx(6.75)
  rng = np.random.default_rng(0)
  w = rng.standard_normal((2000, 300)) * 1.5 / math.sqrt(100)  # W ~ N(0, σw²/v), v = 100, 300 weights per row
  assert np.mean(np.sum(w**2, axis=1)) == pytest.approx(6.75, rel=0.01)
  assert float(jax.jit(lambda s: sp.rescaling_target(s, fan_in=4.0, v=2.0))(2.0)) == pytest.approx(8.0)


def test_lottery_keep_probability():
  assert sp.lottery_keep_probability(2.0, 1.0) == 0.25
  assert sp.lottery_keep_probability(1.0, 1.0000001) == 1.0
  assert sp.lottery_keep_probability(1.5, TANH_EOC) == pytest.approx((TANH_EOC / 1.5) ** 2)
  repair = pytest.importorskip("mfprune.repair")
  assert repair.lottery_keep_probability is sp.lottery_keep_probability


@pytest.mark.parametrize("call, message", [
    (lambda: sp.rescaling_target(0.0), "sigma_w must be > 0"),
    (lambda: sp.rescaling_target(-1.0, fan_in=3), "sigma_w must be > 0"),
    (lambda: sp.rescaling_target(1.0, fan_in=0), "fan_in must be > 0"),
    (lambda: sp.rescaling_target(1.0, fan_in=3, v=-1), "v must be > 0"),
    (lambda: sp.rescaling_target(1.0, v=3), "v needs fan_in"),
    (lambda: sp.lottery_keep_probability(0.9, 1.0), "sigma_w must be >= sigma_w_eoc"),
    (lambda: sp.lottery_keep_probability(-1.0, 1.0), "sigma_w must be a finite number > 0"),
    (lambda: sp.lottery_keep_probability(float("nan"), 1.0), "sigma_w must be a finite number > 0"),
    (lambda: sp.lottery_keep_probability("x", 1.0), "sigma_w must be a finite number > 0"),
    (lambda: sp.lottery_keep_probability(1.0, 0.0), "sigma_w_eoc must be a finite number > 0"),
])
def test_rescaling_and_lottery_bad_input(call, message):
  with pytest.raises(ValueError, match=message):
    call()


# ---------------------------------------------------------------------------------------------------------------
# Predicted SBP kept share and critical sparsity.
# ---------------------------------------------------------------------------------------------------------------

def test_kept_fraction_from_moments_keeps_one_minus_s_overall():
  m = jnp.array([1e-30, 1e-6, 1.0, 3.0, 1e8]) if jax.config.jax_enable_x64 else jnp.array([1e-20, 1e-6, 1, 3, 1e8])
  sizes = jnp.array([100.0, 2000.0, 400.0, 400.0, 50.0])
  s = jnp.array([0.0, 1e-4, 0.3, 0.9, 0.999])
  shares = sp.kept_fraction_from_moments(m, sizes, s)
  assert shares.shape == (5, 5)
  assert bool(jnp.all((shares >= 0) & (shares <= 1)))
  np.testing.assert_allclose(shares @ sizes / jnp.sum(sizes), 1 - s, rtol=tol(2e-5, 1e-10), atol=tol(1e-6, 1e-12))
  np.testing.assert_array_equal(shares[0], 1.0)
  assert np.all(np.diff(np.asarray(shares[3])) >= 0)  # larger m: larger share
  equal = sp.kept_fraction_from_moments(jnp.full(3, 2.0), jnp.array([1.0, 5.0, 2.0]), 0.7)
  np.testing.assert_allclose(equal, 0.3, rtol=tol(1e-5, 1e-12))


def test_kept_fraction_from_moments_against_sampled_scores():
  rng = np.random.default_rng(0)
  m, sizes, s = np.array([0.2, 1.0, 4.0]), np.array([20_000, 40_000, 10_000]), 0.8
  scores = np.concatenate([np.sqrt(v) * np.abs(rng.standard_normal(n)) for v, n in zip(m, sizes)])
  keep = np.zeros(scores.size, bool)
  keep[np.argsort(-scores)[: int(round((1 - s) * scores.size))]] = True
  measured = [keep[a:b].mean() for a, b in zip(np.cumsum([0, *sizes[:-1]]), np.cumsum(sizes))]
  np.testing.assert_allclose(sp.kept_fraction_from_moments(m, sizes, s), measured, atol=0.01)


def test_product_law_survival_and_shares():
  special = pytest.importorskip("scipy.special")
  integrate = pytest.importorskip("scipy.integrate")
  z = np.array([1e-6, 1e-3, 0.1, 1.0, 3.0, 10.0, 30.0])
  # P(|XY| > z) = (2/π) ∫_z^∞ K0(u) du: the density of the product of two standard normals is K0(|u|)/π.
  reference = [2 / math.pi * integrate.quad(special.k0, v, np.inf, epsabs=0, epsrel=1e-12, limit=200)[0] for v in z]
  np.testing.assert_allclose(kept_fraction._survival(jnp.asarray(z), "product"), reference, rtol=tol(2e-6, 1e-8))
  rng = np.random.default_rng(2)
  m, sizes, s = np.array([0.2, 1.0, 4.0]), np.array([20_000, 40_000, 10_000]), 0.8
  scores = np.concatenate([np.sqrt(v) * np.abs(rng.standard_normal(n) * rng.standard_normal(n))
                           for v, n in zip(m, sizes)])
  keep = np.zeros(scores.size, bool)
  keep[np.argsort(-scores)[: int(round((1 - s) * scores.size))]] = True
  measured = [keep[a:b].mean() for a, b in zip(np.cumsum([0, *sizes[:-1]]), np.cumsum(sizes))]
  shares = sp.kept_fraction_from_moments(m, sizes, s, score_law="product")
  np.testing.assert_allclose(shares, measured, atol=0.01)
  assert float(shares @ sizes / sizes.sum()) == pytest.approx(1 - s, abs=tol(1e-5, 1e-10))


def test_critical_sparsity_from_moments_against_sampled_scores():
  rng = np.random.default_rng(1)
  m, sizes = np.array([0.5, 1.0, 2.0, 1.0]), np.array([2000, 4000, 4000, 1000])
  draws = []
  for _ in range(200):
    layers = [np.sqrt(v) * np.abs(rng.standard_normal(n)) for v, n in zip(m, sizes)]
    threshold = min(x.max() for x in layers)
    draws.append(1 - sum(np.sum(x > threshold) for x in layers) / sizes.sum())
  predicted = sp.critical_sparsity_from_moments(m, sizes)
  assert float(predicted.mean) == pytest.approx(np.mean(draws), abs=0.01)
  products = []
  for _ in range(200):
    layers = [np.sqrt(v) * np.abs(rng.standard_normal(n) * rng.standard_normal(n)) for v, n in zip(m, sizes)]
    products.append(float(sp.critical_sparsity_from_scores(layers)))
  assert float(sp.critical_sparsity_from_moments(m, sizes, score_law="product").mean) == pytest.approx(
      np.mean(products), abs=0.01)
  assert float(predicted.median) == pytest.approx(np.median(draws), abs=0.015)
  assert int(predicted.first_layer) == 0
  assert 0 < float(predicted.expected_count) < 1 and predicted.to_dict()["first_layer"] == 0


def test_predicted_profile_is_flatter_on_the_eoc_and_for_stable_resnets():
  kw = dict(sigma_b=0.3, depth=20, sparsity=0.9, width=100)
  ordered = sp.predicted_kept_fraction("tanh", sigma_w=1.0, **kw)
  on_eoc = sp.predicted_kept_fraction("tanh", sigma_w=TANH_EOC, **kw)
  spread = lambda f: float(jnp.max(f) / jnp.maximum(jnp.min(f), 1e-300))
  assert spread(on_eoc) < 2 < 1e3 < spread(ordered)
  assert float(jnp.min(ordered)) < 1e-3  # the ordered phase drops the input-side layers ([R] Theorem 1)
  # Residual blocks l >= 2 (the stem is no block; a Stable ResNet does not scale it, so it keeps more: [R] Prop. 2).
  resnet = sp.predicted_kept_fraction("tanh", sigma_w=1.0, architecture="resnet", **kw)[1:]
  stable = sp.predicted_kept_fraction("tanh", sigma_w=1.0, architecture="stable_resnet", **kw)[1:]
  assert spread(stable) < 2 < 1e3 < spread(resnet)
  several = sp.predicted_kept_fraction("tanh", sigma_w=TANH_EOC, **{**kw, "sparsity": jnp.array([0.5, 0.9])})
  assert several.shape == (2, 20) and bool(jnp.all(several[0] > several[1]))


def test_predicted_critical_sparsity_is_larger_on_the_eoc():
  kw = dict(sigma_b=0.3, depth=20, width=100)
  ordered = sp.predicted_critical_sparsity("tanh", sigma_w=1.0, **kw)
  on_eoc = sp.predicted_critical_sparsity("tanh", sigma_w=TANH_EOC, **kw)
  assert float(ordered.mean) < 0.8 < 0.99 < float(on_eoc.mean) < 1.0


@pytest.mark.parametrize("call, message", [
    (lambda: sp.kept_fraction_from_moments([1.0, 2.0], [1.0, 1.0], 1.0), r"sparsity must be in \[0, 1\)"),
    (lambda: sp.kept_fraction_from_moments([1.0, 2.0], [1.0, 1.0], -0.1), r"sparsity must be in \[0, 1\)"),
    (lambda: sp.kept_fraction_from_moments([1.0, 0.0], [1.0, 1.0], 0.5), "m must be finite and > 0"),
    (lambda: sp.kept_fraction_from_moments([1.0, 2.0], [1.0], 0.5), "sizes must give one layer size per entry"),
    (lambda: sp.kept_fraction_from_moments([1.0, 2.0], [1.0, -1.0], 0.5), "sizes must be > 0"),
    (lambda: sp.critical_sparsity_from_moments([1.0], [1.0]), "sizes must add up to at least 2"),
    (lambda: sp.kept_fraction_from_moments([1.0, 2.0], [1.0, 1.0], 0.5, score_law="cauchy"), "score_law must be"),
    (lambda: sp.predicted_critical_sparsity("tanh", sigma_b=0.3, sigma_w=1.0, depth=5, width=10, score_law="x"),
     "score_law must be one of"),
    (lambda: sp.predicted_kept_fraction("tanh", sigma_b=0.3, sigma_w=-1.0, depth=5, sparsity=0.5),
     "sigma_w must be > 0"),
    (lambda: sp.predicted_kept_fraction("tanh", sigma_b=-0.3, sigma_w=1.0, depth=5, sparsity=0.5),
     "sigma_b must be >= 0"),
    (lambda: sp.predicted_kept_fraction("tanh", sigma_b=0.3, sigma_w=1.0, depth=0, sparsity=0.5),
     "depth must be an integer >= 1"),
    (lambda: sp.predicted_kept_fraction("tanh", sigma_b=0.3, sigma_w=1.0, depth=5, sparsity=1.2),
     r"sparsity must be in \[0, 1\)"),
    (lambda: sp.predicted_kept_fraction("tanh", sigma_b=0.3, sigma_w=1.0, depth=5, sparsity=0.5,
                                        architecture="densenet"), "architecture must be one of"),
    (lambda: sp.predicted_kept_fraction("tanh", sigma_b=0.3, sigma_w=1.0, depth=5, sparsity=0.5, width=10,
                                        widths=[10] * 6), "give widths"),
    (lambda: sp.predicted_critical_sparsity("tanh", sigma_b=0.3, sigma_w=1.0, depth=5), "needs the layer sizes"),
])
def test_predicted_bad_input(call, message):
  with pytest.raises(ValueError, match=message):
    call()


def test_exported_from_theory():
  for name in sp.__all__:
    assert hasattr(sp, name)
  assert theory.critical_sparsity_from_scores is sp.critical_sparsity_from_scores
  assert theory.theorem1_bound is sp.theorem1_bound


def test_theorem1_at_the_solvers_eoc_is_the_eoc():
  """σw from the EOC solver gives χ = 1 up to rounding: the phase is "eoc" and the bound vacuous, not "ordered"."""
  sigma_w = float(theory.eoc_sigma_w("tanh", 0.3))
  result = sp.theorem1_bound(depth=100, width=100, activation="tanh", sigma_b=0.3, sigma_w=sigma_w)
  assert result.phase == "eoc" and result.vacuous and result.kappa == 0.0
