"""Flax NNX models of the pruning papers, and a registry that builds them by name.

Every model's ``__call__(x, *, linear=False)`` takes channels-last batches; ``linear=True`` is the linearised
network SynFlow scores (see :mod:`mfprune.models.layers`). :func:`create_model` builds a model by name for a data
set's input shape.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
from flax import nnx

from mfprune.models.cnn import LeNet5, VanillaCNN
from mfprune.models.layers import BatchNorm, Conv, Dense
from mfprune.models.mlp import MLP
from mfprune.models.resnet import RESNET_DEPTHS, BasicBlock, ResNet
from mfprune.models.vgg import VGG, VGG16_STAGES

from mfprune.data.dataset import INPUT_SHAPES  # noqa: E402  (one table: data set name -> (example shape, classes))

_MODELS: dict[str, tuple[Callable[..., nnx.Module], dict[str, Any], str]] = {
    "mlp": (MLP, {"depth": 5, "width": 100}, "fully connected net (depth, width, activation, use_bias)"),
    "vcnn": (VanillaCNN, {"depth": 10, "channels": 32, "dims": 2},
             "vanilla CNN, circular padding, no pooling ([R] Table 4); depth, channels, kernel_size"),
    "vcnn1d": (VanillaCNN, {"depth": 10, "channels": 32, "dims": 1}, "1-D vanilla CNN over the flattened image"),
    "lenet5": (LeNet5, {}, "LeNet-5"),
    "vgg16": (VGG, {"repeat": 1}, "VGG16 with batch norm (CIFAR style)"),
    "3xvgg16": (VGG, {"repeat": 3}, "3xVGG16 of [R] Table 5: three times the convolutions per stage"),
    "resnet32": (ResNet, {"depth": 32}, "CIFAR ResNet32, doubled filters; stable=True for [R] eq. 9"),
    "resnet50": (ResNet, {"depth": 50}, "CIFAR ResNet50 (6n+2, n = 8), doubled filters"),
    "resnet104": (ResNet, {"depth": 104}, "CIFAR ResNet104 (n = 17), doubled filters"),
}


def available_models() -> dict[str, str]:
  """Registry name -> one-line description."""
  return {name: entry[2] for name, entry in _MODELS.items()}


def create_model(name: str, *, input_shape: Sequence[int] | str = "cifar10", num_classes: int | None = None,
                 key: jax.Array | int = 0, **options: Any) -> nnx.Module:
  """Builds a registered model.

  Args:
    name: one of :func:`available_models` (``mlp``, ``vcnn``, ``vcnn1d``, ``lenet5``, ``vgg16``, ``3xvgg16``,
      ``resnet32``, ``resnet50``, ``resnet104``).
    input_shape: one example's shape ``(H, W, C)``, or a data set name from :data:`INPUT_SHAPES`.
    num_classes: outputs; defaults to the data set's class count (10 for an explicit shape).
    key: PRNG key or integer seed for the initial parameters.
    **options: constructor arguments overriding the registry defaults (``depth``, ``width``, ``activation``,
      ``stable``, ``width_multiplier``, ...).

  Returns:
    The NNX module.

  Raises:
    ValueError: unknown ``name`` or data set, or options the model rejects.
  """
  if name not in _MODELS:
    raise ValueError(f"unknown model {name!r}; available: {', '.join(_MODELS)}")
  if isinstance(input_shape, str):
    if input_shape not in INPUT_SHAPES:
      raise ValueError(f"unknown data set {input_shape!r} for input_shape; known: {', '.join(INPUT_SHAPES)}")
    input_shape, default_classes = INPUT_SHAPES[input_shape]
  else:
    default_classes = 10
  cls, defaults, _ = _MODELS[name]
  kwargs = {**defaults, **options}
  rngs = nnx.Rngs(params=key)
  try:
    return cls(tuple(input_shape), num_classes or default_classes, rngs=rngs, **kwargs)
  except TypeError as err:
    raise ValueError(f"model {name!r} does not take these options: {err}") from None


__all__ = [
    "MLP", "VanillaCNN", "LeNet5", "VGG", "VGG16_STAGES", "ResNet", "BasicBlock", "RESNET_DEPTHS",
    "Dense", "Conv", "BatchNorm", "INPUT_SHAPES", "available_models", "create_model",
]
