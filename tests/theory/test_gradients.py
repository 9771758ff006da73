"""Backward moments, the SBP profile m_l and Definition 1 of [R] (Theorems 1-2, Proposition 2)."""

import math

import numpy as np
import pytest

import theory
from tests.conftest import tol


def test_backward_recursion_by_hand_for_three_layers():
  sigma_b, sigma_w, widths = 0.2, 1.1, [5, 8, 4, 6]
  moments = theory.gradient_moments("tanh", sigma_b, sigma_w, 3, q1=0.9, widths=widths)
  q = np.asarray(moments.q, np.float64)
  chi = [float(theory.chi_at("tanh", sigma_b, sigma_w, v)) for v in q]
  # q̃^3 = 1, q̃^2 = (N_3/N_2) χ(q^2), q̃^1 = q̃^2 (N_2/N_1) χ(q^1)   ([R] App. B.1.2)
  expected = [chi[1] * widths[3] / widths[2] * chi[0] * widths[2] / widths[1], chi[1] * widths[3] / widths[2], 1.0]
  np.testing.assert_allclose(moments.q_tilde, expected, rtol=tol(1e-5, 1e-12))
  # m_l = (σw²/N_{l-1}) q̃^l E[φ(y^{l-1})²] with E[x²] = (q^1 − σb²)/σw² for the input layer.
  tanh = theory.get_activation("tanh")
  incoming = [q[0] - sigma_b**2] + [sigma_w**2 * float(tanh.second_moment(v)) for v in q[:-1]]
  m = np.array([incoming[l] * expected[l] / widths[l] for l in range(3)])
  np.testing.assert_allclose(moments.m, m / m[-1], rtol=tol(1e-5, 1e-12))


def test_ordered_and_chaotic_ffnn_are_ill_conditioned_and_the_eoc_is_well_conditioned():
  depth = 30
  eoc_sigma_w = theory.eoc_sigma_w("tanh", 0.3)
  assert bool(theory.conditioning("tanh", 0.3, eoc_sigma_w, depth).well_conditioned)
  for sigma_w in (1.0, 2.0):  # Theorem 1: off the EOC the spread grows like χ^{±L}
    verdict = theory.conditioning("tanh", 0.3, sigma_w, depth)
    assert not bool(verdict.well_conditioned)
    chi = float(theory.phase("tanh", 0.3, sigma_w).chi)
    # from depth 2L to 4L the log-spread grows by about 2L·|log χ|
    assert float(verdict.growth) == pytest.approx(2 * depth * abs(math.log(chi)), rel=0.1)


def test_cnn_follows_the_ffnn_recursion():
  ffnn = theory.gradient_moments("tanh", 0.3, 1.2, 10)
  cnn = theory.gradient_moments("tanh", 0.3, 1.2, 10, architecture="cnn", receptive_field=3)
  np.testing.assert_allclose(cnn.q_tilde, ffnn.q_tilde, rtol=1e-6)
  np.testing.assert_allclose(cnn.m, ffnn.m, rtol=1e-6)  # equal fan-ins: the (2k+1) factor cancels in m_l/m_L


@pytest.mark.parametrize("sigma_w", [0.5, 1.0, 1.5])
def test_relu_resnets_are_well_conditioned(sigma_w):
  # Theorem 2 (ReLU ResNet, any σw) and Proposition 2 (Stable ResNet).
  assert bool(theory.conditioning("relu", 0.0, sigma_w, 20, architecture="resnet").well_conditioned)
  assert bool(theory.conditioning("relu", 0.0, sigma_w, 20, architecture="stable_resnet").well_conditioned)


def test_stable_resnet_gradient_growth_is_bounded_by_exp_sigma_w_squared_over_two():
  # Proposition 2: with 1/√L blocks, q̃^1/q̃^L = Π (1 + σw²/(2L)) → e^{σw²/2} for ReLU at σb = 0.
  sigma_w, depth = 1.5, 201
  moments = theory.gradient_moments("relu", 0.0, sigma_w, depth, architecture="stable_resnet")
  assert float(moments.q_tilde[0]) == pytest.approx((1 + sigma_w**2 / (2 * (depth - 1))) ** (depth - 1), rel=1e-4)
  assert float(moments.q_tilde[0]) < math.exp(sigma_w**2 / 2)


def test_bad_arguments():
  with pytest.raises(ValueError, match="widths must list"):
    theory.gradient_moments("tanh", 0.1, 1.0, 3, widths=[4, 4, 4])
  with pytest.raises(ValueError, match="equal widths"):
    theory.gradient_moments("tanh", 0.1, 1.0, 3, architecture="resnet", widths=[4, 4, 5, 4])
  with pytest.raises(ValueError, match="depth must be an integer >= 2"):
    theory.conditioning("tanh", 0.1, 1.0, 1)
  with pytest.raises(ValueError, match="overflows"):
    theory.gradient_moments("relu", 0.0, 3.0, 2000 if theory.gaussian.float_dtype() == np.float64 else 300,
                            architecture="resnet")


def test_pruned_chi_is_chi_along_the_pruned_variances():
  """Dense at q*: every χ_l is theory.phase's χ (1 on the EOC); pruned: χ_l = α_l σw² E[φ'(√q^{l-1} Z)²] along
  propagate's pruned q^l, their geometric mean and log-sum; an emptied layer has χ = 0."""
  sigma_b = 0.3
  sigma_w = float(theory.eoc_sigma_w("tanh", sigma_b))
  q_star = theory.q_star("tanh", sigma_b, sigma_w)
  dense = theory.pruned_chi("tanh", sigma_b, sigma_w, alphas=[1.0] * 5, q1=q_star)
  np.testing.assert_allclose(dense.chi, 1.0, rtol=tol(1e-4, 1e-8))
  assert float(dense.chi_effective) == pytest.approx(1.0, rel=tol(1e-4, 1e-8))
  alphas = [0.5, 0.3, 0.8, 0.6]
  pruned = theory.pruned_chi("tanh", sigma_b, sigma_w, alphas=alphas, q1=1.2)
  q = theory.propagate("tanh", sigma_b, sigma_w, 4, 1.2, c1=None, alphas=alphas).q
  np.testing.assert_allclose(pruned.q, q, rtol=tol(1e-6, 1e-12))
  expected = [a * float(theory.chi_at("tanh", sigma_b, sigma_w, v)) for a, v in zip(alphas[1:], np.asarray(q)[:-1])]
  np.testing.assert_allclose(pruned.chi, expected, rtol=tol(1e-5, 1e-12))
  assert float(pruned.log_gradient_spread) == pytest.approx(np.sum(np.log(expected)), rel=tol(1e-5, 1e-10))
  assert float(pruned.chi_effective) == pytest.approx(np.exp(np.mean(np.log(expected))), rel=tol(1e-5, 1e-10))
  emptied = theory.pruned_chi("tanh", sigma_b, sigma_w, alphas=[1.0, 0.0, 1.0], q1=1.2)
  assert float(emptied.chi[0]) == 0.0 and float(emptied.chi_effective) == 0.0
  assert float(emptied.log_gradient_spread) == -np.inf
  with pytest.raises(ValueError, match="at least two layers"):
    theory.pruned_chi("tanh", sigma_b, sigma_w, alphas=[1.0])
  with pytest.raises(ValueError, match="alphas must be finite and >= 0"):
    theory.pruned_chi("tanh", sigma_b, sigma_w, alphas=[1.0, -0.5])
