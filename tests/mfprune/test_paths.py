"""mfprune.paths: exact Tr Π of mfprune models (the renormalisation undone in log space) against theory.paths, masks,
SynFlow-L2 as the Path Kernel diagonal, SynFlow's conservation with the exact R_sf, depth 100, conv and ResNet."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mfprune import functional, masks, paths, scores
from mfprune.models import MLP, ResNet, VanillaCNN, resnet
from mfprune.models.layers import record_scales
from theory import paths as theory_paths
from tests.conftest import tol
from tests.mfprune.nets import plain_mlp_apply

SHAPE = (8,)


def _numpy_model(make, seed=0, kernel_scale=1.0):
  """An mfprune model's ``(apply_fn, params)`` without running its initialiser (eager NNX init compiles every layer):
  the structure from ``nnx.eval_shape``, kernels N(0, kernel_scale²/fan_in), other parameters (batch-norm scales
  and shifts) U(0.5, 1.5), batch-norm running means 0 and variances U(0.5, 2)."""
  graphdef, params, rest = nnx.split(nnx.eval_shape(make), nnx.Param, ...)
  rng = np.random.default_rng(seed)

  def param(path, leaf):
    if masks.path_name(path).endswith("kernel"):
      fan_in = math.prod(leaf.shape[:-1])
      return jnp.asarray(kernel_scale * rng.standard_normal(leaf.shape) / math.sqrt(fan_in), leaf.dtype)
    return jnp.asarray(rng.uniform(0.5, 1.5, leaf.shape), leaf.dtype)

  def state(path, leaf):
    if masks.path_name(path).endswith("var"):
      return jnp.asarray(rng.uniform(0.5, 2.0, leaf.shape), leaf.dtype)
    return jnp.zeros(leaf.shape, leaf.dtype)

  params = jax.tree_util.tree_map_with_path(param, nnx.to_pure_dict(params))
  rest = jax.tree_util.tree_map_with_path(state, nnx.to_pure_dict(rest))
  return functional.ModelFn(graphdef, rest), params


@pytest.fixture(scope="module")
def mlp():
  """A bias-free ReLU MLP 8 -> 6 -> 6 -> 6 -> 3 and its kernels in network order."""
  apply_fn, params = _numpy_model(
      lambda: MLP(SHAPE, 3, depth=4, width=6, activation="relu", use_bias=False, rngs=nnx.Rngs(params=0)))
  return apply_fn, params, [params["layers"][i]["kernel"] for i in range(4)]


def _plain_params(sizes, seed=0, bias=False):
  """:func:`tests.mfprune.nets.plain_mlp_params`' layout from NumPy's generator (no jax.random compiles)."""
  rng = np.random.default_rng(seed)
  layers = []
  for a, b in zip(sizes[:-1], sizes[1:]):
    layer = {"kernel": jnp.asarray(rng.standard_normal((a, b)) / math.sqrt(a), jnp.float32)}
    if bias:
      layer["bias"] = jnp.asarray(0.1 * rng.standard_normal(b), jnp.float32)
    layers.append(layer)
  return {"layers": layers}


def _random_mask(params, seed=0, keep=0.6):
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda m: None if m is None else jnp.asarray(rng.random(m.shape) < keep),
                      masks.dense_mask(params), is_leaf=lambda v: v is None)


def _mask_list(mask):
  return [np.asarray(mask["layers"][i]["kernel"]) for i in range(len(mask["layers"]))]


@pytest.mark.parametrize("masked", [False, True])
def test_mlp_trace_is_exactly_the_theory_trace_of_its_kernels(mlp, masked):
  apply_fn, params, kernels = mlp
  mask = _random_mask(params) if masked else None
  mask_list = _mask_list(mask) if masked else None
  got = paths.path_kernel_trace(apply_fn, params, SHAPE, mask=mask)
  want = theory_paths.chain_path_statistics(kernels, mask=mask_list)
  assert got.layers == tuple(f"layers/{i}/kernel" for i in range(4))
  np.testing.assert_allclose(got.log_layer_traces, want.log_layer_traces, atol=1e-5)
  np.testing.assert_allclose([got.log_trace, got.log_r_pk, got.log_r_sf],
                             [want.log_trace, want.log_r_pk, want.log_r_sf], atol=1e-5)
  # No parameter outside the mask is on a path, and the layers add up (in linear space) to the total.
  assert float(got.log_other_trace) == -np.inf
  np.testing.assert_allclose(np.logaddexp.reduce(np.asarray(got.log_layer_traces, np.float64)),
                             float(got.log_trace), atol=1e-5)
  np.testing.assert_allclose(got.trace, float(jnp.exp(want.log_trace)), rtol=1e-4)
  # The diagonal itself, exact (renormalised values times exp(log S)); pruned weights contribute exactly 0.
  diagonal = paths.path_kernel_diagonal(apply_fn, params, SHAPE, mask=mask).exact()
  for i, d in enumerate(theory_paths.chain_path_kernel_diagonal(kernels, mask=mask_list)):
    np.testing.assert_allclose(diagonal["layers"][i]["kernel"], d, rtol=1e-4, atol=1e-7)
    if masked:
      assert np.all(np.asarray(diagonal["layers"][i]["kernel"])[~mask_list[i]] == 0)
  if masked:  # = the trace of the pruned weight list (theory's enumeration-checked formula, same mask)
    pruned = [k * m for k, m in zip(kernels, mask_list)]
    np.testing.assert_allclose(got.trace, float(theory_paths.chain_path_kernel_trace(pruned, mask=mask_list)), rtol=1e-4)
    assert got.trace < paths.path_kernel_trace(apply_fn, params, SHAPE).trace


def test_hand_written_relu_net_and_synflow_l2_is_exactly_theta_times_the_path_kernel_gradient():
  """SynFlow-L2 ([P] §4.2) = θ ⊙ ∂R_pk/∂θ = 2 θ² ⊙ ∂R_pk/∂(θ²), exact on a bias-free ReLU apply_fn."""
  sizes = [6, 5, 4, 3]
  params = _plain_params(sizes, seed=1)
  apply_fn = plain_mlp_apply(jax.nn.relu)
  kernels = [layer["kernel"] for layer in params["layers"]]
  got = paths.path_kernel_trace(apply_fn, params, (6,))
  want = theory_paths.chain_path_statistics(kernels)
  np.testing.assert_allclose([got.log_trace, got.log_r_pk, got.log_r_sf],
                             [want.log_trace, want.log_r_pk, want.log_r_sf], atol=1e-5)
  assert got.layers == ("layers/0/kernel", "layers/1/kernel", "layers/2/kernel")
  batch = jnp.ones((2, 6)), jnp.zeros((2,), jnp.int32)
  l2 = jax.jit(lambda p: scores.synflow_l2(apply_fn, p, masks.dense_mask(p), batch, None))(params)
  for i, d in enumerate(theory_paths.chain_path_kernel_diagonal(kernels)):
    np.testing.assert_allclose(l2["layers"][i]["kernel"], 2 * kernels[i] ** 2 * d, rtol=tol(1e-5, 1e-12),
                               atol=1e-8)


def test_synflow_l2_on_the_mlp_model_is_the_path_kernel_diagonal_up_to_one_positive_factor(mlp):
  apply_fn, params, kernels = mlp
  mask = _random_mask(params, seed=2)
  batch = jnp.ones((2,) + SHAPE), jnp.zeros((2,), jnp.int32)
  l2 = jax.jit(lambda p: scores.synflow_l2(apply_fn, p, mask, batch, None))(params)
  diagonal = paths.path_kernel_diagonal(apply_fn, params, SHAPE, mask=mask)
  mask_list = _mask_list(mask)
  exact = theory_paths.chain_path_kernel_diagonal(kernels, mask=mask_list)
  factor = float(jnp.exp(-diagonal.log_scale))  # the renormalisation's one positive factor
  assert factor > 0 and abs(np.log(factor)) > 1e-3  # really renormalised: not the identity
  for i in range(4):
    theta2 = (kernels[i] * mask_list[i]) ** 2
    np.testing.assert_allclose(l2["layers"][i]["kernel"], 2 * theta2 * diagonal.diagonal["layers"][i]["kernel"],
                               rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(l2["layers"][i]["kernel"], factor * 2 * theta2 * exact[i], rtol=1e-4, atol=1e-9)


def test_synflow_conservation_with_the_exact_r_sf_and_r_pk(mlp):
  """Each layer's SynFlow scores sum to R_sf and SynFlow-L2's to 2 R_pk ([P] §4; Tanaka et al.), up to the
  renormalisation factor S the model divided by, recorded by layers.record_scales."""
  apply_fn, params, _ = mlp
  mask = masks.dense_mask(params)
  batch = jnp.ones((2,) + SHAPE), jnp.zeros((2,), jnp.int32)
  trace = paths.path_kernel_trace(apply_fn, params, SHAPE)

  @jax.jit
  def log_scale(p):
    with record_scales() as logs:
      functional.linearised(apply_fn)(p, jnp.ones((1,) + SHAPE))
    return sum(logs)

  for method, power, log_r in (("synflow", 1, trace.log_r_sf), ("synflow_l2", 2, trace.log_r_pk + np.log(2))):
    got = jax.jit(lambda p, method=method: scores.score(method, apply_fn, p, mask, batch))(params)
    log_s = float(log_scale(jax.tree.map(lambda p: jnp.abs(p) ** power, params)))
    for i in range(4):
      layer_sum = float(jnp.sum(got["layers"][i]["kernel"]))
      np.testing.assert_allclose(np.log(layer_sum) + log_s, float(log_r), atol=2e-5)


@pytest.mark.parametrize("depth, scale", [(10, 100.0), pytest.param(100, 2.0, marks=pytest.mark.slow)])
def test_deep_mlp_gives_finite_exact_logs_in_float32(depth, scale):
  """Kernels N(0, scale²/n): R_pk grows ~scale^(2·depth) (1e4^10, 4^100) and overflows float32 without the recorded
  renormalisation. Depth 100 compiles a 100-layer program (slow; theory's depth-100 test runs by default)."""
  apply_fn, params = _numpy_model(
      lambda: MLP(SHAPE, 3, depth=depth, width=8, activation="relu", use_bias=False, rngs=nnx.Rngs(params=3)),
      seed=3, kernel_scale=scale)
  kernels = [params["layers"][i]["kernel"] for i in range(depth)]
  got = paths.path_kernel_trace(apply_fn, params, SHAPE)
  want = theory_paths.chain_path_statistics(kernels)
  assert np.all(np.isfinite(np.asarray(got.log_layer_traces))) and np.isfinite(float(got.log_trace))
  assert float(got.log_r_pk) > 89  # beyond float32's largest number, e^88.7
  np.testing.assert_allclose(got.log_layer_traces, want.log_layer_traces, atol=2e-3)
  np.testing.assert_allclose([got.log_trace, got.log_r_pk, got.log_r_sf],
                             [want.log_trace, want.log_r_pk, want.log_r_sf], atol=2e-3)


def test_vanilla_cnn_matches_its_relu_network_on_the_squared_weights():
  """The linearised, renormalised conv model (logs of the scales added back) against the hand-written route: the
  model's own ReLU forward (no linearised mode) on (θ ⊙ m)² and ones, which is its linear network there."""
  shape = (5, 5, 2)
  apply_fn, params = _numpy_model(
      lambda: VanillaCNN(shape, 3, depth=3, channels=3, activation="relu", use_bias=False, rngs=nnx.Rngs(params=4)),
      seed=4)
  mask = _random_mask(params, seed=5, keep=0.7)
  got = paths.path_kernel_trace(apply_fn, params, shape, mask=mask)
  relu_net = lambda p, x: apply_fn(p, x)  # the same network without .linearised: checked, not renormalised
  want = paths.path_kernel_trace(relu_net, params, shape, mask=mask)
  assert got.layers == want.layers == ("convs/0/kernel", "convs/1/kernel", "readout/kernel")
  np.testing.assert_allclose(got.log_layer_traces, want.log_layer_traces, atol=1e-5)
  np.testing.assert_allclose([got.log_r_sf, got.log_r_pk], [want.log_r_sf, want.log_r_pk], atol=1e-5)
  theta = masks.apply_mask(params, mask)
  ones = jnp.ones((1,) + shape)
  for power, log_r in ((1, got.log_r_sf), (2, got.log_r_pk)):  # R = Σ f(1; |θ ⊙ m|^p), one plain forward pass
    r = jnp.sum(apply_fn(jax.tree.map(lambda p: jnp.abs(p) ** power, theta), ones))
    np.testing.assert_allclose(float(log_r), np.log(float(r)), atol=1e-5)


@pytest.mark.slow  # two ResNet programs to compile (~10 s on two busy cores)
def test_resnet_with_batch_norm_undoes_the_renormalisation_exactly(monkeypatch):
  """A tiny ResNet (skips, batch-norm scales on paths): the log-space result equals the same computation with
  renormalisation switched off (feasible at this size), layer by layer and for the batch-norm scales."""
  shape = (4, 4, 3)
  apply_fn, params = _numpy_model(lambda: ResNet(shape, 3, depth=8, width_multiplier=0.25, rngs=nnx.Rngs(params=6)),
                                  seed=6)
  got = paths.path_kernel_trace(apply_fn, params, shape)
  monkeypatch.setattr(resnet, "renormalise", lambda h: h)
  lin = functional.linearised(apply_fn)
  ones = jnp.ones((1,) + shape)
  squared = jax.tree.map(lambda p: p * p, params)
  r_pk, grads = jax.jit(jax.value_and_grad(lambda s: jnp.sum(lin(s, ones))))(squared)
  sums = dict(masks.named_leaves(jax.tree.map(jnp.sum, grads)))
  np.testing.assert_allclose(got.log_layer_traces, [np.log(sums[n]) for n in got.layers], atol=1e-4)
  other = sum(float(v) for n, v in sums.items() if n not in got.layers)
  assert other > 0  # the batch-norm scales are path weights
  np.testing.assert_allclose(float(got.log_other_trace), np.log(other), atol=1e-4)
  np.testing.assert_allclose(float(got.log_r_pk), np.log(float(r_pk)), atol=1e-4)
  np.testing.assert_allclose(float(got.log_trace), np.log(other + sum(sums[n] for n in got.layers)), atol=1e-4)


def test_inputs_weight_the_paths_and_bad_input_is_refused(mlp):
  apply_fn, params, kernels = mlp
  x = jnp.asarray(np.random.default_rng(7).random((3,) + SHAPE), jnp.float32)
  got = paths.path_kernel_trace(apply_fn, params, x)  # R is linear in x: the batch acts as the sum of its inputs
  want = theory_paths.chain_path_statistics(kernels, x=jnp.sum(x, axis=0))
  np.testing.assert_allclose([got.log_trace, got.log_r_pk, got.log_r_sf],
                             [want.log_trace, want.log_r_pk, want.log_r_sf], atol=1e-5)
  with pytest.raises(ValueError, match="x_or_input_shape"):
    paths.path_kernel_trace(apply_fn, params, -x)
  with pytest.raises(ValueError, match="x_or_input_shape"):
    paths.path_kernel_trace(apply_fn, params, jnp.ones(8))
  with pytest.raises(ValueError, match=r"x_or_input_shape\[0\]"):
    paths.path_kernel_trace(apply_fn, params, (0,))
  with pytest.raises(ValueError, match="mask"):
    paths.path_kernel_trace(apply_fn, params, SHAPE, mask={"layers": []})
  biased = _plain_params([6, 4, 3], seed=2, bias=True)
  with pytest.raises(ValueError, match="biases where paths need none"):
    paths.path_kernel_trace(plain_mlp_apply(jax.nn.relu), biased, (6,))
  with pytest.raises(ValueError, match="not positively homogeneous"):
    paths.path_kernel_trace(plain_mlp_apply(jnp.tanh), _plain_params([6, 4, 3], seed=2), (6,))


# ---------------------------------------------------------------------------------------------------------------
# Hand-written bias-free homogeneous apply_fns (no linearised mode): checked, then evaluated on (θ ⊙ m)².
# ---------------------------------------------------------------------------------------------------------------

FLOAT = jnp.result_type(float)


def _normal(seed, shape):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), FLOAT)


def _dense_apply(params, x):
  h = x.reshape(x.shape[0], -1)
  for i, layer in enumerate(params["layers"]):
    if i > 0:
      h = jax.nn.relu(h)
    h = h @ layer["kernel"]
  return h


def _conv_apply(params, x):
  """Two VALID 1-D convolutions with ReLU and a dense read-out: x (n, T, C)."""
  h = x
  for i, layer in enumerate(params["convs"]):
    if i > 0:
      h = jax.nn.relu(h)
    h = jax.lax.conv_general_dilated(h, layer["kernel"], (1,), "VALID", dimension_numbers=("NWC", "WIO", "NWC"))
  return jax.nn.relu(h).reshape(h.shape[0], -1) @ params["readout"]["kernel"]


def _conv_params(seed=0):
  """Input (8, 2) -> conv 3-wide to (6, 3) -> conv 2-wide to (5, 2) -> dense 10 -> 2."""
  return {"convs": [{"kernel": _normal(seed, (3, 2, 3)) / 2.5}, {"kernel": _normal(seed + 1, (2, 3, 2)) / 2.5}],
          "readout": {"kernel": _normal(seed + 2, (5 * 2, 2)) / 3.2}}


def test_hand_written_dense_net_equals_the_chain_formula():
  params = _plain_params([4, 3, 5, 2], seed=16)
  weights = [layer["kernel"] for layer in params["layers"]]
  mask = _random_mask(params, seed=17, keep=0.7)
  got = paths.path_kernel_trace(_dense_apply, params, (4,), mask=mask)
  want = theory_paths.chain_path_statistics(weights, mask=_mask_list(mask))
  np.testing.assert_allclose(got.log_layer_traces, want.log_layer_traces, atol=tol(1e-5, 1e-12))
  np.testing.assert_allclose([got.log_trace, got.log_r_pk, got.log_r_sf],
                             [want.log_trace, want.log_r_pk, want.log_r_sf], atol=tol(1e-5, 1e-12))
  dense = paths.path_kernel_trace(_dense_apply, params, (4,))
  np.testing.assert_allclose(np.exp(np.asarray(dense.log_layer_traces, np.float64)),
                             theory_paths.chain_path_kernel_trace(weights, per_layer=True), rtol=tol(1e-5, 1e-12))
  for power, log_r in ((1, dense.log_r_sf), (2, dense.log_r_pk)):
    np.testing.assert_allclose(float(log_r), np.log(float(theory_paths.chain_path_objective(weights, power=power))),
                               atol=tol(1e-5, 1e-12))


def test_hand_written_conv_net_is_the_trace_of_its_unrolled_dense_chain():
  """A shared kernel entry is on every path through any of its copies, so Tr Π of a conv net is the trace of the
  dense chain whose matrices are its unrolled (Toeplitz) layers, counting only the entries that hold a kernel
  weight (the structural zeros are not parameters: they are masked); jax.jacobian unrolls each linear layer."""
  params = _conv_params()
  shape = (8, 2)
  trace = math.exp(float(paths.path_kernel_trace(_conv_apply, params, shape).log_trace))

  def conv(k, h):
    return jax.lax.conv_general_dilated(h[None], k, (1,), "VALID", dimension_numbers=("NWC", "WIO", "NWC"))[0]

  def unrolled(kernel, in_shape):  # (in, out) matrix of the linear map h -> conv(kernel, h)
    jac = np.asarray(jax.jit(jax.jacobian(lambda h: conv(kernel, h).reshape(-1)))(jnp.zeros(in_shape, FLOAT)))
    return jnp.asarray(jac.reshape(jac.shape[0], -1).T)

  kernels = [params["convs"][0]["kernel"], params["convs"][1]["kernel"], params["readout"]["kernel"]]
  dense = [unrolled(kernels[0], shape), unrolled(kernels[1], (6, 3)), kernels[2]]
  support = [unrolled(jnp.ones_like(kernels[0]), shape) != 0, unrolled(jnp.ones_like(kernels[1]), (6, 3)) != 0,
             np.ones((10, 2), bool)]
  assert [d.shape for d in dense] == [(16, 18), (18, 10), (10, 2)]
  assert [int(m.sum()) for m in support] == [6 * 18, 5 * 12, 20]  # each kernel entry once per output position
  np.testing.assert_allclose(trace, float(theory_paths.chain_path_kernel_trace(dense, mask=support)),
                             rtol=tol(1e-5, 1e-12))
  # Without the mask the structural zeros would count as (zero) parameters on paths: a larger, wrong trace.
  assert float(theory_paths.chain_path_kernel_trace(dense)) > 1.5 * trace
  x = jnp.asarray(np.abs(np.random.default_rng(1).standard_normal((3,) + shape)), FLOAT)
  np.testing.assert_allclose(jax.jit(_conv_apply)(params, x), jax.jit(_forward, static_argnums=2)(
      dense, x.reshape(3, -1), jax.nn.relu), rtol=tol(1e-5, 1e-12), atol=tol(1e-6, 1e-13))


def _forward(weights, x, activation):
  """The bias-free dense net on explicit matrices, written independently of mfprune.paths."""
  h = x
  for i, w in enumerate(weights):
    if i > 0:
      h = activation(h)
    h = h @ w
  return h


def test_check_path_network_refuses_biases_and_non_homogeneous_nets():
  params = _plain_params([4, 3, 2], seed=18)
  assert paths.check_path_network(_dense_apply, params, [4]) == (4,)
  with_bias = _plain_params([4, 3, 2], seed=18, bias=True)
  with pytest.raises(ValueError, match="biases where paths need none.*layers/0/bias"):
    paths.check_path_network(_dense_apply, with_bias, (4,))

  def tanh_apply(p, x):
    return jnp.tanh(x @ p["layers"][0]["kernel"]) @ p["layers"][1]["kernel"]

  with pytest.raises(ValueError, match="not positively homogeneous"):
    paths.check_path_network(tanh_apply, params, (4,))
  with pytest.raises(ValueError, match="input_shape"):
    paths.check_path_network(_dense_apply, params, 4)
  with pytest.raises(ValueError, match=r"input_shape\[0\]"):
    paths.check_path_network(_dense_apply, params, (0,))
  with pytest.raises(ValueError, match="mask"):
    paths.path_kernel_trace(_dense_apply, params, (4,), mask={"layers": [{"kernel": jnp.ones((2, 2))}] * 2})
