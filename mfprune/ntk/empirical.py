"""The empirical neural tangent kernel of a (pruned) network and its spectrum ([P] §2 eq. 3, Theorem 1, Fig. 1;
THEORY.md §7).

``Θ(x, x')_{kl} = Σ_j m_j ∂f_k(x)/∂θ_j ∂f_l(x')/∂θ_j`` at ``θ ⊙ m``: the sum runs over the *trainable* parameters (a
pruned weight is held at zero and never trained, so it drops out; biases and every leaf the mask leaves ``None``
count). :func:`empirical_ntk` computes it in plain JAX (per-example Jacobians contracted block by block, so memory
stays bounded) or with neural-tangents' ``empirical_ntk_fn`` (:data:`IMPLEMENTATIONS`); the two agree.
:func:`ntk_spectrum` gives the trace and the largest eigenvalues ([P] Theorem 1: ``λ_i(Θ) ≤ ν_i π_i``, convergence
rate ``η Tr Π``).
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from mfprune.masks import Mask, apply_mask, check_mask
from mfprune._checks import batch_array as _batch
from mfprune.functional import ApplyFn, Params
from mfprune.ntk._common import _output_size
from theory._pytree import pytree_dataclass
from theory._validation import check_int

Array = jax.Array

IMPLEMENTATIONS: tuple[str, ...] = ("jax", "nt_jacobian", "nt_vector_products")
"""``"jax"``: plain JAX (per-example ``jax.jacrev``, contracted block by block); ``"nt_jacobian"`` and
``"nt_vector_products"``: neural-tangents' ``empirical_ntk_fn`` with ``JACOBIAN_CONTRACTION`` and
``NTK_VECTOR_PRODUCTS`` (its other implementations do not run on current JAX; see DESIGN.md)."""

JACOBIAN_BUDGET = 2 ** 26
"""Default bound on the entries of one block's Jacobian (``examples × outputs × parameters``): 256 MiB in float32."""



def _check_implementation(implementation: str) -> str:
  if implementation not in IMPLEMENTATIONS:
    raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}; got {implementation!r}")
  return implementation



def _check_batch_size(batch_size: int | None, per_example: int) -> int:
  """Examples per block: ``batch_size``, or the most whose Jacobian fits :data:`JACOBIAN_BUDGET`."""
  if batch_size is None:
    return max(1, JACOBIAN_BUDGET // max(per_example, 1))
  return check_int("batch_size", batch_size, 1)


def _parameter_count(params: Params) -> int:
  return sum(int(np.size(x)) for x in jax.tree_util.tree_leaves(params))


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
