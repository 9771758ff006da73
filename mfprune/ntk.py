"""The empirical neural tangent kernel of (pruned) networks, its infinite-width counterpart, and the training it
predicts against real gradient descent ([P] §2, eq. 3-8; THEORY.md §7-8).

* **Empirical NTK** ([P] eq. 3): ``Θ(x, x')_{kl} = Σ_j m_j ∂f_k(x)/∂θ_j ∂f_l(x')/∂θ_j`` at ``θ ⊙ m``. The sum runs
  over the *trainable* parameters: a pruned weight (mask ``False``) is held at zero and never trained, so it drops
  out; biases and every leaf the mask leaves ``None`` count. :func:`empirical_ntk` computes it in plain JAX
  (per-example Jacobians contracted block by block, so memory stays bounded) or with neural-tangents'
  ``empirical_ntk_fn`` (:data:`IMPLEMENTATIONS`); the two agree.
* **Spectrum**: :func:`ntk_spectrum` gives the trace and the largest eigenvalues, the quantities of [P] Theorem 1
  and Fig. 1 (``λ_i(Θ) ≤ ν_i π_i``, convergence rate ``η Tr Π``).
* **Infinite-width counterpart**: :func:`analytic_kernels` maps an mfprune :class:`~mfprune.models.MLP` or
  :class:`~mfprune.models.VanillaCNN` (depth, widths, activation) and its initialisation (σw, σb) to
  :mod:`theory.kernels` in the standard parameterisation, which a wide network's empirical NTK matches within
  sampling error; :func:`compare_ntk` puts the two side by side (:class:`NTKComparison`).
* **Training**: under full-batch gradient descent on the mean squared error the linearised network of [P] eq. 4
  evolves in closed form ([P] eq. 7-8, here in discrete steps); :func:`predicted_losses` gives that loss curve from
  a kernel, :func:`gradient_descent_losses` the curve of real gradient descent on the (pruned) model, and
  :func:`predict_training` both side by side (:class:`TrainingComparison`).

Every function takes the ``(apply_fn, params)`` pair of :mod:`mfprune.functional` and an optional mask
(:mod:`mfprune.masks`). ``apply_fn`` must treat the examples of a batch independently (no batch norm in training
mode: split such a model in ``eval()`` mode): Jacobians are taken example by example.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from mfprune.functional import ApplyFn, Params
from mfprune.masks import Mask, apply_mask, check_mask
from theory import activations as theory_activations
from theory import kernels
from theory._pytree import pytree_dataclass
from theory._validation import check_int, positive_float
from theory.activations import ActivationLike

Array = jax.Array

IMPLEMENTATIONS: tuple[str, ...] = ("jax", "nt_jacobian", "nt_vector_products")
"""``"jax"``: plain JAX (per-example ``jax.jacrev``, contracted block by block); ``"nt_jacobian"`` and
``"nt_vector_products"``: neural-tangents' ``empirical_ntk_fn`` with ``JACOBIAN_CONTRACTION`` and
``NTK_VECTOR_PRODUCTS`` (its other implementations do not run on current JAX; see DESIGN.md)."""

LOOPS: tuple[str, ...] = ("auto", "scan", "host")
"""How :func:`gradient_descent_losses` iterates: one ``lax.scan`` over all steps, a host loop over one jitted step,
or ``"auto"``: the host loop for models with convolutions (XLA:CPU runs convolutions inside loops 10-50× slower)."""

JACOBIAN_BUDGET = 2 ** 26
"""Default bound on the entries of one block's Jacobian (``examples × outputs × parameters``): 256 MiB in float32."""

__all__ = [
    "IMPLEMENTATIONS", "LOOPS", "empirical_ntk", "ntk_matrix", "NTKSpectrum", "ntk_spectrum",
    "analytic_kernels", "NTKComparison", "compare_ntk",
    "mse_loss", "predicted_losses", "gradient_descent_losses", "TrainingComparison", "predict_training",
]


# ---------------------------------------------------------------------------------------------------------------
# Validation.
# ---------------------------------------------------------------------------------------------------------------


def _check_implementation(implementation: str) -> str:
  if implementation not in IMPLEMENTATIONS:
    raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}; got {implementation!r}")
  return implementation


_apply_mask = jax.jit(apply_mask)


def _masked_params(params: Params, mask: Mask | None) -> Params:
  """``θ ⊙ m`` (compiled), after checking that ``mask`` fits ``params``."""
  if mask is None:
    return params
  check_mask(mask, params)
  return _apply_mask(params, mask)


@functools.partial(jax.jit, static_argnums=0)
def _forward(apply_fn: ApplyFn, params: Params, x: Array) -> Array:
  """``f(θ, x)`` flattened to ``(n, K)``, compiled (eager model calls compile every operation on its own)."""
  return apply_fn(params, x).reshape(x.shape[0], -1)


def _batch(name: str, x: Any, like: Array | None = None) -> Array:
  """``x`` as an array ``(n, ...)`` with ``n >= 1``, shaped like ``like`` past the batch axis when given."""
  x = jnp.asarray(x)
  if x.ndim < 2 or x.shape[0] < 1:
    raise ValueError(f"{name} must be a batch of shape (n, ...) with n >= 1 and at least one feature axis; "
                     f"got shape {x.shape}")
  if like is not None and x.shape[1:] != like.shape[1:]:
    raise ValueError(f"{name} must hold examples shaped like x1's {like.shape[1:]}; got shape {x.shape}")
  return x


def _output_size(apply_fn: ApplyFn, params: Params, x: Array, name: str = "x") -> int:
  """Outputs per example ``K`` (the model's output flattened past the batch axis); ValueError naming ``name`` when
  the model cannot take ``x``."""
  try:
    out = jax.eval_shape(apply_fn, params, x)
  except (TypeError, ValueError) as err:
    raise ValueError(f"{name} of shape {x.shape} does not fit the model: {err}") from None
  if not hasattr(out, "shape") or len(out.shape) < 1 or out.shape[0] != x.shape[0]:
    raise ValueError(f"apply_fn must return one output row per example of {name}; got {out}")
  return math.prod(out.shape[1:])


def _check_batch_size(batch_size: int | None, per_example: int) -> int:
  """Examples per block: ``batch_size``, or the most whose Jacobian fits :data:`JACOBIAN_BUDGET`."""
  if batch_size is None:
    return max(1, JACOBIAN_BUDGET // max(per_example, 1))
  return check_int("batch_size", batch_size, 1)


def _parameter_count(params: Params) -> int:
  return sum(int(np.size(x)) for x in jax.tree_util.tree_leaves(params))


# ---------------------------------------------------------------------------------------------------------------
# Empirical NTK ([P] eq. 3).
# ---------------------------------------------------------------------------------------------------------------


def _per_example(apply_fn: ApplyFn, mask: Mask | None) -> Callable[[Params, Array], Array]:
  """``θ, x_i -> f(θ ⊙ m, x_i)`` flattened: differentiating through the mask multiplies by ``m_j`` (``m_j² = m_j``)."""

  def fn(params, xi):
    params = params if mask is None else apply_mask(params, mask)
    return apply_fn(params, xi[None]).reshape(-1)

  return fn


def _jacobians(apply_fn: ApplyFn, params: Params, mask: Mask | None, x: Array) -> Params:
  """Per-example Jacobians: a tree like ``params`` whose leaves are ``(n, K, *leaf.shape)``."""
  return jax.vmap(jax.jacrev(_per_example(apply_fn, mask)), in_axes=(None, 0))(params, x)


def _contract(j1: Params, j2: Params, trace: bool) -> Array:
  """``Σ_j J1[a, k, j] J2[b, l, j]`` as ``(a, b, k, l)``, or its mean over ``k = l`` as ``(a, b)``."""
  total = None
  for a, b in zip(jax.tree_util.tree_leaves(j1), jax.tree_util.tree_leaves(j2)):
    a = a.reshape(a.shape[0], a.shape[1], -1)
    b = b.reshape(b.shape[0], b.shape[1], -1)
    if trace:
      term = jnp.einsum("aks,bks->ab", a, b, precision=jax.lax.Precision.HIGHEST) / a.shape[1]
    else:
      term = jnp.einsum("aks,bls->abkl", a, b, precision=jax.lax.Precision.HIGHEST)
    total = term if total is None else total + term
  return total


def _swap(block: Array) -> Array:
  """``Θ(x2, x1)`` from ``Θ(x1, x2)``: swap the example axes and, for the full kernel, the output axes."""
  return jnp.transpose(block, (1, 0) + ((3, 2) if block.ndim == 4 else ()))


def _symmetrised(block: Array) -> Array:
  """A diagonal block made exactly symmetric (its two triangles can differ in the last bit)."""
  return (block + _swap(block)) / 2


@functools.partial(jax.jit, static_argnums=0, static_argnames="trace")
def _jax_block_same(apply_fn: ApplyFn, params: Params, mask: Mask | None, x: Array, *, trace: bool) -> Array:
  j = _jacobians(apply_fn, params, mask, x)
  return _symmetrised(_contract(j, j, trace))


@functools.partial(jax.jit, static_argnums=0, static_argnames="trace")
def _jax_block_pair(apply_fn: ApplyFn, params: Params, mask: Mask | None, x1: Array, x2: Array, *,
                    trace: bool) -> Array:
  return _contract(_jacobians(apply_fn, params, mask, x1), _jacobians(apply_fn, params, mask, x2), trace)


def _nt_blocks(apply_fn: ApplyFn, mask: Mask | None, implementation: str, trace: bool):
  """The ``(same, pair)`` block functions of neural-tangents' ``empirical_ntk_fn`` (imported through
  :func:`theory.ntk_compat.import_neural_tangents`)."""
  from theory import ntk_compat

  nt = ntk_compat.import_neural_tangents()
  kind = {"nt_jacobian": nt.NtkImplementation.JACOBIAN_CONTRACTION,
          "nt_vector_products": nt.NtkImplementation.NTK_VECTOR_PRODUCTS}[implementation]

  def f(params, x):
    params = params if mask is None else apply_mask(params, mask)
    return apply_fn(params, x).reshape(x.shape[0], -1)

  ntk_fn = nt.empirical_ntk_fn(f, trace_axes=(-1,) if trace else (), vmap_axes=0, implementation=kind)
  same = jax.jit(lambda params, x: _symmetrised(ntk_fn(x, None, params)))
  pair = jax.jit(lambda params, x1, x2: ntk_fn(x1, x2, params))

  def quiet(fn):
    def call(*args):
      with warnings.catch_warnings():  # NT 0.6.5 calls jnp.size on shapes while tracing (harmless on JAX 0.10)
        warnings.filterwarnings("ignore", message="size requires ndarray", category=DeprecationWarning)
        return fn(*args)

    return call

  return quiet(same), quiet(pair)


def _padded(x: Array, size: int) -> Array:
  """``x`` with its first row repeated at the end up to ``size`` rows (every block then has the same shape)."""
  if x.shape[0] == size:
    return x
  return jnp.concatenate([x, jnp.broadcast_to(x[:1], (size - x.shape[0],) + x.shape[1:])])


@functools.partial(jax.jit, static_argnums=(1, 2))
def _join(rows: list[list[Array]], n1: int, n2: int) -> Array:
  return jnp.concatenate([jnp.concatenate(row, axis=1) for row in rows], axis=0)[:n1, :n2]


def _assemble(same, pair, params: Params, x1: Array, x2: Array | None, chunk: int) -> Array:
  """The kernel from blocks of at most ``chunk`` examples; with ``x2 = None`` only the upper triangle is computed."""
  n1 = x1.shape[0]
  symmetric = x2 is None
  n2 = n1 if symmetric else x2.shape[0]
  if n1 <= chunk and n2 <= chunk:
    return same(params, x1) if symmetric else pair(params, x1, x2)
  c1, c2 = min(chunk, n1), min(chunk, n2)
  if symmetric:
    c1 = c2 = min(c1, c2)
  count1, count2 = -(-n1 // c1), -(-n2 // c2)
  blocks1 = _padded(x1, count1 * c1).reshape((count1, c1) + x1.shape[1:])
  blocks2 = blocks1 if symmetric else _padded(x2, count2 * c2).reshape((count2, c2) + x2.shape[1:])
  rows = []
  for i in range(count1):
    row = []
    for j in range(count2):
      if symmetric and j < i:
        row.append(_swap(rows[j][i]))
      elif symmetric and j == i:
        row.append(same(params, blocks1[i]))
      else:
        row.append(pair(params, blocks1[i], blocks2[j]))
    rows.append(row)
  return _join(rows, n1, n2)


def empirical_ntk(apply_fn: ApplyFn, params: Params, x1: Array, x2: Array | None = None, *,
                  mask: Mask | None = None, trace_outputs: bool = False, implementation: str = "jax",
                  batch_size: int | None = None) -> Array:
  """The empirical NTK ``Θ(x1, x2) = J(x1) M J(x2)ᵀ`` of the pruned network ``θ ⊙ m`` ([P] eq. 3; THEORY.md §7).

  ``J`` is the Jacobian of the outputs with respect to all parameters and ``M = diag(m)`` keeps the trainable ones:
  pruned weights (mask ``False``) are held at zero and never trained, so they contribute nothing; biases and the
  other leaves the mask leaves ``None`` are trainable. The kernel is evaluated at ``θ ⊙ m``.

  Output convention (neural-tangents' ``trace_axes``, which this matches): ``trace_outputs=False`` gives the full
  kernel ``(n1, n2, K, K)`` (NT's ``trace_axes=()``) and ``trace_outputs=True`` its **mean** over the output
  diagonal, ``(1/K) Σ_k Θ_kk``, shape ``(n1, n2)`` (NT's ``trace_axes=(-1,)`` divides the trace by ``K``).

  Args:
    apply_fn: ``apply_fn(params, x)`` returning ``(n, ...)``; outputs past the batch axis are flattened to ``K``.
      Hashable (a static argument of the compiled blocks); examples must be processed independently.
    params: the parameters ``θ``.
    x1: inputs ``(n1, ...)``.
    x2: inputs ``(n2, ...)`` shaped like ``x1``'s examples; ``None`` for ``x1`` itself (only the upper triangle of
      blocks is computed, and the kernel is exactly symmetric).
    mask: optional mask (:mod:`mfprune.masks`); ``None`` trains every parameter.
    trace_outputs: return the output-averaged kernel ``(n1, n2)`` instead of ``(n1, n2, K, K)``.
    implementation: one of :data:`IMPLEMENTATIONS`.
    batch_size: examples per block (``x1`` and ``x2`` are cut into blocks; each block pair is one compiled call).
      Default: as many as keep one block's Jacobian ``batch × K × #params`` within :data:`JACOBIAN_BUDGET`.

  Returns:
    ``(n1, n2, K, K)`` or, with ``trace_outputs``, ``(n1, n2)``.

  Raises:
    ValueError: unknown ``implementation``; ``mask`` that does not fit ``params``; ``x1``/``x2`` that are not
      batches the model takes; ``batch_size < 1``.
  """
  _check_implementation(implementation)
  if mask is not None:
    check_mask(mask, params)
  x1 = _batch("x1", x1)
  k = _output_size(apply_fn, params, x1, "x1")
  if x2 is not None:
    x2 = _batch("x2", x2, like=x1)
  chunk = _check_batch_size(batch_size, k * _parameter_count(params))
  trace = bool(trace_outputs)
  if implementation == "jax":
    def same(p, x):
      return _jax_block_same(apply_fn, p, mask, x, trace=trace)

    def pair(p, xa, xb):
      return _jax_block_pair(apply_fn, p, mask, xa, xb, trace=trace)
  else:
    same, pair = _nt_blocks(apply_fn, mask, implementation, trace)
  return _assemble(same, pair, params, x1, x2, chunk)


def ntk_matrix(kernel: Array) -> Array:
  """The kernel as a matrix: ``(n1, n2)`` unchanged, ``(n1, n2, K, K)`` as ``(n1·K, n2·K)`` with row ``i·K + k`` for
  example ``i``, output ``k`` (the order of ``f(X).reshape(-1)``, so ``Θ = J Jᵀ`` with ``J = ∂ vec f(X) / ∂θ``)."""
  kernel = jnp.asarray(kernel)
  if kernel.ndim == 2:
    return kernel
  if kernel.ndim != 4 or kernel.shape[2] != kernel.shape[3]:
    raise ValueError(f"kernel must have shape (n1, n2) or (n1, n2, K, K); got {kernel.shape}")
  n1, n2, k, _ = kernel.shape
  return jnp.transpose(kernel, (0, 2, 1, 3)).reshape(n1 * k, n2 * k)


# ---------------------------------------------------------------------------------------------------------------
# Spectrum ([P] Theorem 1, Fig. 1).
# ---------------------------------------------------------------------------------------------------------------


@pytree_dataclass
class NTKSpectrum:
  """Trace and leading eigenvalues of a kernel on one set of inputs ([P] Theorem 1: ``λ_i(Θ) ≤ ν_i π_i``).

  Attributes:
    trace: ``Tr Θ`` (of :func:`ntk_matrix`, so the full kernel's trace sums over examples and outputs).
    eigenvalues: the ``k`` largest eigenvalues, in descending order.
  """

  trace: Array
  eigenvalues: Array

  def to_dict(self) -> dict[str, Any]:
    return {"trace": float(self.trace), "eigenvalues": np.asarray(self.eigenvalues).tolist()}


def _square(name: str, kernel: Array) -> int:
  """The size of :func:`ntk_matrix` of ``kernel``, or ValueError naming ``name`` unless it is a kernel of one set
  of inputs, ``(n, n)`` or ``(n, n, K, K)``."""
  shape = jnp.shape(kernel)
  if not ((len(shape) == 2 and shape[0] == shape[1]) or
          (len(shape) == 4 and shape[0] == shape[1] and shape[2] == shape[3])):
    raise ValueError(f"{name} must be a kernel of one set of inputs, (n, n) or (n, n, K, K); got {shape}")
  return shape[0] * (shape[2] if len(shape) == 4 else 1)


def ntk_spectrum(kernel: Array, k: int | None = None) -> NTKSpectrum:
  """Trace and ``k`` largest eigenvalues of a symmetric kernel (``eigh`` on its symmetric part).

  Args:
    kernel: ``(n, n)`` or ``(n, n, K, K)`` (taken as :func:`ntk_matrix`).
    k: eigenvalues to keep, ``1 <= k``; ``None`` (or more than the matrix size) keeps them all.

  Returns:
    :class:`NTKSpectrum`.

  Raises:
    ValueError: a kernel that is not square, or ``k < 1``.
  """
  size = _square("kernel", kernel)
  k = size if k is None else min(check_int("k", k, 1), size)
  return _spectrum(jnp.asarray(kernel), k)


@functools.partial(jax.jit, static_argnums=1)
def _spectrum(kernel: Array, k: int) -> NTKSpectrum:
  matrix = ntk_matrix(kernel)
  values = jnp.linalg.eigvalsh((matrix + matrix.T) / 2)
  return NTKSpectrum(trace=jnp.trace(matrix), eigenvalues=values[::-1][:k])


# ---------------------------------------------------------------------------------------------------------------
# Infinite-width counterpart (THEORY.md §8) and the comparison.
# ---------------------------------------------------------------------------------------------------------------


def _model_activation(module: Any, activation: ActivationLike | None) -> ActivationLike:
  """The activation the model computes: ``activation`` when given, else the :class:`theory.Activation` behind the
  model's :class:`~mfprune.models.layers.StaticFn` (its parameters included), else its registry name."""
  if activation is not None:
    return activation
  static = module.activation
  owner = getattr(getattr(static, "_fn", None), "__self__", None)
  return owner if isinstance(owner, theory_activations.Activation) else static.name


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
  from mfprune.models import MLP, VanillaCNN

  if not isinstance(apply_fn, ModelFn):
    raise ValueError("apply_fn must be an mfprune model's (mfprune.functional.split or init_fn); for another "
                     "network call theory.kernels directly")
  module = apply_fn.module(params)
  x1 = _batch("x1", x1)
  _output_size(apply_fn, params, x1, "x1")
  if x2 is not None:
    x2 = _batch("x2", x2, like=x1)
  act = _model_activation(module, activation)
  if isinstance(module, MLP):
    layers = list(module.layers)
    return kernels.mlp_kernels(x1, x2, activation=act, depth=len(layers), sigma_w=sigma_w, sigma_b=sigma_b,
                               parameterization="standard", widths=[layer.out_features for layer in layers[:-1]],
                               use_bias=layers[0].bias is not None)
  if isinstance(module, VanillaCNN):
    convs = list(module.convs)
    if module.dims == 1:
      x1 = x1.reshape(x1.shape[0], -1, x1.shape[-1])
      x2 = None if x2 is None else x2.reshape(x2.shape[0], -1, x2.shape[-1])
    return kernels.cnn_kernels(x1, x2, activation=act, depth=len(convs) + 1, sigma_w=sigma_w, sigma_b=sigma_b,
                               kernel_size=convs[0].kernel_size[0], parameterization="standard",
                               channels=[conv.kernel.shape[-1] for conv in convs],
                               use_bias=module.readout.bias is not None)
  raise ValueError(f"no analytic kernel for {type(module).__name__}: theory.kernels covers mfprune's MLP and "
                   "VanillaCNN")


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


# ---------------------------------------------------------------------------------------------------------------
# Training under full-batch gradient descent on the MSE ([P] eq. 4-8).
# ---------------------------------------------------------------------------------------------------------------


def mse_loss(outputs: Array, targets: Array) -> Array:
  """``L = (1/2N) Σ (f − y)²`` with ``N = y.size`` (examples × outputs): the loss of :func:`predicted_losses` and
  :func:`gradient_descent_losses`."""
  return 0.5 * jnp.mean((outputs - targets) ** 2)


def _check_targets(y: Any, outputs_shape: tuple[int, ...]) -> Array:
  y = jnp.asarray(y)
  if y.shape != tuple(outputs_shape):
    raise ValueError(f"y must have the shape of the model's outputs {tuple(outputs_shape)}; got {y.shape}")
  return y


def predicted_losses(kernel: Array, f0: Array, y: Array, *, learning_rate: float, steps: int) -> Array:
  """Loss of the linearised network under full-batch gradient descent on :func:`mse_loss` ([P] eq. 4-8).

  Gradient descent on ``L = ‖f − y‖²/(2N)`` (``N = y.size``) moves the linearised outputs by
  ``f_{t+1} − y = (I − ηΘ/N)(f_t − y)``: the discrete-time form of [P] eq. 8, in which ``e^{−ηΘt}`` becomes
  ``(I − ηΘ/N)^t``. Computed by :func:`theory.kernels.linearised_mse` with ``discrete=True`` (same loss convention,
  neural-tangents' ``predict.gradient_descent_mse``; eigenvalues clipped at 0).

  Args:
    kernel: ``Θ0`` on the training inputs: the full kernel ``(n, n, K, K)`` (or ``(n·K, n·K)``), or ``(n, n)``
      applied to every output alike (``Θ ⊗ I_K``: the infinite-width structure, or the output-averaged kernel).
    f0: the initial outputs ``(n, K)``.
    y: targets ``(n, K)``.
    learning_rate: ``η > 0``.
    steps: number of steps ``T >= 1``.

  Returns:
    ``(T + 1,)``: the losses at steps ``0, …, T``.

  Raises:
    ValueError: shapes that do not fit, ``learning_rate <= 0`` or ``steps < 1``.
  """
  learning_rate = positive_float("learning_rate", learning_rate, "the gradient-descent step size")
  steps = check_int("steps", steps, 1)
  f0 = jnp.asarray(f0)
  if f0.ndim != 2:
    raise ValueError(f"f0 must be the initial outputs (n, K); got shape {f0.shape}")
  y = _check_targets(y, f0.shape)
  size = _square("kernel", kernel)
  if size not in (f0.shape[0], f0.size):
    raise ValueError(f"kernel must be (n, n) or (n, n, K, K) for outputs (n, K) = {f0.shape}; got "
                     f"{jnp.shape(kernel)}")
  prediction = kernels.linearised_mse(kernel, y, f0, learning_rate=learning_rate, times=np.arange(steps + 1),
                                      discrete=True)
  return prediction.train_loss


def _has_convolution(apply_fn: ApplyFn, params: Params, x: Array) -> bool:
  return "conv_general_dilated" in str(jax.make_jaxpr(apply_fn)(params, x[:1]))


@functools.partial(jax.jit, static_argnums=0)
def _gd_step(apply_fn: ApplyFn, params: Params, mask: Mask | None, x: Array, y: Array,
             learning_rate: Array) -> tuple[Params, Array]:
  def loss_fn(p):
    return mse_loss(apply_fn(p if mask is None else apply_mask(p, mask), x).reshape(y.shape), y)

  loss, grads = jax.value_and_grad(loss_fn)(params)
  return jax.tree.map(lambda p, g: p - learning_rate * g, params, grads), loss


@functools.partial(jax.jit, static_argnums=(0, 6))
def _gd_scan(apply_fn: ApplyFn, params: Params, mask: Mask | None, x: Array, y: Array, learning_rate: Array,
             steps: int) -> Array:
  def body(p, _):
    p, loss = _gd_step(apply_fn, p, mask, x, y, learning_rate)
    return p, loss

  params, losses = jax.lax.scan(body, params, None, length=steps)
  final = mse_loss(apply_fn(params if mask is None else apply_mask(params, mask), x).reshape(y.shape), y)
  return jnp.concatenate([losses, final[None]])


def gradient_descent_losses(apply_fn: ApplyFn, params: Params, x: Array, y: Array, *, mask: Mask | None = None,
                            learning_rate: float, steps: int, loop: str = "auto") -> Array:
  """Real full-batch gradient descent ``θ ← θ − η ∇L`` on :func:`mse_loss`, pruned weights held at zero.

  The network is ``f(θ ⊙ m)``, so the gradient of a pruned weight is ``m_j ∂L/∂θ'_j = 0`` and, starting from
  ``θ ⊙ m``, it stays at zero: the training whose linearisation :func:`predicted_losses` describes.

  Args:
    apply_fn: ``apply_fn(params, x)``.
    params: initial parameters (masked here).
    x: training inputs ``(n, ...)``.
    y: targets shaped like the outputs ``f(x)`` flattened past the batch axis, ``(n, K)``.
    mask: optional mask.
    learning_rate: ``η > 0``.
    steps: number of steps ``T >= 1``.
    loop: one of :data:`LOOPS`.

  Returns:
    ``(T + 1,)``: the losses at steps ``0, …, T`` (before each step, and after the last).

  Raises:
    ValueError: ``mask``, ``x`` or ``y`` that do not fit the model, ``learning_rate <= 0``, ``steps < 1``, unknown
      ``loop``.
  """
  learning_rate = positive_float("learning_rate", learning_rate, "the gradient-descent step size")
  steps = check_int("steps", steps, 1)
  if loop not in LOOPS:
    raise ValueError(f"loop must be one of {LOOPS}; got {loop!r}")
  params = _masked_params(params, mask)
  x = _batch("x", x)
  k = _output_size(apply_fn, params, x, "x")
  y = _check_targets(y, (x.shape[0], k))
  dtype = jnp.result_type(*jax.tree_util.tree_leaves(params))
  eta = jnp.asarray(learning_rate, dtype)
  if loop == "auto":
    loop = "host" if _has_convolution(apply_fn, params, x) else "scan"
  if loop == "scan":
    return _gd_scan(apply_fn, params, mask, x, y, eta, steps)
  losses = []
  for _ in range(steps):
    params, loss = _gd_step(apply_fn, params, mask, x, y, eta)
    losses.append(loss)
  losses.append(_gd_step(apply_fn, params, mask, x, y, eta)[1])  # the loss after the last step
  return jnp.asarray(np.stack(jax.device_get(losses)))


@pytree_dataclass
class TrainingComparison:
  """Loss curves of full-batch gradient descent on the MSE: predicted by the linearised network vs measured.

  Attributes:
    steps: ``(T + 1,)`` step numbers ``0, …, T``.
    predicted: the loss predicted from the empirical ``Θ0`` (:func:`predicted_losses`).
    actual: the loss of real gradient descent (:func:`gradient_descent_losses`).
    analytic: the loss predicted from the analytic kernel, or ``None``.
    max_relative_gap: ``max_t |predicted_t − actual_t| / actual_t``.
  """

  steps: Array
  predicted: Array
  actual: Array
  analytic: Array | None
  max_relative_gap: Array

  def to_dict(self) -> dict[str, Any]:
    out = {"steps": np.asarray(self.steps).tolist(), "predicted": np.asarray(self.predicted).tolist(),
           "actual": np.asarray(self.actual).tolist(), "max_relative_gap": float(self.max_relative_gap)}
    if self.analytic is not None:
      out["analytic"] = np.asarray(self.analytic).tolist()
    return out


def predict_training(apply_fn: ApplyFn, params: Params, x: Array, y: Array, *, mask: Mask | None = None,
                     learning_rate: float, steps: int, ntk: Array | None = None, analytic: Array | None = None,
                     implementation: str = "jax", batch_size: int | None = None,
                     loop: str = "auto") -> TrainingComparison:
  """The loss curve the empirical NTK predicts ([P] eq. 7-8) against real gradient descent on the pruned model.

  Args:
    apply_fn: ``apply_fn(params, x)``.
    params: initial parameters.
    x: training inputs ``(n, ...)``.
    y: targets ``(n, K)``.
    mask: optional mask (pruned weights stay at zero in training and drop out of ``Θ0``).
    learning_rate: ``η > 0``.
    steps: ``T >= 1``.
    ntk: the empirical kernel on ``x``, ``(n, n, K, K)`` (or ``(n, n)``); computed with ``implementation`` and
      ``batch_size`` (:func:`empirical_ntk`, full kernel) when ``None``.
    analytic: an analytic kernel on ``x``, ``(n, n)`` (:func:`analytic_kernels`' ``ntk``), for a third curve from
      the same initial outputs; ``None`` for none.
    implementation: see :func:`empirical_ntk`.
    batch_size: see :func:`empirical_ntk`.
    loop: see :func:`gradient_descent_losses`.

  Returns:
    :class:`TrainingComparison`.

  Raises:
    ValueError: as :func:`empirical_ntk`, :func:`predicted_losses` and :func:`gradient_descent_losses`.
  """
  learning_rate = positive_float("learning_rate", learning_rate, "the gradient-descent step size")
  steps = check_int("steps", steps, 1)
  masked = _masked_params(params, mask)
  x = _batch("x", x)
  k = _output_size(apply_fn, masked, x, "x")
  y = _check_targets(y, (x.shape[0], k))
  if ntk is None:
    ntk = empirical_ntk(apply_fn, params, x, mask=mask, implementation=implementation, batch_size=batch_size)
  f0 = _forward(apply_fn, masked, x)
  predicted = predicted_losses(ntk, f0, y, learning_rate=learning_rate, steps=steps)
  actual = gradient_descent_losses(apply_fn, params, x, y, mask=mask, learning_rate=learning_rate, steps=steps,
                                   loop=loop)
  curve = None if analytic is None else predicted_losses(analytic, f0, y, learning_rate=learning_rate, steps=steps)
  p, a = np.asarray(predicted, np.float64), np.asarray(actual, np.float64)
  return TrainingComparison(steps=jnp.asarray(np.arange(steps + 1)), predicted=predicted, actual=actual,
                            analytic=curve, max_relative_gap=jnp.asarray(np.max(np.abs(p - a) / a)))
