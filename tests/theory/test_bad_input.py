"""Bad input gets a clear error naming the argument and the valid range."""

import jax.numpy as jnp
import numpy as np
import pytest

import theory


@pytest.mark.parametrize("call, message", [
    (lambda: theory.get_activation("tanhh"), r"unknown activation 'tanhh'; choose one of"),
    (lambda: theory.get_activation("elu", beta=1.0), r"takes parameters \['alpha'\]"),
    (lambda: theory.get_activation("elu", alpha=-1.0), r"elu.alpha must be > 0"),
    (lambda: theory.get_activation(3.0), r"activation must be a name, a callable or an Activation"),
    (lambda: theory.get_activation(jnp.tanh, alpha=1.0), r"parameters can only be given with a registry name"),
    (lambda: theory.q_star("tanh", 0.1, 0.0), r"sigma_w must be > 0"),
    (lambda: theory.q_star("tanh", 0.1, -1.0), r"sigma_w must be > 0"),
    (lambda: theory.q_star("tanh", -0.1, 1.0), r"sigma_b must be >= 0"),
    (lambda: theory.q_star("tanh", float("nan"), 1.0), r"sigma_b must be finite"),
    (lambda: theory.q_star("tanh", 0.1, float("inf")), r"sigma_w must be finite"),
    (lambda: theory.eoc_curve("tanh", [0.1, -0.2]), r"sigma_b must be >= 0"),
    (lambda: theory.correlation_map("tanh", 0.1, 1.0, 1.5), r"c must lie in \[-1.0, 1.0\]"),
    (lambda: theory.expect2(jnp.tanh, jnp.tanh, 1.0, 1.0, -1.01), r"c must lie in \[-1.0, 1.0\]"),
    (lambda: theory.expect(jnp.tanh, -1.0), r"q must be >= 0"),
    (lambda: theory.variance_map("tanh", 0.1, 1.0, np.array([1.0, np.nan])), r"q must be finite"),
    (lambda: theory.propagate("tanh", 0.1, 1.0, 0, 1.0), r"depth must be an integer >= 1"),
    (lambda: theory.propagate("tanh", 0.1, 1.0, 2.5, 1.0), r"depth must be an integer >= 1"),
    (lambda: theory.propagate("tanh", 0.1, 1.0, 3, 1.0, architecture="densenet"), r"architecture must be one of"),
    (lambda: theory.propagate("tanh", 0.1, 1.0, 3, 1.0, c1=2.0), r"c1 must lie in"),
    (lambda: theory.expect(jnp.tanh, 1.0, order=0), r"order must be an integer >= 1"),
    (lambda: theory.phase("tanh", 0.1, 1.0, tolerance=0.0), r"tolerance must be > 0"),
    (lambda: theory.phase_diagram("tanh", [[0.1]], [1.0]), r"must be 1-D grids"),
    (lambda: theory.input_kernel(np.ones(3), np.ones(4), 0.1, 1.0), r"x and x_other must be vectors of one shape"),
])
def test_clear_errors(call, message):
  with pytest.raises(ValueError, match=message):
    call()


def test_no_eoc_is_an_explicit_error_not_a_nan():
  with pytest.raises(theory.NoEOCError, match=r"'softplus' at sigma_b=0.3: no EOC"):
    theory.eoc_sigma_w("softplus", 0.3)
  with pytest.raises(theory.NoEOCError, match="unstable fixed point"):
    theory.eoc_point("silu", 0.3, require_stable=True)
  assert theory.eoc_point("silu", 0.3).to_dict()["status"] == ["unstable"]


def test_an_activation_that_is_nan_somewhere_is_refused_not_read_as_no_eoc():
  """A NaN expectation would make every solver say "no EOC"; the callable is refused, naming where it fails."""
  with pytest.raises(ValueError, match=r"activation 'log' is not finite at x = \[-10.0"):
    theory.eoc_curve(jnp.log, 0.1)
  with pytest.raises(ValueError, match="is not finite"):
    theory.phase(lambda x: jnp.sqrt(x), 0.1, 1.0)
  assert theory.get_activation(lambda x: jnp.tanh(x) + 0.1 * x).name == "<lambda>"  # finite callables still pass
