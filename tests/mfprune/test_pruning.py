"""Conformance of every registered scorer on every model family, and the prune() contract."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mfprune import masks, scores
from mfprune.models import available_models, get_model
from mfprune.pruning import as_batch, keep_schedule, make_pruner, prune
from mfprune.scores import Stacked, available_scorers
from tests.mfprune.nets import batch_for, plain_mlp_apply, plain_mlp_params, tiny_models

MODELS = tiny_models()
METHODS = sorted(scores.available_scorers())
SPARSITY = 0.8
ROUNDS = 5  # iterative methods: fewer rounds than the default 100 keep the suite fast; the code path is the same


def _variants() -> set[str]:
  """Registered models built by the same constructor as an earlier entry (3xvgg16 after vgg16, resnet50 and
  resnet104 after resnet32): the same code under other defaults."""
  seen, variants = set(), set()
  for name in MODELS:
    constructor = get_model(name).constructor
    if constructor in seen and get_model(name).defaults.get("dims") is None:  # vcnn1d runs other (1-D) code
      variants.add(name)
    seen.add(constructor)
  return variants


def _conformance_cases():
  """Every registered model × every registered scorer. A variant's cases are slow-marked (make test-slow; deep
  residual nets take about a minute each to compile on two CPU cores): the default run covers its code through the
  first model of its constructor, and tests/mfprune/test_models.py builds it for every input shape."""
  variants = _variants()
  for name in MODELS:
    for method in METHODS:
      yield pytest.param(name, method, id=f"{name}-{method}", marks=[pytest.mark.slow] if name in variants else [])


def _rounds(method):
  return ROUNDS if scores.get_scorer(method).rounds > 1 else 1


@pytest.fixture(scope="module")
def model(request):
  apply_fn, init, shape = MODELS[request.param]
  return request.param, apply_fn, init, batch_for(shape)


def test_the_conformance_suite_covers_every_registered_model_and_scorer():
  cases = {tuple(case.values) for case in _conformance_cases()}
  assert cases == {(name, method) for name in available_models() for method in available_scorers()}
  assert _variants() == {"3xvgg16", "resnet50", "resnet104"}


@pytest.mark.parametrize("model, method", list(_conformance_cases()), indirect=["model"])
def test_conformance(model, method):
  """Exact count, tree structure, determinism for a key, and jit == vmap (over keys and parameter sets)."""
  name, apply_fn, init, batch = model
  params = init(jax.random.key(1))
  dense = masks.dense_mask(params)
  sizes = masks.layer_sizes(dense)
  rounds = _rounds(method)
  mask = prune(apply_fn, params, batch, method=method, sparsity=SPARSITY, key=3, rounds=rounds,
               on_collapse="ignore")
  assert jax.tree_util.tree_structure(mask) == jax.tree_util.tree_structure(dense)
  assert all(m.dtype == jnp.bool_ and m.shape == d.shape
             for m, d in zip(jax.tree_util.tree_leaves(mask), jax.tree_util.tree_leaves(dense)))
  kept = sum(int(np.sum(m)) for m in jax.tree_util.tree_leaves(mask))
  assert kept == masks.keep_count(sum(sizes), SPARSITY)
  again = prune(apply_fn, params, batch, method=method, sparsity=SPARSITY, key=3, rounds=rounds,
                on_collapse="ignore")  # the compiled pruner is cached: this call runs, it does not compile
  assert all(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(mask), jax.tree_util.tree_leaves(again)))

  counts = keep_schedule(sizes, SPARSITY, rounds)
  pruner = make_pruner(apply_fn, method, counts)
  stacked = jax.tree.map(lambda a, b: jnp.stack([a, b]), params, init(jax.random.key(7)))
  keys = jnp.stack([jax.random.key(3), jax.random.key(4)])
  vmapped, finite = jax.jit(jax.vmap(pruner, in_axes=(0, None, None, 0)))(stacked, dense, batch, keys)
  assert np.all(finite)
  for a, b in zip(jax.tree_util.tree_leaves(mask), jax.tree_util.tree_leaves(vmapped)):
    np.testing.assert_array_equal(a, b[0])  # prune() (jit) and the vmapped pruner agree on the same inputs
  assert sum(int(np.sum(b[1])) for b in jax.tree_util.tree_leaves(vmapped)) == kept


@pytest.mark.parametrize("method", ["random", "snip", "synflow"])  # selection is scorer-independent
def test_layerwise_scope_keeps_each_layers_share(method):
  apply_fn, init, shape = MODELS["resnet32"]
  batch = batch_for(shape)
  params = init(jax.random.key(2))
  mask = prune(apply_fn, params, batch, method=method, sparsity=0.5, scope="layerwise", rounds=_rounds(method),
               on_collapse="ignore")
  for d in masks.density(mask):
    assert d.kept == masks.keep_count(d.total, 0.5), d


def test_keep_schedule_exponential_and_exact_final():
  counts = keep_schedule([1000], 0.99, 4)
  expected = [round(1000 * 0.01 ** (r / 4)) for r in range(1, 5)]
  np.testing.assert_array_equal(counts, expected)
  assert counts[-1] == 10
  linear = keep_schedule([100, 300], 0.5, 2, schedule="linear", scope="layerwise")
  np.testing.assert_array_equal(linear, [[75, 225], [50, 150]])


def test_iterative_pruning_never_revives_a_weight():
  """Weights removed in one round stay removed: an initial mask is respected through all rounds."""
  apply_fn, init, shape = MODELS["mlp"]
  params = init(jax.random.key(0))
  batch = batch_for(shape)
  first = prune(apply_fn, params, batch, method="synflow", sparsity=0.5, rounds=3)
  second = prune(apply_fn, params, batch, method="random", sparsity=0.9, mask=first, key=1)
  for a, b in zip(jax.tree_util.tree_leaves(first), jax.tree_util.tree_leaves(second)):
    assert not np.any(np.asarray(b) & ~np.asarray(a))


def test_data_iterator_is_the_mean_loss_of_its_batches():
  """SNIP over an iterator of 3 batches scores |θ ⊙ mean of the 3 gradients| (accumulation, not 3 masks)."""
  apply_fn, init, shape = MODELS["mlp"]
  params = init(jax.random.key(0))
  batches = [batch_for(shape, seed=s) for s in range(3)]
  stacked = as_batch(iter(batches), num_batches=3)
  assert isinstance(stacked, Stacked) and stacked.inputs.shape[0] == 3
  got = scores.score("snip", apply_fn, params, masks.dense_mask(params), stacked)
  grads = [jax.grad(lambda p, b=b: scores.cross_entropy(apply_fn(p, b[0]), b[1]))(params) for b in batches]
  mean_grad = jax.tree.map(lambda *g: sum(g) / 3, *grads)
  want = jax.tree.map(lambda p, g: jnp.abs(p * g), params, mean_grad)
  for layer in range(4):
    np.testing.assert_allclose(got["layers"][layer]["kernel"], want["layers"][layer]["kernel"],
                               rtol=1e-4, atol=1e-7)
  mask = prune(apply_fn, params, iter(batches), num_batches=3, method="snip", sparsity=0.5)
  assert masks.sparsity_of(mask) == pytest.approx(0.5, abs=1e-3)


def test_default_synflow_rounds_is_100():
  assert scores.get_scorer("synflow").rounds == 100
  assert scores.get_scorer("snip").rounds == 1


# ---------------------------------------------------------------------------------------------------------------
# Bad input.


def _mlp():
  apply_fn, init, shape = MODELS["mlp"]
  return apply_fn, init(jax.random.key(0)), batch_for(shape)


@pytest.mark.parametrize("sparsity", [-0.1, 1.0, 1.5, float("nan"), "half"])
def test_sparsity_outside_unit_interval_is_rejected(sparsity):
  apply_fn, params, batch = _mlp()
  with pytest.raises(ValueError, match=r"sparsity .*\[0, 1\)"):
    prune(apply_fn, params, batch, method="snip", sparsity=sparsity)


def test_unknown_method_lists_the_registry():
  apply_fn, params, batch = _mlp()
  with pytest.raises(ValueError, match="unknown pruning method 'snipp'.*synflow"):
    prune(apply_fn, params, batch, method="snipp", sparsity=0.5)


@pytest.mark.parametrize("kwargs, match", [
    ({"rounds": 0}, "rounds must be an integer >= 1"),
    ({"schedule": "cosine"}, "schedule must be one of"),
    ({"scope": "per-channel"}, "scope must be one of"),
    ({"on_collapse": "explode"}, "on_collapse must be one of"),
])
def test_bad_options_are_named(kwargs, match):
  apply_fn, params, batch = _mlp()
  with pytest.raises(ValueError, match=match):
    prune(apply_fn, params, batch, method="snip", sparsity=0.5, **kwargs)


def test_a_misspelt_scorer_option_names_the_scorer_s_options():
  apply_fn, params, batch = _mlp()
  with pytest.raises(ValueError, match=r"method 'grasp' takes no option 'temprature' \(its options: temperature\)"):
    prune(apply_fn, params, batch, method="grasp", sparsity=0.5, temprature=2.0)
  with pytest.raises(ValueError, match=r"method 'snip' takes no option 'target' \(its options: none\)"):
    scores.score("snip", apply_fn, params, masks.dense_mask(params), batch, target=1.0)


@pytest.mark.parametrize("labels, match", [(-1, r"labels from -1 to"), (5, r"\[0, 5\) for a model with 5 outputs")])
def test_labels_outside_the_model_s_classes_are_rejected(labels, match):
  apply_fn, params, (x, y) = _mlp()
  with pytest.raises(ValueError, match=match):
    prune(apply_fn, params, (x, y.at[0].set(labels)), method="snip", sparsity=0.5)


def test_inputs_that_do_not_fit_the_model_are_a_clear_error():
  apply_fn, params, (x, y) = _mlp()
  with pytest.raises(ValueError, match=r"batch inputs of shape \(8, 5, 5, 1\) do not fit the model"):
    prune(apply_fn, params, (jnp.ones((8, 5, 5, 1)), y), method="snip", sparsity=0.5)


def test_mask_of_another_model_is_rejected():
  apply_fn, params, batch = _mlp()
  other_apply, other_init, _ = MODELS["vcnn"]
  foreign = masks.dense_mask(other_init(jax.random.key(0)))
  with pytest.raises(ValueError, match="mask does not fit the model"):
    prune(apply_fn, params, batch, method="snip", sparsity=0.5, mask=foreign)
  wrong_shape = jax.tree.map(lambda m: None if m is None else m[:-1], masks.dense_mask(params),
                             is_leaf=lambda v: v is None)
  with pytest.raises(ValueError, match="at 'layers/0/kernel'.*mask shape"):
    prune(apply_fn, params, batch, method="snip", sparsity=0.5, mask=wrong_shape)


def test_nan_scores_name_the_layer():
  params = plain_mlp_params(jax.random.key(0), [6, 5, 3])
  params["layers"][1]["kernel"] = params["layers"][1]["kernel"].at[0, 0].set(jnp.nan)
  x, y = jnp.ones((4, 6)), jnp.zeros((4,), int)
  with pytest.raises(ValueError, match="NaN or infinite scores in layers/1/kernel"):
    prune(plain_mlp_apply(), params, (x, y), method="magnitude", sparsity=0.5)


def test_layer_collapse_raises_or_warns():
  """Magnitude pruning at 95% of a net whose first layer is tiny wipes that layer out."""
  params = plain_mlp_params(jax.random.key(0), [10, 10, 10])
  params["layers"][0]["kernel"] = 1e-3 * params["layers"][0]["kernel"]
  x, y = jnp.ones((2, 10)), jnp.zeros((2,), int)
  with pytest.raises(masks.LayerCollapseError, match="layers/0/kernel"):
    prune(plain_mlp_apply(), params, (x, y), method="magnitude", sparsity=0.5)
  with pytest.warns(UserWarning, match="layers/0/kernel"):
    prune(plain_mlp_apply(), params, (x, y), method="magnitude", sparsity=0.5, on_collapse="warn")


def test_labelled_method_without_batch():
  apply_fn, params, _ = _mlp()
  with pytest.raises(ValueError, match="needs batch"):
    prune(apply_fn, params, None, method="snip", sparsity=0.5)
  prune(apply_fn, params, None, method="magnitude", sparsity=0.5)


def test_short_iterator_is_reported():
  apply_fn, params, batch = _mlp()
  with pytest.raises(ValueError, match="gave 1 batches; num_batches=2"):
    prune(apply_fn, params, iter([batch]), num_batches=2, method="snip", sparsity=0.5)
