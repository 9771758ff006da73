"""neural-tangents 0.6.5 on current JAX through theory.ntk_compat.

These tests skip only when neural-tangents is not installed. When it is installed and a JAX release breaks the four
restorations, they FAIL (import, stax kernels, empirical_ntk_fn, nt.predict): update theory/ntk_compat.py.
"""

import importlib.util
import json
import pathlib
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from tests.conftest import tol
from theory import ntk_compat

DATA = pathlib.Path(__file__).with_name("data")
REFERENCE = json.loads((DATA / "ntk_reference.json").read_text())
SKIP_REASON = f"neural-tangents is not installed ({ntk_compat.INSTALL_COMMAND})"


def _load_builder():
  spec = importlib.util.spec_from_file_location("make_ntk_reference", DATA / "make_ntk_reference.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.build_network


@pytest.fixture(scope="module")
def nt():
  if not ntk_compat.is_installed():
    pytest.skip(SKIP_REASON)
  return ntk_compat.import_neural_tangents()  # raises (the test fails) if the patches no longer suffice


def test_import_patches_once_and_never_imports_tensorflow(nt):
  assert "tensorflow" not in sys.modules
  assert not ntk_compat.tensorflow_imported()
  applied = ntk_compat.applied_patches()
  assert set(applied) <= set(ntk_compat.PATCHES)
  assert ntk_compat.needed_patches() == ()  # everything is in place now
  assert ntk_compat.import_neural_tangents() is nt  # idempotent
  assert ntk_compat.applied_patches() == applied
  assert nt.__version__ == "0.6.5"
  # The stub, not NT's TensorFlow module, is what neural_tangents.experimental is.
  assert getattr(sys.modules["neural_tangents.experimental"], "__mfprune_stub__", False)
  if tuple(int(p) for p in jax.__version__.split(".")[:2]) >= (0, 5):
    assert {"jax_core", "jax_util", "zeros_like_p"} <= set(applied)


def test_safe_implementations_exist(nt):
  names = {member.name for member in nt.NtkImplementation}
  assert set(ntk_compat.SAFE_NTK_IMPLEMENTATIONS) <= names
  assert ntk_compat.safe_ntk_implementation() == nt.NtkImplementation.JACOBIAN_CONTRACTION


@pytest.mark.parametrize("case", REFERENCE["cases"], ids=[c["name"] for c in REFERENCE["cases"]])
def test_stax_reproduces_the_stored_reference(nt, case):
  _, _, kernel_fn = _load_builder()(nt, case["function"], case["kwargs"])
  x = jnp.asarray(REFERENCE["inputs"])
  with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="`FanIn` layers assume independent inputs")  # a Dense is in the branch
    kernels = kernel_fn(x, None, ("nngp", "ntk"))
  for name in ("nngp", "ntk"):
    expected = np.asarray(case[name])
    np.testing.assert_allclose(np.asarray(getattr(kernels, name), np.float64), expected,
                               rtol=tol(2e-6, 1e-12), atol=tol(2e-6, 1e-12) * np.max(np.abs(expected)))


def _hand_ntk(apply_fn, params, x1, x2):
  """Θ_{ik,jl} = Σ_p ∂f_k(x1_i)/∂θ_p ∂f_l(x2_j)/∂θ_p from full Jacobians, NT's (n1, n2, K, K) layout."""
  leaves = lambda x: jax.tree_util.tree_leaves(jax.jacobian(lambda p: apply_fn(p, x))(params))
  flat = lambda x: jnp.concatenate([j.reshape(j.shape[:2] + (-1,)) for j in leaves(x)], axis=-1)
  return jnp.einsum("ikp,jlp->ijkl", flat(x1), flat(x2), precision=jax.lax.Precision.HIGHEST)


@pytest.mark.parametrize("implementation", ntk_compat.SAFE_NTK_IMPLEMENTATIONS)
def test_empirical_ntk_equals_the_jacobian_contraction(nt, implementation):
  stax = nt.stax
  init_fn, apply_fn, _ = stax.serial(stax.Dense(8, 1.3, 0.1), stax.Erf(), stax.Dense(2, 1.3, 0.1))
  x1 = jax.random.normal(jax.random.PRNGKey(0), (3, 4))
  x2 = jax.random.normal(jax.random.PRNGKey(1), (2, 4))
  _, params = init_fn(jax.random.PRNGKey(2), x1.shape)
  kernel_fn = jax.jit(nt.empirical_ntk_fn(apply_fn, trace_axes=(), vmap_axes=0,
                                          implementation=getattr(nt.NtkImplementation, implementation)))
  empirical = kernel_fn(x1, x2, params)
  expected = jax.jit(_hand_ntk, static_argnums=0)(apply_fn, params, x1, x2)
  assert empirical.shape == (3, 2, 2, 2)
  np.testing.assert_allclose(empirical, expected, rtol=tol(1e-4, 1e-10), atol=tol(1e-5, 1e-12))


def test_predict_gradient_descent_mse_is_the_matrix_exponential(nt):
  rng = np.random.default_rng(0)
  n, k, lr = 5, 2, 0.7
  a = rng.normal(size=(n, n))
  ntk = a @ a.T + 0.5 * np.eye(n)
  y, f0 = rng.normal(size=(n, k)), rng.normal(size=(n, k))
  predict = nt.predict.gradient_descent_mse(jnp.asarray(ntk), jnp.asarray(y), learning_rate=lr)
  times = np.array([0.0, 1.5, 12.0])
  got = np.asarray(predict(jnp.asarray(times), jnp.asarray(f0)), np.float64)
  for t, f_t in zip(times, got):
    # NT's loss is ‖f − y‖²/(2 n k): f_t − y = exp(−η Θ t/(n k)) (f0 − y).
    expected = y + scipy.linalg.expm(-lr * t * ntk / (n * k)) @ (f0 - y)
    np.testing.assert_allclose(f_t, expected, rtol=tol(1e-4, 1e-10), atol=tol(1e-5, 1e-12))
  np.testing.assert_allclose(np.asarray(predict(None, jnp.asarray(f0)), np.float64), y, rtol=tol(1e-5, 1e-12))


def test_missing_install_raises_with_the_install_command(monkeypatch):
  monkeypatch.setattr(ntk_compat, "_applied", None)
  monkeypatch.setattr(ntk_compat, "is_installed", lambda: False)
  with pytest.raises(ImportError, match="pip install --no-deps neural-tangents==0.6.5 frozendict"):
    ntk_compat.import_neural_tangents()
