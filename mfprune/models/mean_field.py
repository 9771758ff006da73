"""How the mean-field theory reads a model: the FFNN/CNN of [R] eq. 1-3 behind an MLP or a vanilla CNN.

:class:`MeanFieldView` is what :mod:`theory` needs of a network — architecture family, activation, the width of
every layer, fan-ins, weight counts, biases, window — read off a built module, so that the theory commands
(``mfprune scr``'s Theorem 1 and Proposition 4, ``mfprune ntk``'s infinite-width kernel,
:func:`mfprune.ntk.analytic_kernels`) never guess from a model's name. A registered model says how it is read
(:func:`mfprune.models.register_model`'s ``mean_field``); ``None`` there means the theory does not map it (pooling,
batch norm, residual branches, ...).
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from typing import Any

from theory import activations as theory_activations
from theory.activations import ActivationLike

from mfprune.models.cnn import VanillaCNN
from mfprune.models.mlp import MLP

ARCHITECTURES = ("ffnn", "cnn")
"""Families of [R] §2.1: the fully connected net (eq. 1) and the circular vanilla CNN (eq. 2-3)."""


@dataclasses.dataclass(frozen=True)
class MeanFieldView:
  """A network as the mean-field theory sees it ([R] §2.1 eq. 1-3; THEORY.md §1).

  Attributes:
    architecture: ``"ffnn"`` (fully connected, [R] eq. 1) or ``"cnn"`` (circular vanilla CNN, eq. 2-3).
    activation: the :class:`theory.Activation` the model computes (its parameters included), or its registry name.
    kernel_shapes: every weight layer's kernel shape, layer 1 first (network order): ``(fan_in, units)`` for dense
      layers, ``(*window, in_channels, out_channels)`` for convolutions; the last layer is the read-out.
    use_bias: whether the layers have biases (``σb`` enters the recursion only then).
    kernel_size: the window ``2k + 1`` of a CNN (``None`` for an FFNN).
    dims: spatial dimensions of a CNN, 1 or 2 (``None`` for an FFNN).
  """

  architecture: str
  activation: ActivationLike
  kernel_shapes: tuple[tuple[int, ...], ...]
  use_bias: bool
  kernel_size: int | None = None
  dims: int | None = None

  def __post_init__(self):
    if self.architecture not in ARCHITECTURES:
      raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}; got {self.architecture!r}")
    if not self.kernel_shapes:
      raise ValueError("kernel_shapes must list at least one layer")

  @property
  def depth(self) -> int:
    """``L``: the number of weight layers, read-out included (the ``L`` of [R] Theorem 1)."""
    return len(self.kernel_shapes)

  @property
  def widths(self) -> tuple[int, ...]:
    """``N_1 … N_{L−1}``: units (FFNN) or channels (CNN) of the hidden layers."""
    return tuple(shape[-1] for shape in self.kernel_shapes[:-1])

  @property
  def width(self) -> int:
    """``N``: the most common output width over all layers (ties: the earliest), the ``N`` of [R] Theorem 1."""
    return most_common_width(self.kernel_shapes)

  @property
  def fan_ins(self) -> tuple[int, ...]:
    """``v_l``: inputs feeding one unit of layer ``l`` (``N_{l−1}`` dense, ``N_{l−1}(2k+1)^dims`` convolution)."""
    return tuple(math.prod(shape[:-1]) for shape in self.kernel_shapes)

  @property
  def sizes(self) -> tuple[int, ...]:
    """``M_l``: weights of layer ``l``."""
    return tuple(math.prod(shape) for shape in self.kernel_shapes)


def most_common_width(kernel_shapes) -> int:
  """The most common output width (last axis) of ``kernel_shapes``, ties to the earliest: an MLP's width, a CNN's
  channels, the ``N`` of [R] Theorem 1."""
  return Counter(shape[-1] for shape in kernel_shapes).most_common(1)[0][0]


def model_activation(module: Any) -> ActivationLike:
  """The :class:`theory.Activation` behind a model's :class:`~mfprune.models.layers.StaticFn` (its parameters
  included), else the activation's registry name."""
  static = module.activation
  owner = getattr(getattr(static, "_fn", None), "__self__", None)
  return owner if isinstance(owner, theory_activations.Activation) else static.name


def mlp_view(module: MLP) -> MeanFieldView:
  """The FFNN of [R] eq. 1 behind an :class:`~mfprune.models.MLP`."""
  layers = list(module.layers)
  return MeanFieldView("ffnn", model_activation(module), tuple(tuple(layer.kernel.shape) for layer in layers),
                       use_bias=layers[0].bias is not None)


def vanilla_cnn_view(module: VanillaCNN) -> MeanFieldView:
  """The circular CNN of [R] eq. 2-3 behind a :class:`~mfprune.models.VanillaCNN` (the read-out is its last layer)."""
  convs = list(module.convs)
  shapes = tuple(tuple(conv.kernel.shape) for conv in convs) + (tuple(module.readout.kernel.shape),)
  return MeanFieldView("cnn", model_activation(module), shapes, use_bias=module.readout.bias is not None,
                       kernel_size=convs[0].kernel_size[0], dims=module.dims)
