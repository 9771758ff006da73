"""The infinite-width NNGP/NTK of an mfprune model and its comparison with an empirical kernel (THEORY.md §8;
:mod:`theory.kernels`).

:func:`analytic_kernels` reads a model's :class:`~mfprune.models.MeanFieldView` (an MLP or a vanilla CNN: depth,
widths, window, biases, activation) and, with the initialisation's ``(σw, σb)``, evaluates :mod:`theory.kernels` in
the standard parameterisation, which a wide network's empirical NTK matches within sampling error;
:func:`compare_ntk` puts the two side by side (:class:`NTKComparison`).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mfprune._checks import batch_array as _batch
from mfprune.functional import ApplyFn, Params
from mfprune.ntk._common import _output_size
from mfprune.ntk.empirical import _spectrum, _square, ntk_matrix
from theory import kernels
from theory._pytree import pytree_dataclass
from theory._validation import check_int
from theory.activations import ActivationLike

Array = jax.Array


def analytic_kernels(apply_fn: ApplyFn, params: Params, x1: Array, x2: Array | None = None, *, sigma_w: float,
                     sigma_b: float, activation: ActivationLike | None = None) -> kernels.Kernels:
  """Infinite-width NNGP and NTK of an mfprune :class:`~mfprune.models.MLP` or :class:`~mfprune.models.VanillaCNN`
  initialised with ``W ~ N(0, σw²/fan_in)``, ``b ~ N(0, σb²)`` (THEORY.md §8; :mod:`theory.kernels`).

  The architecture (depth, hidden widths or channels, window, 1-D or 2-D, biases, activation) is read from the
  model; the kernel is :func:`theory.kernels.mlp_kernels` / :func:`theory.kernels.cnn_kernels` with
  ``parameterization="standard"`` and the model's widths, the expectation over initialisations of the empirical
  NTK of this finite, standard-parameterised network: :func:`empirical_ntk` with ``trace_outputs=True`` matches it
  to ``O(1/√width)`` relative, and the full empirical kernel matches ``Θ ⊗ I_K``. It is the kernel of the *dense*
  network: a mask does not enter (comparing a pruned net's empirical kernel with it shows what pruning changed).

  Args:
    apply_fn: an mfprune model's ``apply_fn`` (:class:`~mfprune.functional.ModelFn`).
    params: its parameters (only the structure is read).
    x1: inputs ``(n1, ...)`` as the model takes them.
    x2: inputs ``(n2, ...)`` or ``None`` for ``x1``.
    sigma_w: the initialisation's ``σw > 0`` (e.g. :func:`mfprune.init.gaussian`'s).
    sigma_b: the initialisation's ``σb >= 0`` (0 for a model without biases).
    activation: overrides the activation read from the model (needed only for a plain callable the registry does
      not know).

  Returns:
    :class:`theory.kernels.Kernels` (``nngp`` and ``ntk``, each ``(n1, n2)``, per output unit).

  Raises:
    ValueError: a model other than MLP/VanillaCNN, inputs it does not take, or bad ``sigma_w``/``sigma_b``.
  """
  from mfprune.functional import ModelFn
  from mfprune.models import mean_field_view

  if not isinstance(apply_fn, ModelFn):
    raise ValueError("apply_fn must be an mfprune model's (mfprune.functional.split or init_fn); for another "
                     "network call theory.kernels directly")
  module = apply_fn.module(params)
  view = mean_field_view(module)
  if view is None:
    raise ValueError(f"no analytic kernel for {type(module).__name__}: the mean-field theory maps "
                     "the models registered with a MeanFieldView (mfprune's MLP and VanillaCNN)")
  x1 = _batch("x1", x1)
  _output_size(apply_fn, params, x1, "x1")
  if x2 is not None:
    x2 = _batch("x2", x2, like=x1)
  act = view.activation if activation is None else activation
  if view.architecture == "ffnn":
    return kernels.mlp_kernels(x1, x2, activation=act, depth=view.depth, sigma_w=sigma_w, sigma_b=sigma_b,
                               parameterization="standard", widths=list(view.widths), use_bias=view.use_bias)
  if view.dims == 1:
    x1 = x1.reshape(x1.shape[0], -1, x1.shape[-1])
    x2 = None if x2 is None else x2.reshape(x2.shape[0], -1, x2.shape[-1])
  return kernels.cnn_kernels(x1, x2, activation=act, depth=view.depth, sigma_w=sigma_w, sigma_b=sigma_b,
                             kernel_size=view.kernel_size, parameterization="standard", channels=list(view.widths),
                             use_bias=view.use_bias)


@pytree_dataclass
class NTKComparison:
  """An empirical kernel against an analytic one on the same inputs.

  Attributes:
    relative_error: ``‖Θ_emp − Θ_an‖_F / ‖Θ_an‖_F``.
    trace_ratio: ``Tr Θ_emp / Tr Θ_an``.
    empirical_eigenvalues: the ``k`` largest eigenvalues of ``Θ_emp``, descending.
    analytic_eigenvalues: those of ``Θ_an``, side by side.
  """

  relative_error: Array
  trace_ratio: Array
  empirical_eigenvalues: Array
  analytic_eigenvalues: Array

  def to_dict(self) -> dict[str, Any]:
    return {"relative_error": float(self.relative_error), "trace_ratio": float(self.trace_ratio),
            "empirical_eigenvalues": np.asarray(self.empirical_eigenvalues).tolist(),
            "analytic_eigenvalues": np.asarray(self.analytic_eigenvalues).tolist()}


def compare_ntk(empirical: Array, analytic: Array, *, k: int = 10) -> NTKComparison:
  """Relative Frobenius error, trace ratio and leading eigenvalues of an empirical kernel against an analytic one.

  Args:
    empirical: ``(n, n)`` (e.g. ``empirical_ntk(..., trace_outputs=True)``) or the full ``(n, n, K, K)``.
    analytic: ``(n, n)`` (e.g. :func:`analytic_kernels`' ``ntk``); against a full empirical kernel it stands for
      ``Θ ⊗ I_K`` (the infinite-width output structure), whose eigenvalues are ``Θ``'s, each ``K`` times.
    k: eigenvalues compared, ``>= 1`` (at most the matrix size).

  Returns:
    :class:`NTKComparison`.

  Raises:
    ValueError: kernels that are not square or do not match, ``k < 1``.
  """
  size = _square("empirical", empirical)
  _square("analytic", analytic)
  full = jnp.ndim(empirical) == 4 and jnp.ndim(analytic) == 2
  expected = jnp.shape(empirical)[:2] if full else jnp.shape(empirical)
  if jnp.shape(analytic) != expected:
    raise ValueError(f"analytic {jnp.shape(analytic)} does not match empirical {jnp.shape(empirical)}")
  k = min(check_int("k", k, 1), size)
  return _compare(jnp.asarray(empirical), jnp.asarray(analytic), k)


@functools.partial(jax.jit, static_argnums=2)
def _compare(empirical: Array, analytic: Array, k: int) -> NTKComparison:
  if empirical.ndim == 4 and analytic.ndim == 2:
    analytic = analytic[:, :, None, None] * jnp.eye(empirical.shape[2], dtype=analytic.dtype)
  emp, an = ntk_matrix(empirical), ntk_matrix(analytic)
  emp_spectrum, an_spectrum = _spectrum(empirical, k), _spectrum(analytic, k)
  return NTKComparison(relative_error=jnp.linalg.norm(emp - an) / jnp.linalg.norm(an),
                       trace_ratio=emp_spectrum.trace / an_spectrum.trace,
                       empirical_eigenvalues=emp_spectrum.eigenvalues, analytic_eigenvalues=an_spectrum.eigenvalues)
