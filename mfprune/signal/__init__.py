"""Signal propagation in (pruned) networks at initialization: Jacobian spectra, per-layer ``q^l`` and ``c^l``, and the
Monte-Carlo critical sparsity. Every function takes the ``(apply_fn, params)`` pair of :mod:`mfprune.functional`;
``mask=`` arguments evaluate ``masks.apply_mask(params, mask)``.

* :mod:`~mfprune.signal.jacobian`: **the input-output Jacobian** ``J_{0,K}(x) = Π_l D_l W_l`` ([S] eq. 4, 7) and the
  mean, standard deviation and condition number of its singular values ([S] Table 1, Figure 2):
  :func:`jacobian_singular_values`, :func:`jacobian_statistics`, :func:`spectrum_statistics`.
* :mod:`~mfprune.signal.moments`: **the mean-field statistics** ``q^l`` and ``c^l`` ([R] §2.1 eq. 1-3, App. A, C)
  measured on a finite network (:func:`layer_moments`), predicted for the dense and the pruned net
  (:func:`predicted_moments`, i.e. :func:`theory.maps.propagate`), and side by side (:func:`compare_moments`).
* :mod:`~mfprune.signal.critical`: **the critical sparsity** ``s_cr``, the smallest sparsity at which global pruning
  empties a layer ([R] §2.2): :func:`critical_sparsity` over many random initialisations in one ``jax.vmap``-ed
  program, with a Student-t interval, the layer that dies first and every layer's kept fraction against sparsity.
"""

from mfprune.signal.critical import (DEFAULT_SPARSITIES, CriticalSparsity, SeedCriticalSparsity, critical_sparsity,
                                     critical_sparsity_fn)
from mfprune.signal.jacobian import JacobianStats, jacobian_singular_values, jacobian_statistics, spectrum_statistics
from mfprune.signal.moments import (LayerMoments, MomentComparison, compare_moments, layer_moments, layer_names,
                                    predicted_moments, preactivations)

__all__ = [
    "JacobianStats", "jacobian_singular_values", "jacobian_statistics", "spectrum_statistics",
    "LayerMoments", "preactivations", "layer_names", "layer_moments",
    "MomentComparison", "predicted_moments", "compare_moments",
    "DEFAULT_SPARSITIES", "SeedCriticalSparsity", "CriticalSparsity", "critical_sparsity", "critical_sparsity_fn",
]
