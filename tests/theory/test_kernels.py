"""theory.kernels: infinite-width NNGP/NTK against neural-tangents, closed forms, theory.maps, wide nets; linearised
MSE dynamics against neural-tangents, closed limits and explicit gradient-descent steps."""

import json
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

from tests.conftest import X64, tol
from theory import kernels, maps, ntk_compat

REFERENCE = json.loads((pathlib.Path(__file__).with_name("data") / "ntk_reference.json").read_text())
RNG = np.random.default_rng(0)
X1 = RNG.normal(size=(4, 5))
X2 = RNG.normal(size=(3, 5))
SW, SB = 1.3, 0.2

# Float32: neural-tangents leaves the correlation of an input with itself at c = 1 − O(ε) after round-off, and the
# slope 1/√(1 − c²) of arcsin/arccos turns that into ~3e-4 relative error per layer in the derivative moment (ours
# sets c = 1 there; see test_relu_diagonal_is_exact_in_float32). Elsewhere both agree to ~1e-6.
RTOL = tol(1e-3, 1e-5)


def _max_rel(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.fixture(scope="module")
def nt():
  if not ntk_compat.is_installed():
    pytest.skip(f"neural-tangents is not installed ({ntk_compat.INSTALL_COMMAND})")
  return ntk_compat.import_neural_tangents()


# ---------------------------------------------------------------------------------------------------------------
# Against neural-tangents.
# ---------------------------------------------------------------------------------------------------------------


def _nt_kernels(network, x1, x2):
  """NNGP and NTK of a stax network, jitted (eager stax kernels of convolutions cost seconds)."""
  return jax.jit(network[2], static_argnames="get")(x1, x2, get=("nngp", "ntk"))


def _phi(stax, name):
  return {"relu": stax.Relu, "erf": stax.Erf, "gelu": lambda: stax.Gelu(approximate=False)}[name]()


# Gelu (quadrature on our side) is compared through the stored reference below, which costs one compilation less.
@pytest.mark.parametrize("activation, parameterization", [("relu", "ntk"), ("erf", "ntk"), ("relu", "standard")])
def test_mlp_equals_neural_tangents(nt, activation, parameterization):
  stax, width, depth = nt.stax, 16, 3
  dense = lambda: stax.Dense(width, SW, SB, parameterization=parameterization)
  layers = [dense()]
  for _ in range(depth - 1):
    layers += [_phi(stax, activation), dense()]
  expected = _nt_kernels(stax.serial(*layers), X1, X2)
  got = kernels.mlp_kernels(X1, X2, activation=activation, depth=depth, sigma_w=SW, sigma_b=SB,
                            parameterization=parameterization, widths=width)
  assert got.nngp.shape == got.ntk.shape == (4, 3)
  assert _max_rel(got.nngp, expected.nngp) < RTOL
  assert _max_rel(got.ntk, expected.ntk) < RTOL


@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_stable_resnet_equals_neural_tangents(nt, parameterization):
  stax, width, depth = nt.stax, 16, 3
  s = 1.0 / math.sqrt(depth - 1)
  if parameterization == "ntk":
    sigma_b, bias = SB, SB
    branch = stax.serial(stax.Relu(), stax.Dense(width, SW * s, SB * s))
  else:
    # Our standard branch s·(W φ(y)), W ~ N(0, σw²/n): relu scaled by s (ABRelu(0, s)) then a bias-free Dense. NT's
    # FanInSum needs a Gaussian branch output, so a scaled bias cannot be expressed; the bias term is checked by the
    # wide-network test below.
    sigma_b, bias = 0.0, None
    branch = stax.serial(stax.ABRelu(0.0, s), stax.Dense(width, SW, None, parameterization="standard"))
  block = stax.serial(stax.FanOut(2), stax.parallel(stax.Identity(), branch), stax.FanInSum())
  first = stax.Dense(width, SW, bias, parameterization=parameterization)
  with pytest.warns(UserWarning, match="FanIn"):
    expected = _nt_kernels(stax.serial(first, *[block] * (depth - 1)), X1, X2)
  got = kernels.resnet_kernels(X1, X2, activation="relu", depth=depth, sigma_w=SW, sigma_b=sigma_b, stable=True,
                               parameterization=parameterization, widths=width, use_bias=bias is not None)
  assert _max_rel(got.nngp, expected.nngp) < RTOL
  assert _max_rel(got.ntk, expected.ntk) < RTOL


CNN_X1 = RNG.normal(size=(3, 5, 2))
CNN_X2 = RNG.normal(size=(2, 5, 2))


def test_circular_cnn_equals_neural_tangents(nt):
  stax, channels, depth, parameterization = nt.stax, 8, 3, "ntk"
  layers = []
  for _ in range(depth - 1):
    layers += [stax.Conv(channels, (3,), padding="CIRCULAR", W_std=SW, b_std=SB, parameterization=parameterization),
               stax.Erf()]
  layers += [stax.Flatten(), stax.Dense(1, SW, SB, parameterization=parameterization)]
  expected = _nt_kernels(stax.serial(*layers), CNN_X1, CNN_X2)
  got = kernels.cnn_kernels(CNN_X1, CNN_X2, activation="erf", depth=depth, sigma_w=SW, sigma_b=SB,
                            parameterization=parameterization, channels=channels)
  assert got.nngp.shape == (3, 2)
  assert _max_rel(got.nngp, expected.nngp) < RTOL
  assert _max_rel(got.ntk, expected.ntk) < RTOL


def test_2d_circular_cnn_standard_equals_neural_tangents(nt):
  stax, standard = nt.stax, {"parameterization": "standard"}
  x1, x2 = RNG.normal(size=(2, 3, 4, 2)), RNG.normal(size=(1, 3, 4, 2))
  expected = _nt_kernels(stax.serial(stax.Conv(4, (3, 3), padding="CIRCULAR", W_std=SW, b_std=SB, **standard),
                                     stax.Relu(), stax.Flatten(), stax.Dense(1, SW, SB, **standard)), x1, x2)
  got = kernels.cnn_kernels(x1, x2, activation="relu", depth=2, sigma_w=SW, sigma_b=SB, channels=4, **standard)
  assert _max_rel(got.nngp, expected.nngp) < RTOL
  assert _max_rel(got.ntk, expected.ntk) < RTOL


@pytest.mark.parametrize("case", REFERENCE["cases"], ids=[c["name"] for c in REFERENCE["cases"]])
def test_reproduces_the_stored_neural_tangents_reference(case):
  function = getattr(kernels, case["function"])
  got = function(np.asarray(REFERENCE["inputs"]), **case["kwargs"])
  assert _max_rel(got.nngp, case["nngp"]) < RTOL
  assert _max_rel(got.ntk, case["ntk"]) < RTOL


# ---------------------------------------------------------------------------------------------------------------
# Closed forms and theory.maps.
# ---------------------------------------------------------------------------------------------------------------


def _first_layer(x1, x2):
  d = x1.shape[1]
  return SB**2 + SW**2 * x1 @ x2.T / d, SB**2 + SW**2 * np.sum(x1**2, 1) / d, SB**2 + SW**2 * np.sum(x2**2, 1) / d


def test_one_hidden_layer_relu_is_the_arc_cosine_kernel():
  # Cho & Saul 2009: E[relu(u)relu(v)] = √(q1 q2)(sin θ + (π − θ) cos θ)/(2π), E[relu'(u)relu'(v)] = (π − θ)/(2π).
  k1, q1, q2 = _first_layer(X1, X2)
  scale = np.sqrt(np.outer(q1, q2))
  theta = np.arccos(np.clip(k1 / scale, -1, 1))
  nngp = SB**2 + SW**2 * scale * (np.sin(theta) + (math.pi - theta) * np.cos(theta)) / (2 * math.pi)
  ntk = nngp + SW**2 * (math.pi - theta) / (2 * math.pi) * k1
  got = kernels.mlp_kernels(X1, X2, activation="relu", depth=2, sigma_w=SW, sigma_b=SB)
  assert _max_rel(got.nngp, nngp) < tol(1e-6, 1e-13)
  assert _max_rel(got.ntk, ntk) < tol(1e-6, 1e-13)


def test_one_hidden_layer_erf_is_the_arcsine_kernel():
  # Williams 1997: E[erf(u)erf(v)] = (2/π) arcsin(2Σ12/√((1 + 2q1)(1 + 2q2))), E[erf'erf'] = (4/π)/√(det).
  k1, q1, q2 = _first_layer(X1, X2)
  a = np.outer(1 + 2 * q1, 1 + 2 * q2)
  nngp = SB**2 + SW**2 * (2 / math.pi) * np.arcsin(2 * k1 / np.sqrt(a))
  ntk = nngp + SW**2 * (4 / math.pi) / np.sqrt(a - 4 * k1**2) * k1
  got = kernels.mlp_kernels(X1, X2, activation="erf", depth=2, sigma_w=SW, sigma_b=SB)
  assert _max_rel(got.nngp, nngp) < tol(1e-6, 1e-13)
  assert _max_rel(got.ntk, ntk) < tol(1e-6, 1e-13)


def test_first_layer_is_theory_maps_input_kernel():
  got = kernels.mlp_kernels(X1, X2, activation="erf", depth=1, sigma_w=SW, sigma_b=SB)
  for i, j in [(0, 0), (1, 2), (3, 1)]:
    q1, q2, c = maps.input_kernel(X1[i], X2[j], SB, SW)
    np.testing.assert_allclose(got.nngp[i, j], c * np.sqrt(q1 * q2), rtol=tol(1e-6, 1e-13))
  np.testing.assert_allclose(got.ntk, got.nngp, rtol=tol(1e-6, 1e-13))


def test_mlp_nngp_is_theory_maps_propagate():
  depth = 4
  got = kernels.mlp_kernels(X1, X2, activation="erf", depth=depth, sigma_w=SW, sigma_b=SB)
  for i, j in [(0, 0), (2, 1)]:
    q1, q2, c = maps.input_kernel(X1[i], X2[j], SB, SW)
    path = maps.propagate("erf", SB, SW, depth, q1, c1=c, q1_other=q2)
    np.testing.assert_allclose(got.nngp[i, j], path.c[-1] * np.sqrt(path.q[-1] * path.q_other[-1]),
                               rtol=tol(1e-5, 1e-12))


@pytest.mark.parametrize("stable", [False, True])
def test_resnet_nngp_diagonal_is_propagate_q(stable):
  depth = 4
  got = kernels.resnet_kernels(X1, activation="relu", depth=depth, sigma_w=SW, sigma_b=SB, stable=stable)
  q1 = SB**2 + SW**2 * np.sum(X1**2, 1) / X1.shape[1]
  architecture = "stable_resnet" if stable else "resnet"
  expected = [maps.propagate("relu", SB, SW, depth, q, architecture=architecture).q[-1] for q in q1]
  np.testing.assert_allclose(np.diag(got.nngp), expected, rtol=tol(1e-5, 1e-12))


def test_cnn_nngp_diagonal_is_propagate_q_for_equal_norm_positions():
  # Every position of an input has the same norm, so every position keeps the FFNN variance q^l ([R] App. A.1).
  angles = RNG.uniform(0, 2 * math.pi, size=CNN_X1.shape[:2])
  radii = np.array([0.5, 1.0, 2.0])[:, None, None]
  x = radii * np.stack([np.cos(angles), np.sin(angles)], axis=-1)
  # x2 = x[:2] keeps the shapes of the neural-tangents test above (one compilation); its diagonal is the self-kernel.
  got = kernels.cnn_kernels(x, x[:2], activation="erf", depth=3, sigma_w=SW, sigma_b=SB)
  for i, r in enumerate(radii.ravel()[:2]):
    q = maps.propagate("erf", SB, SW, 3, SB**2 + SW**2 * r**2 / 2, architecture="cnn").q[-1]
    np.testing.assert_allclose(got.nngp[i, i], q, rtol=tol(1e-5, 1e-12))


def test_relu_diagonal_is_exact_in_float32():
  # On the diagonal c = 1: q^{l+1} = σb² + σw² q^l/2 and Θ^{l+1} = q^{l+1} + (σw²/2) Θ^l (ReLU, THEORY.md §8).
  # A correlation left at 1 − 6e-8 by round-off would put ~1e-3 relative error into Θ^20 in float32.
  depth, sw, sb = 20, math.sqrt(2.0), 0.05
  got = kernels.mlp_kernels(X1, activation="relu", depth=depth, sigma_w=sw, sigma_b=sb)
  q = sb**2 + sw**2 * np.sum(X1**2, 1) / X1.shape[1]
  theta = q
  for _ in range(depth - 1):
    q = sb**2 + sw**2 * q / 2
    theta = q + sw**2 / 2 * theta
  np.testing.assert_allclose(np.diag(got.nngp), q, rtol=tol(1e-5, 1e-12))
  np.testing.assert_allclose(np.diag(got.ntk), theta, rtol=tol(1e-5, 1e-12))


def _gauss(h, q):
  """E[h(√q Z)] by adaptive quadrature in float64 (scipy), independent of theory.gaussian."""
  density = lambda z: h(math.sqrt(q) * z) * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
  return integrate.quad(density, -12, 12, epsabs=0.0, epsrel=1e-13, limit=200)[0]


def test_tanh_ntk_diagonal_follows_the_hand_recursion():
  # On the diagonal c = 1, so Σ̇^{l+1} = σw² E[φ'(√q^l Z)²] and Θ^{l+1} = q^{l+1} + Σ̇^{l+1} Θ^l (THEORY.md §8),
  # with q^{l+1} = σb² + σw² E[φ(√q^l Z)²]: one-dimensional integrals, done here by scipy.
  # x2 = x is passed, so every pair is integrated (x2 omitted mirrors the upper triangle: the gelu reference case).
  depth, x = 3, X1[:3]
  got = kernels.mlp_kernels(x, x, activation="tanh", depth=depth, sigma_w=SW, sigma_b=SB)
  for i in range(x.shape[0]):
    q = SB**2 + SW**2 * np.sum(x[i]**2) / x.shape[1]
    theta = q
    for _ in range(depth - 1):
      slope = SW**2 * _gauss(lambda u: (1 - math.tanh(u)**2)**2, q)
      q = SB**2 + SW**2 * _gauss(lambda u: math.tanh(u)**2, q)
      theta = q + slope * theta
    np.testing.assert_allclose(got.nngp[i, i], q, rtol=tol(1e-5, 1e-12))
    np.testing.assert_allclose(got.ntk[i, i], theta, rtol=tol(1e-5, 1e-12))
  np.testing.assert_allclose(got.ntk, got.ntk.T, rtol=tol(1e-5, 1e-13))


def _standard_net(params, x, stable_scale=None):
  """A standard-parameterised net ``y = h W + b``; with ``stable_scale`` the later layers are residual blocks."""
  (w0, b0), *rest = params
  h = x @ w0 + b0
  for w, b in rest:
    branch = jax.nn.relu(h) @ w + b
    h = h + stable_scale * branch if stable_scale is not None else branch
  return h


def _init(key, sizes):
  params = []
  for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
    key, kw, kb = jax.random.split(key, 3)
    params.append((SW * jax.random.normal(kw, (fan_in, fan_out)) / math.sqrt(fan_in),
                   SB * jax.random.normal(kb, (fan_out,))))
  return params


@pytest.mark.slow
@pytest.mark.parametrize("residual", [False, True])
def test_standard_ntk_is_the_mean_empirical_ntk_of_wide_nets(residual):
  # The standard-parameterised NTK (biases contribute 1, weights fan_in·E[φφ]) is the expected empirical NTK; the
  # NTK-parameterised one is ~width times smaller, so the test separates the two. One net's empirical NTK scatters
  # by ~17% (relu, width 512), so 64 nets give a standard error near 2% and 8% is a 4σ bound.
  width, depth, seeds = 512, 3, 64
  x = X1[:3]
  scale = 1.0 / math.sqrt(depth - 1) if residual else None
  sizes = [x.shape[1]] + [width] * (depth - 1) + ([] if residual else [1])
  if residual:
    sizes = [x.shape[1]] + [width] * depth

  def ntk(key):
    params = _init(key, sizes)
    out = lambda p, xi: _standard_net(p, xi[None], scale)[0, 0]
    jac = jax.vmap(lambda xi: jax.grad(out)(params, xi))(jnp.asarray(x))
    flat = jnp.concatenate([leaf.reshape(x.shape[0], -1) for leaf in jax.tree_util.tree_leaves(jac)], axis=1)
    return flat @ flat.T

  empirical = np.mean(np.asarray(jax.jit(jax.vmap(ntk))(jax.random.split(jax.random.PRNGKey(0), seeds))), axis=0)
  function = kernels.resnet_kernels if residual else kernels.mlp_kernels
  extra = {"stable": True} if residual else {}
  analytic = function(x, activation="relu", depth=depth, sigma_w=SW, sigma_b=SB, parameterization="standard",
                      widths=width, **extra)
  ntk_param = function(x, activation="relu", depth=depth, sigma_w=SW, sigma_b=SB, **extra)
  assert _max_rel(empirical, analytic.ntk) < 0.08
  assert _max_rel(empirical, ntk_param.ntk) > 0.5


# ---------------------------------------------------------------------------------------------------------------
# Transformations.
# ---------------------------------------------------------------------------------------------------------------


def test_vmap_and_grad_over_sigma_w():
  run = lambda sw: kernels.mlp_kernels(X1, X2, activation="relu", depth=3, sigma_w=sw, sigma_b=SB).ntk
  sws = jnp.asarray([1.0, 1.4])
  batched = jax.vmap(run)(sws)
  for k, sw in enumerate([1.0, 1.4]):
    np.testing.assert_allclose(batched[k], run(sw), rtol=tol(1e-6, 1e-13))
  if X64:
    grad = jax.grad(lambda sw: jnp.sum(run(sw)))(1.4)
    h = 1e-5
    fd = (jnp.sum(run(1.4 + h)) - jnp.sum(run(1.4 - h))) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=1e-7)


# ---------------------------------------------------------------------------------------------------------------
# Linearised MSE dynamics.
# ---------------------------------------------------------------------------------------------------------------

N, K, M = 5, 2, 3
_A = RNG.normal(size=(N, N))
THETA = _A @ _A.T + 0.3 * np.eye(N)
CROSS = RNG.normal(size=(M, N))
Y, F0 = RNG.normal(size=(N, K)), RNG.normal(size=(N, K))
Y_TEST, F0_TEST = RNG.normal(size=(M, K)), RNG.normal(size=(M, K))
LR = 0.9


def test_linearised_starts_at_f0_and_converges_to_y():
  out = kernels.linearised_mse(THETA, Y, F0, learning_rate=LR, times=[0.0, 1e6], ntk_test_train=CROSS,
                               f0_test=F0_TEST, y_test=Y_TEST)
  np.testing.assert_allclose(out.train_outputs[0], F0, rtol=tol(1e-5, 1e-13), atol=tol(1e-6, 1e-14))
  np.testing.assert_allclose(out.test_outputs[0], F0_TEST, rtol=tol(1e-5, 1e-13), atol=tol(1e-6, 1e-14))
  np.testing.assert_allclose(out.train_outputs[1], Y, rtol=tol(1e-4, 1e-10), atol=tol(1e-5, 1e-10))
  # At t = ∞ the test outputs are the kernel regression f0_test + Θ_te,tr Θ⁻¹ (Y − f0).
  np.testing.assert_allclose(out.test_outputs[1], F0_TEST + CROSS @ np.linalg.solve(THETA, Y - F0),
                             rtol=tol(1e-4, 1e-9), atol=tol(1e-4, 1e-10))
  np.testing.assert_allclose(out.train_loss[0], 0.5 * np.mean((F0 - Y)**2), rtol=tol(1e-5, 1e-13))
  np.testing.assert_allclose(out.test_loss[0], 0.5 * np.mean((F0_TEST - Y_TEST)**2), rtol=tol(1e-6, 1e-13))
  assert out.train_outputs.shape == (2, N, K) and out.test_outputs.shape == (2, M, K)


@pytest.mark.parametrize("full", [False, True])
def test_linearised_equals_neural_tangents_gradient_descent_mse(nt, full):
  times = np.array([0.0, 0.7, 4.0, 30.0])
  if full:
    b = RNG.normal(size=(N * K, N * K))
    theta, cross = b @ b.T + 0.1 * np.eye(N * K), RNG.normal(size=(M * K, N * K))
    nt_theta = theta.reshape(N, K, N, K).transpose(0, 2, 1, 3)  # NT's (n, n, K, K) layout
    nt_cross = cross.reshape(M, K, N, K).transpose(0, 2, 1, 3)
    predict = nt.predict.gradient_descent_mse(nt_theta, Y, learning_rate=LR, trace_axes=())
  else:
    theta, cross, nt_theta, nt_cross = THETA, CROSS, THETA, CROSS
    predict = nt.predict.gradient_descent_mse(THETA, Y, learning_rate=LR)
  train, test = predict(times, F0, F0_TEST, nt_cross)
  for kernel, kernel_cross in [(theta, cross), (nt_theta, nt_cross)] if full else [(theta, cross)]:
    out = kernels.linearised_mse(kernel, Y, F0, learning_rate=LR, times=times, ntk_test_train=kernel_cross,
                                 f0_test=F0_TEST)
    assert _max_rel(out.train_outputs, train) < tol(1e-5, 1e-12)
    assert _max_rel(out.test_outputs, test) < tol(1e-5, 1e-12)


def test_discrete_steps_equal_explicit_gradient_descent():
  # η chosen so that 1 < η λ_max / N < 2: the power branch (negative base) is exercised and GD still converges.
  n_out = Y.size
  lr = 1.5 * n_out / np.linalg.eigvalsh(THETA)[-1]
  steps = [0, 1, 2, 7, 20]
  out = kernels.linearised_mse(THETA, Y, F0, learning_rate=lr, times=steps, ntk_test_train=CROSS, f0_test=F0_TEST,
                               y_test=Y_TEST, discrete=True)
  f, f_test = F0.copy(), F0_TEST.copy()
  for step in range(steps[-1] + 1):
    if step in steps:
      k = steps.index(step)
      np.testing.assert_allclose(out.train_outputs[k], f, rtol=tol(1e-4, 1e-10), atol=tol(1e-5, 1e-12))
      np.testing.assert_allclose(out.test_outputs[k], f_test, rtol=tol(1e-4, 1e-10), atol=tol(1e-5, 1e-12))
      np.testing.assert_allclose(out.train_loss[k], 0.5 * np.mean((f - Y)**2), rtol=tol(1e-4, 1e-10))
    residual = f - Y
    f = f - lr / n_out * THETA @ residual
    f_test = f_test - lr / n_out * CROSS @ residual


def test_discrete_with_small_steps_matches_continuous():
  steps = np.array([0, 100, 1000, 4000])
  lr = 1e-3
  discrete = kernels.linearised_mse(THETA, Y, F0, learning_rate=lr, times=steps, discrete=True)
  continuous = kernels.linearised_mse(THETA, Y, F0, learning_rate=lr, times=steps)
  # (1 − x)^t vs e^{−xt} differ by ~ t x²/2 with x = ηλ/N <= 3e-3 here.
  assert _max_rel(discrete.train_outputs, continuous.train_outputs) < 1e-2
  assert _max_rel(discrete.train_outputs, continuous.train_outputs) > 0  # different formulas, not one code path


# ---------------------------------------------------------------------------------------------------------------
# Bad input.
# ---------------------------------------------------------------------------------------------------------------

BASE = {"activation": "relu", "depth": 2, "sigma_w": 1.0, "sigma_b": 0.1}


@pytest.mark.parametrize("call, match", [
    (lambda: kernels.mlp_kernels(X1, **{**BASE, "depth": 0}), "depth"),
    (lambda: kernels.mlp_kernels(X1, **{**BASE, "sigma_w": 0.0}), "sigma_w"),
    (lambda: kernels.mlp_kernels(X1, **{**BASE, "sigma_b": -0.1}), "sigma_b"),
    (lambda: kernels.mlp_kernels(X1, **BASE, parameterization="mup"), "parameterization"),
    (lambda: kernels.mlp_kernels(X1, **BASE, parameterization="standard"), "widths"),
    (lambda: kernels.mlp_kernels(X1, **BASE, parameterization="standard", widths=[4, 4]), "widths"),
    (lambda: kernels.mlp_kernels(X1, **BASE, parameterization="standard", widths=0), "widths"),
    (lambda: kernels.mlp_kernels(X1, **BASE, use_bias=False), "sigma_b"),
    (lambda: kernels.mlp_kernels(X1, np.ones((2, 4)), **BASE), "x2"),
    (lambda: kernels.mlp_kernels(np.ones((0, 4)), **BASE), "x1"),
    (lambda: kernels.mlp_kernels(np.array([[np.nan, 1.0]]), **BASE), "x1"),
    (lambda: kernels.mlp_kernels(X1, **BASE, order=0), "order"),
    (lambda: kernels.mlp_kernels(X1, **{**BASE, "activation": "nope"}), "activation"),
    (lambda: kernels.resnet_kernels(X1, **BASE, widths=[4, 5], parameterization="standard"), "widths"),
    (lambda: kernels.resnet_kernels(X1, **BASE, stable="yes"), "stable"),
    (lambda: kernels.cnn_kernels(X1, **BASE), "x1"),
    (lambda: kernels.cnn_kernels(CNN_X1, **{**BASE, "depth": 1}), "depth"),
    (lambda: kernels.cnn_kernels(CNN_X1, **BASE, kernel_size=2), "kernel_size"),
    (lambda: kernels.cnn_kernels(CNN_X1, **BASE, parameterization="standard"), "channels"),
    (lambda: kernels.linearised_mse(THETA, Y, F0, learning_rate=0.0, times=[1.0]), "learning_rate"),
    (lambda: kernels.linearised_mse(THETA, Y, F0, learning_rate=1.0, times=[-1.0]), "times"),
    (lambda: kernels.linearised_mse(THETA, Y, F0, learning_rate=1.0, times=[0.5], discrete=True), "times"),
    (lambda: kernels.linearised_mse(THETA[:3], Y, F0, learning_rate=1.0, times=[1.0]), "ntk_train"),
    (lambda: kernels.linearised_mse(THETA, Y, F0[:3], learning_rate=1.0, times=[1.0]), "f0_train"),
    (lambda: kernels.linearised_mse(THETA, Y, F0, learning_rate=1.0, times=[1.0], f0_test=F0_TEST), "ntk_test_train"),
    (lambda: kernels.linearised_mse(THETA, Y, F0, learning_rate=1.0, times=[1.0], ntk_test_train=CROSS,
                                    f0_test=F0_TEST, y_test=Y), "y_test"),
])
def test_bad_input_raises_value_error_naming_the_argument(call, match):
  with pytest.raises(ValueError, match=match):
    call()
