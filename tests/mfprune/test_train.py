"""Training: the mask-preserving optimizer, schedules, compiled steps, checkpoints and resume, ensembles, devices."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from mfprune import data, functional, masks, train
from mfprune.models import MLP

from tests.mfprune.nets import plain_mlp_apply, plain_mlp_params

ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------------------------------------------
# keep_pruned_at_zero


def _tree_and_mask():
  params = {"a": {"kernel": jnp.ones((6, 5)), "bias": jnp.ones(5)}, "b": {"kernel": jnp.ones((5, 3))}}
  key = jax.random.key(3)
  mask = {"a": {"kernel": jax.random.bernoulli(key, 0.4, (6, 5)), "bias": None},
          "b": {"kernel": jax.random.bernoulli(jax.random.fold_in(key, 1), 0.4, (5, 3))}}
  return masks.apply_mask(params, mask), mask


@pytest.mark.parametrize("name, options", [
    ("momentum", {"weight_decay": 5e-4, "nesterov": True}),
    ("adam", {"weight_decay": 1e-2}),
    ("sgd", {"weight_decay": 1e-3}),
])
def test_pruned_weights_stay_exactly_zero_through_any_optimizer(name, options):
  params, mask = _tree_and_mask()
  inner = train.make_optimizer(name, 0.1, **options)
  tx = train.keep_pruned_at_zero(inner, mask)
  state = tx.init(params)

  @jax.jit
  def step(params, state, key):
    grads = jax.tree.map(lambda p: jax.random.normal(key, p.shape) + 1.0, params)  # dense, nonzero everywhere
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  for i in range(200):
    params, state = step(params, state, jax.random.key(i))
  values = dict(masks.named_leaves(params))
  for name_, m in masks.named_leaves(mask):
    assert np.all(np.asarray(values[name_])[~np.asarray(m)] == 0.0), name_  # exactly zero, not small
    assert np.all(np.asarray(values[name_])[np.asarray(m)] != 1.0), name_  # the kept weights did train
  # Momentum / Adam moments of pruned weights stay zero too (no hidden velocity waiting to leak out).
  for leaf in jax.tree.leaves(state):
    if getattr(leaf, "shape", None) == (6, 5):
      assert np.all(np.asarray(leaf)[~np.asarray(mask["a"]["kernel"])] == 0.0)
  assert not np.all(np.asarray(params["a"]["bias"]) == 1.0)  # unprunable leaves train as usual


def test_without_the_wrapper_weight_decay_and_momentum_move_pruned_weights():
  """The property above is the wrapper's doing: the bare optimizer revives pruned weights from gradients."""
  params, mask = _tree_and_mask()
  tx = train.make_optimizer("momentum", 0.1, weight_decay=1e-3)
  state = tx.init(params)
  grads = jax.tree.map(jnp.ones_like, params)
  updates, state = tx.update(grads, state, params)
  params = optax.apply_updates(params, updates)
  assert np.any(np.asarray(params["a"]["kernel"])[~np.asarray(mask["a"]["kernel"])] != 0.0)


def test_learning_rate_schedules_follow_the_papers():
  piecewise = train.learning_rate_schedule("piecewise", 0.1, 1000)  # [R] §4.2: x0.1 at 1/2 and 3/4
  np.testing.assert_allclose([piecewise(s) for s in (0, 499, 500, 749, 750, 999)],
                             [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-6)
  step = train.learning_rate_schedule("step", 0.1, 100_000, decay_every=25_000)  # [S] App. B
  np.testing.assert_allclose([step(s) for s in (0, 24_999, 25_000, 50_000, 99_999)],
                             [0.1, 0.1, 0.01, 0.001, 1e-4], rtol=1e-5)
  assert float(train.learning_rate_schedule("constant", 1e-3, 10)(7)) == pytest.approx(1e-3)


@pytest.mark.parametrize("call, match", [
    (lambda: train.learning_rate_schedule("cosine", 0.1, 10), "unknown learning-rate schedule"),
    (lambda: train.learning_rate_schedule("step", 0.1, 10), "decay_every"),
    (lambda: train.learning_rate_schedule("constant", -0.1, 10), "learning_rate"),
    (lambda: train.learning_rate_schedule("piecewise", 0.1, 10, decay=1.5), "decay"),
    (lambda: train.make_optimizer("rmsprop", 0.1), "unknown optimizer"),
    (lambda: train.make_optimizer("momentum", 0.1, momentum=1.0), "momentum"),
    (lambda: train.make_optimizer("sgd", 0.1, weight_decay=-1.0), "weight_decay"),
    (lambda: train.TrainConfig(steps=-5), "steps must be an integer >= 1"),
    (lambda: train.TrainConfig(steps=0), "steps"),
    (lambda: train.TrainConfig(steps=10, batch_size=0), "batch_size"),
    (lambda: train.TrainConfig(steps=10, eval_every=-1), "eval_every"),
])
def test_bad_settings_are_rejected_with_the_argument_named(call, match):
  with pytest.raises(ValueError, match=match):
    call()


# ---------------------------------------------------------------------------------------------------------------
# Runs on digits with a small MLP (one compiled model shared by the tests below)


@pytest.fixture(scope="module")
def setup():
  splits = data.load_splits("digits", validation_fraction=0.1)
  apply_fn, init = functional.init_fn(
      lambda k: MLP((8, 8, 1), 10, depth=3, width=32, activation="tanh", rngs=nnx.Rngs(params=k)))
  params = init(jax.random.key(0))
  keys = jax.random.split(jax.random.key(1), 3)
  mask = jax.tree.map(lambda m: None if m is None else jax.random.bernoulli(keys[0], 0.5, m.shape),
                      masks.dense_mask(params), is_leaf=lambda v: v is None)
  return splits, apply_fn, init, params, mask


CONFIG = dict(steps=24, batch_size=32, optimizer="momentum", learning_rate=0.05, weight_decay=1e-3,
              lr_schedule="piecewise", eval_every=8, checkpoint_every=8, log_every=4)


def _max_difference(a, b) -> float:
  return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_training_learns_keeps_the_mask_and_writes_its_files(setup, tmp_path):
  splits, apply_fn, _, params, mask = setup
  config = train.TrainConfig(**{**CONFIG, "steps": 60, "eval_every": 30})
  result = train.train(apply_fn, params, mask, splits, config, out=tmp_path, progress=False,
                       extra_config={"model": "mlp"})
  assert masks.collapsed_layers(mask) == []
  values = dict(masks.named_leaves(result.params))
  for name, m in masks.named_leaves(mask):
    assert np.all(np.asarray(values[name])[~np.asarray(m)] == 0.0), name
  train_losses = [r["loss"] for r in result.history if r["split"] == "train"]
  assert train_losses[-1] < 0.7 * train_losses[0]
  assert result.final["test"]["accuracy"] > 0.5  # 10 classes: chance is 0.1
  assert set(result.final) == {"validation", "test"}
  records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert records == result.history
  assert {r["split"] for r in records} == {"train", "validation", "test"}
  assert json.loads((tmp_path / "config.json").read_text())["model"] == "mlp"
  assert json.loads((tmp_path / "result.json").read_text())["final"] == result.final
  assert (tmp_path / "curves.png").stat().st_size > 1000
  assert result.examples_per_second > 0


def test_an_interrupted_run_resumes_to_the_same_parameters_and_metrics(setup, tmp_path):
  splits, apply_fn, _, params, mask = setup
  config = train.TrainConfig(**CONFIG)
  straight = train.train(apply_fn, params, mask, splits, config, out=tmp_path / "a", progress=False)

  class Stop(Exception):
    pass

  def stop_midway(step, state):
    if step == 13:  # between checkpoints (8, 16): the resumed run replays steps 9-13
      raise Stop

  with pytest.raises(Stop):
    train.train(apply_fn, params, mask, splits, config, out=tmp_path / "b", progress=False, callback=stop_midway)
  assert sorted(p.name for p in (tmp_path / "b" / "checkpoints").iterdir() if p.name.isdigit()) == ["8"]
  resumed = train.train(apply_fn, params, mask, splits, config, out=tmp_path / "b", resume=True, progress=False)
  assert resumed.resumed_from == 8
  assert _max_difference(straight.params, resumed.params) == 0.0
  assert _max_difference(straight.state.opt_state, resumed.state.opt_state) == 0.0
  assert resumed.history == straight.history
  assert (tmp_path / "a" / "metrics.jsonl").read_text() == (tmp_path / "b" / "metrics.jsonl").read_text()


def test_resume_refuses_what_it_cannot_continue(setup, tmp_path):
  splits, apply_fn, _, params, mask = setup
  config = train.TrainConfig(**{**CONFIG, "steps": 8})
  with pytest.raises(FileNotFoundError, match="config.json"):
    train.train(apply_fn, params, mask, splits, config, out=tmp_path / "none", resume=True, progress=False)
  with pytest.raises(ValueError, match="resume=True needs out"):
    train.train(apply_fn, params, mask, splits, config, resume=True, progress=False)
  train.train(apply_fn, params, mask, splits, config, out=tmp_path / "run", progress=False)
  with pytest.raises(ValueError, match="already holds checkpoints"):
    train.train(apply_fn, params, mask, splits, config, out=tmp_path / "run", progress=False)
  other = train.TrainConfig(**{**CONFIG, "steps": 8, "learning_rate": 0.5})
  with pytest.raises(ValueError, match="learning_rate: 0.05 -> 0.5"):
    train.train(apply_fn, params, mask, splits, other, out=tmp_path / "run", resume=True, progress=False)


def test_bad_input_mask_of_another_model_and_batch_size(setup):
  splits, apply_fn, _, params, mask = setup
  other = masks.dense_mask(plain_mlp_params(jax.random.key(0), [64, 16, 10]))
  with pytest.raises(ValueError, match="mask does not fit the model"):
    train.train(apply_fn, params, other, splits, train.TrainConfig(steps=2), progress=False)
  wrong_shape = jax.tree.map(lambda m: None if m is None else m[:-1], mask, is_leaf=lambda v: v is None)
  with pytest.raises(ValueError, match="mask shape"):
    train.train(apply_fn, params, wrong_shape, splits, train.TrainConfig(steps=2), progress=False)
  with pytest.raises(ValueError, match="batch_size must be <="):
    train.train(apply_fn, params, mask, splits, train.TrainConfig(steps=2, batch_size=10**6), progress=False)


def test_an_ensemble_in_one_program_equals_separate_runs(setup):
  """K = 3 networks with different seeds and masks (different sparsities) trained under vmap."""
  splits, apply_fn, init, _, _ = setup
  keys = jax.random.split(jax.random.key(7), 3)
  members = [init(k) for k in keys]
  member_masks = [jax.tree.map(lambda m: None if m is None else jax.random.bernoulli(k, p, m.shape),
                               masks.dense_mask(members[0]), is_leaf=lambda v: v is None)
                  for k, p in zip(keys, (0.9, 0.5, 0.2))]
  config = train.TrainConfig(**{**CONFIG, "steps": 12, "checkpoint_every": 0, "eval_every": 0})
  together = train.train(apply_fn, train.stack(members), train.stack(member_masks), splits, config,
                         ensemble=True, progress=False)
  assert len(together.final["test"]["accuracy"]) == 3
  for i, (p, m) in enumerate(zip(members, member_masks)):
    alone = train.train(apply_fn, p, m, splits, config, progress=False)
    assert _max_difference(alone.params, train.unstack(together.params)[i]) < 1e-5
    np.testing.assert_allclose(alone.final["test"]["accuracy"], together.final["test"]["accuracy"][i], atol=1e-6)


def test_plain_apply_fn_and_augmentation(tmp_path):
  """A hand-written ``apply_fn`` (no model state) trains too; augmentation runs inside the compiled step."""
  splits = data.load_splits("digits")
  params = plain_mlp_params(jax.random.key(0), [64, 32, 10], bias=True)
  mask = masks.dense_mask(params)
  config = train.TrainConfig(steps=30, batch_size=64, learning_rate=0.1, augment=True, log_every=10)
  result = train.train(plain_mlp_apply(jnp.tanh), params, mask, splits, config, progress=False)
  losses = [r["loss"] for r in result.history if r["split"] == "train"]
  assert losses[-1] < losses[0]


class _NormNet(nnx.Module):

  def __init__(self, rngs):
    self.dense = nnx.Linear(4, 3, rngs=rngs)
    self.norm = nnx.BatchNorm(3, momentum=0.5, rngs=rngs)

  def __call__(self, x):
    return self.norm(self.dense(x.reshape(x.shape[0], -1)))


def test_batch_norm_statistics_update_in_training_and_serve_evaluation():
  apply_fn, params = functional.split(_NormNet(nnx.Rngs(0)))
  state = train.initial_model_state(apply_fn)
  x = 3.0 + jax.random.normal(jax.random.key(0), (64, 4))
  logits, new_state = train.apply_model(apply_fn, params, state, x, training=True)
  np.testing.assert_allclose(jnp.mean(logits, 0), 0.0, atol=1e-5)  # batch statistics
  h = x @ params["dense"]["kernel"] + params["dense"]["bias"]
  np.testing.assert_allclose(new_state["norm"]["mean"], 0.5 * jnp.mean(h, 0), rtol=1e-5)  # momentum 0.5 from 0
  evaluated, same = train.apply_model(apply_fn, params, new_state, x, training=False)
  expected = (h - new_state["norm"]["mean"]) / jnp.sqrt(new_state["norm"]["var"] + 1e-5) * params["norm"]["scale"]
  np.testing.assert_allclose(evaluated, expected + params["norm"]["bias"], rtol=1e-4, atol=1e-5)
  assert _max_difference(same, new_state) == 0.0


@pytest.mark.slow
def test_data_parallel_over_four_cpu_devices_matches_one_device():
  """Runs in a fresh interpreter: the host device count is fixed when JAX starts."""
  script = textwrap.dedent("""
      import jax, jax.numpy as jnp, numpy as np
      from flax import nnx
      from mfprune import data, functional, masks, train
      from mfprune.models import MLP
      assert len(jax.devices()) == 4, jax.devices()
      splits = data.load_splits("digits")
      apply_fn, init = functional.init_fn(
          lambda k: MLP((8, 8, 1), 10, depth=3, width=32, activation="tanh", rngs=nnx.Rngs(params=k)))
      params = init(jax.random.key(0))
      mask = jax.tree.map(lambda m: None if m is None else jax.random.bernoulli(jax.random.key(1), 0.5, m.shape),
                          masks.dense_mask(params), is_leaf=lambda v: v is None)
      config = train.TrainConfig(steps=10, batch_size=32, optimizer="momentum", learning_rate=0.05, log_every=5)
      one = train.train(apply_fn, params, mask, splits, config, progress=False)
      four = train.train(apply_fn, params, mask, splits, config, progress=False, devices=4)
      shardings = {str(leaf.sharding.spec) for leaf in jax.tree.leaves(four.params)}
      difference = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree.leaves(one.params),
                                                                      jax.tree.leaves(four.params)))
      print(difference, len(four.params["layers"][0]["kernel"].sharding.device_set), shardings)
      assert difference < 1e-5, difference
      assert abs(one.final["test"]["accuracy"] - four.final["test"]["accuracy"]) < 1e-6
      try:
        train.train(apply_fn, params, mask, splits, train.TrainConfig(steps=2, batch_size=30), devices=4,
                    progress=False)
      except ValueError as error:
        assert "divisible by the number of devices (4)" in str(error)
      else:
        raise AssertionError("batch 30 on 4 devices was accepted")
  """)
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
  done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=600)
  assert done.returncode == 0, done.stdout + done.stderr
  difference, device_count, _ = done.stdout.split(" ", 2)
  assert int(device_count) == 4


def test_a_run_saved_before_the_lr_schedule_rename_still_resumes(tmp_path):
  """config.json of mfprune < 0.4 says "schedule"; TrainConfig now says "lr_schedule" (docs/changes.md)."""
  from mfprune.train.run_folder import RunFolder

  current = train.TrainConfig(steps=4, lr_schedule="piecewise").to_dict()
  legacy = {("schedule" if k == "lr_schedule" else k): v for k, v in current.items()}
  (tmp_path / "config.json").write_text(json.dumps({"train": legacy}))
  RunFolder(tmp_path, 1)._check_same_config(current)  # the same configuration under its old key
  with pytest.raises(ValueError, match="lr_schedule: 'piecewise' -> 'constant'"):
    RunFolder(tmp_path, 1)._check_same_config(train.TrainConfig(steps=4).to_dict())
