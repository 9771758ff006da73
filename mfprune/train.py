"""Training pruned networks: a mask-preserving optax wrapper, compiled steps, schedules, checkpoints, seeds in vmap.

The pieces compose like optax and flax's NNX examples:

* :func:`keep_pruned_at_zero` wraps any ``optax.GradientTransformation`` so pruned weights stay exactly zero
  (momentum, Adam moments and weight decay included);
* :func:`make_optimizer` and :func:`learning_rate_schedule` build the papers' set-ups (SGD with momentum 0.9, the
  piecewise decay at 1/2 and 3/4 of training of [R] §4.2, the step decay every 20k/25k iterations of [S] App. B);
* :func:`make_train_step` / :func:`make_eval_step` are pure and jit/vmap-able;
* :func:`train` runs them: deterministic batches (a pure function of the seed and the step, so a resumed run sees
  exactly the batches the uninterrupted one saw), periodic atomic orbax checkpoints, ``resume=True``, metrics as
  JSON lines, a progress bar, loss/accuracy curves as PNG, ``ensemble=True`` to train K networks of one shape
  (different seeds, masks or sparsities) in one compiled program, and data parallelism over devices.

Batch-norm statistics: for models from :func:`mfprune.functional.split` the trainer carries the non-parameter
state (running means and variances) alongside the parameters, uses batch statistics while training and the running
averages for evaluation, as flax does.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from mfprune import data as data_lib
from mfprune import masks as masks_lib
from mfprune import report
from mfprune.functional import ModelFn
from mfprune.scores import cross_entropy

Array = jax.Array
Params = Any
Mask = Any
OPTIMIZERS = ("sgd", "momentum", "adam")
SCHEDULES = ("constant", "piecewise", "step")


# ----------------------------------------------------------------------------------------------------------------
# Optimizers
# ----------------------------------------------------------------------------------------------------------------


def keep_pruned_at_zero(inner: optax.GradientTransformation, mask: Mask) -> optax.GradientTransformation:
  """Wraps ``inner`` so that weights pruned by ``mask`` receive exactly zero updates.

  Gradients are masked before ``inner`` (so momentum and Adam moments of pruned weights stay zero) and updates are
  masked after it (so nothing the inner chain adds, weight decay or Adam's ε terms, reaches a pruned weight).
  Together with parameters that start at zero (:func:`mfprune.masks.apply_mask`), pruned weights are exactly zero
  for the whole run: ``0 + 0 = 0`` in floating point. The mask may be a traced value (``jax.vmap`` over masks).

  Args:
    inner: any optax transformation (its state has the shape it has without the wrapper).
    mask: boolean pytree like the parameters, ``None`` on unprunable leaves (:mod:`mfprune.masks`).

  Returns:
    An ``optax.GradientTransformation`` with ``inner``'s state.
  """

  def update(updates, state, params=None):
    updates, state = inner.update(masks_lib.apply_mask(updates, mask), state, params)
    return masks_lib.apply_mask(updates, mask), state

  return optax.GradientTransformation(inner.init, update)


def learning_rate_schedule(name: str, learning_rate: float, steps: int, *, decay: float = 0.1,
                           decay_every: int | None = None) -> optax.Schedule:
  """The learning-rate schedules of the papers.

  * ``"constant"``: ``learning_rate`` throughout ([R] §4.1: SGD, 10k iterations, lr 1e-3 for the deep MLPs).
  * ``"piecewise"``: multiplied by ``decay`` at 1/2 and at 3/4 of ``steps`` ([R] §4.2, after Wang et al. 2020).
  * ``"step"``: multiplied by ``decay`` every ``decay_every`` steps ([S] App. B: 0.1 every 20k iterations on
    MNIST, every 25k on CIFAR-10 and Tiny ImageNet).

  Args:
    name: one of :data:`SCHEDULES`.
    learning_rate: the initial learning rate (> 0).
    steps: the length of the run (> 0); sets the piecewise boundaries.
    decay: the factor at each boundary, in (0, 1].
    decay_every: the step-decay period (> 0); required for ``"step"``.

  Returns:
    ``step -> learning rate`` (an optax schedule).
  """
  if not learning_rate > 0:
    raise ValueError(f"learning_rate must be > 0; got {learning_rate}")
  if not 0 < decay <= 1:
    raise ValueError(f"decay must be in (0, 1]; got {decay}")
  _check_count("steps", steps, minimum=1)
  if name == "constant":
    return optax.constant_schedule(learning_rate)
  if name == "piecewise":
    boundaries = sorted({max(1, steps // 2), max(1, (3 * steps) // 4)})
    return optax.piecewise_constant_schedule(learning_rate, {b: decay for b in boundaries})
  if name == "step":
    if decay_every is None or decay_every < 1:
      raise ValueError(f"the step schedule needs decay_every >= 1 (steps between decays); got {decay_every}")
    return optax.exponential_decay(learning_rate, decay_every, decay, staircase=True)
  raise ValueError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}")


def make_optimizer(name: str, learning_rate: float | optax.Schedule, *, momentum: float = 0.9,
                   nesterov: bool = False, weight_decay: float = 0.0) -> optax.GradientTransformation:
  """SGD, SGD with (Nesterov) momentum, or Adam, with coupled weight decay.

  Weight decay is added to the gradient before the optimizer (``g + λθ``, as PyTorch's SGD and the papers' code do),
  on every parameter. Wrap the result in :func:`keep_pruned_at_zero` to train a pruned network.

  Args:
    name: ``"sgd"``, ``"momentum"`` or ``"adam"``.
    learning_rate: a float or an optax schedule.
    momentum: the momentum coefficient for ``"momentum"``, in [0, 1).
    nesterov: Nesterov momentum.
    weight_decay: λ ≥ 0.

  Returns:
    The optax transformation.
  """
  if weight_decay < 0:
    raise ValueError(f"weight_decay must be >= 0; got {weight_decay}")
  if name == "sgd":
    core = optax.sgd(learning_rate)
  elif name == "momentum":
    if not 0 <= momentum < 1:
      raise ValueError(f"momentum must be in [0, 1); got {momentum}")
    core = optax.sgd(learning_rate, momentum=momentum, nesterov=nesterov)
  elif name == "adam":
    core = optax.adam(learning_rate)
  else:
    raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
  return optax.chain(optax.add_decayed_weights(weight_decay), core) if weight_decay else core


# ----------------------------------------------------------------------------------------------------------------
# Configuration and state
# ----------------------------------------------------------------------------------------------------------------


def _check_count(name: str, value: Any, *, minimum: int = 0) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
    raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
  return int(value)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Everything that determines a training run (written to ``config.json``; a resumed run must match it).

  Attributes:
    steps: optimizer steps (iterations), ≥ 1.
    batch_size: examples per step (divisible by the number of devices when data parallel).
    optimizer: ``"sgd" | "momentum" | "adam"`` (:func:`make_optimizer`).
    learning_rate: the initial learning rate.
    momentum, nesterov, weight_decay: see :func:`make_optimizer`.
    schedule, decay, decay_every: see :func:`learning_rate_schedule`.
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
  schedule: str = "constant"
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
    self.make_optimizer()  # validates optimizer, schedule and their numbers

  def schedule_fn(self) -> optax.Schedule:
    return learning_rate_schedule(self.schedule, self.learning_rate, self.steps, decay=self.decay,
                                  decay_every=self.decay_every)

  def make_optimizer(self) -> optax.GradientTransformation:
    return make_optimizer(self.optimizer, self.schedule_fn(), momentum=self.momentum, nesterov=self.nesterov,
                          weight_decay=self.weight_decay)

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


class TrainState(NamedTuple):
  """What a training run carries from step to step (a pytree; with ``ensemble=True`` every leaf has a K axis).

  Attributes:
    step: the number of steps taken (a scalar int32 array).
    params: the (masked) parameters.
    model_state: non-parameter model state (batch-norm statistics) as a pure dict; ``{}`` if there is none.
    opt_state: the optimizer state.
  """

  step: Array
  params: Params
  model_state: Any
  opt_state: Any


def apply_model(apply_fn: Callable, params: Params, model_state: Any, x: Array, *,
                training: bool) -> tuple[Array, Any]:
  """Runs the network and returns ``(logits, new model state)``.

  For an :class:`~mfprune.functional.ModelFn` with batch-norm statistics, ``training=True`` normalises by batch
  statistics and updates the running averages; ``training=False`` uses the running averages. Any other
  ``apply_fn(params, x)`` is called as it is and its (empty) state passes through.
  """
  if not (isinstance(apply_fn, ModelFn) and model_state):
    return apply_fn(params, x), model_state
  module = nnx.merge(apply_fn.graphdef, params, model_state)
  if training:
    module.train()
  else:
    module.eval()
  logits = module(x)
  return logits, nnx.to_pure_dict(nnx.state(module, nnx.Not(nnx.Param)))


def initial_model_state(apply_fn: Callable) -> Any:
  """The model's non-parameter state (``apply_fn.rest`` for a ModelFn, else ``{}``)."""
  return apply_fn.rest if isinstance(apply_fn, ModelFn) else {}


def init_state(params: Params, mask: Mask, optimizer: optax.GradientTransformation,
               model_state: Any = None) -> TrainState:
  """Step 0: the masked parameters and a fresh optimizer state (vmap it for an ensemble)."""
  params = masks_lib.apply_mask(params, mask)
  return TrainState(jnp.zeros((), jnp.int32), params, {} if model_state is None else model_state,
                    optimizer.init(params))


# ----------------------------------------------------------------------------------------------------------------
# Steps
# ----------------------------------------------------------------------------------------------------------------


def make_train_step(apply_fn: Callable, optimizer: optax.GradientTransformation, *,
                    augment: bool = False) -> Callable:
  """A pure training step ``(state, mask, x, y, key) -> (state, {"loss", "accuracy"})``.

  Softmax cross-entropy on integer labels; the update goes through :func:`keep_pruned_at_zero` with ``mask``, so
  ``jax.vmap(step, in_axes=(0, 0, None, None, None))`` trains K networks with different masks on the same batch.

  Args:
    apply_fn: ``apply_fn(params, x) -> logits`` (a :class:`~mfprune.functional.ModelFn` for batch norm).
    optimizer: the inner optax transformation (not yet wrapped).
    augment: apply :func:`mfprune.data.augment` (random crop and flip) with ``key`` first.

  Returns:
    The step function (not jitted: jit or vmap it as you need).
  """

  def loss_fn(params, model_state, x, y):
    logits, model_state = apply_model(apply_fn, params, model_state, x, training=True)
    return cross_entropy(logits, y), (logits, model_state)

  def step(state: TrainState, mask: Mask, x: Array, y: Array, key: Array):
    if augment:
      x = data_lib.augment(key, x)
    (loss, (logits, model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params, state.model_state, x, y)
    tx = keep_pruned_at_zero(optimizer, mask)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    accuracy = jnp.mean(jnp.argmax(logits, -1) == y)
    return TrainState(state.step + 1, params, model_state, opt_state), {"loss": loss, "accuracy": accuracy}

  return step


def make_eval_step(apply_fn: Callable) -> Callable:
  """A pure evaluation step ``(params, model_state, x, y) -> (summed loss, number correct)`` on one batch."""

  def step(params, model_state, x, y):
    logits, _ = apply_model(apply_fn, params, model_state, x, training=False)
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    return jnp.sum(losses), jnp.sum(jnp.argmax(logits, -1) == y)

  return step


# ----------------------------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class TrainResult:
  """The outcome of :func:`train`.

  Attributes:
    state: the final :class:`TrainState` (K-stacked with ``ensemble=True``).
    history: every metrics record, as written to ``metrics.jsonl``.
    final: the last evaluation: ``{"test": {"loss", "accuracy"}, "validation": ...}`` (lists over members for an
      ensemble).
    seconds: wall time of this call (compilation included).
    examples_per_second: training throughput after the first (compiling) step, counting every member of an
      ensemble.
    resumed_from: the step a resumed run started at (0 for a fresh run).
  """

  state: TrainState
  history: list[dict[str, Any]]
  final: dict[str, Any]
  seconds: float
  examples_per_second: float
  resumed_from: int = 0

  @property
  def params(self) -> Params:
    return self.state.params


_OPTIMIZER_FIELDS = ("steps", "optimizer", "learning_rate", "momentum", "nesterov", "weight_decay", "schedule",
                     "decay", "decay_every")


def _optimizer_settings(config: TrainConfig) -> tuple:
  return tuple((name, getattr(config, name)) for name in _OPTIMIZER_FIELDS)


@functools.lru_cache(maxsize=32)
def _compiled(apply_fn: Callable, optimizer_settings: tuple, augment: bool, ensemble: bool):
  """Jitted ``(init, train step, eval step)``, cached so that runs of one model and set-up compile once."""
  optimizer = TrainConfig(**dict(optimizer_settings)).make_optimizer()
  init = lambda p, m, s: init_state(p, m, optimizer, s)  # noqa: E731
  step_fn = make_train_step(apply_fn, optimizer, augment=augment)
  eval_fn = make_eval_step(apply_fn)
  if ensemble:
    init = jax.vmap(init)
    step_fn = jax.vmap(step_fn, in_axes=(0, 0, None, None, None))
    eval_fn = jax.vmap(eval_fn, in_axes=(0, 0, None, None))
  return jax.jit(init), jax.jit(step_fn, donate_argnums=0), jax.jit(eval_fn)


def _mesh(devices: int | Sequence[jax.Device] | None):
  if devices is None:
    return None
  if isinstance(devices, (int, np.integer)):
    available = jax.devices()
    if not 1 <= devices <= len(available):
      raise ValueError(f"devices must be in [1, {len(available)}] (the devices JAX sees); got {devices}")
    devices = available[:devices]
  devices = list(devices)
  if len(devices) == 1:
    return None
  return jax.sharding.Mesh(np.asarray(devices), ("data",), axis_types=(jax.sharding.AxisType.Auto,))


def _to_float(tree):
  return jax.tree.map(lambda v: np.asarray(v).tolist(), tree)


def _evaluate(eval_step, state: TrainState, dataset: data_lib.Dataset, batch_size: int, place) -> dict[str, Any]:
  total_loss, correct = 0.0, 0
  for start in range(0, len(dataset.x), batch_size):
    x, y = place(dataset.x[start:start + batch_size], dataset.y[start:start + batch_size])
    loss, right = eval_step(state.params, state.model_state, x, y)
    total_loss, correct = total_loss + loss, correct + right
  n = len(dataset.x)
  return {"loss": _to_float(total_loss / n), "accuracy": _to_float(correct / n)}


class _Checkpoints:
  """Orbax checkpoints of the :class:`TrainState` under ``<out>/checkpoints/<step>`` (each written atomically:
  orbax saves to a temporary folder and renames it when complete, so an interruption never leaves a half
  checkpoint that a resume would read)."""

  def __init__(self, directory: Path, keep: int):
    import orbax.checkpoint as ocp

    self._ocp = ocp
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=False, create=True)
    self.manager = ocp.CheckpointManager(directory.absolute(), options=options)

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state: TrainState) -> None:
    if self.manager.latest_step() != step:
      self.manager.save(step, args=self._ocp.args.StandardSave(state), force=True)
    self.manager.wait_until_finished()

  def restore(self, step: int, like: TrainState) -> TrainState:
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), jnp.asarray(x).dtype), like)
    restored = self.manager.restore(step, args=self._ocp.args.StandardRestore(abstract))
    return jax.tree.map(jnp.asarray, restored)

  def close(self) -> None:
    self.manager.close()


def _read_history(path: Path, up_to_step: int) -> list[dict[str, Any]]:
  if not path.exists():
    return []
  records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
  return [r for r in records if r["step"] <= up_to_step]


def _write_history(path: Path, records: list[dict[str, Any]]) -> None:
  report.atomic_write(path, lambda f: f.write("".join(json.dumps(r) + "\n" for r in records).encode()))


def _check_resumable(out: Path, config: dict[str, Any]) -> None:
  path = out / "config.json"
  if not path.exists():
    raise FileNotFoundError(f"cannot resume: {path} does not exist (no run was started in {out})")
  saved = json.loads(path.read_text()).get("train", {})
  changed = {k: (saved.get(k), v) for k, v in config.items() if saved.get(k) != v}
  if changed:
    detail = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
    raise ValueError(f"cannot resume {out}: the training configuration differs from the saved one ({detail})")


def train(apply_fn: Callable, params: Params, mask: Mask | None, splits: data_lib.Splits, config: TrainConfig, *,
          out: str | os.PathLike | None = None, resume: bool = False, ensemble: bool = False,
          devices: int | Sequence[jax.Device] | None = None, progress: bool = True,
          extra_config: dict[str, Any] | None = None, labels: Sequence[str] | None = None,
          callback: Callable[[int, TrainState], None] | None = None) -> TrainResult:
  """Trains a pruned network (or K of them at once) and evaluates it.

  The batch of step ``t`` is :func:`mfprune.data.batch_indices` of ``(config.seed, t)``, and augmentation draws from
  ``fold_in(key(config.seed), t)``: a run resumed from a checkpoint at step ``t`` replays exactly what the
  uninterrupted run did after ``t``, so both end with the same parameters and metrics. Ctrl-C saves a checkpoint of
  the last completed step before stopping (with ``out``).

  Args:
    apply_fn: ``apply_fn(params, x) -> logits``.
    params: initial parameters; with ``ensemble=True`` every leaf has a leading axis of K networks.
    mask: the pruning mask (``None``: dense training), K-stacked with ``ensemble=True``.
    splits: :class:`mfprune.data.Splits` (train; validation and test are evaluated when present).
    config: the :class:`TrainConfig`.
    out: the run folder: ``config.json``, ``metrics.jsonl``, ``checkpoints/``, ``curves.png``, ``result.json``.
    resume: continue from the latest checkpoint in ``out`` (the configuration must match).
    ensemble: train the K stacked networks in one program (``jax.vmap``); every member sees the same batches.
    devices: data parallelism: a device count or list (the batch is split over them, parameters replicated).
    progress: show a progress bar.
    extra_config: more settings to record in ``config.json`` (model, pruning method, ...); its ``"title"`` titles
      the curves.
    labels: names of the ensemble's members for the curves' legend.
    callback: called as ``callback(step, state)`` after every step (e.g. to stop or inspect a run).

  Returns:
    A :class:`TrainResult`.
  """
  if mask is None:
    mask = masks_lib.dense_mask(jax.tree.map(lambda x: x[0], params) if ensemble else params)
    if ensemble:
      k = jax.tree.leaves(params)[0].shape[0]
      mask = jax.tree.map(lambda m: jnp.broadcast_to(m, (k, *m.shape)), mask)
  like = jax.tree.map(lambda x: x[0], params) if ensemble else params
  masks_lib.check_mask(jax.tree.map(lambda m: m[0], mask) if ensemble else mask, like)
  if resume and out is None:
    raise ValueError("resume=True needs out (the run folder holding the checkpoints)")
  train_set = splits.train
  if config.batch_size > len(train_set.x):
    raise ValueError(f"batch_size must be <= the {len(train_set.x)} training examples; got {config.batch_size}")
  mesh = _mesh(devices)
  if mesh is not None and config.batch_size % mesh.size:
    raise ValueError(f"batch_size ({config.batch_size}) must be divisible by the number of devices ({mesh.size})")

  schedule = config.schedule_fn()
  init, step_fn, eval_fn = _compiled(apply_fn, _optimizer_settings(config), config.augment, ensemble)
  model_state = initial_model_state(apply_fn)
  if ensemble:
    k = jax.tree.leaves(params)[0].shape[0]
    model_state = jax.tree.map(lambda s: jnp.broadcast_to(s, (k, *jnp.shape(s))), model_state)

  if mesh is None:
    place = lambda x, y: (jnp.asarray(x), jnp.asarray(y))  # noqa: E731
    replicate = lambda tree: tree  # noqa: E731
  else:
    batch_sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())

    def place(x, y):
      n = (len(x) // mesh.size) * mesh.size  # evaluation batches: the remainder goes on one device
      if n == len(x):
        return jax.device_put(x, batch_sharding), jax.device_put(y, batch_sharding)
      return jnp.asarray(x), jnp.asarray(y)

    replicate = lambda tree: jax.device_put(tree, replicated)  # noqa: E731

  state = replicate(init(params, mask, model_state))
  mask = replicate(mask)
  config_record = {"train": config.to_dict(), **(extra_config or {}), "ensemble": ensemble,
                   "devices": 1 if mesh is None else mesh.size}
  out = Path(out) if out is not None else None
  checkpoints = None
  history: list[dict[str, Any]] = []
  start_step = 0
  if out is not None:
    out.mkdir(parents=True, exist_ok=True)
    checkpoints = _Checkpoints(out / "checkpoints", config.keep_checkpoints)
    if resume:
      _check_resumable(out, config.to_dict())
      latest = checkpoints.latest_step()
      if latest is not None:
        state = replicate(checkpoints.restore(latest, state))
        start_step = latest
      history = _read_history(out / "metrics.jsonl", start_step)
    elif checkpoints.latest_step() is not None:
      raise ValueError(f"{out} already holds checkpoints: pass resume=True (--resume) to continue that run, or "
                       f"choose another out folder")
    report.write_json(out / "config.json", config_record)
    _write_history(out / "metrics.jsonl", history)

  def record(entry: dict[str, Any]) -> None:
    history.append(entry)
    if out is not None:
      with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps(entry) + "\n")

  def evaluate(step: int) -> dict[str, Any]:
    results = {}
    for name in ("validation", "test"):
      dataset = getattr(splits, name, None)
      if dataset is not None and len(dataset.x):
        results[name] = _evaluate(eval_fn, state, dataset, config.eval_batch_size, place)
        record({"step": step, "split": name, **results[name]})
    return results

  base_key = jax.random.key(config.seed)
  n_train = len(train_set.x)
  members = jax.tree.leaves(params)[0].shape[0] if ensemble else 1
  started = time.perf_counter()
  timed_from, timed_steps = None, 0
  running_loss, running_accuracy, running_count = 0.0, 0.0, 0
  final: dict[str, Any] = {}
  bar = _progress(config.steps, start_step, progress)
  step = start_step
  try:
    for step in range(start_step, config.steps):
      index = data_lib.batch_indices(n_train, config.batch_size, config.seed, step)
      x, y = place(train_set.x[index], train_set.y[index])
      state, metrics = step_fn(state, mask, x, y, jax.random.fold_in(base_key, step))
      running_loss = running_loss + metrics["loss"]
      running_accuracy = running_accuracy + metrics["accuracy"]
      running_count += 1
      if timed_from is None:
        jax.block_until_ready(state.params)
        timed_from = time.perf_counter()
      else:
        timed_steps += 1
      done = step + 1
      if callback is not None:
        callback(done, state)
      if done % config.log_every == 0 or done == config.steps:
        loss = _to_float(running_loss / running_count)
        record({"step": done, "split": "train", "loss": loss,
                "accuracy": _to_float(running_accuracy / running_count),
                "learning_rate": float(schedule(step))})
        bar.set_postfix(loss=np.round(np.mean(loss), 4), refresh=False)
        running_loss, running_accuracy, running_count = 0.0, 0.0, 0
      if (config.eval_every and done % config.eval_every == 0) or done == config.steps:
        final = evaluate(done)
      if checkpoints is not None and config.checkpoint_every and done % config.checkpoint_every == 0:
        checkpoints.save(done, state)
      bar.update(1)
  except KeyboardInterrupt:
    if checkpoints is not None:
      _save_on_interrupt(checkpoints, state, start_step, out)
    raise
  finally:
    bar.close()
  jax.block_until_ready(state.params)
  elapsed = time.perf_counter() - (timed_from or started)
  throughput = timed_steps * config.batch_size * members / elapsed if timed_steps else float("nan")
  if not final and start_step == config.steps:  # resumed a finished run: its last evaluation is in the history
    final = {r["split"]: {"loss": r["loss"], "accuracy": r["accuracy"]} for r in history
             if r["split"] != "train" and r["step"] == config.steps}
    final = final or evaluate(config.steps)
  result = TrainResult(state, history, final, time.perf_counter() - started, throughput, start_step)
  if out is not None:
    checkpoints.save(config.steps, state)
    checkpoints.close()
    report.write_json(out / "result.json", {"final": final, "seconds": result.seconds,
                                            "examples_per_second": throughput, "resumed_from": start_step,
                                            "steps": config.steps})
    title = str((extra_config or {}).get("title", ""))
    report.save_figure(report.plot_training_curves(history, title=title, labels=labels), out / "curves.png")
  return result


def _save_on_interrupt(checkpoints: _Checkpoints, state: TrainState, start_step: int, out: Path) -> None:
  """Saves the last completed step when Ctrl-C stops a run (if a step was in flight its buffers may be gone)."""
  try:
    step = int(np.asarray(state.step).reshape(-1)[0])
    if step > start_step:
      checkpoints.save(step, state)
      print(f"\ninterrupted: saved a checkpoint at step {step} in {out / 'checkpoints'}; continue with "
            "resume=True (--resume)", flush=True)
  except Exception as error:  # a donated, half-updated state: the last periodic checkpoint stands
    print(f"\ninterrupted: could not save the current step ({error}); resume starts from the last checkpoint",
          flush=True)


def _progress(total: int, initial: int, enabled: bool):
  from tqdm import tqdm

  import sys

  interactive = sys.stderr.isatty()
  return tqdm(total=total, initial=initial, disable=not enabled, unit="step", dynamic_ncols=True, leave=False,
              mininterval=0.1 if interactive else 10.0)


def stack(trees: Sequence[Any]) -> Any:
  """Stacks K pytrees of one structure along a new leading axis (``None`` leaves stay ``None``): the input of
  ``train(..., ensemble=True)``, e.g. K masks of different sparsities."""
  return jax.tree.map(lambda *xs: None if xs[0] is None else jnp.stack(xs), *trees, is_leaf=lambda v: v is None)


def unstack(tree: Any) -> list[Any]:
  """The inverse of :func:`stack`."""
  leaves = [x for x in jax.tree.leaves(tree)]
  k = leaves[0].shape[0]
  return [jax.tree.map(lambda x: x[i], tree) for i in range(k)]
