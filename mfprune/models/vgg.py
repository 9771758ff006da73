"""VGG16 and the 3xVGG16 of [R] §4.3 (Table 5), CIFAR-style: 3×3 convolutions, max pooling, one dense read-out."""

from __future__ import annotations

from typing import Sequence

import jax
from flax import nnx

from mfprune.models.layers import BatchNorm, Conv, Dense, activation_fn, global_avg_pool, max_pool, renormalise
from theory.activations import ActivationLike

VGG16_STAGES = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
"""(channels, convolutions) of each stage of VGG16; every stage ends with 2×2 max pooling."""


class VGG(nnx.Module):
  """VGG with ``repeat`` times as many convolutions in each stage (``repeat=3`` is [R]'s 3xVGG16).

  Each convolution is 3×3 (SAME padding), optionally followed by batch norm, then φ; each stage ends with 2×2 max
  pooling; global average pooling and a dense read-out follow (the CIFAR VGG of Tanaka et al. / OpenLTH used by [R]
  and [P]). Between two poolings the net is a vanilla CNN, which is where the mean-field theory applies ([R] §4.3).

  Args:
    input_shape: one example ``(H, W, C)`` with ``H, W`` multiples of 32 (CIFAR 32, Tiny ImageNet 64).
    num_classes: outputs.
    repeat: convolutions per stage multiplied by this (1: VGG16, 3: 3xVGG16).
    stages: ``(channels, convolutions)`` per stage; default VGG16's.
    width_multiplier: scales every channel count (small values make test-sized models).
    batch_norm: batch norm after every convolution.
    activation: default ``"relu"``.
    rngs: ``nnx.Rngs``.
  """

  def __init__(self, input_shape: Sequence[int], num_classes: int, *, repeat: int = 1,
               stages: Sequence[tuple[int, int]] = VGG16_STAGES, width_multiplier: float = 1.0,
               batch_norm: bool = True, activation: ActivationLike = "relu", rngs: nnx.Rngs):
    h, w, c = input_shape
    if h % 2 ** len(stages) or w % 2 ** len(stages):
      raise ValueError(f"input_shape {tuple(input_shape)}: H and W must be multiples of {2 ** len(stages)}")
    if repeat < 1:
      raise ValueError(f"repeat must be >= 1; got {repeat}")
    self.activation = activation_fn(activation)
    convs, norms, self.pool_after = [], [], []
    for channels, count in stages:
      out = max(1, round(channels * width_multiplier))
      for _ in range(count * repeat):
        convs.append(Conv(c, out, (3, 3), padding="SAME", use_bias=not batch_norm, rngs=rngs))
        norms.append(BatchNorm(out, rngs=rngs) if batch_norm else None)
        self.pool_after.append(False)
        c = out
      self.pool_after[-1] = True
    self.convs = nnx.List(convs)
    self.norms = nnx.List(norms)
    self.readout = Dense(c, num_classes, rngs=rngs)

  def __call__(self, x: jax.Array, *, linear: bool = False) -> jax.Array:
    h = x
    for conv, norm, pool in zip(self.convs, self.norms, self.pool_after):
      h = conv(h, linear=linear)
      if norm is not None:
        h = norm(h, linear=linear)
      h = renormalise(h) if linear else self.activation(h)
      if pool:
        h = max_pool(h)
    return self.readout(global_avg_pool(h), linear=linear)
