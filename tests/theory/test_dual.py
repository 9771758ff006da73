"""theory.dual: Mehler sums against the quadrature of theory.gaussian, closed forms, Monte Carlo, exact Hermite
identities and finite differences; the truncation bound holds; the kernels that use it agree with a quadrature
recursion; theory.gaussian's shared node set and its kink rule near c = ±1."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.conftest import tol
from theory import dual, gaussian, kernels, maps
from theory.activations import available_activations, get_activation

Q = np.array([1e-3, 1e-1, 1.0, 10.0, 1e3])
C = np.array([-1.0, -(1 - 1e-7), -0.5, 0.0, 0.3, 0.9, 1 - 1e-7, 1.0])
NUMERICAL = sorted(name for name in available_activations()
                   if get_activation(name).closed_form is None and name != "swish")  # swish is silu
# Relative to the entry's Cauchy-Schwarz scale √(E[φ(u1)²] E[φ(u2)²]): float32 round-off of both sides, and the
# default tolerance (1e-12) plus round-off in float64.
RTOL = tol(2e-6, 1e-11)


def _user_activation(x):
  return jnp.arctan(2.0 * x) + 0.1 * x * x


def _grid():
  return Q[:, None, None], Q[None, :, None], C[None, None, :]


def _reference(act, q1, q2, c, order=tol(64, 128)):
  return gaussian.expect2_pairs(((act, act), (act.derivative, act.derivative)), q1, q2, c, order)


def _scaled_error(act, got, ref, q1, q2):
  value_scale = np.sqrt(np.asarray(act.second_moment(q1) * act.second_moment(q2), np.float64))
  slope_scale = np.sqrt(np.asarray(act.derivative_second_moment(q1) * act.derivative_second_moment(q2), np.float64))
  err = lambda a, b, s: float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)) / s))
  return err(got.value, ref[0], value_scale), err(got.slope, ref[1], slope_scale)


@pytest.mark.parametrize("name", NUMERICAL + ["user"])
def test_equals_quadrature_on_a_grid_of_variances_and_correlations(name):
  act = get_activation(_user_activation if name == "user" else name)
  q1, q2, c = _grid()
  got = dual.dual_moments(act, q1, q2, c)
  assert got.value.shape == got.slope.shape == got.integrated.shape == (5, 5, 8)
  value_err, slope_err = _scaled_error(act, got, _reference(act, q1, q2, c), q1, q2)
  assert value_err < RTOL and slope_err < RTOL


@pytest.mark.parametrize("name, closed", [("relu", "relu"), ("erf", "erf"), ("leaky", "leaky_relu")])
def test_mehler_path_reproduces_the_closed_forms(name, closed):
  # The callables have no closed form, so the Mehler sums (and, at the kink near c = ±1, the quadrature) are used.
  fns = {"relu": lambda x: jnp.maximum(x, 0.0), "erf": jax.scipy.special.erf,
         "leaky": lambda x: jnp.where(x >= 0, x, 0.2 * x)}
  exact = get_activation(closed, negative_slope=0.2) if closed == "leaky_relu" else get_activation(closed)
  q1, q2, c = _grid()
  got = dual.dual_moments(fns[name], q1, q2, c)
  ref = (exact.cross_moment(q1, q2, c), exact.derivative_cross_moment(q1, q2, c))
  value_err, slope_err = _scaled_error(exact, got, ref, q1, q2)
  # The step functions' E[φ'φ'] = ... + arcsin(c)/2π has an infinite slope at c = ±1: in float32 one ulp of
  # c = ±(1 − 1e-7) is worth ~1e-5 on either side. In float64 the limit is the quadrature's at order 64 for
  # erf(√q u) at q = 1e3, a near-step, where its pairs fall back (1e-9).
  assert value_err < tol(2e-6, 2e-10) and slope_err < tol(2e-5, 2e-9)


def test_closed_forms_take_priority_and_nothing_is_integrated():
  q1, q2, c = _grid()
  got = dual.dual_moments("relu", q1, q2, c)
  act = get_activation("relu")
  np.testing.assert_array_equal(got.value, jnp.broadcast_to(act.cross_moment(q1, q2, c), got.value.shape))
  assert not bool(jnp.any(got.integrated))


@pytest.mark.parametrize("name", ["tanh", "selu"])
def test_agrees_with_monte_carlo(name):
  q1, q2, c = 0.5, 2.0, 0.7
  z = jax.random.normal(jax.random.key(0), (2, 1 << 20))
  u1 = math.sqrt(q1) * z[0]
  u2 = math.sqrt(q2) * (c * z[0] + math.sqrt(1 - c * c) * z[1])
  act = get_activation(name)
  got = dual.dual_moments(act, q1, q2, c)
  for moment, samples in ((got.value, act(u1) * act(u2)), (got.slope, act.derivative(u1) * act.derivative(u2))):
    stderr = float(jnp.std(samples)) / math.sqrt(samples.size)
    assert abs(float(moment) - float(jnp.mean(samples))) < 5 * stderr


def test_a_polynomial_has_exact_coefficients_and_no_tail():
  # z³ = √6 h_3 + 3 h_1, so φ(u) = u³ at variance q has a_1 = 3 q^{3/2}, a_3 = √6 q^{3/2} and nothing else.
  q = 0.7
  e = dual.hermite_expansion(lambda u: u**3, q, degree=8)
  expected = np.zeros(9)
  expected[1], expected[3] = 3 * q**1.5, math.sqrt(6) * q**1.5
  np.testing.assert_allclose(e.coefficients, expected, atol=tol(1e-6, 1e-13))
  assert float(e.tail) < tol(1e-6, 1e-12)
  assert float(e.second_moment) == pytest.approx(15 * q**3, rel=tol(1e-6, 1e-13))  # E[Z⁶] = 15


@pytest.mark.parametrize("q", [0.3, 2.0])
def test_derivative_coefficients_are_shifted_coefficients(q):
  # d/dz φ(√q z) = √q φ'(√q z) and h_k' = √k h_{k-1}, so b_k = √((k + 1)/q) a_{k+1}.
  a = dual.hermite_expansion(jnp.tanh, q, degree=65).coefficients
  b = dual.hermite_expansion(get_activation("tanh").derivative, q, degree=64).coefficients
  k = np.arange(65)
  np.testing.assert_allclose(b, np.sqrt((k + 1) / q) * a[1:], atol=tol(1e-6, 1e-10))


def test_parseval_the_tail_closes_the_second_moment():
  e = dual.hermite_expansion(get_activation("elu"), jnp.asarray(Q), degree=32)
  total = jnp.sum(e.coefficients**2, axis=-1) + e.tail**2
  np.testing.assert_allclose(total, e.second_moment, rtol=tol(1e-5, 1e-11))
  assert bool(jnp.all(e.tail > 0))  # a kink: the series does not end
  smooth = dual.hermite_expansion(jnp.tanh, 0.5, degree=128)  # tanh at q = 0.5: the tail is at round-off
  assert float(smooth.tail) < tol(1e-3, 1e-7) * math.sqrt(float(smooth.second_moment))


@pytest.mark.parametrize("name", ["elu", "selu", "tanh"])
def test_the_truncation_bound_holds(name):
  act = get_activation(name)
  q1 = jnp.asarray([0.5, 1.0, 10.0])[:, None]
  q2 = jnp.asarray([0.7, 1.0, 3.0])[None, :]
  c = jnp.asarray(np.linspace(-1.0, 1.0, 21))[:, None, None]
  both = lambda u: jax.jvp(act, (u,), (jnp.ones_like(u),))
  ref = _reference(act, q1, q2, c)
  for degree in (8, 32):
    (p1, d1), (p2, d2) = dual._expansions(both, q1, degree, 64), dual._expansions(both, q2, degree, 64)
    for e1, e2, exact in ((p1, p2, ref[0]), (d1, d2, ref[1])):
      value, bound = dual.mehler_sum(e1, e2, c)
      scale = jnp.sqrt(e1.second_moment * e2.second_moment)
      # At c = ±1 and q1 = q2 the bound is attained; the slack is the round-off of both sides.
      assert bool(jnp.all(jnp.abs(value - exact) <= bound * (1 + tol(1e-4, 1e-9)) + tol(3e-6, 1e-12) * scale))


def test_pairs_fall_back_exactly_where_the_bound_is_too_large():
  q1, q2, c = _grid()
  tanh = dual.dual_moments("tanh", 1.0, 1.0, jnp.asarray(C))
  assert not bool(jnp.any(tanh.integrated))  # tanh at q = 1: its coefficients decay below float32/64 round-off
  selu = dual.dual_moments("selu", 1.0, 1.0, jnp.asarray([0.0, 0.5, 0.99, 1.0]))
  np.testing.assert_array_equal(selu.integrated, [False, False, True, True])  # SELU's kink near c = 1
  loose = dual.dual_moments("selu", 1.0, 1.0, 0.99, tolerance=0.5)
  assert not bool(loose.integrated)


def test_gradients_match_finite_differences():
  # α = 1: ELU's φ' is continuous. (With α ≠ 1 it jumps at 0, and the Price's-theorem JVP of a quadrature pair,
  # ∂/∂c E[φ'φ'] = √(q1 q2) E[φ''φ''], misses the jump's delta: a known limit of theory.gaussian.)
  act = get_activation("elu", alpha=1.0)
  eps = tol(3e-3, 1e-6)
  rtol = tol(2e-2, 1e-6)
  # A pair summed by Mehler and a pair integrated by quadrature (ELU's φ' near c = 1).
  for q1, q2, c, integrated in ((0.6, 1.4, 0.4, False), (0.6, 1.4, 0.99, True)):
    point = jnp.asarray([q1, q2, c, 1.0])

    def moments(p):
      m = dual.dual_moments(get_activation("elu", alpha=p[3]), p[0], p[1], p[2])
      return jnp.stack([m.value, m.slope])

    assert bool(dual.dual_moments(act, q1, q2, c).integrated) == integrated
    jacobian = jax.jacfwd(moments)(point)
    assert bool(jnp.allclose(jacobian, jax.jacrev(moments)(point), rtol=tol(1e-4, 1e-10), atol=1e-7))
    for i in range(4):
      step = jnp.zeros(4).at[i].set(eps)
      fd = (moments(point + step) - moments(point - step)) / (2 * eps)
      np.testing.assert_allclose(jacobian[:, i], fd, rtol=rtol, atol=tol(1e-3, 1e-8))


def test_jit_and_vmap_over_an_activation_parameter():
  alphas = jnp.asarray([0.5, 1.0, 1.5])
  batched = jax.jit(jax.vmap(lambda a: dual.dual_moments(get_activation("elu", alpha=a), 1.0, 2.0, 0.3).value))
  one_by_one = [float(dual.dual_moments(get_activation("elu", alpha=float(a)), 1.0, 2.0, 0.3).value) for a in alphas]
  np.testing.assert_allclose(batched(alphas), one_by_one, rtol=tol(1e-6, 1e-12))


def _quadrature_mlp(x, activation, depth, sigma_w, sigma_b):
  """The NTK-parameterised recursion of theory.kernels with every moment integrated by expect2_pairs."""
  act = get_activation(activation)
  x = jnp.asarray(x, gaussian.float_dtype())
  nngp = sigma_b**2 + sigma_w**2 * x @ x.T / x.shape[1]
  ntk = nngp
  for _ in range(depth - 1):
    q = jnp.diag(nngp)
    c = jnp.where(jnp.eye(len(q), dtype=bool), 1.0, jnp.clip(nngp / jnp.sqrt(q[:, None] * q[None, :]), -1, 1))
    value, slope = _reference(act, q[:, None], q[None, :], c)
    nngp = sigma_b**2 + sigma_w**2 * value
    ntk = nngp + sigma_w**2 * slope * ntk
  return nngp, ntk


@pytest.mark.parametrize("activation", ["tanh", "selu", "gelu"])
def test_mlp_kernels_equal_the_quadrature_recursion(activation):
  x = np.random.default_rng(1).normal(size=(6, 8))
  # A near-duplicate (c ≈ 0.9995, integrated for SELU). Closer to 1, SELU's E[φ'φ'], with its √(1 − c) cusp at
  # c = 1, turns float32 round-off in c into 1e-5 in the kernel, on either side.
  x[1] = x[0] + 0.03 * x[2]
  got = kernels.mlp_kernels(x, activation=activation, depth=5, sigma_w=1.3, sigma_b=0.2)
  nngp, ntk = _quadrature_mlp(x, activation, 5, 1.3, 0.2)
  # The upper triangles (ours mirrors it; the reference's float32 Gram matrix is symmetric only to an ulp).
  upper = np.triu_indices(len(x))
  for ours, theirs in ((got.nngp, nngp), (got.ntk, ntk)):
    ours, theirs = np.asarray(ours, np.float64)[upper], np.asarray(theirs, np.float64)[upper]
    assert np.max(np.abs(ours - theirs)) < tol(3e-6, 1e-10) * np.max(np.abs(theirs))


def test_correlation_map_uses_mehler_and_keeps_f_of_one_exact():
  c = jnp.linspace(-1.0, 1.0, 11)
  act = get_activation("gelu")
  got = maps.correlation_map(act, 0.2, 1.4, c, q=0.9)
  next_q = 0.04 + 1.96 * act.second_moment(0.9)
  ref = (0.04 + 1.96 * act.cross_moment(0.9, 0.9, c)) / next_q
  np.testing.assert_allclose(got, ref, rtol=tol(2e-6, 1e-12))
  assert float(got[-1]) == pytest.approx(1.0, abs=tol(2e-7, 1e-15))  # c = 1 takes the 1-D moment


def test_kernel_gradients_match_finite_differences():
  x = np.random.default_rng(2).normal(size=(3, 4))
  f = lambda p, x: jnp.sum(kernels.mlp_kernels(x, activation="softplus", depth=3, sigma_w=p[0], sigma_b=p[1]).ntk)
  p = jnp.asarray([1.2, 0.3])
  eps = tol(1e-2, 1e-6)
  grad_p, grad_x = jax.grad(f, argnums=(0, 1))(p, jnp.asarray(x, gaussian.float_dtype()))
  for i in range(2):
    step = jnp.zeros(2).at[i].set(eps)
    assert float(grad_p[i]) == pytest.approx(float((f(p + step, x) - f(p - step, x)) / (2 * eps)), rel=tol(2e-2, 1e-6))
  step = np.zeros_like(x)
  step[1, 2] = eps
  fd = (f(p, x + step) - f(p, x - step)) / (2 * eps)
  assert float(grad_x[1, 2]) == pytest.approx(float(fd), rel=tol(5e-2, 1e-6), abs=tol(1e-3, 1e-9))


@pytest.mark.parametrize("call, match", [
    (lambda: dual.dual_moments("tanh", -1.0, 1.0, 0.5), "q1"),
    (lambda: dual.dual_moments("tanh", 1.0, -1.0, 0.5), "q2"),
    (lambda: dual.dual_moments("tanh", 1.0, 1.0, 1.5), "c"),
    (lambda: dual.dual_moments("tanh", 1.0, 1.0, 0.5, degree=0), "degree"),
    (lambda: dual.dual_moments("tanh", 1.0, 1.0, 0.5, tolerance=0.0), "tolerance"),
    (lambda: dual.dual_moments("tanh", 1.0, 1.0, 0.5, order=0), "order"),
    (lambda: dual.dual_moments("nope", 1.0, 1.0, 0.5), "unknown activation"),
    (lambda: dual.hermite_expansion(jnp.tanh, 1.0, degree=-1), "degree"),
    (lambda: dual.hermite_expansion(jnp.tanh, -2.0), "q"),
    (lambda: dual.mehler_sum(dual.hermite_expansion(jnp.tanh, 1.0, degree=4),
                             dual.hermite_expansion(jnp.tanh, 1.0, degree=5), 0.5), "one degree"),
    (lambda: gaussian.expect2_pairs((), 1.0, 1.0, 0.5), "pairs"),
    (lambda: gaussian.expect2_pairs(((jnp.tanh,),), 1.0, 1.0, 0.5), "pairs"),
])
def test_bad_input_names_the_argument(call, match):
  with pytest.raises(ValueError, match=match):
    call()


# theory.gaussian: one node set for several expectations, and the kink rule near c = ±1.


def test_expect2_pairs_equals_separate_expectations():
  act = get_activation("selu")
  q1, q2, c = jnp.asarray([0.5, 2.0]), jnp.asarray([1.0, 3.0]), jnp.asarray([0.3, -0.8])
  pairs = gaussian.expect2_pairs(((act, act), (act.derivative, jnp.tanh)), q1, q2, c, 32)
  np.testing.assert_array_equal(pairs[0], gaussian.expect2(act, act, q1, q2, c, 32))
  np.testing.assert_array_equal(pairs[1], gaussian.expect2(act.derivative, jnp.tanh, q1, q2, c, 32))
  grads = jax.grad(lambda c: sum(jnp.sum(p) for p in gaussian.expect2_pairs(((act, act), (act, jnp.tanh)), q1, q2,
                                                                              c, 32)))(c)
  alone = jax.grad(lambda c: jnp.sum(gaussian.expect2(act, act, q1, q2, c, 32) +
                                     gaussian.expect2(act, jnp.tanh, q1, q2, c, 32)))(c)
  np.testing.assert_allclose(grads, alone, rtol=tol(1e-6, 1e-13))


def test_low_order_quadrature_is_as_accurate_next_to_c_one_as_at_it():
  # The kink rule used to anchor its middle segment at the clipped kink (±10) when c → 1, away from the Gaussian's
  # bulk: 4e-5 relative error at order 16 for c = 1 − 1e-7 against 2e-7 at c = 1.
  act = get_activation("tanh")
  ref = lambda c: float(gaussian.expect2(act, act, 1.0, 1.0, c, 64))
  for c in (0.9999, 1 - 1e-7, 1.0):
    assert abs(float(gaussian.expect2(act, act, 1.0, 1.0, c, 16)) - ref(c)) < 1e-6 * ref(1.0)
