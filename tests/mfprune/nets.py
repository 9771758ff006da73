"""Small networks shared by the mfprune tests: plain-JAX oracles and tiny versions of the registry models."""

from __future__ import annotations

import jax
import numpy as np

from mfprune import functional
from mfprune.models import available_models, create_tiny_model, get_model


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
  """``name -> (apply_fn, init, input_shape)``: the small version (:attr:`ModelSpec.tiny`) of every registered
  model."""
  out = {}
  for name in available_models():
    tiny = get_model(name).tiny
    apply_fn, init = functional.init_fn(lambda key, name=name: create_tiny_model(name, key=key))
    out[name] = (apply_fn, init, tuple(tiny["input_shape"]))
  return out


def batch_for(shape, n: int = 8, classes: int = 5, seed: int = 0):
  """A random ``(inputs, labels)`` batch."""
  kx, ky = jax.random.split(jax.random.key(seed))
  return jax.random.normal(kx, (n,) + tuple(shape)), jax.random.randint(ky, (n,), 0, classes)
