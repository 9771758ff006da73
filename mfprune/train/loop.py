"""The training run: :func:`train` puts the steps, the data, the run folder and the devices together."""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mfprune import data as data_lib
from mfprune import masks as masks_lib
from mfprune.train.config import TrainConfig
from mfprune.train.run_folder import RunFolder
from mfprune.train.steps import TrainState, init_state, initial_model_state, make_eval_step, make_train_step

Params = Any
Mask = Any


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


_OPTIMIZER_FIELDS = ("steps", "optimizer", "learning_rate", "momentum", "nesterov", "weight_decay", "lr_schedule",
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


class _Placement:
  """Where arrays go: the default device, or a one-axis ``"data"`` mesh (batches split, parameters replicated)."""

  def __init__(self, devices: int | Sequence[jax.Device] | None, batch_size: int):
    self.mesh = None
    if devices is None:
      return
    if isinstance(devices, (int, np.integer)):
      available = jax.devices()
      if not 1 <= devices <= len(available):
        raise ValueError(f"devices must be in [1, {len(available)}] (the devices JAX sees); got {devices}")
      devices = available[:devices]
    devices = list(devices)
    if len(devices) > 1:
      # AxisType.Auto: the Explicit default raises ShardingTypeError in the cross-entropy gradient (DESIGN.md).
      self.mesh = jax.sharding.Mesh(np.asarray(devices), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
      if batch_size % self.mesh.size:
        raise ValueError(f"batch_size ({batch_size}) must be divisible by the number of devices ({self.mesh.size})")

  @property
  def device_count(self) -> int:
    return 1 if self.mesh is None else self.mesh.size

  def batch(self, x: np.ndarray, y: np.ndarray) -> tuple[jax.Array, jax.Array]:
    """A batch, split over the devices when its size allows (an evaluation remainder stays on one)."""
    if self.mesh is None or len(x) % self.mesh.size:
      return jnp.asarray(x), jnp.asarray(y)
    sharding = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec("data"))
    return jax.device_put(x, sharding), jax.device_put(y, sharding)

  def replicate(self, tree: Any) -> Any:
    if self.mesh is None:
      return tree
    return jax.device_put(tree, jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec()))


def _to_float(tree):
  return jax.tree.map(lambda v: np.asarray(v).tolist(), tree)


def _evaluate(eval_step, state: TrainState, dataset: data_lib.Dataset, batch_size: int,
              placement: _Placement) -> dict[str, Any]:
  total_loss, correct = 0.0, 0
  for start in range(0, len(dataset.x), batch_size):
    x, y = placement.batch(dataset.x[start:start + batch_size], dataset.y[start:start + batch_size])
    loss, right = eval_step(state.params, state.model_state, x, y)
    total_loss, correct = total_loss + loss, correct + right
  n = len(dataset.x)
  return {"loss": _to_float(total_loss / n), "accuracy": _to_float(correct / n)}


def _stacked_mask(params: Params, mask: Mask | None, ensemble: bool) -> Mask:
  """Checks ``mask`` against ``params`` (the first member of an ensemble); ``None`` -> the dense mask."""
  single = jax.tree.map(lambda x: x[0], params) if ensemble else params
  if mask is None:
    mask = masks_lib.dense_mask(single)
    if ensemble:
      k = jax.tree.leaves(params)[0].shape[0]
      mask = jax.tree.map(lambda m: jnp.broadcast_to(m, (k, *m.shape)), mask)
  masks_lib.check_mask(jax.tree.map(lambda m: m[0], mask) if ensemble else mask, single)
  return mask


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
    out: the run folder (:class:`~mfprune.train.run_folder.RunFolder`): ``config.json``, ``metrics.jsonl``,
      ``checkpoints/``, ``curves.png``, ``result.json``.
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
  mask = _stacked_mask(params, mask, ensemble)
  if resume and out is None:
    raise ValueError("resume=True needs out (the run folder holding the checkpoints)")
  train_set = splits.train
  if config.batch_size > len(train_set.x):
    raise ValueError(f"batch_size must be <= the {len(train_set.x)} training examples; got {config.batch_size}")
  placement = _Placement(devices, config.batch_size)
  members = jax.tree.leaves(params)[0].shape[0] if ensemble else 1
  init, step_fn, eval_fn = _compiled(apply_fn, _optimizer_settings(config), config.augment, ensemble)
  model_state = initial_model_state(apply_fn)
  if ensemble:
    model_state = jax.tree.map(lambda s: jnp.broadcast_to(s, (members, *jnp.shape(s))), model_state)
  state = placement.replicate(init(params, mask, model_state))
  mask = placement.replicate(mask)

  folder, start_step, history = None, 0, []
  if out is not None:
    folder = RunFolder(out, config.keep_checkpoints)
    record = {"train": config.to_dict(), **(extra_config or {}), "ensemble": ensemble,
              "devices": placement.device_count}
    state, start_step, history = folder.start(state, record, resume=resume)
    state = placement.replicate(state)

  def log(entry: dict[str, Any]) -> None:
    history.append(entry)
    if folder is not None:
      folder.record(entry)

  def evaluate(step: int) -> dict[str, Any]:
    results = {}
    for name in ("validation", "test"):
      dataset = getattr(splits, name, None)
      if dataset is not None and len(dataset.x):
        results[name] = _evaluate(eval_fn, state, dataset, config.eval_batch_size, placement)
        log({"step": step, "split": name, **results[name]})
    return results

  schedule = config.schedule_fn()
  base_key = jax.random.key(config.seed)
  started = time.perf_counter()
  timed_from, timed_steps = None, 0
  running = {"loss": 0.0, "accuracy": 0.0}
  running_count = 0
  final: dict[str, Any] = {}
  bar = _progress(config.steps, start_step, progress)
  try:
    for step in range(start_step, config.steps):
      x, y = placement.batch(*train_set.batch_at(step, config.batch_size, config.seed))
      state, metrics = step_fn(state, mask, x, y, jax.random.fold_in(base_key, step))
      running = {name: running[name] + metrics[name] for name in running}
      running_count += 1
      if timed_from is None:  # the first step compiles: time the rest
        jax.block_until_ready(state.params)
        timed_from = time.perf_counter()
      else:
        timed_steps += 1
      done = step + 1
      if callback is not None:
        callback(done, state)
      if done % config.log_every == 0 or done == config.steps:
        means = {name: _to_float(total / running_count) for name, total in running.items()}
        log({"step": done, "split": "train", **means, "learning_rate": float(schedule(step))})
        bar.set_postfix(loss=np.round(np.mean(means["loss"]), 4), refresh=False)
        running, running_count = {"loss": 0.0, "accuracy": 0.0}, 0
      if (config.eval_every and done % config.eval_every == 0) or done == config.steps:
        final = evaluate(done)
      if folder is not None and config.checkpoint_every and done % config.checkpoint_every == 0:
        folder.save(done, state)
      bar.update(1)
  except KeyboardInterrupt:
    if folder is not None:
      folder.save_on_interrupt(state, start_step)
    raise
  finally:
    bar.close()
  jax.block_until_ready(state.params)
  elapsed = time.perf_counter() - (timed_from or started)
  throughput = timed_steps * config.batch_size * members / elapsed if timed_steps else float("nan")
  if not final and start_step == config.steps:  # resumed a finished run: its last evaluation is in the history
    final = {r["split"]: {"loss": r["loss"], "accuracy": r["accuracy"]} for r in history
             if r["split"] != "train" and r["step"] == config.steps} or evaluate(config.steps)
  result = TrainResult(state, history, final, time.perf_counter() - started, throughput, start_step)
  if folder is not None:
    folder.finish(config.steps, state, {"final": final, "seconds": result.seconds, "examples_per_second": throughput,
                                        "resumed_from": start_step, "steps": config.steps}, history,
                  title=str((extra_config or {}).get("title", "")), labels=labels)
  return result


def _progress(total: int, initial: int, enabled: bool):
  from tqdm import tqdm

  interactive = sys.stderr.isatty()
  return tqdm(total=total, initial=initial, disable=not enabled, unit="step", dynamic_ncols=True, leave=False,
              mininterval=0.1 if interactive else 10.0)
