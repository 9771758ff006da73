"""Flax NNX models of the pruning papers, and a registry that builds them by name.

Every model's ``__call__(x, *, linear=False)`` takes channels-last batches; ``linear=True`` is the linearised
network SynFlow scores (see :mod:`mfprune.models.layers`). :func:`create_model` builds a model by name for a data
set's input shape;
:func:`register_model` adds one (:mod:`mfprune.models.registry`), and :func:`mean_field_view` says how the mean-field
theory reads a built model (:mod:`mfprune.models.mean_field`).
"""

from __future__ import annotations

from mfprune.models.cnn import LeNet5, VanillaCNN
from mfprune.models.layers import BatchNorm, Conv, Dense
from mfprune.models.mean_field import ARCHITECTURES, MeanFieldView
from mfprune.models.mlp import MLP
from mfprune.models.registry import (ModelSpec, available_models, create_model, create_tiny_model, get_model,
                                     mean_field_view, register_model)
from mfprune.models.resnet import RESNET_DEPTHS, BasicBlock, ResNet
from mfprune.models.vgg import VGG, VGG16_STAGES

from mfprune.data.dataset import INPUT_SHAPES  # noqa: E402  (one table: data set name -> (example shape, classes))

__all__ = [
    "MLP", "VanillaCNN", "LeNet5", "VGG", "VGG16_STAGES", "ResNet", "BasicBlock", "RESNET_DEPTHS",
    "Dense", "Conv", "BatchNorm", "INPUT_SHAPES", "ModelSpec", "register_model", "get_model", "available_models",
    "create_model", "create_tiny_model", "MeanFieldView", "ARCHITECTURES", "mean_field_view",
]
