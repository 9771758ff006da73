"""mfprune: pruning at initialization guided by the mean-field theory in :mod:`theory`.

Modules: :mod:`mfprune.models` (Flax NNX networks of the papers), :mod:`mfprune.init` (EOC, variance-scaling,
orthogonal initialisations), :mod:`mfprune.functional` (``split(model) -> (apply_fn, params)``),
:mod:`mfprune.masks` (mask pytrees, exact top-k, density tables, save/load), :mod:`mfprune.scores` (saliency
scorer registry) and :mod:`mfprune.pruning` (one-shot and iterative pruning), plus the command line
(``mfprune eoc | phase | prune | demo``) and reporting helpers. Training arrives with the training issue (docs/).
"""

from mfprune import functional, init, masks, models, scores
from mfprune.functional import ModelFn, init_fn, merge, split
from mfprune.masks import (LayerCollapseError, LayerDensity, apply_mask, check_collapse, dense_mask, density,
                           load_mask, save_mask, sparsity_of)
from mfprune.pruning import keep_schedule, make_pruner, prune
from mfprune.scores import Stacked, available_scorers, get_scorer, register_scorer, score

__version__ = "0.2.0"

__all__ = [
    "functional", "init", "masks", "models", "scores",
    "ModelFn", "init_fn", "merge", "split",
    "LayerCollapseError", "LayerDensity", "apply_mask", "check_collapse", "dense_mask", "density", "load_mask",
    "save_mask", "sparsity_of",
    "keep_schedule", "make_pruner", "prune",
    "Stacked", "available_scorers", "get_scorer", "register_scorer", "score",
]
