"""CIFAR ResNets (He et al. 2016, depth 6n+2) with doubled filters [R] §4.2, and the Stable ResNet of [R] eq. 9."""

from __future__ import annotations

import math
from typing import Sequence

import jax
from flax import nnx

from mfprune.models.layers import BatchNorm, Conv, Dense, StaticFn, activation_fn, global_avg_pool, renormalise
from theory.activations import ActivationLike

RESNET_DEPTHS = {20: 3, 32: 5, 44: 7, 50: 8, 56: 9, 104: 17, 110: 18}
"""Depth ``6n + 2`` -> blocks per stage ``n`` (ResNet32 has 3·5 = 15 residual blocks)."""


class BasicBlock(nnx.Module):
  """``out = φ(shortcut(x) + scale · BN(conv(φ(BN(conv(x))))))``, two 3×3 convolutions.

  ``scale`` is 1 for the standard ResNet and ``1/√L`` (``L`` = number of blocks) for the Stable ResNet of [R] eq. 9,
  which divides the residual branch, batch norm included, so that ``m_l = Θ(1/L)`` ([R] Prop. 2; THEORY.md §2-3).
  The shortcut is the identity, or a strided 1×1 convolution + BN when the shape changes.
  """

  def __init__(self, in_channels: int, out_channels: int, *, stride: int, scale: float, batch_norm: bool,
               activation: StaticFn, rngs: nnx.Rngs):
    self.scale = scale
    self.activation = activation
    use_bias = not batch_norm
    self.conv1 = Conv(in_channels, out_channels, (3, 3), strides=stride, use_bias=use_bias, rngs=rngs)
    self.norm1 = BatchNorm(out_channels, rngs=rngs) if batch_norm else None
    self.conv2 = Conv(out_channels, out_channels, (3, 3), use_bias=use_bias, rngs=rngs)
    self.norm2 = BatchNorm(out_channels, rngs=rngs) if batch_norm else None
    if stride != 1 or in_channels != out_channels:
      self.shortcut = Conv(in_channels, out_channels, (1, 1), strides=stride, use_bias=use_bias, rngs=rngs)
      self.shortcut_norm = BatchNorm(out_channels, rngs=rngs) if batch_norm else None
    else:
      self.shortcut, self.shortcut_norm = None, None

  def __call__(self, x: jax.Array, *, linear: bool = False) -> jax.Array:
    act = (lambda v: v) if linear else self.activation
    h = self.conv1(x, linear=linear)
    if self.norm1 is not None:
      h = self.norm1(h, linear=linear)
    h = self.conv2(act(h), linear=linear)
    if self.norm2 is not None:
      h = self.norm2(h, linear=linear)
    skip = x
    if self.shortcut is not None:
      skip = self.shortcut(x, linear=linear)
      if self.shortcut_norm is not None:
        skip = self.shortcut_norm(skip, linear=linear)
    return act(skip + self.scale * h)


class ResNet(nnx.Module):
  """CIFAR ResNet of depth ``6n + 2``: a 3×3 stem, three stages of ``n`` basic blocks, global pooling, read-out.

  Filters are ``16·k, 32·k, 64·k`` with ``k = 2`` by default (the doubled filters of [R] §4.2, after Wang et al.
  2020); stages 2 and 3 start with stride 2. ``stable=True`` scales every residual branch by ``1/√L`` with ``L = 3n``
  the number of blocks ([R] eq. 9). Choice (docs/pruning.md): the blocks are the standard post-activation blocks
  the pruning papers train, so eq. 9's scaling is applied to the branch before the sum.

  Args:
    input_shape: one example ``(H, W, C)``.
    num_classes: outputs.
    depth: 32, 50 or 104 (the depths of [R] Table 2), or any ``6n + 2``.
    width_multiplier: ``k`` above (2 = doubled filters; 1 = He et al.'s original).
    stable: Stable ResNet scaling.
    batch_norm: batch norm in every block (convolutions then have no bias).
    activation: default ``"relu"``.
    rngs: ``nnx.Rngs``.
  """

  def __init__(self, input_shape: Sequence[int], num_classes: int, *, depth: int = 32, width_multiplier: float = 2,
               stable: bool = False, batch_norm: bool = True, activation: ActivationLike = "relu",
               rngs: nnx.Rngs):
    if depth < 8 or (depth - 2) % 6:
      raise ValueError(f"depth must be 6n + 2 with n >= 1 (e.g. 32, 50, 104); got {depth}")
    n = (depth - 2) // 6
    self.num_blocks = 3 * n
    scale = 1.0 / math.sqrt(self.num_blocks) if stable else 1.0
    self.activation = activation_fn(activation)
    c = input_shape[-1]
    widths = [max(1, round(f * width_multiplier)) for f in (16, 32, 64)]
    self.stem = Conv(c, widths[0], (3, 3), use_bias=not batch_norm, rngs=rngs)
    self.stem_norm = BatchNorm(widths[0], rngs=rngs) if batch_norm else None
    blocks, c = [], widths[0]
    for stage, out in enumerate(widths):
      for i in range(n):
        stride = 2 if (stage > 0 and i == 0) else 1
        blocks.append(BasicBlock(c, out, stride=stride, scale=scale, batch_norm=batch_norm,
                                 activation=self.activation, rngs=rngs))
        c = out
    self.blocks = nnx.List(blocks)
    self.readout = Dense(c, num_classes, rngs=rngs)

  def __call__(self, x: jax.Array, *, linear: bool = False) -> jax.Array:
    h = self.stem(x, linear=linear)
    if self.stem_norm is not None:
      h = self.stem_norm(h, linear=linear)
    h = renormalise(h) if linear else self.activation(h)
    for block in self.blocks:
      h = block(h, linear=linear)
      if linear:
        h = renormalise(h)
    return self.readout(global_avg_pool(h), linear=linear)
