"""Training pruned networks: a mask-preserving optax wrapper, compiled steps, schedules, checkpoints, seeds in vmap.

The pieces compose like optax and flax's NNX examples (docs/training.md):

* :mod:`~mfprune.train.optim`: :func:`keep_pruned_at_zero` wraps any ``optax.GradientTransformation`` so pruned
  weights stay exactly zero (momentum, Adam moments and weight decay included); :func:`make_optimizer` and
  :func:`learning_rate_schedule` build the papers' set-ups (SGD with momentum, the piecewise decay at 1/2 and 3/4 of
  training of [R] §4.2, the step decay every 20k/25k iterations of [S] App. B);
* :mod:`~mfprune.train.config`: :class:`TrainConfig`, everything that determines a run;
* :mod:`~mfprune.train.steps`: pure, jit/vmap-able :func:`make_train_step` / :func:`make_eval_step` over a
  :class:`TrainState` (batch-norm statistics carried along for models from :func:`mfprune.functional.split`);
* :mod:`~mfprune.train.run_folder`: the run's files, written atomically, and resume;
* :mod:`~mfprune.train.loop`: :func:`train` runs them: deterministic batches (a pure function of the seed and the
  step, so a resumed run sees exactly the batches the uninterrupted one saw), periodic orbax checkpoints,
  ``resume=True``, metrics as JSON lines, a progress bar, loss/accuracy curves as PNG, ``ensemble=True`` to train K
  networks of one shape (different seeds, masks or sparsities) in one compiled program, and data parallelism.
"""

from mfprune.train.config import TrainConfig
from mfprune.train.loop import TrainResult, train
from mfprune.train.optim import (LR_SCHEDULES, OPTIMIZERS, keep_pruned_at_zero, learning_rate_schedule,
                                 make_optimizer)
from mfprune.train.run_folder import RunFolder
from mfprune.train.steps import (TrainState, apply_model, init_state, initial_model_state, make_eval_step,
                                 make_train_step, stack, unstack)

__all__ = [
    "OPTIMIZERS", "LR_SCHEDULES", "keep_pruned_at_zero", "learning_rate_schedule", "make_optimizer",
    "TrainConfig", "TrainState", "apply_model", "init_state", "initial_model_state", "make_eval_step",
    "make_train_step", "stack", "unstack", "RunFolder", "TrainResult", "train",
]
