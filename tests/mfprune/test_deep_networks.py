"""SynFlow at depth: finite scores where upstream float32 code overflows, and no layer collapse at 90%."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mfprune import functional, masks, pruning, scores
from mfprune.models import INPUT_SHAPES, create_model, resnet


def _resnet104():
  model = create_model("resnet104", input_shape="cifar10")
  apply_fn, params = functional.split(model)
  batch = jnp.ones((2, 32, 32, 3)), jnp.zeros((2,), jnp.int32)
  return apply_fn, params, batch


def test_synflow_on_resnet104_is_finite_where_the_plain_path_objective_overflows(monkeypatch):
  apply_fn, params, batch = _resnet104()
  mask = masks.dense_mask(params)
  got = jax.jit(lambda p: scores.synflow(apply_fn, p, mask, batch, None))(params)
  leaves = jax.tree_util.tree_leaves(got)
  assert all(bool(jnp.all(jnp.isfinite(s))) for s in leaves)
  assert all(float(jnp.max(s)) > 0 for s in leaves)  # every layer carries signal
  # Without the layer-by-layer renormalisation the same objective overflows float32 (upstream's failure mode).
  if jnp.zeros(()).dtype == jnp.float32:
    monkeypatch.setattr(resnet, "renormalise", lambda h: h)
    x = jnp.ones((1, 32, 32, 3))
    assert not np.isfinite(float(scores.path_objective(apply_fn, params, x)))


@pytest.mark.slow  # 100 SynFlow rounds on each full-size default model (several minutes on two cores)
@pytest.mark.parametrize("name, data", [("mlp", "mnist"), ("vcnn", "mnist"), ("lenet5", "mnist"),
                                        ("resnet32", "cifar10"), ("vgg16", "cifar10")])
def test_synflow_keeps_every_layer_at_90_percent(name, data):
  apply_fn, params = functional.split(create_model(name, input_shape=data))
  shape = INPUT_SHAPES[data][0]
  batch = jnp.ones((2,) + shape), jnp.zeros((2,), jnp.int32)
  mask = pruning.prune(apply_fn, params, batch, method="synflow", sparsity=0.9)  # raises on collapse
  table = masks.density(mask)
  assert sum(d.kept for d in table) == masks.keep_count(sum(d.total for d in table), 0.9)
  assert masks.collapsed_layers(mask) == []
