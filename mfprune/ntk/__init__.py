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

The package is split along those lines: :mod:`mfprune.ntk.empirical` (kernel and spectrum),
:mod:`mfprune.ntk.analytic` (infinite width, comparison) and :mod:`mfprune.ntk.dynamics` (training); every public
name is re-exported here. Every function takes the ``(apply_fn, params)`` pair of :mod:`mfprune.functional` and an
optional mask (:mod:`mfprune.masks`). ``apply_fn`` must treat the examples of a batch independently (no batch norm
in training mode: split such a model in ``eval()`` mode): Jacobians are taken example by example.
"""

from mfprune.ntk.analytic import NTKComparison, analytic_kernels, compare_ntk
from mfprune.ntk.dynamics import (LOOPS, TrainingComparison, gradient_descent_losses, mse_loss, predict_training,
                                  predicted_losses)
from mfprune.ntk.empirical import (IMPLEMENTATIONS, JACOBIAN_BUDGET, NTKSpectrum, empirical_ntk, ntk_matrix,
                                   ntk_spectrum)

__all__ = [
    "IMPLEMENTATIONS", "JACOBIAN_BUDGET", "LOOPS", "empirical_ntk", "ntk_matrix", "NTKSpectrum", "ntk_spectrum",
    "analytic_kernels", "NTKComparison", "compare_ntk",
    "mse_loss", "predicted_losses", "gradient_descent_losses", "TrainingComparison", "predict_training",
]

