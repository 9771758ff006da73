"""Mean-field theory of deep random networks, in JAX: pure functions of (activation, σw, σb, depth, ...).

References: [R] Hayou et al., Robust Pruning at Initialization (ICLR 2021); [S] Lee et al., A Signal Propagation
Perspective for Pruning at Initialization (ICLR 2020); [P] A Unified Paths Perspective for Pruning at
Initialization. Equation numbers are the papers'; ``docs/concepts.md`` explains the quantities.
"""

from theory._deprecated import renamed as _renamed
from theory.activations import Activation, available_activations, get_activation, register_activation
from theory.eoc import (EOCPoint, EOCStatus, NoEOCError, Phase, PhaseDiagram, PhasePoint, eoc_curve, eoc_point,
                        eoc_sigma_w, phase, phase_diagram)
from theory.dual import DualMoments, HermiteExpansion, dual_moments, hermite_expansion, mehler_sum
from theory.gaussian import DEFAULT_ORDER, expect, expect2, expect2_pairs
from theory.gradients import Conditioning, GradientMoments, PrunedChi, conditioning, gradient_moments, pruned_chi
from theory.maps import (Propagation, chi_at, correlation_fixed_point, correlation_map, correlation_map_slope,
                         covariance_map, depth_scales, input_kernel, propagate, q_star, variance_map,
                         variance_map_slope)
from theory import dual, kernels, ntk_compat, paths, sparsity
from theory.sparsity import (PredictedCriticalSparsity, Proposition4Bound, Proposition4Parameters, Theorem1Bound,
                             critical_keep_count, critical_sparsity_from_moments, critical_sparsity_from_scores,
                             half_normal_isf, half_normal_quantile, kept_fraction_from_moments, layer_death_order,
                             layer_death_sparsity, lottery_keep_probability, mbp_threshold,
                             predicted_critical_sparsity, predicted_kept_fraction, proposition4, proposition4_bound,
                             proposition4_parameters, proposition5_probability, rescaling_target, theorem1_bound)

__all__ = [
    "Activation", "available_activations", "get_activation", "register_activation",
    "EOCPoint", "EOCStatus", "NoEOCError", "Phase", "PhaseDiagram", "PhasePoint", "eoc_curve", "eoc_point",
    "eoc_sigma_w", "phase", "phase_diagram",
    "DualMoments", "HermiteExpansion", "dual_moments", "hermite_expansion", "mehler_sum",
    "DEFAULT_ORDER", "expect", "expect2", "expect2_pairs",
    "Conditioning", "GradientMoments", "PrunedChi", "conditioning", "gradient_moments", "pruned_chi",
    "Propagation", "chi_at", "correlation_fixed_point", "correlation_map", "correlation_map_slope",
    "covariance_map", "depth_scales", "input_kernel", "propagate", "q_star", "variance_map", "variance_map_slope",
    "dual", "kernels", "ntk_compat", "paths", "sparsity",
    "PredictedCriticalSparsity", "Proposition4Bound", "Proposition4Parameters", "Theorem1Bound", "critical_keep_count",
    "critical_sparsity_from_moments", "critical_sparsity_from_scores", "half_normal_isf", "half_normal_quantile",
    "kept_fraction_from_moments", "layer_death_order", "layer_death_sparsity", "lottery_keep_probability",
    "mbp_threshold", "predicted_critical_sparsity", "predicted_kept_fraction", "proposition4", "proposition4_bound",
    "proposition4_parameters", "proposition5_probability", "rescaling_target", "theorem1_bound",
]

__getattr__ = _renamed(__name__, {"critical_sparsity": "critical_sparsity_from_scores"})
