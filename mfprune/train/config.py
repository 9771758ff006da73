"""The settings of a training run."""

from __future__ import annotations

import dataclasses
from typing import Any

import optax

from mfprune.train.optim import _check_count, learning_rate_schedule, make_optimizer


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Everything that determines a training run (written to ``config.json``; a resumed run must match it).

  Attributes:
    steps: optimizer steps (iterations), ≥ 1.
    batch_size: examples per step (divisible by the number of devices when data parallel).
    optimizer: ``"sgd" | "momentum" | "adam"`` (:func:`make_optimizer`).
    learning_rate: the initial learning rate.
    momentum, nesterov, weight_decay: see :func:`make_optimizer`.
    lr_schedule, decay, decay_every: the learning-rate schedule, see :func:`learning_rate_schedule`.
    augment: random crop (4-pixel zero padding) and horizontal flip on every batch (CIFAR, [S] App. B).
    seed: the data order and augmentation seed (the initialisation and mask come with the parameters).
    eval_every: evaluate on validation/test every this many steps (0: only at the end).
    eval_batch_size: examples per evaluation call.
    log_every: average the training loss over this many steps per metrics line.
    checkpoint_every: save a checkpoint every this many steps (0: only at the end when ``out`` is given).
    keep_checkpoints: how many checkpoints to keep.
  """

  steps: int
  batch_size: int = 128
  optimizer: str = "sgd"
  learning_rate: float = 0.1
  momentum: float = 0.9
  nesterov: bool = False
  weight_decay: float = 0.0
  lr_schedule: str = "constant"
  decay: float = 0.1
  decay_every: int | None = None
  augment: bool = False
  seed: int = 0
  eval_every: int = 0
  eval_batch_size: int = 1000
  log_every: int = 50
  checkpoint_every: int = 0
  keep_checkpoints: int = 2

  def __post_init__(self):
    _check_count("steps", self.steps, minimum=1)
    _check_count("batch_size", self.batch_size, minimum=1)
    for name in ("eval_every", "checkpoint_every", "seed"):
      _check_count(name, getattr(self, name))
    for name in ("eval_batch_size", "log_every", "keep_checkpoints"):
      _check_count(name, getattr(self, name), minimum=1)
    self.make_optimizer()  # validates optimizer, lr_schedule and their numbers

  def schedule_fn(self) -> optax.Schedule:
    return learning_rate_schedule(self.lr_schedule, self.learning_rate, self.steps, decay=self.decay,
                                  decay_every=self.decay_every)

  def make_optimizer(self) -> optax.GradientTransformation:
    return make_optimizer(self.optimizer, self.schedule_fn(), momentum=self.momentum, nesterov=self.nesterov,
                          weight_decay=self.weight_decay)

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)
