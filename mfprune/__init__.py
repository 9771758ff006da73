"""mfprune: pruning at initialization guided by the mean-field theory in :mod:`theory`.

Modules: :mod:`mfprune.models` (Flax NNX networks of the papers), :mod:`mfprune.init` (EOC, variance-scaling,
orthogonal initialisations), :mod:`mfprune.functional` (``split(model) -> (apply_fn, params)``),
:mod:`mfprune.masks` (mask pytrees, exact top-k, density tables, save/load), :mod:`mfprune.scores` (saliency
scorer registry), :mod:`mfprune.pruning` (one-shot and iterative pruning), :mod:`mfprune.repair` (EOC rescaling,
weak lottery tickets, approximate isometry), :mod:`mfprune.signal` (Jacobian spectra, measured vs mean-field
q^l and c^l, Monte-Carlo critical sparsity), :mod:`mfprune.data` (digits, MNIST/Fashion-MNIST, CIFAR, Tiny
ImageNet; deterministic batches),
:mod:`mfprune.train` (mask-preserving optax training, checkpoints, seeds in vmap, devices) and
:mod:`mfprune.pipeline` (model → init → prune → repair), :mod:`mfprune.paths` (the Path Kernel trace of any
model, exact in log space) and :mod:`mfprune.ntk` (empirical NTK of pruned models against the infinite-width one,
predicted vs actual training), plus the command line
(``mfprune eoc | phase | prune | scr | paths | ntk | train | demo``) and reporting helpers (docs/).
"""

from mfprune import data, functional, init, masks, models, ntk, paths, pipeline, repair, scores, signal, train
from mfprune.functional import ModelFn, init_fn, merge, split
from mfprune.masks import (LayerCollapseError, LayerDensity, apply_mask, check_collapse, dense_mask, density,
                           load_mask, save_mask, sparsity_of)
from mfprune.pruning import keep_schedule, make_pruner, prune
from mfprune.scores import Stacked, available_scorers, get_scorer, register_scorer, score

__version__ = "0.4.0"

__all__ = [
    "data", "functional", "init", "masks", "models", "ntk", "paths", "pipeline", "repair", "scores", "signal",
    "train",
    "ModelFn", "init_fn", "merge", "split",
    "LayerCollapseError", "LayerDensity", "apply_mask", "check_collapse", "dense_mask", "density", "load_mask",
    "save_mask", "sparsity_of",
    "keep_schedule", "make_pruner", "prune",
    "Stacked", "available_scorers", "get_scorer", "register_scorer", "score",
]
