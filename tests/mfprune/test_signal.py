"""mfprune.signal: Jacobian spectra ([S] eq. 4, 7, Table 1); measured vs mean-field q^l, c^l ([R] App. A, C)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import theory
from mfprune import functional, masks, signal
from mfprune.models import MLP, ResNet, VanillaCNN
from mfprune.models.layers import record_outputs
from tests.conftest import tol
from tests.mfprune.nets import plain_mlp_apply, plain_mlp_params

FLOAT = jnp.result_type(float)  # float32, or float64 under JAX_ENABLE_X64
SIGMA_B = 0.2
SIGMA_W_EOC = 1.30415  # theory.eoc_sigma_w("tanh", 0.2), fixed here to spare the solver's compilation
SEEDS = 4  # networks averaged in the Monte-Carlo checks (one width-500 net fluctuates by ~sqrt(2/500) = 6%)


def identity(h):
  return h


# ---------------------------------------------------------------------------------------------------------------
# Jacobian singular values.
# ---------------------------------------------------------------------------------------------------------------


def test_linear_network_jacobian_is_the_weight_product():
  params = plain_mlp_params(jax.random.key(0), [12, 10, 8, 6])
  apply_fn = plain_mlp_apply(identity)
  x = jax.random.normal(jax.random.key(1), (5, 12))
  product = params["layers"][0]["kernel"] @ params["layers"][1]["kernel"] @ params["layers"][2]["kernel"]
  values = signal.jacobian_singular_values(apply_fn, params, x)
  assert values.shape == (5, 6)
  expected = np.linalg.svd(np.asarray(product, np.float64), compute_uv=False)
  np.testing.assert_allclose(values, np.broadcast_to(expected, (5, 6)), rtol=tol(1e-4, 1e-10))
  # A mask is the product of the masked weights.
  mask = jax.tree.map(lambda m: jax.random.uniform(jax.random.key(2), m.shape) < 0.5, masks.dense_mask(params))
  pruned = masks.apply_mask(params, mask)
  product = pruned["layers"][0]["kernel"] @ pruned["layers"][1]["kernel"] @ pruned["layers"][2]["kernel"]
  expected = np.linalg.svd(np.asarray(product, np.float64), compute_uv=False)
  np.testing.assert_allclose(signal.jacobian_singular_values(apply_fn, params, x, mask=mask),
                             np.broadcast_to(expected, (5, 6)), rtol=tol(1e-4, 1e-10), atol=tol(1e-6, 1e-12))


def test_orthogonal_linear_square_network_is_an_isometry():
  rng = np.random.default_rng(0)
  params = {"layers": [{"kernel": jnp.asarray(np.linalg.qr(rng.normal(size=(16, 16)))[0], FLOAT)}
                       for _ in range(4)]}
  x = jax.random.normal(jax.random.key(2), (3, 16))
  values = signal.jacobian_singular_values(plain_mlp_apply(identity), params, x)
  np.testing.assert_allclose(values, np.ones((3, 16)), atol=tol(1e-5, 1e-12))
  stats = signal.jacobian_statistics(plain_mlp_apply(identity), params, x)
  assert stats.count == 48
  assert stats.mean == pytest.approx(1.0, abs=tol(1e-5, 1e-12))
  assert stats.condition_number == pytest.approx(1.0, abs=tol(1e-4, 1e-10))


def _explicit_singular_values(apply_fn, params, x):
  """The oracle: the Jacobian of the whole batch's output w.r.t. the whole batch, diagonal blocks, numpy SVD."""
  full = np.asarray(jax.jit(jax.jacobian(lambda xb: apply_fn(params, xb)))(x))  # (n, out, n, *in)
  n, out = full.shape[:2]
  blocks = [full[i, :, i].reshape(out, -1) for i in range(n)]
  return np.stack([np.linalg.svd(b.astype(np.float64), compute_uv=False) for b in blocks])


def test_tanh_mlp_matches_an_explicit_jacobian(wide):
  # Fewer outputs than inputs (jacrev), image-shaped inputs, biases; two chunks, the last one padded.
  params = plain_mlp_params(jax.random.key(0), [16, 12, 12, 5], bias=True)
  apply_fn = plain_mlp_apply(jnp.tanh)
  x = jax.random.normal(jax.random.key(2), (6, 4, 4, 1))
  values = signal.jacobian_singular_values(apply_fn, params, x, batch_size=4)
  assert values.shape == (6, 5)
  np.testing.assert_allclose(values, _explicit_singular_values(apply_fn, params, x), rtol=tol(1e-4, 1e-10))
  # More outputs than inputs (jacfwd): the width-500 mfprune MLP, 64 inputs, 500 outputs.
  model_fn, raw, inputs, _, _ = wide
  net = _draw(raw[:1], 1.5, 0.3)[0]
  values = signal.jacobian_singular_values(model_fn, net, inputs[:3])
  assert values.shape == (3, 64)
  np.testing.assert_allclose(values, _explicit_singular_values(model_fn, net, inputs[:3]), rtol=tol(2e-4, 1e-10))


def test_spectrum_statistics_pool_every_example():
  stats = signal.spectrum_statistics(jnp.array([[4.0, 2.0], [2.0, 1.0]]))
  assert stats.to_dict() == {"mean": 2.25, "std": pytest.approx(np.std([4, 2, 2, 1])), "min": 1.0, "max": 4.0,
                             "condition_number": 4.0, "count": 4}
  assert signal.spectrum_statistics(jnp.array([[3.0, 0.0]])).condition_number == math.inf
  with pytest.raises(ValueError, match="singular_values"):
    signal.spectrum_statistics(jnp.array([1.0, jnp.nan]))


# ---------------------------------------------------------------------------------------------------------------
# Measured q^l and c^l against the mean-field maps.
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wide():
  """A width-500, depth-6 tanh MLP (read-out also 500 wide), standard-normal draws of its weights, 128 input pairs."""
  width, depth, d, n = 500, 6, 64, 128
  apply_fn, make = functional.init_fn(
      lambda k: MLP((d,), width, depth=depth, width=width, activation="tanh", rngs=nnx.Rngs(params=k)))
  raw = [_standard_normal(jax.eval_shape(make, jax.random.key(0)), seed) for seed in range(SEEDS)]
  kx, ko = jax.random.split(jax.random.key(1))
  x = jax.random.normal(kx, (n, d))
  x_other = 0.6 * x + 0.8 * jax.random.normal(ko, (n, d))  # c^1 ≈ 0.6
  return apply_fn, raw, x, x_other, depth


def _standard_normal(shapes, seed):
  """N(0, 1) numpy arrays shaped like ``shapes`` (numpy, not jax.random: no compilation for every shape)."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: rng.standard_normal(s.shape).astype(FLOAT), shapes)


def _draw(raw, sigma_w, sigma_b):
  """The Gaussian init of [R] eq. 1-3 (as ``mfprune.init.gaussian``): W = σw Z/√fan_in, B = σb Z."""

  def scale(path, z):
    if masks.path_name(path).endswith("kernel"):
      return jnp.asarray(z * (sigma_w / math.sqrt(math.prod(z.shape[:-1]))))
    return jnp.asarray(z * sigma_b)

  return [jax.tree_util.tree_map_with_path(scale, r) for r in raw]


def _measured(apply_fn, nets, x, x_other, masks_=None):
  tables = [signal.layer_moments(apply_fn, p, x, x_other, mask=None if masks_ is None else masks_[i])
            for i, p in enumerate(nets)]
  q = np.mean([[m.q for m in t] for t in tables], axis=0)
  c = np.mean([[m.c for m in t] for t in tables], axis=0)
  return q, c


def _predicted(x, x_other, sigma_w, sigma_b, depth, alphas=None):
  q1, q1_other, c1 = jax.vmap(lambda a, b: theory.input_kernel(a, b, sigma_b, sigma_w))(x, x_other)
  pred = signal.predicted_moments("tanh", sigma_w=sigma_w, sigma_b=sigma_b, depth=depth, q1=q1, c1=c1,
                                  q1_other=q1_other, alphas=alphas)
  return np.asarray(pred.q.mean(axis=1)), np.asarray(pred.c.mean(axis=1))


def test_layer_moments_agree_with_the_mean_field_maps_on_the_eoc(wide):
  apply_fn, raw, x, x_other, depth = wide
  sigma_w = SIGMA_W_EOC
  q, c = _measured(apply_fn, _draw(raw, sigma_w, SIGMA_B), x, x_other)
  q_theory, c_theory = _predicted(x, x_other, sigma_w, SIGMA_B, depth)
  np.testing.assert_allclose(q, q_theory, rtol=0.05)
  np.testing.assert_allclose(c, c_theory, atol=0.02)
  assert q_theory[0] > 1.5 * q_theory[-1]  # the profile is not flat: the test compares shapes, not one number
  # Without partners compare_moments reports q only.
  rows = signal.compare_moments(apply_fn, _draw(raw[:1], SIGMA_W_EOC, SIGMA_B)[0], x, None, activation="tanh",
                                sigma_w=SIGMA_W_EOC, sigma_b=SIGMA_B)
  assert all(r.c_measured is None and r.c_predicted is None and r.alpha == 1.0 for r in rows)
  np.testing.assert_allclose([r.q_predicted for r in rows], q_theory, rtol=tol(1e-5, 1e-10))


def test_ordered_phase_correlations_go_to_one(wide):
  apply_fn, raw, x, x_other, depth = wide
  sigma_w, sigma_b = 0.6, 0.3  # χ ≈ 0.30: ordered
  q, c = _measured(apply_fn, _draw(raw, sigma_w, sigma_b), x, x_other)
  q_theory, c_theory = _predicted(x, x_other, sigma_w, sigma_b, depth)
  np.testing.assert_allclose(c, c_theory, atol=0.02)
  np.testing.assert_allclose(q, q_theory, rtol=0.1)
  assert c[0] < 0.7 and np.all(np.diff(c) > 0) and c[-1] > 0.99


def _random_mask(params, seed, density):
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda m: jnp.asarray(rng.random(m.shape) < density), masks.dense_mask(params))


def _kept_fraction(params, mask):
  """α_l = Σ_kept W² / Σ W² per layer (inline: mfprune.repair owns the library version)."""
  weights = {masks.path_name(p): np.asarray(w) for p, w in jax.tree_util.tree_flatten_with_path(params)[0]}
  return {name: float(np.sum(np.where(m, weights[name], 0.0)**2) / np.sum(weights[name]**2))
          for name, m in masks.named_leaves(mask)}


def test_pruned_net_follows_the_alpha_scaled_prediction_not_the_dense_one(wide):
  apply_fn, raw, x, x_other, depth = wide
  sigma_w = SIGMA_W_EOC
  nets = _draw(raw, sigma_w, SIGMA_B)
  mask_list = [_random_mask(p, 7 + i, 0.2) for i, p in enumerate(nets)]  # 80% sparsity
  alpha_tables = [_kept_fraction(p, m) for p, m in zip(nets, mask_list)]
  order = [f"layers/{l}/kernel" for l in range(depth)]
  alphas = np.mean([[t[name] for name in order] for t in alpha_tables], axis=0)
  assert np.allclose(alphas, 0.2, atol=0.01)
  q, c = _measured(apply_fn, nets, x, x_other, mask_list)
  q_pruned, c_pruned = _predicted(x, x_other, sigma_w, SIGMA_B, depth, alphas=alphas)
  q_dense, c_dense = _predicted(x, x_other, sigma_w, SIGMA_B, depth)
  np.testing.assert_allclose(q, q_pruned, rtol=0.1)
  np.testing.assert_allclose(c, c_pruned, atol=0.02)
  assert np.all(np.abs(q / q_dense - 1) > 0.5)  # the dense prediction is far off: this test can fail
  assert np.abs(c[-1] - c_dense[-1]) > 0.2
  # compare_moments puts the same numbers in one table (one network, alphas given per layer name).
  rows = signal.compare_moments(apply_fn, nets[0], x, x_other, activation="tanh", sigma_w=sigma_w,
                                sigma_b=SIGMA_B, mask=mask_list[0], alphas=alpha_tables[0])
  assert [r.layer for r in rows] == [f"layers/{l}" for l in range(depth)]
  assert rows[2].alpha == pytest.approx(alpha_tables[0]["layers/2/kernel"])
  assert rows[3].q_pruned_predicted == pytest.approx(q_pruned[3], rel=0.02)
  assert rows[3].q_predicted == pytest.approx(q_dense[3], rel=1e-4)
  assert abs(rows[3].q_measured / rows[3].q_pruned_predicted - 1) < 0.2
  assert set(rows[0].to_dict()) == {"layer", "alpha", "q_measured", "q_predicted", "q_pruned_predicted",
                                    "c_measured", "c_predicted", "c_pruned_predicted"}


def test_compare_moments_takes_alphas_from_repair_when_available(wide):
  repair = pytest.importorskip("mfprune.repair")
  if not hasattr(repair, "kept_variance_fraction"):
    pytest.skip("mfprune.repair.kept_variance_fraction is not there yet")
  apply_fn, raw, x, x_other, depth = wide
  net = _draw(raw[:1], 1.0, SIGMA_B)[0]
  mask = _random_mask(net, 3, 0.5)
  rows = signal.compare_moments(apply_fn, net, x, x_other, activation="tanh", sigma_w=1.0,
                                sigma_b=SIGMA_B, mask=mask)
  expected = _kept_fraction(net, mask)
  assert [r.alpha for r in rows] == pytest.approx([expected[f"{r.layer}/kernel"] for r in rows], rel=1e-4)


def test_predicted_moments_reduce_to_propagate():
  q1, c1 = jnp.array([0.5, 1.0, 2.0]), jnp.array([0.1, 0.5, 0.9])
  dense = signal.predicted_moments("tanh", sigma_w=1.4, sigma_b=0.3, depth=5, q1=q1, c1=c1)
  reference = theory.propagate("tanh", 0.3, 1.4, 5, q1, c1=c1)
  np.testing.assert_allclose(dense.q, reference.q, rtol=tol(1e-5, 1e-12))
  np.testing.assert_allclose(dense.c, reference.c, atol=tol(1e-6, 1e-12))
  # α scales σw² layer by layer (the first layer's weight part σw²‖x‖²/d too); α = 0 leaves only the bias.
  alphas = [0.5, 0.25, 0.0, 1.0, 1.0]
  pruned = signal.predicted_moments("tanh", sigma_w=1.4, sigma_b=0.3, depth=5, q1=q1, c1=c1, alphas=alphas)
  q_first = 0.09 + 0.5 * (q1 - 0.09)
  np.testing.assert_allclose(pruned.q[0], q_first, rtol=tol(1e-5, 1e-12))
  np.testing.assert_allclose(pruned.q[1], theory.variance_map("tanh", 0.3, 0.7, q_first), rtol=tol(1e-5, 1e-12))
  np.testing.assert_allclose(pruned.q[2], 0.09, rtol=tol(1e-6, 1e-12))
  np.testing.assert_allclose(pruned.c[2], 1.0, atol=tol(1e-6, 1e-12))
  np.testing.assert_allclose(pruned.q[3], theory.variance_map("tanh", 0.3, 1.4, 0.09), rtol=tol(1e-5, 1e-12))
  # Without c1 only q is propagated, and it is the same q.
  only_q = signal.predicted_moments("tanh", sigma_w=1.4, sigma_b=0.3, depth=5, q1=q1, alphas=alphas)
  assert only_q.c is None
  np.testing.assert_allclose(only_q.q, pruned.q, rtol=tol(1e-6, 1e-12))


# ---------------------------------------------------------------------------------------------------------------
# Layer names, convolutions, other models.
# ---------------------------------------------------------------------------------------------------------------


def _kernel_order(apply_fn, params, x):
  return [name[:-len("/kernel")] for name in functional.layer_order(apply_fn, params, x) if name.endswith("/kernel")]


def test_layer_names_follow_layer_order(wide):
  apply_fn, raw, x, _, _ = wide
  names = [m.name for m in signal.layer_moments(apply_fn, raw[0], x[:4])]
  assert names == _kernel_order(apply_fn, raw[0], x[:4]) == signal.layer_names(apply_fn, raw[0], x[:4])
  # A ResNet's shortcut convolutions come where the forward pass meets them; tracing only, nothing compiled.
  resnet_fn, make = functional.init_fn(
      lambda k: ResNet((8, 8, 3), 5, depth=8, width_multiplier=0.25, batch_norm=False, rngs=nnx.Rngs(params=k)))
  params = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, FLOAT), jax.eval_shape(make, jax.random.key(0)))
  images = jax.ShapeDtypeStruct((2, 8, 8, 3), FLOAT)
  names = signal.layer_names(resnet_fn, params, images)
  assert names == _kernel_order(resnet_fn, params, images)
  assert names[0] == "stem" and "blocks/1/shortcut" in names and names.index("blocks/1/shortcut") > 2


def test_vanilla_cnn_moments_pool_positions_and_follow_theory(wide):
  _, _, flat, flat_other, depth = wide
  x, x_other = flat.reshape(-1, 4, 4, 4), flat_other.reshape(-1, 4, 4, 4)  # same inputs (and theory) as the MLP
  apply_fn, make = functional.init_fn(
      lambda k: VanillaCNN((4, 4, 4), 10, depth=depth, channels=64, rngs=nnx.Rngs(params=k)))
  params = _draw([_standard_normal(jax.eval_shape(make, jax.random.key(0)), 0)], SIGMA_W_EOC, SIGMA_B)[0]
  table = signal.layer_moments(apply_fn, params, x, x_other)
  convs = [f"convs/{l}" for l in range(depth - 1)]
  assert [m.name for m in table] == _kernel_order(apply_fn, params, x) == convs + ["readout"]
  assert [(m.units, m.positions) for m in table] == [(64, 16)] * (depth - 1) + [(10, 1)]
  # c pairs each position of x_i with the same position of x'_i, pooled over positions and channels.
  h = signal.preactivations(apply_fn, params, x)["convs/1"].reshape(x.shape[0], -1)
  g = signal.preactivations(apply_fn, params, x_other)["convs/1"].reshape(x.shape[0], -1)
  c = np.mean(np.sum(h * g, 1) / np.sqrt(np.sum(h * h, 1) * np.sum(g * g, 1)))
  assert table[1].c == pytest.approx(float(c), rel=1e-4)
  assert table[1].q == pytest.approx(float(np.mean(h * h)), rel=1e-4)
  # The channel-averaged kernel follows the FFNN maps (loosely: 64 channels, one network; the read-out has 10).
  rows = signal.compare_moments(apply_fn, params, x, x_other, activation="tanh", sigma_w=SIGMA_W_EOC,
                                sigma_b=SIGMA_B)
  for row in rows[:-1]:
    assert row.q_measured == pytest.approx(row.q_predicted, rel=0.12)
    assert row.c_measured == pytest.approx(row.c_predicted, abs=0.05)


def test_plain_apply_fns_need_a_preactivation_fn():
  params = plain_mlp_params(jax.random.key(0), [6, 5, 4], bias=True)
  x = jax.random.normal(jax.random.key(1), (3, 6))
  with pytest.raises(TypeError, match="preactivation_fn"):
    signal.layer_moments(plain_mlp_apply(jnp.tanh), params, x)

  def preactivation_fn(p, x):
    h1 = x @ p["layers"][0]["kernel"] + p["layers"][0]["bias"]
    return [h1, jnp.tanh(h1) @ p["layers"][1]["kernel"] + p["layers"][1]["bias"]]

  table = signal.layer_moments(plain_mlp_apply(jnp.tanh), params, x, 2 * x, preactivation_fn=preactivation_fn)
  assert [m.name for m in table] == ["0", "1"]
  h1 = preactivation_fn(params, x)[0]
  assert table[0].q == pytest.approx(float(jnp.mean(h1 * h1)), rel=1e-5)
  assert table[0].units == 5 and table[0].positions == 1


def test_recording_is_opt_in_and_forward_unchanged(wide):
  apply_fn, raw, x, _, _ = wide
  module = apply_fn.module(raw[0])
  with record_outputs() as outer:
    with record_outputs() as inner:
      y = module(x[:2])
    assert len(inner) == 6 and not outer
    module(x[:2])
  assert len(outer) == 6
  np.testing.assert_allclose(y, apply_fn(raw[0], x[:2]), rtol=1e-6)
  np.testing.assert_allclose(inner[-1][1], y, rtol=1e-6)  # the read-out's output is the network's output


def test_bad_input():
  params = plain_mlp_params(jax.random.key(0), [6, 5, 4])
  apply_fn = plain_mlp_apply(jnp.tanh)
  x = jnp.ones((3, 6))
  pre = lambda p, x: [x @ p["layers"][0]["kernel"]]
  with pytest.raises(ValueError, match="x_other"):
    signal.layer_moments(apply_fn, params, x, jnp.ones((2, 6)), preactivation_fn=pre)
  with pytest.raises(ValueError, match="x must be a batch"):
    signal.jacobian_singular_values(apply_fn, params, jnp.ones(6))
  with pytest.raises(ValueError, match="batch_size"):
    signal.jacobian_singular_values(apply_fn, params, x, batch_size=0)
  with pytest.raises(ValueError, match="unknown|activation"):
    signal.predicted_moments("no-such-activation", sigma_w=1.0, sigma_b=0.0, depth=3, q1=1.0)
  with pytest.raises(ValueError, match="alphas"):
    signal.predicted_moments("tanh", sigma_w=1.0, sigma_b=0.0, depth=3, q1=1.0, alphas=[1.0, 1.0])
  with pytest.raises(ValueError, match="alphas"):
    signal.predicted_moments("tanh", sigma_w=1.0, sigma_b=0.0, depth=2, q1=1.0, alphas=[1.0, -0.5])
  with pytest.raises(ValueError, match="q1"):
    signal.predicted_moments("tanh", sigma_w=1.0, sigma_b=0.5, depth=2, q1=0.1, alphas=[1.0, 1.0])
  with pytest.raises(ValueError, match="c1"):
    signal.predicted_moments("tanh", sigma_w=1.0, sigma_b=0.0, depth=2, q1=1.0, c1=1.5)
  with pytest.raises(ValueError, match="sigma_w"):
    signal.predicted_moments("tanh", sigma_w=0.0, sigma_b=0.0, depth=2, q1=1.0)
  with pytest.raises(ValueError, match="depth"):
    signal.predicted_moments("tanh", sigma_w=1.0, sigma_b=0.0, depth=0, q1=1.0)
  with pytest.raises(ValueError, match="unknown|activation"):
    signal.compare_moments(apply_fn, params, x, x, activation="nope", sigma_w=1.0, sigma_b=0.0,
                           preactivation_fn=pre)
