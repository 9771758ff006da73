"""CIFAR augmentation in JAX: random crop from a zero-padded image and random horizontal flip."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def augment(key: jax.Array, x: jax.Array, *, crop_padding: int = 4, flip: bool = True) -> jax.Array:
  """CIFAR augmentation of a batch ``x (n, H, W, C)``: random crop from a zero-padded image, random horizontal flip.

  Each example is padded with ``crop_padding`` zeros on every side of H and W and cropped back to ``H × W`` at an
  offset drawn uniformly from ``{0, ..., 2 * crop_padding}`` per axis (independently per example); then it is
  mirrored along W with probability 1/2 (``x[i, :, ::-1]``). Deterministic for a key; traceable under ``jit``
  (``crop_padding`` and ``flip`` are static) and ``vmap`` (for example over keys).

  Args:
    key: a ``jax.random`` key.
    x: the batch, channels last.
    crop_padding: zero padding before the crop (>= 0); 0 turns the crop off.
    flip: whether to flip at random.

  Returns:
    The augmented batch, the shape and dtype of ``x``.
  """
  x = jnp.asarray(x)
  if x.ndim != 4:
    raise ValueError(f"x must be a batch (n, H, W, C); got shape {x.shape}")
  if isinstance(crop_padding, bool) or not isinstance(crop_padding, (int, np.integer)) or crop_padding < 0:
    raise ValueError(f"crop_padding must be an integer >= 0; got {crop_padding!r}")
  n, height, width, channels = x.shape
  crop_key, flip_key = jax.random.split(key)
  if crop_padding > 0:
    p = int(crop_padding)
    padded = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    offsets = jax.random.randint(crop_key, (n, 2), 0, 2 * p + 1)

    def crop(image: jax.Array, offset: jax.Array) -> jax.Array:
      return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (height, width, channels))

    x = jax.vmap(crop)(padded, offsets)
  if flip:
    flips = jax.random.bernoulli(flip_key, 0.5, (n,))
    x = jnp.where(flips[:, None, None, None], x[:, :, ::-1, :], x)
  return x
