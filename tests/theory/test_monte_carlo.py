"""Monte-Carlo: sampled wide networks against the mean-field sequences q^l and c^l ([R] App. A.1; THEORY.md §2).

Tolerance. At width N a layer's empirical variance q̂ = (1/N) Σ_i y_i² averages N (conditionally) iid terms, so its
sampling standard deviation is sd(y²)/√N = q√(2/N) for Gaussian y (and ĉ's is at most (1 − c²)/√N + O(1/N) ≤ √(2/N)).
Errors of earlier layers propagate with factor |dV/dq| ≤ χ-like multipliers of order one here, so after l layers the
standard deviation is at most about √l times a one-layer one; averaging S independent networks divides by √S.
The finite-width bias is O(1/N). We allow 5 such standard deviations plus 2/N: the test fails when theory and
sampling disagree by more than chance explains.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import theory

WIDTH, DEPTH, SEEDS = 2000, 6, 4


def _inputs(key, d, c):
  """Two inputs with ‖x‖²/d = 1 and cosine similarity c."""
  a, b = jax.random.normal(key, (2, d))
  a = a / jnp.linalg.norm(a)
  b = b - jnp.dot(a, b) * a
  b = b / jnp.linalg.norm(b)
  return jnp.sqrt(d) * a, jnp.sqrt(d) * (c * a + math.sqrt(1 - c**2) * b)


def sample_network(key, phi, sigma_b, sigma_w, x, x_other, depth, residual_scale=None):
  """Empirical (q^l(x), q^l(x'), c^l) for l = 1..depth of one random network; residual blocks for l >= 2 when
  ``residual_scale`` is given (Stable ResNet: y^l = y^{l-1} + (W φ(y^{l-1}) + b) · residual_scale)."""
  n = x.shape[0]
  ys = jnp.stack([x, x_other])
  out = []
  for layer in range(depth):
    key, kw, kb = jax.random.split(key, 3)
    w = jax.random.normal(kw, (n, n)) * sigma_w / math.sqrt(n)
    b = jax.random.normal(kb, (n,)) * sigma_b
    inputs = ys if layer == 0 else phi(ys)
    new = inputs @ w.T + b
    ys = new if (layer == 0 or residual_scale is None) else ys + residual_scale * new
    q1, q2 = jnp.mean(ys[0] ** 2), jnp.mean(ys[1] ** 2)
    out.append(jnp.stack([q1, q2, jnp.mean(ys[0] * ys[1]) / jnp.sqrt(q1 * q2)]))
  return jnp.stack(out)


def _check(name, sigma_b, sigma_w, architecture, width=WIDTH, depth=DEPTH, theory_sigma_w=None):
  phi = theory.get_activation(name)
  x, x_other = _inputs(jax.random.PRNGKey(0), width, 0.3)
  scale = 1 / math.sqrt(depth - 1) if architecture == "stable_resnet" else None
  sample = jax.jit(lambda k: sample_network(k, phi, sigma_b, sigma_w, x, x_other, depth, scale))
  stats = np.mean([np.asarray(sample(k)) for k in jax.random.split(jax.random.PRNGKey(1), SEEDS)], axis=0)
  sigma_w = sigma_w if theory_sigma_w is None else theory_sigma_w
  q1, q2, c1 = theory.input_kernel(x, x_other, sigma_b, sigma_w)
  prediction = theory.propagate(name, sigma_b, sigma_w, depth, q1, c1=c1, q1_other=q2, architecture=architecture)
  layers = np.arange(1, depth + 1)
  spread = np.sqrt(2 * layers / (width * SEEDS))
  tolerance = 5 * spread + 2 / width
  np.testing.assert_array_less(np.abs(stats[:, 0] / np.asarray(prediction.q) - 1), tolerance)
  np.testing.assert_array_less(np.abs(stats[:, 1] / np.asarray(prediction.q_other) - 1), tolerance)
  np.testing.assert_array_less(np.abs(stats[:, 2] - np.asarray(prediction.c)), tolerance)
  return stats, prediction


@pytest.mark.parametrize("name, sigma_b, sigma_w", [("tanh", 0.3, 1.3955), ("tanh", 0.1, 2.5), ("relu", 0.2, 1.2),
                                                     ("selu", 0.2, 1.0)])
def test_wide_ffnn_matches_mean_field(name, sigma_b, sigma_w):
  _check(name, sigma_b, sigma_w, "ffnn")


@pytest.mark.parametrize("name, sigma_b, sigma_w", [("relu", 0.0, 1.5), ("tanh", 0.3, 1.0)])
def test_wide_stable_resnet_matches_mean_field(name, sigma_b, sigma_w):
  stats, prediction = _check(name, sigma_b, sigma_w, "stable_resnet")
  if name == "relu":  # the closed form of [R] eq. 9 with σb = 0: q^l = (1 + σw²/(2L)) q^{l-1}
    ratio = np.asarray(prediction.q[1:] / prediction.q[:-1])
    np.testing.assert_allclose(ratio, 1 + sigma_w**2 / (2 * (DEPTH - 1)), rtol=1e-5)


def test_tolerance_is_tight_enough_to_catch_a_wrong_sigma_w():
  # Sampling at σw 5% above the value the theory is evaluated at must fail the same check: the test has teeth.
  with pytest.raises(AssertionError):
    _check("tanh", 0.3, 1.3955 * 1.05, "ffnn", theory_sigma_w=1.3955)


@pytest.mark.slow
@pytest.mark.parametrize("architecture", ["ffnn", "stable_resnet"])
def test_wider_deeper_networks_match_mean_field(architecture):
  _check("tanh", 0.3, 1.3955, architecture, width=4000, depth=12)


def test_pruned_network_chi_matches_sampled_gradients():
  """[R] App. C with Approximation 2: a randomly pruned wide tanh FFNN (keep fractions 0.7, 0.4, 0.9, ...) propagates
  q^l with σw² → α_l σw², and backpropagation through layer l multiplies the gradient's mean square by
  χ_l = α_l σw² E[φ'(√q^{l-1} Z)²] (theory.pruned_chi), measured on a random output direction."""
  phi = theory.get_activation("tanh")
  sigma_b, sigma_w, keep = 0.3, 1.3955, (0.7, 0.4, 0.9, 0.5, 0.8, 0.6)
  x, _ = _inputs(jax.random.PRNGKey(0), WIDTH, 0.3)

  @jax.jit
  def sample(key):
    h, hs, weights, alphas = x, [], [], []
    for layer, p in enumerate(keep):
      key, kw, kb, km = jax.random.split(key, 4)
      w = jax.random.normal(kw, (WIDTH, WIDTH)) * sigma_w / math.sqrt(WIDTH)
      w = w * jax.random.bernoulli(km, p, w.shape)
      alphas.append(jnp.sum(w**2) / (sigma_w**2 * WIDTH))  # Σ_kept W² / E Σ W²
      h = (h if layer == 0 else phi(h)) @ w.T + jax.random.normal(kb, (WIDTH,)) * sigma_b
      hs.append(h)
      weights.append(w)
    g = jax.random.normal(key, (WIDTH,))  # ∂(g·h^L)/∂h^L
    ratios = []
    for layer in range(len(keep) - 1, 0, -1):  # ∂/∂h^{l-1} = (W^l)ᵀ g ⊙ φ'(h^{l-1})
      new = (g @ weights[layer]) * jax.vmap(jax.grad(phi))(hs[layer - 1])
      ratios.append(jnp.mean(new**2) / jnp.mean(g**2))
      g = new
    return jnp.stack([jnp.mean(v**2) for v in hs]), jnp.stack(ratios[::-1]), jnp.stack(alphas)

  runs = [sample(k) for k in jax.random.split(jax.random.PRNGKey(2), SEEDS)]
  q, ratios, alphas = (np.mean([np.asarray(r[i]) for r in runs], axis=0) for i in range(3))
  q1, _, _ = theory.input_kernel(x, x, sigma_b, sigma_w)
  predicted = theory.pruned_chi("tanh", sigma_b, sigma_w, alphas=alphas, q1=q1)
  layers = np.arange(1, len(keep) + 1)
  tolerance = 5 * np.sqrt(2 * layers / (WIDTH * SEEDS)) + 2 / WIDTH
  np.testing.assert_array_less(np.abs(q / np.asarray(predicted.q) - 1), tolerance)
  np.testing.assert_array_less(np.abs(ratios / np.asarray(predicted.chi) - 1), 2 * tolerance[1:])
  dense = theory.pruned_chi("tanh", sigma_b, sigma_w, alphas=np.ones(len(keep)), q1=q1)
  assert np.max(np.abs(ratios / np.asarray(dense.chi) - 1)) > 0.3  # the dense χ is far off: the test has teeth
  assert float(predicted.chi_effective) < 0.8 < float(dense.chi_effective)  # pruned on the EOC: the ordered drift
  np.testing.assert_allclose(float(predicted.log_gradient_spread), np.sum(np.log(ratios)), rtol=0.05)
  assert float(predicted.chi_effective) == pytest.approx(np.exp(np.mean(np.log(ratios))), rel=0.02)
