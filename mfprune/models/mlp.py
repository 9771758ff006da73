"""Fully connected network (the FFNN of [R] §2.1, eq. 1; THEORY.md §1)."""

from __future__ import annotations

import math
from typing import Sequence

import jax
from flax import nnx

from mfprune.models.layers import Dense, activation_fn, flatten, sequential
from theory.activations import ActivationLike


class MLP(nnx.Module):
  """``depth`` dense layers: ``depth − 1`` hidden layers of ``width`` units and a linear read-out.

  Layer ``l`` computes ``y^l = W^l φ(y^{l−1}) + B^l`` for ``l ≥ 2`` and ``y^1 = W^1 x + B^1`` ([R] eq. 1), so
  ``depth`` is the ``L`` of :func:`theory.gradients.gradient_moments`. Inputs of any shape are flattened.

  Args:
    input_shape: shape of one example, e.g. ``(28, 28, 1)``.
    num_classes: output units.
    depth: number of dense layers ``L >= 1``.
    width: hidden units ``N``.
    activation: registry name, :class:`theory.Activation` or callable (default ``"tanh"``).
    use_bias: biases in every layer.
    rngs: ``nnx.Rngs``; kernels start as LeCun normal, biases at 0 (see :mod:`mfprune.init` for the paper inits).
  """

  def __init__(self, input_shape: Sequence[int], num_classes: int, *, depth: int, width: int,
               activation: ActivationLike = "tanh", use_bias: bool = True, rngs: nnx.Rngs):
    if depth < 1 or width < 1 or num_classes < 1:
      raise ValueError(f"depth, width and num_classes must be >= 1; got {depth}, {width}, {num_classes}")
    sizes = [math.prod(input_shape)] + [width] * (depth - 1) + [num_classes]
    self.activation = activation_fn(activation)
    self.layers = nnx.List([Dense(a, b, use_bias=use_bias, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])])

  def __call__(self, x: jax.Array, *, linear: bool = False) -> jax.Array:
    return sequential(self.layers, flatten(x), self.activation, linear=linear)
