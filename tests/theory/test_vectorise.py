"""jit/vmap/grad over σb, σw and activation parameters; dtypes follow jax_enable_x64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import theory
from tests.conftest import X64, tol


def test_vmap_over_sigmas_equals_the_loop():
  sigma_b = jnp.array([0.1, 0.3, 0.6])
  sigma_w = jnp.array([0.9, 1.4, 2.0])
  batched = jax.vmap(lambda b, w: theory.q_star("tanh", b, w))(sigma_b, sigma_w)
  looped = [float(theory.q_star("tanh", b, w)) for b, w in zip(sigma_b, sigma_w)]
  np.testing.assert_allclose(batched, looped, rtol=tol(1e-6, 1e-13))
  chi = jax.vmap(lambda w: theory.chi_at("tanh", 0.0, w, 0.5))(sigma_w)
  np.testing.assert_allclose(chi, [float(theory.chi_at("tanh", 0.0, w, 0.5)) for w in sigma_w], rtol=tol(1e-6, 1e-13))


def test_vmap_over_an_activation_parameter():
  slopes = jnp.array([0.0, 0.1, 0.5])
  q = jax.vmap(lambda a: theory.q_star(theory.get_activation("leaky_relu", negative_slope=a), 0.3, 1.2))(slopes)
  # Leaky ReLU: q* = σb² / (1 − σw² (1 + a²)/2)
  np.testing.assert_allclose(q, 0.09 / (1 - 1.44 * (1 + slopes**2) / 2), rtol=tol(1e-5, 1e-12))
  alphas = jnp.array([0.5, 1.0, 1.5])
  eoc = jax.vmap(lambda a: theory.eoc_curve(theory.get_activation("elu", alpha=a), 0.3).sigma_w)(alphas)
  looped = [theory.eoc_sigma_w(theory.get_activation("elu", alpha=float(a)), 0.3) for a in alphas]
  np.testing.assert_allclose(eoc, looped, rtol=tol(1e-6, 1e-12))


def test_activation_is_a_pytree_whose_parameters_are_leaves():
  act = theory.get_activation("elu", alpha=0.7)
  leaves, tree = jax.tree_util.tree_flatten(act)
  assert len(leaves) == 1 and float(leaves[0]) == pytest.approx(0.7)
  rebuilt = jax.tree_util.tree_unflatten(tree, [jnp.asarray(1.3)])
  assert float(rebuilt(jnp.asarray(-1.0))) == pytest.approx(1.3 * np.expm1(-1.0), rel=1e-6)
  grad = jax.grad(lambda a: theory.q_star(theory.get_activation("elu", alpha=a), 0.3, 1.0))(0.7)
  h = tol(1e-2, 1e-5)
  fd = (theory.q_star(theory.get_activation("elu", alpha=0.7 + h), 0.3, 1.0)
        - theory.q_star(theory.get_activation("elu", alpha=0.7 - h), 0.3, 1.0)) / (2 * h)
  assert float(grad) == pytest.approx(float(fd), rel=tol(2e-3, 1e-6))


def test_eoc_curve_equals_pointwise_solves_and_keeps_shape():
  sigma_b = np.array([[0.0, 0.2], [0.5, 1.0]])
  curve = theory.eoc_curve("tanh", sigma_b)
  assert curve.sigma_w.shape == (2, 2) and curve.status.shape == (2, 2)
  for index in np.ndindex(sigma_b.shape):
    point = theory.eoc_point("tanh", float(sigma_b[index]))
    assert float(curve.sigma_w[index]) == pytest.approx(float(point.sigma_w), rel=1e-6)


def test_results_follow_the_precision_in_force():
  expected = jnp.float64 if X64 else jnp.float32
  assert theory.eoc_curve("tanh", [0.1, 0.2]).sigma_w.dtype == expected
  assert theory.q_star("tanh", 0.1, 1.0).dtype == expected
  assert theory.phase("erf", 0.1, 1.0).chi.dtype == expected
  assert theory.propagate("relu", 0.0, 1.2, 4, 1.0).q.dtype == expected


def test_custom_callable_works_everywhere():
  def scaled_tanh(x):
    return 1.7159 * jnp.tanh(2 * x / 3)  # LeCun's tanh

  point = theory.eoc_point(scaled_tanh, 0.3)
  assert theory.EOCStatus(int(point.status)) == theory.EOCStatus.OK
  assert float(theory.phase(scaled_tanh, 0.3, float(point.sigma_w)).chi) == pytest.approx(1.0, abs=1e-4)


def test_phase_classifies_and_broadcasts():
  eoc = theory.eoc_sigma_w("tanh", 0.3)
  points = theory.phase("tanh", 0.3, jnp.array([0.8 * eoc, eoc, 1.25 * eoc]))
  assert [theory.Phase(int(p)) for p in points.phase] == [theory.Phase.ORDERED, theory.Phase.EOC,
                                                         theory.Phase.CHAOTIC]
  assert float(points.c_star[0]) == 1.0 and float(points.c_star[2]) < 1.0
  assert np.isinf(float(points.xi_c[1]))
  diagram = theory.phase_diagram("tanh", jnp.linspace(0, 1, 5), jnp.linspace(0.5, 2.5, 7))
  assert diagram.chi.shape == (7, 5) and diagram.eoc.sigma_w.shape == (5,)


def test_to_dict_writes_each_number_in_the_precision_it_was_computed():
  """float32 results as their shortest decimal (σb = 0.1 comes back 0.1); float64 ones with all their digits."""
  curve = theory.eoc_curve("tanh", jnp.asarray([0.1, 0.3])).to_dict()
  assert curve["sigma_b"] == [0.1, 0.3]
  sigma_w = np.asarray(theory.eoc_curve("tanh", jnp.asarray([0.1, 0.3])).sigma_w)
  assert np.array_equal(np.asarray(curve["sigma_w"], sigma_w.dtype), sigma_w)  # reads back as the same numbers
  point = theory.phase("tanh", 0.1, 1.3).to_dict()
  assert point["sigma_b"] == 0.1 and point["sigma_w"] == 1.3
