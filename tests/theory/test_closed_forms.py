"""Closed forms: ReLU's arc-cosine kernel and single-point EOC, erf's arcsine kernel, the linear network."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import theory
from tests.conftest import tol

C = np.linspace(-1.0, 1.0, 41)


def relu_f(c):
  """[R] App. B.1.1 (Hayou et al. 2019): f(c) = (c·arcsin c + √(1 − c²))/π + c/2 at σb = 0, σw = √2."""
  return (c * np.arcsin(c) + np.sqrt(1 - c**2)) / math.pi + c / 2


def test_relu_correlation_map_is_the_arc_cosine_kernel():
  f = theory.correlation_map("relu", 0.0, math.sqrt(2), C, q=1.0)
  np.testing.assert_allclose(f, relu_f(C), rtol=tol(1e-6, 1e-12), atol=tol(1e-6, 1e-12))


def test_relu_correlation_map_near_one():
  # f(c) = c + (2√2/(3π))(1 − c)^{3/2} + O((1 − c)^{5/2})  ([R] App. B.1.4)
  # The remainder is ~eps^2.5; keep it well above round-off (float32: 6e-8).
  eps = np.array([0.05, 0.02, 0.01]) if theory.gaussian.float_dtype() == jnp.float32 else np.array([1e-2, 1e-3, 1e-4])
  c = 1.0 - eps
  f = np.asarray(theory.correlation_map("relu", 0.0, math.sqrt(2), c, q=1.0), np.float64)
  remainder = (f - c - 2 * math.sqrt(2) / (3 * math.pi) * eps**1.5) / eps**2.5
  assert np.all(np.abs(remainder) < 1.0)


def test_relu_eoc_is_the_single_point_zero_sqrt2():
  curve = theory.eoc_curve("relu", np.array([0.0, 0.1, 1.0]))
  statuses = [theory.EOCStatus(int(s)) for s in curve.status]
  assert statuses == [theory.EOCStatus.SINGLE_POINT, theory.EOCStatus.NONE, theory.EOCStatus.NONE]
  assert float(curve.sigma_w[0]) == pytest.approx(math.sqrt(2), rel=tol(1e-6, 1e-12))
  assert np.all(np.isnan(np.asarray(curve.sigma_w[1:])))
  with pytest.raises(theory.NoEOCError, match="sigma_b=0.1"):
    theory.eoc_point("relu", 0.1)


def erf_cross(q1, q2, c):
  """Williams (1997): E[erf(u1) erf(u2)] = (2/π) arcsin(2Σ12 / √((1 + 2q1)(1 + 2q2)))."""
  s12 = c * np.sqrt(q1 * q2)
  return 2 / math.pi * np.arcsin(2 * s12 / np.sqrt((1 + 2 * q1) * (1 + 2 * q2)))


def erf_derivative_cross(q1, q2, c):
  s12 = c * np.sqrt(q1 * q2)
  return 4 / math.pi / np.sqrt((1 + 2 * q1) * (1 + 2 * q2) - 4 * s12**2)


@pytest.mark.parametrize("q1, q2", [(0.3, 0.3), (1.0, 2.0), (0.05, 0.7)])
def test_erf_quadrature_matches_arcsine_kernel(q1, q2):
  plain_erf = theory.get_activation(jax.scipy.special.erf)  # a plain callable: quadrature, no closed form
  assert plain_erf.closed_form is None
  c = np.array([-1.0, -0.9, -0.3, 0.0, 0.5, 0.99, 0.999999, 1.0])
  np.testing.assert_allclose(plain_erf.cross_moment(q1, q2, c), erf_cross(q1, q2, c), rtol=tol(2e-6, 1e-10),
                             atol=tol(2e-7, 1e-12))
  np.testing.assert_allclose(plain_erf.derivative_cross_moment(q1, q2, c[1:-1]), erf_derivative_cross(q1, q2, c[1:-1]),
                             rtol=tol(2e-6, 1e-10))
  registered = theory.get_activation("erf")
  np.testing.assert_allclose(registered.cross_moment(q1, q2, c), erf_cross(q1, q2, c), rtol=tol(1e-6, 1e-13),
                             atol=tol(1e-7, 1e-14))


def test_erf_eoc_at_zero_bias_is_the_limit_one_over_erf_prime():
  point = theory.eoc_point("erf", 0.0)
  assert theory.EOCStatus(int(point.status)) == theory.EOCStatus.LIMIT
  assert float(point.sigma_w) == pytest.approx(math.sqrt(math.pi) / 2, rel=tol(1e-5, 1e-10))


def test_linear_network():
  c = np.linspace(-1, 1, 9)
  np.testing.assert_allclose(theory.correlation_map("linear", 0.0, 0.8, c, q=2.0), c, atol=tol(1e-6, 1e-14))
  for sigma_b, sigma_w in [(0.3, 0.5), (1.0, 0.9)]:
    assert float(theory.q_star("linear", sigma_b, sigma_w)) == pytest.approx(sigma_b**2 / (1 - sigma_w**2),
                                                                              rel=tol(1e-5, 1e-10))
  assert float(theory.eoc_point("linear", 0.0).sigma_w) == pytest.approx(1.0, rel=1e-6)


def test_relu_quadrature_of_a_plain_callable_matches_the_arc_cosine_kernel():
  plain = theory.get_activation(lambda x: jnp.maximum(x, 0.0))
  c = np.linspace(-1, 1, 11)
  # At q = 2, E[relu(u1) relu(u2)] = (q/2)·f(c) with f the normalised arc-cosine kernel = f(c).
  np.testing.assert_allclose(plain.cross_moment(2.0, 2.0, c), relu_f(c), rtol=tol(2e-6, 1e-11),
                             atol=tol(1e-7, 1e-13))


def test_leaky_relu_closed_form_matches_quadrature_of_a_plain_callable():
  slope = 0.2
  closed = theory.get_activation("leaky_relu", negative_slope=slope)
  plain = theory.get_activation(lambda x: jnp.where(x >= 0, x, slope * x))
  c = np.array([-0.7, 0.0, 0.4, 0.95])
  # The quadrature cuts the inner line at the kink, so it is exact to round-off here too.
  np.testing.assert_allclose(plain.cross_moment(1.3, 0.6, c), closed.cross_moment(1.3, 0.6, c), rtol=tol(2e-6, 1e-11))
  np.testing.assert_allclose(plain.derivative_cross_moment(1.3, 0.6, c), closed.derivative_cross_moment(1.3, 0.6, c),
                             rtol=tol(2e-6, 1e-11))
  np.testing.assert_allclose(plain.second_moment(2.0), closed.second_moment(2.0), rtol=tol(1e-6, 1e-12))
