"""Scorer oracles: finite differences, explicit Hessians, SynFlow's conservation law, path objectives."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.flatten_util import ravel_pytree

from mfprune import functional, masks, scores
from mfprune.models import MLP
from tests.conftest import X64, tol
from tests.mfprune.nets import plain_mlp_apply, plain_mlp_params

SIZES = [6, 5, 4, 3]


def _net(bias=True, activation=jnp.tanh, seed=0):
  params = plain_mlp_params(jax.random.key(seed), SIZES, bias=bias)
  kx, ky = jax.random.split(jax.random.key(seed + 1))
  batch = jax.random.normal(kx, (7, SIZES[0])), jax.random.randint(ky, (7,), 0, SIZES[-1])
  return plain_mlp_apply(activation), params, batch


def _loss(apply_fn, batch, temperature=1.0):
  return lambda p: jnp.mean(optax.softmax_cross_entropy_with_integer_labels(apply_fn(p, batch[0]) / temperature,
                                                                           batch[1]))


def test_snip_is_the_connection_sensitivity_by_finite_differences():
  """[S] eq. 1, 3: g_j = ∂L(c ⊙ w)/∂c_j at c = 1; SNIP's score is |g_j|. Central differences in c_j."""
  apply_fn, params, batch = _net()
  got = scores.snip(apply_fn, params, masks.dense_mask(params), batch, None)
  loss = _loss(apply_fn, batch)
  h = 1e-5 if X64 else 1e-2
  for layer, (i, j) in [(0, (0, 0)), (1, (2, 3)), (2, (3, 1))]:
    def gated(c, layer=layer, i=i, j=j):
      p = jax.tree.map(lambda x: x, params)
      w = p["layers"][layer]["kernel"]
      p["layers"][layer]["kernel"] = w.at[i, j].multiply(c)
      return loss(p)
    fd = (gated(1 + h) - gated(1 - h)) / (2 * h)
    # A central difference of a float32 loss L ~ 1 carries round-off ~ ε·L/h ≈ 1e-5 (h = 1e-2): atol says so.
    np.testing.assert_allclose(got["layers"][layer]["kernel"][i, j], abs(fd), rtol=tol(2e-3, 1e-7),
                               atol=tol(2e-5, 1e-7))
  assert got["layers"][0]["bias"] is None


def test_snip_scores_the_pruned_network():
  """Scores are taken at θ ⊙ mask: a pruned weight scores 0 and its neighbours see the pruned net."""
  apply_fn, params, batch = _net()
  mask = masks.dense_mask(params)
  mask["layers"][1]["kernel"] = mask["layers"][1]["kernel"].at[:, 0].set(False)
  got = scores.snip(apply_fn, params, mask, batch, None)
  pruned = masks.apply_mask(params, mask)
  want = jax.tree.map(lambda p, g: jnp.abs(p * g), pruned, jax.grad(_loss(apply_fn, batch))(pruned))
  assert np.all(got["layers"][1]["kernel"][:, 0] == 0)
  np.testing.assert_allclose(got["layers"][0]["kernel"], want["layers"][0]["kernel"], rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("temperature", [1.0, scores.GRASP_TEMPERATURE])
def test_grasp_against_an_explicit_hessian(temperature):
  """θ ⊙ (H g) with H = ∇²L and g = ∇L formed explicitly on the flattened parameters."""
  apply_fn, params, batch = _net()
  got = scores.grasp(apply_fn, params, masks.dense_mask(params), batch, None, temperature=temperature)
  flat, unravel = ravel_pytree(params)
  loss = lambda v: _loss(apply_fn, batch, temperature)(unravel(v))
  hessian = jax.hessian(loss)(flat)
  want = unravel(flat * (hessian @ jax.grad(loss)(flat)))
  for layer in range(3):
    w = want["layers"][layer]["kernel"]
    np.testing.assert_allclose(got["layers"][layer]["kernel"], w, rtol=tol(2e-3, 1e-9),
                               atol=tol(1e-5, 1e-12) * float(jnp.max(jnp.abs(w))))


def _r_sf(params, x=None, power=1):
  """1ᵀ(Π_l |W_l|^power) x of a bias-free dense net written with explicit matrix products."""
  h = jnp.ones((1, SIZES[0])) if x is None else x
  for layer in params["layers"]:
    h = h @ (jnp.abs(layer["kernel"]) ** power)
  return jnp.sum(h)


def test_synflow_conservation_on_a_bias_free_relu_net():
  """Tanaka et al. 2020: the SynFlow scores of every layer sum to R_sf = 1ᵀ(Π|θ^l|)1."""
  apply_fn, params, batch = _net(bias=False, activation=jax.nn.relu)
  got = scores.synflow(apply_fn, params, masks.dense_mask(params), batch, None)
  r_sf = _r_sf(params)
  for layer in range(3):
    assert float(jnp.min(got["layers"][layer]["kernel"])) >= 0
    np.testing.assert_allclose(jnp.sum(got["layers"][layer]["kernel"]), r_sf, rtol=tol(1e-5, 1e-12))


def test_synflow_l2_layers_sum_to_twice_the_path_kernel_objective():
  """[P] eq. 15: SynFlow-L2 = θ ⊙ ∂R_pk/∂θ = 2θ² ∂R_pk/∂θ², so each layer sums to 2·R_pk(1, θ)."""
  apply_fn, params, batch = _net(bias=False, activation=jax.nn.relu)
  got = scores.synflow_l2(apply_fn, params, masks.dense_mask(params), batch, None)
  r_pk = _r_sf(params, power=2)
  for layer in range(3):
    np.testing.assert_allclose(jnp.sum(got["layers"][layer]["kernel"]), 2 * r_pk, rtol=tol(1e-5, 1e-12))
  want = jax.tree.map(lambda p, g: p * g, params, jax.grad(lambda p: _r_sf(p, power=2))(params))
  np.testing.assert_allclose(got["layers"][1]["kernel"], want["layers"][1]["kernel"], rtol=tol(1e-5, 1e-12))


def test_synflow_l2_authors_variant():
  """The authors' code: |θ² ⊙ ∂R_sf/∂θ| (THEORY.md §7 ambiguity), a different ranking from the paper's."""
  apply_fn, params, batch = _net(bias=False, activation=jax.nn.relu)
  got = scores.synflow_l2(apply_fn, params, masks.dense_mask(params), batch, None, variant="authors")
  grads = jax.grad(_r_sf)(params)
  want = jax.tree.map(lambda p, g: jnp.abs(p * p * g), params, grads)
  np.testing.assert_allclose(got["layers"][2]["kernel"], want["layers"][2]["kernel"], rtol=tol(1e-5, 1e-12))
  with pytest.raises(ValueError, match="variant must be one of"):
    scores.synflow_l2(apply_fn, params, masks.dense_mask(params), batch, None, variant="blog")


@pytest.mark.parametrize("method, power", [("synflow_dist", 1), ("synflow_l2_dist", 2)])
def test_dist_variants_use_the_data_mean_magnitude(method, power):
  apply_fn, params, batch = _net(bias=False, activation=jax.nn.relu)
  got = scores.score(method, apply_fn, params, masks.dense_mask(params), batch)
  mu = jnp.abs(jnp.mean(batch[0], axis=0, keepdims=True))
  r = _r_sf(params, mu, power=power)
  for layer in range(3):
    np.testing.assert_allclose(jnp.sum(got["layers"][layer]["kernel"]), power * r, rtol=tol(1e-5, 1e-12))


def test_linearised_model_ranks_like_the_explicit_path_objective():
  """An MLP with biases and tanh: SynFlow uses its linearised, renormalised forward. Scores equal the explicit
  bias-free product's up to one positive factor, and each layer sums to the same value (conservation)."""
  model = MLP((6,), 3, depth=4, width=5, activation="tanh", rngs=nnx.Rngs(params=0))
  apply_fn, params = functional.split(model)
  params = jax.tree.map(lambda x: x + 0.3 if x.ndim == 1 else x, params)  # non-zero biases are ignored
  batch = jnp.ones((2, 6)), jnp.zeros((2,), int)
  got = scores.synflow(apply_fn, params, masks.dense_mask(params), batch, None)
  explicit = {"layers": [{"kernel": params["layers"][i]["kernel"]} for i in range(4)]}
  r = lambda p: jnp.sum(jnp.ones((1, 6)) @ jnp.abs(p["layers"][0]["kernel"]) @ jnp.abs(p["layers"][1]["kernel"])
                        @ jnp.abs(p["layers"][2]["kernel"]) @ jnp.abs(p["layers"][3]["kernel"]))
  want = jax.tree.map(lambda p, g: p * g, explicit, jax.grad(r)(explicit))
  sums = [float(jnp.sum(got["layers"][i]["kernel"])) for i in range(4)]
  np.testing.assert_allclose(sums, sums[0], rtol=tol(1e-5, 1e-12))
  factor = sums[0] / float(r(explicit))
  for i in range(4):
    np.testing.assert_allclose(got["layers"][i]["kernel"], factor * want["layers"][i]["kernel"],
                               rtol=tol(1e-4, 1e-10))


def test_snip_unsupervised_targets():
  """[S] Table 4: uniform target; own prediction averaged after (softmax) or before (raw) the softmax."""
  apply_fn, params, batch = _net()
  mask = masks.dense_mask(params)
  logits = apply_fn(params, batch[0])
  k = logits.shape[-1]
  targets = {"uniform": jnp.full((k,), 1 / k), "softmax": jnp.mean(jax.nn.softmax(logits), 0),
             "raw": jax.nn.softmax(jnp.mean(logits, 0))}
  for target, t in targets.items():
    got = scores.snip_unsupervised(apply_fn, params, mask, batch, None, target=target)
    loss = lambda p, t=t: jnp.mean(optax.softmax_cross_entropy(apply_fn(p, batch[0]), t))
    want = jax.tree.map(lambda p, g: jnp.abs(p * g), params, jax.grad(loss)(params))
    np.testing.assert_allclose(got["layers"][0]["kernel"], want["layers"][0]["kernel"], rtol=1e-4, atol=1e-8)
  with pytest.raises(ValueError, match="target must be one of"):
    scores.snip_unsupervised(apply_fn, params, mask, batch, None, target="labels")


def test_magnitude_and_random():
  apply_fn, params, batch = _net()
  mask = masks.dense_mask(params)
  np.testing.assert_array_equal(scores.magnitude(apply_fn, params, mask, batch, None)["layers"][0]["kernel"],
                                jnp.abs(params["layers"][0]["kernel"]))
  a = scores.random(apply_fn, params, mask, batch, jax.random.key(0))["layers"][0]["kernel"]
  b = scores.random(apply_fn, params, mask, batch, jax.random.key(1))["layers"][0]["kernel"]
  assert a.shape == (6, 5) and float(jnp.min(a)) >= 0 and float(jnp.max(a)) < 1 and not np.array_equal(a, b)


def test_registry():
  assert set(scores.available_scorers()) == {"random", "magnitude", "snip", "snip_unsupervised", "grasp",
                                              "synflow", "synflow_l2", "synflow_dist", "synflow_l2_dist"}
  with pytest.raises(ValueError, match="unknown pruning method"):
    scores.get_scorer("obd")
  with pytest.raises(ValueError, match="rounds must be >= 1"):
    scores.register_scorer("bad", scores.magnitude, rounds=0)
