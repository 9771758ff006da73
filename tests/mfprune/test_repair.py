"""mfprune.repair: EOC rescaling ([R] Prop. 1, Alg. 1), kept variance ([R] App. C), weak lottery tickets ([R]
Theorems 3-4) and approximate isometry ([S] §5, eq. 8), with Monte-Carlo checks of what each repair means."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import theory
from mfprune import init, masks, repair
from tests.mfprune.nets import plain_mlp_apply


def _random_mask(params, keep, seed=0):
  """Keeps each kernel entry with probability ``keep`` (numpy draws: no repair function involved)."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda m: jnp.asarray(rng.random(m.shape) < keep), masks.dense_mask(params))


def _kernels(tree):
  """The kernels of a params, mask or factors tree as numpy arrays, in tree order."""
  return [np.asarray(x) for name, x in masks.named_leaves(tree) if name.endswith("kernel")]


def _mlp(sizes=(40, 60, 30, 10), *, sigma_w=1.0, sigma_b=0.1, seed=0):
  """Dense-net params ``W ~ N(0, σw²/fan_in)``, ``B ~ N(0, σb²)`` drawn with numpy (fast: no per-shape compile)."""
  rng = np.random.default_rng(seed)
  return {"layers": [{"kernel": jnp.asarray(sigma_w / np.sqrt(a) * rng.standard_normal((a, b), np.float32)),
                      "bias": jnp.asarray(sigma_b * rng.standard_normal(b, np.float32))}
                     for a, b in zip(sizes[:-1], sizes[1:])]}


# ---------------------------------------------------------------------------------------------------------------
# Rescaling.
# ---------------------------------------------------------------------------------------------------------------


def test_row_rescaling_restores_each_dense_row_norm():
  params = _mlp()
  mask = _random_mask(params, 0.3)
  factors = repair.rescale_factors(params, mask)
  out = repair.rescale(params, mask)
  for w, m, f, r in zip(_kernels(params), _kernels(mask), _kernels(factors), _kernels(out)):
    assert f.shape == (1, w.shape[1]) and f.dtype == w.dtype
    np.testing.assert_allclose((r**2).sum(0), (w**2).sum(0), rtol=1e-5)
    assert np.all(r[~m] == 0)
    np.testing.assert_allclose(r, np.where(m, w * f, 0), rtol=1e-6)
  for a, b in zip(params["layers"], out["layers"]):
    assert b["bias"] is a["bias"]  # biases untouched
  assert jax.tree_util.tree_structure(out) == jax.tree_util.tree_structure(params)


def test_layer_rescaling_restores_each_dense_layer_norm():
  params = _mlp()
  mask = _random_mask(params, 0.2, seed=1)
  factors = repair.rescale_factors(params, mask, granularity="layer")
  out = repair.rescale(params, mask, granularity="layer")
  for w, m, f, r in zip(_kernels(params), _kernels(mask), _kernels(factors), _kernels(out)):
    assert f.shape == (1, 1)
    np.testing.assert_allclose((r**2).sum(), (w**2).sum(), rtol=1e-5)
    assert np.all(r[~m] == 0)
    # one factor per layer: the rows are scaled alike, so they are not individually restored
    assert not np.allclose((r**2).sum(0), (w**2).sum(0), rtol=1e-3)


def test_conv_rescaling_is_per_output_channel():
  kernel = np.random.default_rng(2).standard_normal((3, 3, 4, 8)).astype(np.float32)
  params = {"conv": {"kernel": jnp.asarray(kernel), "bias": jnp.ones(8)}}
  mask = _random_mask(params, 0.4, seed=2)
  factors = repair.rescale_factors(params, mask)
  assert factors["conv"]["kernel"].shape == (1, 1, 1, 8) and factors["conv"]["bias"] is None
  out = np.asarray(repair.rescale(params, mask)["conv"]["kernel"])
  np.testing.assert_allclose((out**2).sum((0, 1, 2)), (kernel**2).sum((0, 1, 2)), rtol=1e-5)
  assert np.all(out[~np.asarray(mask["conv"]["kernel"])] == 0)
  layer = np.asarray(repair.rescale(params, mask, granularity="layer")["conv"]["kernel"])
  np.testing.assert_allclose((layer**2).sum(), (kernel**2).sum(), rtol=1e-5)


def test_fully_pruned_row_or_layer_gets_factor_one():
  params = _mlp()
  mask = _random_mask(params, 0.5)
  mask["layers"][1]["kernel"] = mask["layers"][1]["kernel"].at[:, 3].set(False)  # output neuron 3: nothing kept
  mask["layers"][2]["kernel"] = jnp.zeros_like(mask["layers"][2]["kernel"])  # a collapsed layer
  for granularity in repair.GRANULARITIES:
    for reference in ("dense", 1.3):
      factors = _kernels(repair.rescale_factors(params, mask, granularity=granularity, reference=reference))
      out = _kernels(repair.rescale(params, mask, granularity=granularity, reference=reference))
      assert all(np.all(np.isfinite(f)) for f in factors) and all(np.all(np.isfinite(r)) for r in out)
      assert np.all(factors[2] == 1) and np.all(out[2] == 0)
      if granularity == "row":
        assert factors[1][0, 3] == 1 and np.all(out[1][:, 3] == 0)


def test_reference_sigma_w_sets_each_kept_row_to_the_dense_expectation():
  sigma_w = 1.7
  params = init.gaussian(_mlp((400, 300, 200)), jax.random.key(3), sigma_w=sigma_w)  # mfprune's init convention
  mask = _random_mask(params, 0.25, seed=3)
  for w, r in zip(_kernels(params), _kernels(repair.rescale(params, mask, reference=sigma_w))):
    np.testing.assert_allclose((r**2).sum(0), sigma_w**2, rtol=1e-5)
    # a dense row's squared norm averages σw² (fan_in entries of variance σw²/fan_in): Monte-Carlo check
    fan_in, rows = w.shape
    row_norms = (w.astype(np.float64)**2).sum(0)
    assert abs(row_norms.mean() - sigma_w**2) < 4 * sigma_w**2 * np.sqrt(2 / (fan_in * rows))
  for r in _kernels(repair.rescale(params, mask, granularity="layer", reference=sigma_w)):
    np.testing.assert_allclose((r**2).sum(), sigma_w**2 * r.shape[1], rtol=1e-5)
  # Algorithm 1 as printed (ρ_i = 1/√Σ_j W_ij² δ_ij) is reference=1: unit row norms
  for r in _kernels(repair.rescale(params, mask, reference=1.0)):
    np.testing.assert_allclose((r**2).sum(0), 1.0, rtol=1e-5)


def test_rescaling_already_pruned_weights_warns():
  params = _mlp()
  mask = _random_mask(params, 0.5)
  with pytest.warns(UserWarning, match="already zero"):
    repair.rescale(masks.apply_mask(params, mask), mask)


def test_rescale_runs_under_jit():
  params = _mlp()
  mask = _random_mask(params, 0.5)
  eager = repair.rescale(params, mask)
  jitted = jax.jit(repair.rescale)(params, mask)
  for a, b in zip(jax.tree_util.tree_leaves(eager), jax.tree_util.tree_leaves(jitted)):
    np.testing.assert_allclose(a, b, rtol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# Kept variance fraction.
# ---------------------------------------------------------------------------------------------------------------


def test_kept_variance_fraction_of_random_and_dense_masks():
  kernel = np.random.default_rng(4).standard_normal((1000, 800), np.float32)
  params = {"big": {"kernel": jnp.asarray(kernel)}}
  keep, n = 0.3, kernel.size
  alpha = repair.kept_variance_fraction(params, _random_mask(params, keep, seed=4))
  assert list(alpha) == ["big/kernel"]
  assert abs(alpha["big/kernel"] - keep) < 4 * np.sqrt(keep * (1 - keep) * 3 / n)  # E[W⁴] = 3 for N(0, 1)
  assert repair.kept_variance_fraction(params, masks.dense_mask(params)) == {"big/kernel": 1.0}
  # magnitude pruning keeps the large weights: more variance than the kept fraction
  magnitude = {"big": {"kernel": jnp.asarray(np.abs(kernel) >= np.quantile(np.abs(kernel), 1 - keep))}}
  assert repair.kept_variance_fraction(params, magnitude)["big/kernel"] > keep + 0.3
  # Already pruned weights against the dense reference: the same α; after the rescaling trick α = 1 again.
  mask = _random_mask(params, keep, seed=4)
  pruned = masks.apply_mask(params, mask)
  assert repair.kept_variance_fraction(pruned, reference=params) == pytest.approx(alpha, rel=1e-6)
  rescaled = repair.rescale(params, mask, granularity="layer")
  assert repair.kept_variance_fraction(rescaled, reference=params)["big/kernel"] == pytest.approx(1.0, rel=1e-5)
  with pytest.raises(ValueError, match="for reference"):
    repair.kept_variance_fraction(pruned, reference={"big": {"kernel": jnp.ones((3, 3))}})


def _last_tanh_variance(params, x):
  """Empirical pre-activation variance ``q^L`` of the last layer (mean of h² over neurons and inputs)."""
  h = x
  for i, layer in enumerate(params["layers"]):
    h = (jnp.tanh(h) if i else h) @ layer["kernel"] + layer["bias"]
  return jnp.mean(h**2)


def test_rescaling_brings_a_pruned_tanh_net_back_to_the_eoc_variance():
  """Monte-Carlo over 8 nets: width 500, depth 5, EOC (tanh, σb = 0.3), 70% random pruning. Pruning lowers q^5
  far below the mean-field prediction; rescaling brings it back within a few %."""
  sigma_b, width, depth, nets, keep = 0.3, 500, 5, 8, 0.3
  sigma_w = theory.eoc_sigma_w("tanh", sigma_b)
  x = jnp.asarray(np.random.default_rng(5).standard_normal((32, width), np.float32))
  mean_x2 = float(jnp.mean(x**2))
  predicted = float(theory.propagate("tanh", sigma_b, sigma_w, depth, sigma_b**2 + sigma_w**2 * mean_x2).q[-1])

  def sample(kernels, biases, keeps):
    params = {"layers": [{"kernel": kernels[i], "bias": biases[i]} for i in range(depth)]}
    mask = {"layers": [{"kernel": keeps[i], "bias": None} for i in range(depth)]}
    return (_last_tanh_variance(params, x), _last_tanh_variance(masks.apply_mask(params, mask), x),
            _last_tanh_variance(repair.rescale(params, mask), x))

  rng = np.random.default_rng(6)  # numpy draws: jax's threefry is several times slower on CPU at this size
  kernels = sigma_w / np.sqrt(width) * rng.standard_normal((nets, depth, width, width), np.float32)
  biases = sigma_b * rng.standard_normal((nets, depth, width), np.float32)
  keeps = rng.random((nets, depth, width, width), np.float32) < keep
  dense_q, pruned_q, rescaled_q = (float(jnp.mean(q)) for q in jax.jit(jax.vmap(sample))(kernels, biases, keeps))
  # one net's q^5 varies by about 3% (dense, rescaled) and 9% (pruned) at this width: the means over 8 nets are good
  # to about 1% and 3%
  assert abs(dense_q / predicted - 1) < 0.04
  assert abs(rescaled_q / predicted - 1) < 0.04
  # the pruned net follows the mean-field map with σw² → α σw², α = kept_variance_fraction ≈ keep for a random mask
  # (how mfprune.signal predicts a pruned net's q^l)
  params = _mlp([width] * 2, sigma_w=sigma_w, seed=5)
  alpha = repair.kept_variance_fraction(params, _random_mask(params, keep, seed=5))["layers/0/kernel"]
  sigma_pruned = np.sqrt(alpha) * sigma_w
  predicted_pruned = float(theory.propagate("tanh", sigma_b, sigma_pruned, depth,
                                            sigma_b**2 + sigma_pruned**2 * mean_x2).q[-1])
  assert pruned_q < 0.25 * predicted  # far below: a real loss of variance, not a few %
  assert abs(pruned_q / predicted_pruned - 1) < 0.06


# ---------------------------------------------------------------------------------------------------------------
# Weak lottery tickets.
# ---------------------------------------------------------------------------------------------------------------


def test_lottery_keep_probability():
  assert repair.lottery_keep_probability(2.0, 1.0) == 0.25
  assert repair.lottery_keep_probability(1.0, 1.0000001) == 1.0  # float32 EOC solver round-off: p = 1
  with pytest.raises(ValueError, match="sigma_w must be >= sigma_w_eoc"):
    repair.lottery_keep_probability(0.9, 1.0)
  for bad in (0.0, -1.0, float("nan"), "x"):
    with pytest.raises(ValueError, match="sigma_w must be a finite number > 0"):
      repair.lottery_keep_probability(bad, 1.0)
  with pytest.raises(ValueError, match="sigma_w_eoc must be a finite number > 0"):
    repair.lottery_keep_probability(1.0, -1.0)


def test_weak_lottery_mask_puts_the_net_on_the_eoc():
  sigma_w, sigma_b = 2.2, 0.3
  sigma_eoc = theory.eoc_sigma_w("tanh", sigma_b)
  p = (sigma_eoc / sigma_w)**2
  params = _mlp((250,) * 4, sigma_w=sigma_w, sigma_b=sigma_b, seed=6)
  mask = repair.weak_lottery_mask(params, jax.random.key(7), sigma_w=sigma_w, activation="tanh", sigma_b=sigma_b)
  masks.check_mask(mask, params)
  alpha = repair.kept_variance_fraction(params, mask)
  for (name, m), w in zip(masks.named_leaves(mask), _kernels(params)):
    m = np.asarray(m)
    assert abs(m.mean() - p) < 4 * np.sqrt(p * (1 - p) / m.size)
    # effective σw² of the masked layer: fan_in · mean(δ W²) (the dense layer's empirical σw² times α_l)
    effective = w.shape[0] * np.where(m, w.astype(np.float64)**2, 0).mean()
    # relative std: the mask's (α_l = Σ δW²/ΣW², with E[W⁴] = 3E[W²]²) and the dense layer's own σw² estimate
    assert abs(effective / sigma_eoc**2 - 1) < 4 * np.sqrt(3 * (1 - p) / (p * m.size) + 2 / m.size)
    np.testing.assert_allclose(effective, w.shape[0] * (w.astype(np.float64)**2).mean() * alpha[name], rtol=1e-4)
  again = repair.weak_lottery_mask(params, jax.random.key(7), sigma_w=sigma_w, activation="tanh", sigma_b=sigma_b)
  assert all(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(mask), jax.tree_util.tree_leaves(again)))
  with pytest.raises(ValueError, match="sigma_w must be >= sigma_w_eoc"):
    repair.weak_lottery_mask(params, 0, sigma_w=1.0, activation="tanh", sigma_b=sigma_b)
  with pytest.raises(ValueError, match="sigma_w must be a finite number > 0"):
    repair.weak_lottery_mask(params, 0, sigma_w=-2.0, activation="tanh", sigma_b=sigma_b)
  with pytest.raises(theory.NoEOCError):
    repair.weak_lottery_mask(params, 0, sigma_w=2.0, activation="relu", sigma_b=0.3)


def test_bernoulli_mask_per_layer_probabilities_and_keys():
  params = _mlp((200,) * 4)
  probabilities = {"layers/0/kernel": 0.9, "layers/1/kernel": 0.5, "layers/2/kernel": 0.1}
  mask = repair.bernoulli_mask(params, jax.random.key(8), probabilities)
  for name, m in masks.named_leaves(mask):
    p = probabilities[name]
    assert abs(float(np.mean(m)) - p) < 4 * np.sqrt(p * (1 - p) / m.size)
  assert mask["layers"][0]["bias"] is None
  # a layer's mask depends only on the key and its path: dropping another layer leaves it unchanged
  fewer = {"layers": params["layers"][:2]}
  partial = repair.bernoulli_mask(fewer, jax.random.key(8), {k: probabilities[k] for k in list(probabilities)[:2]})
  np.testing.assert_array_equal(partial["layers"][1]["kernel"], mask["layers"][1]["kernel"])
  assert not np.array_equal(repair.bernoulli_mask(params, 9, 0.5)["layers"][1]["kernel"],
                            repair.bernoulli_mask(params, 10, 0.5)["layers"][1]["kernel"])
  for bad in (0.0, 1.5, -0.1):
    with pytest.raises(ValueError, match=r"keep_probability must be in \(0, 1\]"):
      repair.bernoulli_mask(params, 0, bad)
  with pytest.raises(ValueError, match="keep_probability must give one value per prunable layer"):
    repair.bernoulli_mask(params, 0, {"layers/0/kernel": 0.5})
  with pytest.raises(ValueError, match=r"keep_probability\['layers/1/kernel'\] must be in"):
    repair.bernoulli_mask(params, 0, {**probabilities, "layers/1/kernel": 2.0})


# ---------------------------------------------------------------------------------------------------------------
# Approximate isometry.
# ---------------------------------------------------------------------------------------------------------------


@jax.jit
def _jacobian_singular_values(params, x):
  """Singular values of the input-output Jacobian of the tanh net at each input (rows of ``x``)."""
  apply_fn = plain_mlp_apply(jnp.tanh)
  jac = jax.vmap(jax.jacfwd(lambda v: apply_fn(params, v[None])[0]))(x)
  return jnp.linalg.svd(jac, compute_uv=False)


def test_approximate_isometry_repairs_a_pruned_mlp():
  """[S] Table 1's 7-layer tanh MLP, width 100, at EOC (σw = 1, σb = 0), 90% magnitude pruning (global)."""
  params = _mlp([100] * 7 + [10], sigma_w=1.0, sigma_b=0.0, seed=9)
  kernels = np.concatenate([np.abs(w).ravel() for w in _kernels(params)])
  threshold = np.quantile(kernels, 0.9)
  mask = jax.tree.map(lambda m, w: None if m is None else jnp.abs(w) >= threshold, masks.dense_mask(params), params,
                      is_leaf=lambda v: v is None)
  before = repair.orthogonality_score(params, mask)
  repaired, history = repair.approximate_isometry(params, mask, return_history=True)
  assert repair.orthogonality_score(repaired, mask) < 0.2 * before
  final = repair.orthogonality_scores(repaired, mask)
  for name, h in history.items():
    assert h.shape == (1001,)
    np.testing.assert_allclose(h[-1], final[name], rtol=1e-3, atol=1e-5)
    assert h[-1] < h[0]
  for m, r in zip(_kernels(mask), _kernels(repaired)):
    assert np.all(r[~m] == 0)
  for a, b in zip(params["layers"], repaired["layers"]):
    assert b["bias"] is a["bias"]
  # pruning collapses the input-output Jacobian's singular values; AI brings them back up
  x = jnp.asarray(np.random.default_rng(11).standard_normal((4, 100), np.float32))
  dense_sv = float(jnp.mean(_jacobian_singular_values(params, x)))
  pruned_sv = float(jnp.mean(_jacobian_singular_values(masks.apply_mask(params, mask), x)))
  repaired_sv = float(jnp.mean(_jacobian_singular_values(repaired, x)))
  assert pruned_sv < 0.2 * dense_sv  # measured: 0.33 dense, 0.034 pruned, 0.36 repaired
  assert repaired_sv > 5 * pruned_sv and repaired_sv > 0.8 * dense_sv  # back near the dense level ([S] Fig. 2)


def test_approximate_isometry_leaves_orthogonal_layers_alone():
  rng = np.random.default_rng(12)
  params = {name: {"kernel": jnp.asarray(np.linalg.qr(rng.standard_normal(shape))[0], jnp.float32)}
            for name, shape in (("a", (64, 64)), ("b", (64, 32)))}  # orthonormal columns, as init.orthogonal
  assert repair.orthogonality_score(params) < 1e-4
  out = repair.approximate_isometry(params, steps=100)
  for a, b in zip(_kernels(params), _kernels(out)):
    np.testing.assert_allclose(a, b, atol=1e-5)
  # with a gain the target is gain² I
  scaled = jax.tree.map(lambda w: 2.0 * w, params)
  assert repair.orthogonality_score(scaled, gain=2.0) < 1e-4 < repair.orthogonality_score(scaled)
  np.testing.assert_allclose(repair.approximate_isometry(scaled, steps=100, gain=2.0)["a"]["kernel"],
                             scaled["a"]["kernel"], atol=1e-5)


def test_approximate_isometry_gram_side_gain_and_convolutions():
  gain = np.sqrt(2.0)
  rng = np.random.default_rng(13)
  params = {name: {"kernel": jnp.asarray(gain / np.sqrt(np.prod(shape[:-1])) * rng.standard_normal(shape, np.float32))}
            for name, shape in (("wide", (20, 50)), ("tall", (50, 20)), ("conv", (3, 3, 4, 8)))}
  out = repair.approximate_isometry(params, steps=200, gain=gain)
  wide, tall = np.asarray(out["wide"]["kernel"]), np.asarray(out["tall"]["kernel"])
  conv = np.asarray(out["conv"]["kernel"]).reshape(36, 8)  # (window·in, out)
  np.testing.assert_allclose(wide @ wide.T, gain**2 * np.eye(20), atol=1e-3)  # orthonormal rows (fan_in < out)
  np.testing.assert_allclose(tall.T @ tall, gain**2 * np.eye(20), atol=1e-3)  # orthonormal columns
  np.testing.assert_allclose(conv.T @ conv, gain**2 * np.eye(8), atol=1e-3)
  assert repair.orthogonality_score(out, gain=gain) < 1e-3
  # a delta-orthogonal convolution with in = out already scores 0
  delta = np.zeros((3, 3, 8, 8), np.float32)  # init.delta_orthogonal's form: an orthogonal matrix at the centre tap
  delta[1, 1] = np.linalg.qr(rng.standard_normal((8, 8)))[0]
  assert repair.orthogonality_score({"conv": {"kernel": jnp.asarray(delta)}}) < 1e-4


def test_approximate_isometry_reports_divergence():
  params = {"a": {"kernel": jnp.asarray(8.0 * np.random.default_rng(15).standard_normal((30, 30), np.float32))}}
  with pytest.raises(ValueError, match="diverged.*learning_rate"):
    repair.approximate_isometry(params, steps=50)


# ---------------------------------------------------------------------------------------------------------------
# Bad input.
# ---------------------------------------------------------------------------------------------------------------


def test_bad_input():
  params = _mlp()
  mask = _random_mask(params, 0.5)
  other = _random_mask(_mlp((40, 60, 10)), 0.5)
  reshaped = _random_mask(_mlp((40, 61, 30, 10)), 0.5)
  for fn in (repair.rescale, repair.rescale_factors, repair.kept_variance_fraction, repair.orthogonality_scores,
             repair.orthogonality_score, repair.approximate_isometry):
    with pytest.raises(ValueError, match="mask does not fit the model"):
      fn(params, other)
    with pytest.raises(ValueError, match="mask does not fit the model at 'layers/0/kernel'"):
      fn(params, reshaped)
  with pytest.raises(ValueError, match="granularity must be one of"):
    repair.rescale(params, mask, granularity="column")
  for bad in (0.0, -1.0, float("inf"), "sparse", True):
    with pytest.raises(ValueError, match="reference must be"):
      repair.rescale(params, mask, reference=bad)
  for bad in (0.0, -2.0):
    with pytest.raises(ValueError, match="gain must be a finite number > 0"):
      repair.approximate_isometry(params, mask, gain=bad)
    with pytest.raises(ValueError, match="gain must be a finite number > 0"):
      repair.orthogonality_score(params, mask, gain=bad)
    with pytest.raises(ValueError, match="learning_rate must be a finite number > 0"):
      repair.approximate_isometry(params, mask, learning_rate=bad)
  for bad in (-1, 1.5, True):
    with pytest.raises(ValueError, match="steps must be an integer >= 0"):
      repair.approximate_isometry(params, mask, steps=bad)
  zero = repair.approximate_isometry(params, mask, steps=0)  # zero steps: just the pruned weights
  for a, b in zip(_kernels(masks.apply_mask(params, mask)), _kernels(zero)):
    np.testing.assert_array_equal(a, b)
  with pytest.raises(ValueError, match="no prunable leaf"):
    repair.rescale(params, jax.tree.map(lambda m: None, mask))
