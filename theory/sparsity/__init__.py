"""Critical sparsity and layer collapse: exact ``s_cr`` from scores, the bounds of [R], the EOC rescaling target, and
mean-field predictions of what pruning keeps.

Pruning at initialization keeps the ``k`` highest scores of the whole network; the **critical sparsity** ``s_cr`` is
the smallest sparsity at which some layer keeps no weight ([R] §2.2; THEORY.md §3). One module per question:

* :mod:`~theory.sparsity.exact`: the exact ``s_cr`` of one set of scores under mfprune's tie rule
  (:func:`critical_sparsity_from_scores`, :func:`critical_keep_count`, :func:`layer_death_sparsity`,
  :func:`layer_death_order`, :func:`layer_kept_counts`), and :func:`sortable_keys`, the one definition of the order
  in which mfprune ranks scores;
* :mod:`~theory.sparsity.bounds`: [R] Theorem 1 (:func:`theorem1_bound`), Proposition 4 (:func:`proposition4`,
  :func:`proposition4_parameters`, :func:`mbp_threshold`, the half-normal quantiles) and Proposition 5
  (:func:`proposition5_probability`);
* :mod:`~theory.sparsity.rescaling`: the EOC rescaling target of [R] Proposition 1 / Algorithm 1
  (:func:`rescaling_target`) and the weak lottery ticket's keep probability, [R] Theorems 3-4
  (:func:`lottery_keep_probability`);
* :mod:`~theory.sparsity.kept_fraction`: the per-layer share SBP keeps and the critical sparsity predicted from the
  mean-field score profile ``m_l`` (:func:`predicted_kept_fraction`, :func:`predicted_critical_sparsity`, and their
  ``*_from_moments`` forms).

References: [R] Hayou et al., Robust Pruning at Initialization (ICLR 2021). ``docs/sparsity.md`` explains the choices
where the paper is ambiguous (the log base of Theorem 1, the reading of γ in Propositions 4-5, the rescaling target).
"""

from theory._deprecated import renamed as _renamed
from theory.sparsity.bounds import (DEFAULT_EPSILON_GRID, GAMMA_READINGS, Proposition4Bound, Proposition4Parameters,
                                    Theorem1Bound, half_normal_isf, half_normal_quantile, mbp_threshold, proposition4,
                                    proposition4_bound, proposition4_parameters, proposition5_probability,
                                    theorem1_bound)
from theory.sparsity.exact import (LayerKeptCounts, critical_keep_count, critical_sparsity_from_scores,
                                   layer_death_order, layer_death_sparsity, layer_kept_counts, sortable_keys)
from theory.sparsity.kept_fraction import (SCORE_LAWS, PredictedCriticalSparsity, critical_sparsity_from_moments,
                                           kept_fraction_from_moments, predicted_critical_sparsity,
                                           predicted_kept_fraction)
from theory.sparsity.rescaling import KEEP_PROBABILITY_RTOL, lottery_keep_probability, rescaling_target

__all__ = [
    "sortable_keys", "critical_sparsity_from_scores", "critical_keep_count", "layer_death_sparsity",
    "layer_death_order", "LayerKeptCounts", "layer_kept_counts",
    "Theorem1Bound", "theorem1_bound",
    "half_normal_quantile", "half_normal_isf", "mbp_threshold", "Proposition4Bound", "proposition4",
    "proposition4_bound", "Proposition4Parameters", "proposition4_parameters", "proposition5_probability",
    "GAMMA_READINGS", "DEFAULT_EPSILON_GRID",
    "rescaling_target", "lottery_keep_probability", "KEEP_PROBABILITY_RTOL",
    "SCORE_LAWS", "kept_fraction_from_moments", "PredictedCriticalSparsity", "critical_sparsity_from_moments",
    "predicted_kept_fraction", "predicted_critical_sparsity",
]

__getattr__ = _renamed(__name__, {"critical_sparsity": "critical_sparsity_from_scores"})
