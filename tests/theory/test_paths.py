"""theory.paths: Tr Π of dense chains by one gradient against explicit path enumeration, the NTK factorisation
Θ = J_v^f Π J_v^fᵀ, the log-space objectives at depth 100, the convergence estimate, and bad input (any apply_fn:
tests/mfprune/test_paths.py)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from theory import paths
from tests.conftest import X64, tol

WIDTHS = [[3, 2, 2], [2, 3, 4, 2], [4, 1, 3]]


FLOAT = jnp.result_type(float)


def _weights(widths, seed=0, scale=1.0):
  """Gaussian kernels N(0, scale²/fan_in) (NumPy's generator: no per-shape compile of jax.random)."""
  rng = np.random.default_rng(seed)
  return [jnp.asarray(scale * rng.standard_normal((a, b)) / math.sqrt(a), FLOAT)
          for a, b in zip(widths[:-1], widths[1:])]


def _normal(seed, shape):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), FLOAT)


def _mask(widths, seed=1):
  rng = np.random.default_rng(seed)
  return [rng.random((a, b)) < 0.7 for a, b in zip(widths[:-1], widths[1:])]


def _by_layer(column_values, weights):
  """Split a vector over all parameters (paths.path_jacobian's column order) into arrays shaped like the kernels."""
  bounds = np.cumsum([0] + [w.size for w in weights])
  return [np.asarray(column_values)[a:b].reshape(w.shape) for a, b, w in zip(bounds[:-1], bounds[1:], weights)]


def _forward(weights, x, activation):
  """The bias-free dense net, written independently of theory.paths."""
  h = x
  for i, w in enumerate(weights):
    if i > 0:
      h = activation(h)
    h = h @ w
  return h


# ---------------------------------------------------------------------------------------------------------------
# Tr Π and its diagonal by one gradient = explicit enumeration ([P] eq. 14-15).
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("widths", WIDTHS)
@pytest.mark.parametrize("masked", [False, True])
def test_trace_and_diagonal_by_gradient_equal_the_enumerated_path_kernel(widths, masked):
  weights = _weights(widths)
  mask = _mask(widths) if masked else None
  jac = np.asarray(paths.path_jacobian(weights, mask=mask), np.float64)
  assert jac.shape == (math.prod(widths), sum(w.size for w in weights))
  kernel = np.asarray(paths.path_kernel(weights, mask=mask))
  # Π(p, p) = Σ_j (∂v_p/∂θ_j)²: the trace of the enumerated kernel is the sum of squares of J_θ^v.
  enumerated = np.sum(jac ** 2)
  np.testing.assert_allclose(np.trace(kernel), enumerated, rtol=tol(1e-5, 1e-12))
  np.testing.assert_allclose(float(paths.chain_path_kernel_trace(weights, mask=mask)), enumerated, rtol=tol(1e-5, 1e-12))
  # Per weight: ∂R_pk(1, θ)/∂(θ_j²) = Σ_p (∂v_p/∂θ_j)², the column sums of squares.
  want = _by_layer(np.sum(jac ** 2, axis=0), weights)
  got = paths.chain_path_kernel_diagonal(weights, mask=mask)
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=tol(1e-5, 1e-12), atol=tol(1e-6, 1e-14))
  per_layer = paths.chain_path_kernel_trace(weights, mask=mask, per_layer=True)
  np.testing.assert_allclose(per_layer, [w.sum() for w in want], rtol=tol(1e-5, 1e-12))
  if masked:  # pruned weights are not parameters: zero columns, zero diagonal
    for g, m in zip(got, mask):
      assert np.all(np.asarray(g)[~m] == 0)
    pruned_columns = ~np.concatenate([m.ravel() for m in mask])
    assert np.all(jac[:, pruned_columns] == 0)


@pytest.mark.parametrize("widths", WIDTHS)
def test_path_values_and_objectives_by_enumeration(widths):
  """v_p is the product along the path; R_sf = Σ_p |v_p| x_s, R_pk = Σ_p v_p² x_s ([P] eq. 9, 15, 16)."""
  weights = _weights(widths, seed=3)
  idx = paths.path_indices(weights)
  values = np.asarray(paths.path_values(weights))
  brute = [np.prod([float(w[idx[p, l], idx[p, l + 1]]) for l, w in enumerate(weights)]) for p in range(len(idx))]
  np.testing.assert_allclose(values, brute, rtol=tol(1e-6, 1e-13))
  x = jnp.asarray(np.random.default_rng(0).random(widths[0]) + 0.1, values.dtype)
  xs = np.asarray(x)[idx[:, 0]]
  for power in (1, 2):
    want = np.sum(np.abs(values) ** power * xs)
    np.testing.assert_allclose(float(paths.chain_path_objective(weights, x, power=power)), want, rtol=tol(1e-5, 1e-12))
    np.testing.assert_allclose(float(paths.chain_log_path_objective(weights, x, power=power)), np.log(want),
                               rtol=tol(1e-5, 1e-12), atol=tol(1e-6, 1e-13))
  np.testing.assert_allclose(float(paths.chain_path_objective(weights)), np.sum(np.abs(values)), rtol=tol(1e-5, 1e-12))


def test_per_layer_trace_is_the_product_of_forward_and_backward_flows():
  """∂R_pk/∂S_l[i, j] = a_{l−1,i} b_{l,j} (a: the forward vector of the squared net, b: the backward one), so a
  layer's share of Tr Π is (1ᵀ a_{l−1})(1ᵀ b_l); checked against a float64 NumPy computation, with a mask."""
  widths = [5, 7, 3, 6, 2]
  weights = _weights(widths, seed=4)
  mask = _mask(widths, seed=5)
  squared = [np.asarray(w, np.float64) ** 2 * m for w, m in zip(weights, mask)]
  forward = [np.ones(widths[0])]
  for s in squared:
    forward.append(forward[-1] @ s)
  backward = [np.ones(widths[-1])]
  for s in reversed(squared):
    backward.insert(0, s @ backward[0])
  want = [forward[l] @ (m * 1.0) @ backward[l + 1] for l, m in enumerate(mask)]
  np.testing.assert_allclose(paths.chain_path_kernel_trace(weights, mask=mask, per_layer=True), want, rtol=tol(1e-5, 1e-12))
  np.testing.assert_allclose(float(paths.chain_path_statistics(weights, mask=mask).log_r_pk), np.log(forward[-1].sum()),
                             rtol=tol(1e-5, 1e-12))


# ---------------------------------------------------------------------------------------------------------------
# The NTK factorisation Θ = J_v^f Π J_v^fᵀ ([P] eq. 10-13).
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, activation", [("relu", jax.nn.relu),
                                              ("leaky_relu", lambda h: jnp.where(h > 0, h, 0.01 * h)),
                                              ("linear", lambda h: h)])
@pytest.mark.parametrize("masked", [False, True])
def test_ntk_equals_path_activations_times_path_kernel(name, activation, masked):
  widths = [3, 4, 2]
  weights = _weights(widths, seed=7)
  mask = _mask(widths, seed=8) if masked else [np.ones(w.shape, bool) for w in weights]
  pruned = [w * m for w, m in zip(weights, mask)]
  x = _normal(9, (5, widths[0]))
  j_vf = np.asarray(paths.path_activations(pruned, x, name))  # (n, K, P)
  # f(x) = J_v^f(x) v(θ): the path decomposition of [P] eq. 9.
  f = jax.jit(lambda ws: _forward([w * m for w, m in zip(ws, mask)], x, activation))
  np.testing.assert_allclose(np.einsum("nkp,p->nk", j_vf, np.asarray(paths.path_values(pruned))), f(weights),
                             rtol=tol(1e-5, 1e-12), atol=tol(1e-6, 1e-13))
  # The empirical NTK of the pruned net (gradients with respect to the kept weights) by jax.jacobian.
  jac = jax.jit(jax.jacobian(f))(weights)
  flat = np.concatenate([np.reshape(j, j.shape[:2] + (-1,)) for j in jac], axis=-1)  # (n, K, M)
  ntk = np.einsum("nkm,olm->nkol", flat, flat)
  kernel = np.asarray(paths.path_kernel(weights, mask=mask))
  factorised = np.einsum("nkp,pq,olq->nkol", j_vf, kernel, j_vf)
  np.testing.assert_allclose(factorised, ntk, rtol=tol(1e-4, 1e-11), atol=tol(1e-5, 1e-12))


def test_path_kernel_is_independent_of_the_activation_and_dominates_the_ntk_trace_by_theorem_1():
  """Theorem 1 [P]: Σ λ_i(Θ) <= Σ ν_i π_i; with a single input and output, Tr Θ = Σ_j (∂f/∂θ_j)² is at most
  ν_max · Tr Π where ν_max = ‖J_v^f‖² is the largest eigenvalue of J_v^fᵀ J_v^f."""
  weights = _weights([3, 4, 1], seed=11)
  x = _normal(12, (1, 3))
  j_vf = np.asarray(paths.path_activations(weights, x[0], "relu"))  # (1, P)
  grads = jax.jit(jax.grad(lambda ws: _forward(ws, x, jax.nn.relu)[0, 0]))(weights)
  ntk_trace = sum(float(np.sum(np.asarray(g) ** 2)) for g in grads)
  nu_max = float(np.sum(j_vf ** 2))
  assert ntk_trace <= nu_max * float(paths.chain_path_kernel_trace(weights)) * (1 + 1e-5)


# ---------------------------------------------------------------------------------------------------------------
# Log space: exact, and finite at depth 100 in float32.
# ---------------------------------------------------------------------------------------------------------------


def test_log_versions_equal_the_plain_ones():
  widths = [4, 5, 3, 2]
  weights = _weights(widths, seed=13)
  mask = _mask(widths, seed=14)
  for m in (None, mask):
    stats = paths.chain_path_statistics(weights, mask=m)
    per_layer = paths.chain_path_kernel_trace(weights, mask=m, per_layer=True)
    np.testing.assert_allclose(stats.log_layer_traces, np.log(per_layer), rtol=tol(1e-5, 1e-12))
    np.testing.assert_allclose(float(stats.log_trace), np.log(np.sum(per_layer)), rtol=tol(1e-5, 1e-12))
    np.testing.assert_allclose(paths.chain_log_path_kernel_trace(weights, mask=m, per_layer=True), stats.log_layer_traces,
                               rtol=tol(1e-6, 1e-13))
    np.testing.assert_allclose(float(paths.chain_log_path_kernel_trace(weights, mask=m)), float(stats.log_trace),
                               rtol=tol(1e-6, 1e-13))
    diagonal = paths.chain_path_kernel_diagonal(weights, mask=m)
    for log_d, d in zip(paths.chain_log_path_kernel_diagonal(weights, mask=m), diagonal):
      d = np.asarray(d)
      np.testing.assert_allclose(np.asarray(log_d)[d > 0], np.log(d[d > 0]), rtol=tol(1e-5, 1e-12),
                                 atol=tol(1e-5, 1e-12))
      assert np.all(np.asarray(log_d)[d == 0] == -np.inf)
  # The log objective's gradient is ∂ log R = ∂R / R (the renormalisation scalars are constants that cancel).
  x = jnp.asarray([0.5, 1.0, 2.0, 0.25], weights[0].dtype)
  g_log = jax.jit(jax.grad(lambda ws: paths.chain_log_path_objective(ws, x, power=2)))(weights)
  g = jax.jit(jax.grad(lambda ws: paths.chain_path_objective(ws, x, power=2)))(weights)
  r = float(paths.chain_path_objective(weights, x, power=2))
  for a, b in zip(g_log, g):
    np.testing.assert_allclose(a, np.asarray(b) / r, rtol=tol(1e-5, 1e-12), atol=tol(1e-7, 1e-15))


_STATISTICS = jax.jit(paths.chain_path_statistics)


def _float64_flows(weights, power):
  """log of forward/backward flows of the net on |θ|^power in float64 NumPy, renormalised (an oracle)."""
  mats = [np.abs(np.asarray(w, np.float64)) ** power for w in weights]
  log_fwd, h, log_s = [0.0], np.ones(mats[0].shape[0]), 0.0
  fwd = [h]
  for s in mats:
    h = h @ s
    c = h.sum()
    h, log_s = h / c, log_s + np.log(c)
    fwd.append(h)
    log_fwd.append(log_s)
  log_bwd, b, log_t = [0.0], np.ones(mats[-1].shape[1]), 0.0
  bwd = [b]
  for s in reversed(mats):
    b = s @ b
    c = b.sum()
    b, log_t = b / c, log_t + np.log(c)
    bwd.insert(0, b)
    log_bwd.insert(0, log_t)
  layers = [np.log(fwd[l].sum()) + log_fwd[l] + np.log(bwd[l + 1].sum()) + log_bwd[l + 1] for l in range(len(mats))]
  return layers, log_fwd[-1] + np.log(fwd[-1].sum())


@pytest.mark.parametrize("scale", [2.0, 0.25])
def test_depth_100_is_finite_in_log_space_and_exact(scale):
  """σw = 2: R_pk grows ~4^100 (overflows float32); σw = 0.25: it shrinks ~16^-100 (underflows). The log versions
  match a float64 oracle either way."""
  widths = [6] * 101
  weights = _weights(widths, seed=15, scale=scale)
  stats = _STATISTICS(weights)  # both scales share one compiled program
  layers, log_r_pk = _float64_flows(weights, 2)
  _, log_r_sf = _float64_flows(weights, 1)
  assert np.all(np.isfinite(np.asarray(stats.log_layer_traces)))
  atol = tol(2e-3, 1e-9)  # 100 layers of float32 rounding in the log
  np.testing.assert_allclose(stats.log_layer_traces, layers, atol=atol)
  np.testing.assert_allclose(float(stats.log_trace), np.logaddexp.reduce(layers), atol=atol)
  np.testing.assert_allclose(float(stats.log_r_pk), log_r_pk, atol=atol)
  np.testing.assert_allclose(float(stats.log_r_sf), log_r_sf, atol=atol)
  assert abs(log_r_pk) > 100  # far outside float32's range (|log| < 89), so the plain value over- or underflows
  if not X64:
    plain = float(paths.chain_path_objective(weights, power=2))
    assert plain == (np.inf if scale > 1 else 0.0)


# ---------------------------------------------------------------------------------------------------------------
# Convergence estimate of [P] Fig. 1.
# ---------------------------------------------------------------------------------------------------------------


def test_convergence_estimate_solves_the_linearised_ode_and_the_fit_passes_through_the_measurement():
  trace, eta, a, b = 37.0, 1e-3, 2.5, 0.7
  # y(0) = b, y(∞) = a, and dy/dt = η Tr (a − y): the exponential relaxation of [P] eq. 7-8 with Θ -> Tr Π.
  assert float(paths.convergence_estimate(trace, eta, 0.0, scale=a, offset=b)) == pytest.approx(b, rel=1e-6)
  assert float(paths.convergence_estimate(trace, eta, 1e9, scale=a, offset=b)) == pytest.approx(a, rel=1e-6)
  for t in (0.0, 3.0, 40.0):
    y = paths.convergence_estimate(trace, eta, t, scale=a, offset=b)
    dy = jax.grad(lambda s: paths.convergence_estimate(trace, eta, s, scale=a, offset=b))(t)
    np.testing.assert_allclose(float(dy), eta * trace * (a - float(y)), rtol=tol(1e-5, 1e-12))
  # offset=None is the ‖ω_t‖ curve a(1 − e^{−η Tr t}), i.e. offset 0.
  ts = jnp.asarray([0.5, 10.0, 60.0])
  np.testing.assert_allclose(paths.convergence_estimate(trace, eta, ts, scale=a),
                             a * (1 - np.exp(-eta * trace * np.asarray(ts))), rtol=tol(1e-5, 1e-12))
  for initial in (None, b):
    fit = paths.fit_convergence_scale(trace, eta, 60.0, 1.9, initial=initial)
    again = paths.convergence_estimate(trace, eta, 60.0, scale=fit.scale, offset=fit.offset)
    np.testing.assert_allclose(float(again), 1.9, rtol=tol(1e-5, 1e-12))
    assert float(fit.offset) == pytest.approx(0.0 if initial is None else b)
  # Tiny η Tr t: 1 − e^{−u} by expm1 keeps full precision.
  fit = paths.fit_convergence_scale(1e-6, 1e-3, 1.0, 1e-9)
  np.testing.assert_allclose(float(fit.scale), 1e-9 / -np.expm1(-1e-9), rtol=tol(1e-6, 1e-13))


def test_convergence_bad_input():
  with pytest.raises(ValueError, match="trace"):
    paths.convergence_estimate(-1.0, 1e-3, 1.0, scale=1.0)
  with pytest.raises(ValueError, match="learning_rate"):
    paths.convergence_estimate(1.0, 0.0, 1.0, scale=1.0)
  with pytest.raises(ValueError, match="t must be >= 0"):
    paths.convergence_estimate(1.0, 1e-3, -2.0, scale=1.0)
  with pytest.raises(ValueError, match="scale"):
    paths.convergence_estimate(1.0, 1e-3, 1.0, scale=np.nan)
  with pytest.raises(ValueError, match="t_fit"):
    paths.fit_convergence_scale(1.0, 1e-3, 0.0, 1.0)
  with pytest.raises(ValueError, match="trace"):
    paths.fit_convergence_scale(0.0, 1e-3, 1.0, 1.0)
  with pytest.raises(ValueError, match="initial"):
    paths.fit_convergence_scale(1.0, 1e-3, 1.0, 1.0, initial=np.inf)


# ---------------------------------------------------------------------------------------------------------------
# Bad input.
# ---------------------------------------------------------------------------------------------------------------


def test_bad_weights_masks_and_inputs_are_refused_with_the_argument_named():
  w = _weights([3, 2, 2])
  with pytest.raises(ValueError, match=r"weights\[1\].*looks like a bias"):
    paths.chain_path_kernel_trace([w[0], jnp.zeros(2), w[1]])
  with pytest.raises(ValueError, match=r"weights\[0\] must be a 2-D kernel"):
    paths.chain_path_objective([jnp.zeros((3, 2, 2))])
  with pytest.raises(ValueError, match=r"weights\[1\] has fan_in 3"):
    paths.chain_path_kernel_trace([w[0], jnp.zeros((3, 2))])
  with pytest.raises(ValueError, match="sequence of 2-D kernels"):
    paths.chain_path_kernel_trace(w[0])
  with pytest.raises(ValueError, match="at least one"):
    paths.chain_path_kernel_trace([])
  with pytest.raises(ValueError, match=r"weights\[0\] must be finite"):
    paths.chain_path_kernel_trace([w[0].at[0, 0].set(jnp.nan), w[1]])
  with pytest.raises(ValueError, match=r"mask\[1\] must have the shape"):
    paths.chain_path_kernel_trace(w, mask=[jnp.ones((3, 2)), jnp.ones((2, 3))])
  with pytest.raises(ValueError, match=r"mask\[0\] must hold only 0/1"):
    paths.chain_path_kernel_trace(w, mask=[jnp.full((3, 2), 0.5), jnp.ones((2, 2))])
  with pytest.raises(ValueError, match="mask must be a sequence of 2"):
    paths.chain_path_kernel_trace(w, mask=[jnp.ones((3, 2))])
  with pytest.raises(ValueError, match=r"x must be one input of shape \(3,\)"):
    paths.chain_path_objective(w, jnp.ones(4))
  with pytest.raises(ValueError, match="x must be >= 0"):
    paths.chain_log_path_objective(w, -jnp.ones(3))
  with pytest.raises(ValueError, match="power must be > 0"):
    paths.chain_path_objective(w, power=0)
  with pytest.raises(ValueError, match=r"x must have shape \(n, 3\)"):
    paths.path_activations(w, jnp.ones((2, 4)), "relu")


def test_too_many_paths_are_refused():
  weights = _weights([8, 8, 8, 8, 8])  # 8^5 = 32768 paths
  with pytest.raises(ValueError, match="32768 paths.*max_paths=4096"):
    paths.path_jacobian(weights)
  assert paths.path_count(weights) == 8 ** 5
  assert paths.path_indices(weights[:2], max_paths=512).shape == (512, 3)
  with pytest.raises(ValueError, match="max_paths"):
    paths.path_values(weights[:2], max_paths=0)


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "linear"])
def test_homogeneous_activations_pass(name):
  assert paths.check_homogeneous(name).name == name


@pytest.mark.parametrize("name", ["tanh", "erf", "gelu", "softplus"])
def test_non_homogeneous_activations_are_refused_by_name(name):
  with pytest.raises(ValueError, match=f"activation must be positively homogeneous.*'{name}' is not"):
    paths.path_activations(_weights([2, 2, 1]), jnp.ones((1, 2)), name)


def test_jit_and_vmap():
  """The gradient trace runs under jit and vmap (over seeds of the same shapes)."""
  stacked = [_normal(0, (3, 3, 4)), _normal(1, (3, 4, 2))]
  got = jax.jit(jax.vmap(lambda ws: paths.chain_path_kernel_trace(ws)))(stacked)
  want = [float(paths.chain_path_kernel_trace([stacked[0][i], stacked[1][i]])) for i in range(3)]
  np.testing.assert_allclose(got, want, rtol=tol(1e-5, 1e-12))
