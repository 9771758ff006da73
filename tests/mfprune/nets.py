"""Small networks shared by the mfprune tests: plain-JAX oracles and tiny versions of the registry models."""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx

from mfprune import functional
from mfprune.models import MLP, VGG, ResNet, VanillaCNN


def plain_mlp_params(key, sizes, *, bias: bool = False):
  """A hand-written dense net's params: ``{"layers": [{"kernel": (in, out)[, "bias"]}, ...]}``."""
  keys = jax.random.split(key, len(sizes) - 1)
  layers = []
  for k, a, b in zip(keys, sizes[:-1], sizes[1:]):
    k1, k2 = jax.random.split(k)
    layer = {"kernel": jax.random.normal(k1, (a, b)) / np.sqrt(a)}
    if bias:
      layer["bias"] = 0.1 * jax.random.normal(k2, (b,))
    layers.append(layer)
  return {"layers": layers}


def plain_mlp_apply(activation=jax.nn.relu):
  """``apply_fn(params, x)`` of :func:`plain_mlp_params` (no linearised mode: the scorer calls it directly)."""

  def apply_fn(params, x):
    h = x.reshape(x.shape[0], -1)
    for i, layer in enumerate(params["layers"]):
      if i > 0:
        h = activation(h)
      h = h @ layer["kernel"] + layer.get("bias", 0.0)
    return h

  return apply_fn


def tiny_models():
  """``name -> (apply_fn, init, input_shape)`` for small versions of every architecture family."""
  specs = {
      "mlp": (lambda k: MLP((4, 4, 1), 5, depth=4, width=12, activation="tanh", rngs=nnx.Rngs(params=k)),
              (4, 4, 1)),
      "vcnn": (lambda k: VanillaCNN((6, 6, 2), 5, depth=3, channels=4, rngs=nnx.Rngs(params=k)), (6, 6, 2)),
      "vgg": (lambda k: VGG((8, 8, 3), 5, stages=((4, 1), (8, 2)), rngs=nnx.Rngs(params=k)), (8, 8, 3)),
      "resnet": (lambda k: ResNet((8, 8, 3), 5, depth=8, width_multiplier=0.25, rngs=nnx.Rngs(params=k)),
                 (8, 8, 3)),
  }
  out = {}
  for name, (make, shape) in specs.items():
    apply_fn, init = functional.init_fn(make)
    out[name] = (apply_fn, init, shape)
  return out


def batch_for(shape, n: int = 8, classes: int = 5, seed: int = 0):
  """A random ``(inputs, labels)`` batch."""
  kx, ky = jax.random.split(jax.random.key(seed))
  return jax.random.normal(kx, (n,) + tuple(shape)), jax.random.randint(ky, (n,), 0, classes)
