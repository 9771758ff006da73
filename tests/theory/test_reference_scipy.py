"""EOC σw and q* against an independent scipy implementation (adaptive quadrature + Brent's method).

Tolerances from the issue: 1e-5 relative in float32, 1e-9 in float64. One exception, derived rather than loosened:
on the EOC q* is the root of G(q) = σb² + E[φ²]/E[φ'²] − q, whose two large terms cancel to round-off ~eps·q. Where
G'(q*) is small (SiLU and GELU, whose EOC approaches the ReLU-like regime, G'(q*) ~ 1e-3) no float32 evaluation of G
can pin q* better than ~eps/|G'(q*)| relative, so q* is compared with max(rtol, 8·eps/|G'(q*)|).
"""

import math

import numpy as np
import pytest
from scipy import integrate, optimize, special

import theory
from tests.conftest import tol

SELU_A, SELU_L = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def _sigmoid(x):
  return special.expit(x)


# φ and φ' written out by hand, independently of the library.
ACTIVATIONS = {
    "tanh": (np.tanh, lambda x: 1.0 - np.tanh(x) ** 2),
    "elu": (lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))), lambda x: np.where(x > 0, 1.0, np.exp(np.minimum(x, 0)))),
    "selu": (lambda x: SELU_L * np.where(x > 0, x, SELU_A * np.expm1(np.minimum(x, 0))),
             lambda x: SELU_L * np.where(x > 0, 1.0, SELU_A * np.exp(np.minimum(x, 0)))),
    "silu": (lambda x: x * _sigmoid(x), lambda x: _sigmoid(x) * (1 + x * (1 - _sigmoid(x)))),
    "gelu": (lambda x: x * special.ndtr(x), lambda x: special.ndtr(x) + x * np.exp(-x * x / 2) / math.sqrt(2 * math.pi)),
    "softplus": (lambda x: np.logaddexp(0.0, x), _sigmoid),
}


def gauss(h, q):
  """E[h(√q Z)] by adaptive quadrature, split at the kink 0."""
  density = lambda z: h(math.sqrt(q) * z) * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
  left = integrate.quad(density, -np.inf, 0, epsabs=0, epsrel=1e-13, limit=400)[0]
  right = integrate.quad(density, 0, np.inf, epsabs=0, epsrel=1e-13, limit=400)[0]
  return left + right


def reference_eoc(name, sigma_b):
  """First root q of G(q) = σb² + E[φ²]/E[φ'²] − q whose variance map is stable there; σw = 1/√E[φ'²]."""
  phi, dphi = ACTIVATIONS[name]
  m2 = lambda q: gauss(lambda u: float(phi(u)) ** 2, q)
  d2 = lambda q: gauss(lambda u: float(dphi(u)) ** 2, q)
  g = lambda q: sigma_b**2 + m2(q) / d2(q) - q
  grid = np.logspace(-6, 4, 121)
  values = [g(q) for q in grid]
  for lo, hi, g_lo, g_hi in zip(grid[:-1], grid[1:], values[:-1], values[1:]):
    if (g_lo > 0) != (g_hi > 0):
      q = optimize.brentq(g, lo, hi, xtol=1e-300, rtol=1e-15, maxiter=200)
      sigma_w = 1.0 / math.sqrt(d2(q))
      h = 1e-5 * q
      slope = sigma_w**2 * (m2(q + h) - m2(q - h)) / (2 * h)
      if slope < 1:
        g_slope = (g(q + h) - g(q - h)) / (2 * h)
        return sigma_w, q, g_slope
  raise AssertionError(f"no stable EOC for {name} at sigma_b={sigma_b}")


def reference_q_star(name, sigma_b, sigma_w):
  phi, _ = ACTIVATIONS[name]
  gap = lambda q: sigma_b**2 + sigma_w**2 * gauss(lambda u: float(phi(u)) ** 2, q) - q
  return optimize.brentq(gap, 1e-12, 1e6, xtol=1e-300, rtol=1e-15, maxiter=200)


CASES = [("tanh", 0.1), ("tanh", 0.3), ("tanh", 1.0), ("elu", 0.2), ("elu", 0.7), ("selu", 0.1), ("selu", 0.5),
         ("silu", 0.8), ("silu", 1.0), ("gelu", 0.9), ("gelu", 1.0)]


@pytest.mark.parametrize("name, sigma_b", CASES)
def test_eoc_matches_scipy(name, sigma_b):
  sigma_w, q, g_slope = reference_eoc(name, sigma_b)
  point = theory.eoc_point(name, sigma_b)
  assert theory.EOCStatus(int(point.status)) == theory.EOCStatus.OK
  rtol = tol(1e-5, 1e-9)
  assert float(point.sigma_w) == pytest.approx(sigma_w, rel=rtol)
  eps = float(np.finfo(np.asarray(point.q_star).dtype).eps)
  assert float(point.q_star) == pytest.approx(q, rel=max(rtol, 8 * eps / abs(g_slope)))
  assert float(point.chi) == pytest.approx(1.0, rel=rtol)


@pytest.mark.parametrize("name, sigma_b, sigma_w", [("tanh", 0.3, 1.0), ("tanh", 0.2, 2.5), ("softplus", 0.1, 1.0),
                                                     ("softplus", 0.5, 0.8), ("selu", 0.3, 1.1), ("gelu", 0.4, 1.2)])
def test_q_star_matches_scipy(name, sigma_b, sigma_w):
  expected = reference_q_star(name, sigma_b, sigma_w)
  assert float(theory.q_star(name, sigma_b, sigma_w)) == pytest.approx(expected, rel=tol(1e-5, 1e-9))


@pytest.mark.parametrize("sigma_b", [0.0, 0.1, 0.5, 1.0, 2.0])
def test_softplus_has_no_eoc(sigma_b):
  # Its G(q) = σb² + E[φ²]/E[φ'²] − q stays positive: check that with scipy too, at a few q.
  phi, dphi = ACTIVATIONS["softplus"]
  for q in (1e-3, 1.0, 100.0):
    assert sigma_b**2 + gauss(lambda u: phi(u) ** 2, q) / gauss(lambda u: dphi(u) ** 2, q) - q > 0
  point = theory.eoc_curve("softplus", sigma_b)
  assert theory.EOCStatus(int(point.status)) == theory.EOCStatus.NONE
  with pytest.raises(theory.NoEOCError, match="no EOC"):
    theory.eoc_point("softplus", sigma_b)
