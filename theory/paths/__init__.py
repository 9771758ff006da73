"""Paths, the Path Kernel and SynFlow's objectives of bias-free networks with positively homogeneous activations.

A bias-free network whose activation is positively homogeneous (``φ(αh) = αφ(h)`` for ``α > 0``: ReLU, leaky ReLU,
linear) computes ([P] eq. 9; THEORY.md §7)::

    f_k(x, θ) = Σ_s Σ_{p ∈ P_{s→k}} v_p(θ) a_p(x, θ) x_s,        v_p(θ) = Π_j θ_j^{p_j},

a sum over the paths ``p`` from input ``s`` to output ``k`` of the path value ``v_p`` (the product of the weights
along it) times the path's activation ``a_p`` (the product of the slopes of the units it passes). So ``∇_θ f =
J_v^f J_θ^v`` and the NTK factors as ``Θ = J_v^f Π_θ J_v^fᵀ`` with the **Path Kernel** ``Π_θ = J_θ^v J_θ^vᵀ``, which
depends on the weights only ([P] eq. 10-13). Its trace ([P] eq. 14-15)::

    Tr Π_θ = Σ_p Σ_j (∂v_p/∂θ_j)² = Σ_j ∂R_pk(1, θ)/∂(θ_j²),      R_pk(x, θ) = 1ᵀ (Π_l (θ^l)²) x,

is one backward pass through the linear network whose weights are ``θ²``, with no path enumeration.
SynFlow's objective is ``R_sf = 1ᵀ (Π_l |θ^l|) 1`` ([P] eq. 16).

One module per job, all on a **dense chain** given as its kernels (2-D arrays in flax's ``(fan_in, fan_out)``
layout, layer 1 first; ``f(x) = φ(…φ(x W_1)…) W_L``):

* :mod:`~theory.paths.chains`: ``R_sf``, ``R_pk``, the Path Kernel diagonal and ``Tr Π`` by one gradient, also in
  log space (finite at depth 100 in float32): ``chain_*`` functions and :func:`chain_path_statistics`;
* :mod:`~theory.paths.enumeration`: the explicit paths, the test oracle for tiny nets (:func:`path_values`,
  :func:`path_jacobian` ``J_θ^v``, :func:`path_kernel` ``Π``, :func:`path_activations` ``J_v^f``);
* :mod:`~theory.paths.convergence`: the convergence estimate of [P] Fig. 1.

Any model given as ``(apply_fn, params)`` (convolutions, skips, batch norm) is :mod:`mfprune.paths`' job.

**Pruned networks.** ``mask`` (one 0/1 or boolean array per kernel) removes weights: the network is evaluated at
``θ ⊙ m`` and pruned weights are no longer parameters, so their entries of the diagonal are 0 and they add nothing
to ``Tr Π`` (the column of ``J_θ^v`` of a pruned weight is zero). Without the mask a weight that is merely 0 still
counts: ``∂R_pk/∂(θ_j²)`` is the flow through ``j``, not zero. Pass the mask, not only the zeroed weights.

Precision: the weights' floating dtype (float32 by default; float64 with ``jax_enable_x64``). Every function runs
under ``jax.jit``/``jax.vmap``; argument checks run on concrete values only.

References: [P] A Unified Paths Perspective for Pruning at Initialization (eq. 9-16, Fig. 1); Tanaka et al. 2020
(SynFlow).
"""

from theory._deprecated import renamed as _renamed
from theory.paths.chains import (PathStatistics, chain_log_path_kernel_diagonal, chain_log_path_kernel_trace,
                                 chain_log_path_objective, chain_path_kernel_diagonal, chain_path_kernel_trace,
                                 chain_path_objective, chain_path_statistics)
from theory.paths.convergence import ConvergenceFit, convergence_estimate, fit_convergence_scale
from theory.paths.enumeration import (DEFAULT_MAX_PATHS, check_homogeneous, path_activations, path_count,
                                      path_indices, path_jacobian, path_kernel, path_values)

__all__ = [
    "chain_path_objective", "chain_log_path_objective", "chain_path_kernel_diagonal",
    "chain_log_path_kernel_diagonal", "chain_path_kernel_trace", "chain_log_path_kernel_trace", "PathStatistics",
    "chain_path_statistics",
    "DEFAULT_MAX_PATHS", "path_count", "path_indices", "path_values", "path_jacobian", "path_kernel",
    "path_activations", "check_homogeneous",
    "convergence_estimate", "ConvergenceFit", "fit_convergence_scale",
]

__getattr__ = _renamed(__name__, {name: "chain_" + name for name in (
    "path_objective", "log_path_objective", "path_kernel_diagonal", "log_path_kernel_diagonal", "path_kernel_trace",
    "log_path_kernel_trace", "path_statistics")})
