"""Initialisations: variances, orthogonality, delta-orthogonal isometry, and EOC init against mean-field theory."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import theory
from mfprune import functional, init
from mfprune.models import MLP, Conv, VanillaCNN


def _params(**options):
  model = VanillaCNN((8, 8, 16), 10, depth=3, channels=32, rngs=nnx.Rngs(0), **options)
  return functional.split(model)[1]


def _var_close(x, variance):
  """Sample variance within 6 standard errors (2σ⁴/(n−1) for Gaussian samples)."""
  n = x.size
  assert abs(float(jnp.var(x)) - variance) < 6 * variance * np.sqrt(2 / (n - 1)), (float(jnp.var(x)), variance)


@pytest.mark.parametrize("sigma_w, sigma_b", [(1.5, 0.2), (0.7, 0.0)])
def test_gaussian_variances(sigma_w, sigma_b):
  params = init.gaussian(_params(), jax.random.key(0), sigma_w=sigma_w, sigma_b=sigma_b)
  kernel = params["convs"][1]["kernel"]  # (3, 3, 32, 32): v_l = 9·32
  _var_close(kernel, sigma_w ** 2 / (9 * 32))
  _var_close(params["readout"]["kernel"], sigma_w ** 2 / (8 * 8 * 32))
  if sigma_b:
    _var_close(params["convs"][1]["bias"], sigma_b ** 2)
  else:
    assert not np.any(params["convs"][1]["bias"])


@pytest.mark.parametrize("mode, variance", [("lecun", 1 / 288), ("he", 2 / 288), ("glorot", 2 / (288 + 288))])
def test_variance_scaling(mode, variance):
  params = init.variance_scaling(_params(), jax.random.key(1), mode=mode)
  _var_close(params["convs"][1]["kernel"], variance)


def test_orthogonal_has_equal_singular_values():
  params = init.orthogonal(_params(), jax.random.key(2), gain=1.3)
  w = params["convs"][1]["kernel"].reshape(-1, 32)  # (288, 32): orthonormal columns times the gain
  np.testing.assert_allclose(w.T @ w, 1.3 ** 2 * jnp.eye(32), atol=1e-4)


def test_delta_orthogonal_convolution_is_an_isometry():
  """Delta-orthogonal kernels with circular padding preserve the norm of every input (LDI for CNNs, [S] §4)."""
  conv = Conv(8, 8, (3, 3), padding="CIRCULAR", use_bias=False, rngs=nnx.Rngs(0))
  params = init.delta_orthogonal({"conv": {"kernel": conv.kernel[...]}}, jax.random.key(3), gain=0.9)
  kernel = params["conv"]["kernel"]
  assert np.count_nonzero(np.asarray(kernel[0, 0])) == 0
  conv.kernel[...] = kernel
  x = jax.random.normal(jax.random.key(4), (3, 5, 5, 8))
  np.testing.assert_allclose(jnp.linalg.norm(conv(x)), 0.9 * jnp.linalg.norm(x), rtol=1e-5)
  with pytest.raises(ValueError, match="in_channels <= out_channels"):
    init.delta_orthogonal({"conv": {"kernel": jnp.ones((3, 3, 8, 4))}}, jax.random.key(0))


def test_eoc_uses_the_theory_sigma_w():
  got = init.eoc(_params(), jax.random.key(5), activation="tanh", sigma_b=0.3)
  want = init.gaussian(_params(), jax.random.key(5), sigma_w=theory.eoc_sigma_w("tanh", 0.3), sigma_b=0.3)
  np.testing.assert_array_equal(got["convs"][0]["kernel"], want["convs"][0]["kernel"])
  with pytest.raises(theory.NoEOCError):
    init.eoc(_params(), jax.random.key(5), activation="relu", sigma_b=0.5)


def test_eoc_init_variance_matches_mean_field_theory():
  """Sampled per-layer pre-activation variance of wide EOC-initialised tanh MLPs against theory.propagate's q^l."""
  depth, width, sigma_b, seeds = 8, 400, 0.3, 4
  apply_fn, make = functional.init_fn(
      lambda k: MLP((100,), 10, depth=depth, width=width, activation="tanh", rngs=nnx.Rngs(params=k)))
  sigma_w = theory.eoc_sigma_w("tanh", sigma_b)
  x = jax.random.normal(jax.random.key(0), (16, 100)) * 1.5

  def layer_variances(key):
    params = init.eoc(make(key), key, activation="tanh", sigma_b=sigma_b)
    h, out = x, []
    for i in range(depth - 1):
      if i > 0:
        h = jnp.tanh(h)
      h = h @ params["layers"][i]["kernel"] + params["layers"][i]["bias"]
      out.append(jnp.mean(h ** 2, axis=1))
    return jnp.stack(out)  # (layers, inputs)

  sampled = jax.vmap(layer_variances)(jax.random.split(jax.random.key(1), seeds))  # (seeds, layers, inputs)
  for i in range(x.shape[0]):
    q1 = theory.input_kernel(x[i], x[i], sigma_b, sigma_w)[0]
    q = theory.propagate("tanh", sigma_b, sigma_w, depth - 1, q1).q
    mean = jnp.mean(sampled[:, :, i], axis=0)
    # q^l of one input, averaged over width·seeds units: relative error ~ sqrt(2/(width·seeds)) ≈ 3.5% per layer,
    # plus finite-width propagation of fluctuations; 12% is ~3.5 standard errors.
    np.testing.assert_allclose(mean, q, rtol=0.12)
  overall = jnp.mean(sampled, axis=(0, 2))
  theory_mean = np.mean([theory.propagate("tanh", sigma_b, sigma_w, depth - 1,
                                          theory.input_kernel(x[i], x[i], sigma_b, sigma_w)[0]).q for i in range(16)], axis=0)
  np.testing.assert_allclose(overall, theory_mean, rtol=0.03)


def test_bad_input():
  with pytest.raises(ValueError, match="sigma_w must be >= 0"):
    init.gaussian(_params(), jax.random.key(0), sigma_w=-1.0)
  with pytest.raises(ValueError, match="gain must be >= 0"):
    init.orthogonal(_params(), jax.random.key(0), gain=-2.0)
  with pytest.raises(ValueError, match="unknown initialisation 'xavier'"):
    init.initialise("xavier", _params(), jax.random.key(0))
  with pytest.raises(ValueError, match="mode must be one of"):
    init.variance_scaling(_params(), jax.random.key(0), mode="kaiming")
  with pytest.raises(ValueError, match="no weight to initialise"):
    init.gaussian({"scale": jnp.ones(3)}, jax.random.key(0), sigma_w=1.0)
