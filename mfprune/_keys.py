"""PRNG keys: every mfprune function that draws random numbers takes ``key`` as an integer seed or a ``jax.random``
key, and optional keys default to 0."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
KeyLike = Any  # int | jax.Array (a typed key from jax.random.key, or a raw uint32[2] key from jax.random.PRNGKey)


def as_key(key: KeyLike, name: str = "key") -> Array:
  """``key`` as a ``jax.random`` key: integers become ``jax.random.key(seed)``, keys (typed, or raw ``uint32[..., 2]``
  as ``jax.random.PRNGKey`` makes them; concrete or traced) pass through.

  Raises:
    ValueError: anything else, naming ``name``.
  """
  if isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
    return jax.random.key(int(key))
  dtype = getattr(key, "dtype", None)
  if dtype is not None and (jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)
                            or (dtype == jnp.uint32 and tuple(jnp.shape(key))[-1:] == (2,))):
    return key
  raise ValueError(f"{name} must be an integer seed or a jax.random key; got {key!r}")
