"""functional.split/merge/init_fn: pure apply functions that jit and vmap, and the linearised fallback."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mfprune import functional
from mfprune.models import MLP, ResNet
from tests.mfprune.nets import plain_mlp_apply


@pytest.fixture(scope="module")
def resnet():
  return ResNet((8, 8, 3), 4, depth=8, width_multiplier=0.25, rngs=nnx.Rngs(0))


def test_split_and_merge_round_trip(resnet):
  model = resnet
  x = jax.random.normal(jax.random.key(1), (3, 8, 8, 3))
  apply_fn, params = functional.split(model)
  assert isinstance(params, dict) and "stem" in params
  np.testing.assert_allclose(jax.jit(apply_fn)(params, x), model(x), rtol=1e-5, atol=1e-6)
  doubled = jax.tree.map(lambda p: 2 * p, params)
  rebuilt = functional.merge(apply_fn, doubled)
  np.testing.assert_array_equal(rebuilt.stem.kernel[...], 2 * params["stem"]["kernel"])
  with pytest.raises(TypeError, match="functional.split"):
    functional.merge(plain_mlp_apply(), params)


def test_batch_norm_mode_is_kept():
  """Train mode normalises with batch statistics; eval mode with the (initial) running averages."""
  model = ResNet((8, 8, 3), 4, depth=8, width_multiplier=0.25, rngs=nnx.Rngs(0))  # its own: eval() mutates it
  x = 5.0 + jax.random.normal(jax.random.key(1), (4, 8, 8, 3))
  train_fn, params = functional.split(model)
  model.eval()
  eval_fn, _ = functional.split(model)
  assert not np.allclose(train_fn(params, x), eval_fn(params, x))


def test_init_fn_vmaps_over_keys():
  apply_fn, init = functional.init_fn(lambda k: MLP((3,), 2, depth=2, width=4, rngs=nnx.Rngs(params=k)))
  stacked = jax.vmap(init)(jax.random.split(jax.random.key(0), 3))
  assert stacked["layers"][0]["kernel"].shape == (3, 3, 4)
  assert not np.allclose(stacked["layers"][0]["kernel"][0], stacked["layers"][0]["kernel"][1])
  single = init(jax.random.split(jax.random.key(0), 3)[1])
  np.testing.assert_allclose(stacked["layers"][1]["kernel"][1], single["layers"][1]["kernel"], rtol=1e-6)
  out = jax.vmap(apply_fn, in_axes=(0, None))(stacked, jnp.ones((5, 3)))
  assert out.shape == (3, 5, 2)


def test_linearised_falls_back_to_the_apply_fn():
  plain = plain_mlp_apply()
  assert functional.linearised(plain) is plain
  apply_fn, _ = functional.split(MLP((3,), 2, depth=2, width=4, rngs=nnx.Rngs(0)))
  assert functional.linearised(apply_fn) == apply_fn.linearised


def test_layer_order_is_network_order(resnet):
  apply_fn, params = functional.split(resnet)
  order = [n for n in functional.layer_order(apply_fn, params, jnp.ones((1, 8, 8, 3))) if n.endswith("kernel")]
  assert order[:3] == ["stem/kernel", "blocks/0/conv1/kernel", "blocks/0/conv2/kernel"]
  assert order[-1] == "readout/kernel"
  assert len(order) == len(set(order)) == 8 + 2  # stem, 6 block convs, 2 shortcuts, read-out
