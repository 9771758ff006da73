"""Convolutional networks without residual connections: the vanilla CNN of [R] (Table 4) and LeNet-5."""

from __future__ import annotations

from typing import Sequence

import jax
from flax import nnx

from mfprune.models.layers import Conv, Dense, activation_fn, avg_pool, flatten, renormalise, sequential
from theory.activations import ActivationLike


class VanillaCNN(nnx.Module):
  """``depth − 1`` circular-padded convolutions with no pooling, then a dense read-out ([R] §2.1, App. A.1, Table 4).

  Layer ``l`` computes ``y^l = W^l * φ(y^{l−1}) + B^l`` with a ``(2k+1)``-wide window and circular padding, so the
  mean-field fan-in is ``v_l = n_{l−1}(2k+1)`` (per spatial axis; THEORY.md §1) and q*, χ and the EOC are those of
  the FFNN. ``dims=1`` treats an image as a 1-D signal of ``H·W`` positions (the 1-D CNN of the theory); ``dims=2``
  convolves over ``(H, W)``.

  Args:
    input_shape: one example, ``(H, W, C)`` (or ``(T, C)`` with ``dims=1``).
    num_classes: outputs of the dense read-out (applied to the flattened last feature map).
    depth: number of weight layers ``L >= 2`` (``L − 1`` convolutions + read-out).
    channels: channels of every convolution.
    kernel_size: window ``2k+1`` (odd).
    dims: 1 or 2 spatial dimensions.
    activation: registry name, :class:`theory.Activation` or callable.
    use_bias: biases everywhere.
    rngs: ``nnx.Rngs``.
  """

  def __init__(self, input_shape: Sequence[int], num_classes: int, *, depth: int, channels: int,
               kernel_size: int = 3, dims: int = 2, activation: ActivationLike = "tanh", use_bias: bool = True,
               rngs: nnx.Rngs):
    if dims not in (1, 2):
      raise ValueError(f"dims must be 1 or 2; got {dims}")
    if depth < 2 or channels < 1:
      raise ValueError(f"depth must be >= 2 and channels >= 1; got depth={depth}, channels={channels}")
    if kernel_size < 1 or kernel_size % 2 == 0:
      raise ValueError(f"kernel_size must be odd (2k+1); got {kernel_size}")
    self.dims = dims
    spatial = self._spatial(tuple(input_shape))
    in_channels = input_shape[-1]
    self.activation = activation_fn(activation)
    self.convs = nnx.List([
        Conv(in_channels if i == 0 else channels, channels, (kernel_size,) * dims, padding="CIRCULAR",
             use_bias=use_bias, rngs=rngs) for i in range(depth - 1)])
    features = channels
    for n in spatial:
      features *= n
    self.readout = Dense(features, num_classes, use_bias=use_bias, rngs=rngs)

  def _spatial(self, shape: tuple[int, ...]) -> tuple[int, ...]:
    spatial = shape[:-1]
    if self.dims == 1:
      size = 1
      for n in spatial:
        size *= n
      return (size,)
    if len(spatial) != 2:
      raise ValueError(f"input_shape must be (H, W, C) for dims=2; got {shape}")
    return spatial

  def __call__(self, x: jax.Array, *, linear: bool = False) -> jax.Array:
    h = x.reshape(x.shape[0], -1, x.shape[-1]) if self.dims == 1 else x
    h = sequential(self.convs, h, self.activation, linear=linear)
    if not linear:
      h = self.activation(h)
    return self.readout(flatten(h), linear=linear)


class LeNet5(nnx.Module):
  """LeNet-5: conv 6@5×5 (SAME), pool, conv 16@5×5 (VALID), pool, dense 120, dense 84, read-out.

  Args:
    input_shape: one example ``(H, W, C)``; 28×28 (MNIST), 32×32 (CIFAR) and 64×64 (Tiny ImageNet) all work.
    num_classes: outputs.
    activation: default ``"tanh"`` as in the original; any registry name.
    rngs: ``nnx.Rngs``.
  """

  def __init__(self, input_shape: Sequence[int], num_classes: int, *, activation: ActivationLike = "tanh",
               rngs: nnx.Rngs):
    h, w, c = input_shape
    self.activation = activation_fn(activation)
    self.conv1 = Conv(c, 6, (5, 5), padding="SAME", rngs=rngs)
    self.conv2 = Conv(6, 16, (5, 5), padding="VALID", rngs=rngs)
    h2, w2 = (h // 2 - 4) // 2, (w // 2 - 4) // 2
    if h2 < 1 or w2 < 1:
      raise ValueError(f"input_shape {tuple(input_shape)} is too small for LeNet5 (needs H, W >= 12)")
    self.fc1 = Dense(16 * h2 * w2, 120, rngs=rngs)
    self.fc2 = Dense(120, 84, rngs=rngs)
    self.fc3 = Dense(84, num_classes, rngs=rngs)

  def __call__(self, x: jax.Array, *, linear: bool = False) -> jax.Array:
    act = (lambda v: v) if linear else self.activation
    post = renormalise if linear else (lambda v: v)
    h = avg_pool(act(post(self.conv1(x, linear=linear))))
    h = avg_pool(act(post(self.conv2(h, linear=linear))))
    h = act(post(self.fc1(flatten(h), linear=linear)))
    h = act(post(self.fc2(h, linear=linear)))
    return self.fc3(h, linear=linear)
