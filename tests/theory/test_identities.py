"""Identities of the correlation map and fixed points ([R] App. B.1.4; THEORY.md §2), and derivatives."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import theory
from tests.conftest import tol

# Points with a finite q* (ReLU-like φ with σw > √2 have a diverging variance).
POINTS = [("tanh", 0.3, 1.2), ("tanh", 0.1, 1.8), ("erf", 0.2, 1.0), ("selu", 0.3, 1.0), ("gelu", 0.5, 1.3),
          ("sigmoid", 0.5, 3.0), ("elu", 0.4, 1.3)]
C = jnp.linspace(-1.0, 1.0, 81)


@pytest.mark.parametrize("name, sigma_b, sigma_w", POINTS)
def test_f_of_one_is_one_and_f_is_increasing_and_convex(name, sigma_b, sigma_w):
  f = np.asarray(theory.correlation_map(name, sigma_b, sigma_w, C), np.float64)
  assert f[-1] == pytest.approx(1.0, abs=tol(2e-6, 1e-12))
  # Increasing on [-1, 1]: f'(c) = σw² E[φ'(u1)φ'(u2)] > 0 for monotone φ.
  assert np.all(np.diff(f) > 0)
  # Convex on [0, 1] ([R] App. B.1.4): by Mehler's expansion E[φ(u1)φ(u2)] = Σ a_n² c^n, a power series with
  # non-negative coefficients. For c < 0 the odd terms can make it concave (tanh, erf), so we check [0, 1].
  second = np.diff(f[C >= 0], 2)
  assert np.all(second > -tol(2e-6, 1e-12))
  assert second.sum() > 0


@pytest.mark.parametrize("name, sigma_b, sigma_w", POINTS)
def test_f_prime_at_one_is_chi(name, sigma_b, sigma_w):
  q = theory.q_star(name, sigma_b, sigma_w)
  by_formula = theory.chi_at(name, sigma_b, sigma_w, q)  # σw² E[φ'(√q* Z)²]
  by_autodiff = jax.grad(lambda c: theory.correlation_map(name, sigma_b, sigma_w, c))(1.0)
  assert np.isfinite(by_autodiff)
  assert float(by_autodiff) == pytest.approx(float(by_formula), rel=tol(1e-5, 1e-11))
  assert float(theory.phase(name, sigma_b, sigma_w).chi) == pytest.approx(float(by_formula), rel=tol(1e-6, 1e-12))


@pytest.mark.parametrize("name, sigma_b, sigma_w", POINTS[:4])
def test_slope_of_correlation_map_matches_autodiff(name, sigma_b, sigma_w):
  c = jnp.array([-0.8, -0.1, 0.3, 0.9])
  slope = theory.correlation_map_slope(name, sigma_b, sigma_w, c)
  grads = jax.vmap(jax.grad(lambda x: theory.correlation_map(name, sigma_b, sigma_w, x)))(c)
  np.testing.assert_allclose(slope, grads, rtol=tol(1e-5, 1e-10))


@pytest.mark.parametrize("name, sigma_b, sigma_w", POINTS)
def test_q_star_is_a_stable_fixed_point(name, sigma_b, sigma_w):
  q = theory.q_star(name, sigma_b, sigma_w)
  assert float(theory.variance_map(name, sigma_b, sigma_w, q)) == pytest.approx(float(q), rel=tol(1e-5, 1e-12))
  assert float(theory.variance_map_slope(name, sigma_b, sigma_w, q)) < 1


@pytest.mark.parametrize("name, sigma_b, sigma_w", POINTS[:3])
def test_grad_of_q_star_matches_finite_differences(name, sigma_b, sigma_w):
  h = tol(1e-2, 1e-5)
  for argnum in (0, 1):
    f = lambda b, w: theory.q_star(name, b, w)
    grad = jax.grad(f, argnums=argnum)(sigma_b, sigma_w)
    shift = [(h, 0.0), (0.0, h)][argnum]
    fd = (f(sigma_b + shift[0], sigma_w + shift[1]) - f(sigma_b - shift[0], sigma_w - shift[1])) / (2 * h)
    assert float(grad) == pytest.approx(float(fd), rel=tol(2e-3, 1e-7))


def test_grad_of_eoc_sigma_w_matches_finite_differences():
  h = tol(1e-2, 1e-5)
  grad = jax.grad(lambda b: theory.eoc_curve("tanh", b).sigma_w)(0.3)
  fd = (theory.eoc_sigma_w("tanh", 0.3 + h) - theory.eoc_sigma_w("tanh", 0.3 - h)) / (2 * h)
  assert float(grad) == pytest.approx(fd, rel=tol(2e-3, 1e-7))


def test_expect2_derivatives_are_finite_and_exact_at_c_equal_one():
  tanh = theory.get_activation("tanh")
  d = jax.grad(lambda c: theory.expect2(jnp.tanh, jnp.tanh, 0.7, 0.7, c))(1.0)
  # Price's theorem: d/dc E[φ(u1)φ(u2)] = q E[φ'(u1)φ'(u2)], and at c = 1 that is q E[φ'(√q Z)²].
  assert float(d) == pytest.approx(0.7 * float(tanh.derivative_second_moment(0.7)), rel=tol(1e-6, 1e-12))
  d2 = jax.grad(jax.grad(lambda c: theory.expect2(jnp.tanh, jnp.tanh, 0.7, 0.7, c)))(1.0)
  assert np.isfinite(d2)


def test_expect2_derivative_in_variance_matches_finite_differences():
  f = lambda q: theory.expect2(jnp.tanh, jax.nn.silu, q, 1.3, 0.4)
  h = tol(1e-2, 1e-5)
  fd = (f(0.8 + h) - f(0.8 - h)) / (2 * h)
  assert float(jax.grad(f)(0.8)) == pytest.approx(float(fd), rel=tol(2e-3, 1e-7))


def test_one_dimensional_rule_against_known_moments():
  # E[Z⁴] = 3, E[cos(√q Z)] = e^{-q/2}, at small and very large variances.
  assert float(theory.expect(lambda u: u**4, 2.0)) == pytest.approx(12.0, rel=tol(1e-6, 1e-13))
  for q in (1e-3, 1.0, 10.0, 50.0):  # an oscillating integrand: the error is absolute, ~round-off
    assert float(theory.expect(jnp.cos, q)) == pytest.approx(np.exp(-q / 2), abs=tol(1e-6, 3e-12))
  # tanh'² at q = 1e4 (plain Gauss–Hermite is off by ~80% here): E ≈ (4/3)·2/√(2π q)·(1 + O(1/q)).
  value = float(theory.expect(lambda u: 1 / jnp.cosh(u) ** 4, 1e4))
  assert value == pytest.approx(4 / 3 / np.sqrt(2 * np.pi * 1e4), rel=1e-3)
