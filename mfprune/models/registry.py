"""The model registry: one entry per named model, read by :func:`create_model`, the CLI and the tests.

Each :class:`ModelSpec` says everything the rest of the toolkit needs to know about a model, so that nothing
downstream branches on a model's name: how to build it (constructor and defaults), which data sets' input shapes it
takes, which architecture options the command line offers for it, how the mean-field theory reads it
(:class:`~mfprune.models.mean_field.MeanFieldView`, or ``None`` when the theory does not map it) and a small version
of it that the conformance tests run every scorer on. A new model is one :func:`register_model` call.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Mapping, Sequence

from flax import nnx

from mfprune._keys import KeyLike, as_key
from mfprune.data.dataset import INPUT_SHAPES
from mfprune.models.cnn import LeNet5, VanillaCNN
from mfprune.models.mean_field import MeanFieldView, mlp_view, vanilla_cnn_view
from mfprune.models.mlp import MLP
from mfprune.models.resnet import ResNet
from mfprune.models.vgg import VGG

MeanFieldReader = Callable[[nnx.Module], MeanFieldView]


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """A registered model.

  Attributes:
    name: the registry name (``--model`` on the command line).
    constructor: ``constructor(input_shape, num_classes, *, rngs, **options)`` returning an NNX module.
    defaults: constructor options the registry fixes unless the caller overrides them (e.g. ``depth=32``).
    input_shapes: the data sets of :data:`~mfprune.data.INPUT_SHAPES` whose examples the model takes, or ``None``
      for every shape.
    cli_options: the constructor options the command line offers for this model (``depth``, ``width``, ...).
    mean_field: reads a built module as the FFNN/CNN of [R] eq. 1-3, or ``None`` when the theory does not map the
      model (pooling, batch norm, residual branches).
    tiny: a small version for the tests: ``input_shape``, ``num_classes`` and constructor options.
    description: one line for ``available_models`` and ``--help``.
  """

  name: str
  constructor: Callable[..., nnx.Module]
  defaults: Mapping[str, Any]
  input_shapes: tuple[str, ...] | None
  cli_options: tuple[str, ...]
  mean_field: MeanFieldReader | None
  tiny: Mapping[str, Any]
  description: str

  def takes(self, data: str) -> bool:
    """Whether the model takes the examples of data set ``data`` (a key of :data:`INPUT_SHAPES`)."""
    return self.input_shapes is None or data in self.input_shapes


_REGISTRY: dict[str, ModelSpec] = {}


def _constructor_options(constructor: Callable[..., Any]) -> set[str] | None:
  """Keyword options a constructor takes (``None`` when it takes ``**kwargs``)."""
  target = constructor.__init__ if isinstance(constructor, type) else constructor  # NNX's metaclass hides it
  parameters = inspect.signature(target).parameters.values()
  if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
    return None
  return {p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY} - {"rngs"}


def register_model(name: str, constructor: Callable[..., nnx.Module], *, tiny: Mapping[str, Any],
                   defaults: Mapping[str, Any] | None = None, input_shapes: Sequence[str] | None = None,
                   cli_options: Sequence[str] = (), mean_field: MeanFieldReader | None = None,
                   description: str = "", replace: bool = False) -> ModelSpec:
  """Adds a model to the registry (see :class:`ModelSpec` for the fields).

  Args:
    name: registry name.
    constructor: ``constructor(input_shape, num_classes, *, rngs, **options)``.
    tiny: ``{"input_shape": (H, W, C), "num_classes": K, **options}`` of a small version (tests, examples).
    defaults: options fixed unless overridden.
    input_shapes: data sets whose input shape the model takes (``None``: all).
    cli_options: constructor options offered on the command line.
    mean_field: the model's :class:`~mfprune.models.mean_field.MeanFieldView` reader, if the theory maps it.
    description: one line.
    replace: allow re-registering ``name``.

  Returns:
    The new :class:`ModelSpec`.

  Raises:
    ValueError: a name taken (without ``replace``), an unknown data set, options the constructor does not take, or
      a ``tiny`` without ``input_shape``/``num_classes``.
  """
  if name in _REGISTRY and not replace:
    raise ValueError(f"model {name!r} is already registered (pass replace=True to override it)")
  if input_shapes is not None:
    unknown = [data for data in input_shapes if data not in INPUT_SHAPES]
    if unknown:
      raise ValueError(f"input_shapes names unknown data sets {unknown}; known: {', '.join(INPUT_SHAPES)}")
  known = _constructor_options(constructor)
  defaults = dict(defaults or {})
  tiny_options = {k: v for k, v in tiny.items() if k not in ("input_shape", "num_classes")}
  for argument, names in (("defaults", defaults), ("cli_options", cli_options), ("tiny", tiny_options)):
    bad = sorted(set(names) - known) if known is not None else []
    if bad:
      raise ValueError(f"{argument} of model {name!r} names options {bad} that {constructor.__name__} does not "
                       f"take; it takes {sorted(known)}")
  if "input_shape" not in tiny or "num_classes" not in tiny:
    raise ValueError(f"tiny of model {name!r} must give input_shape and num_classes; got {sorted(tiny)}")
  spec = ModelSpec(name=name, constructor=constructor, defaults=defaults,
                   input_shapes=None if input_shapes is None else tuple(input_shapes), cli_options=tuple(cli_options),
                   mean_field=mean_field, tiny=dict(tiny), description=description)
  _REGISTRY[name] = spec
  return spec


def get_model(name: str) -> ModelSpec:
  """The :class:`ModelSpec` registered as ``name``.

  Raises:
    ValueError: ``name`` is not registered (the message lists the registered names).
  """
  if name not in _REGISTRY:
    raise ValueError(f"unknown model {name!r}; available: {', '.join(_REGISTRY)}")
  return _REGISTRY[name]


def available_models() -> dict[str, str]:
  """Registry name -> one-line description, in registration order."""
  return {name: spec.description for name, spec in _REGISTRY.items()}


def create_model(name: str, *, input_shape: Sequence[int] | str = "cifar10", num_classes: int | None = None,
                 key: KeyLike = 0, **options: Any) -> nnx.Module:
  """Builds a registered model.

  Args:
    name: one of :func:`available_models` (``mlp``, ``vcnn``, ``vcnn1d``, ``lenet5``, ``vgg16``, ``3xvgg16``,
      ``resnet32``, ``resnet50``, ``resnet104``, and any model added with :func:`register_model`).
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
  spec = get_model(name)
  if isinstance(input_shape, str):
    if input_shape not in INPUT_SHAPES:
      raise ValueError(f"unknown data set {input_shape!r} for input_shape; known: {', '.join(INPUT_SHAPES)}")
    input_shape, default_classes = INPUT_SHAPES[input_shape]
  else:
    default_classes = 10
  kwargs = {**spec.defaults, **options}
  rngs = nnx.Rngs(params=as_key(key, "key"))
  try:
    return spec.constructor(tuple(input_shape), num_classes or default_classes, rngs=rngs, **kwargs)
  except TypeError as err:
    raise ValueError(f"model {name!r} does not take these options: {err}") from None


def create_tiny_model(name: str, *, key: KeyLike = 0) -> nnx.Module:
  """The small version of a registered model (its :attr:`ModelSpec.tiny`), for tests and examples."""
  tiny = dict(get_model(name).tiny)
  return create_model(name, input_shape=tiny.pop("input_shape"), num_classes=tiny.pop("num_classes"), key=key,
                      **tiny)


def mean_field_view(module: nnx.Module) -> MeanFieldView | None:
  """How the mean-field theory reads ``module`` ([R] eq. 1-3), or ``None`` when no registered model of its type
  has a :attr:`ModelSpec.mean_field` reader (the theory does not map it)."""
  for spec in _REGISTRY.values():
    if spec.mean_field is not None and type(module) is spec.constructor:
      return spec.mean_field(module)
  return None


def _register_builtin_models() -> None:
  """The papers' models ([R] Tables 1-5, [S] §5, [P] §5)."""
  all_but_digits = tuple(data for data in INPUT_SHAPES if data != "digits")
  cifar_like = ("cifar10", "cifar100", "tiny-imagenet")
  register_model("mlp", MLP, defaults={"depth": 5, "width": 100}, cli_options=("depth", "width", "activation"),
                 mean_field=mlp_view, tiny={"input_shape": (4, 4, 1), "num_classes": 5, "depth": 4, "width": 12,
                                            "activation": "tanh"},
                 description="fully connected net (depth, width, activation, use_bias)")
  cnn_options = ("depth", "channels", "activation")
  register_model("vcnn", VanillaCNN, defaults={"depth": 10, "channels": 32, "dims": 2}, cli_options=cnn_options,
                 mean_field=vanilla_cnn_view, tiny={"input_shape": (6, 6, 2), "num_classes": 5, "depth": 3,
                                                    "channels": 4},
                 description="vanilla CNN, circular padding, no pooling ([R] Table 4); depth, channels, kernel_size")
  register_model("vcnn1d", VanillaCNN, defaults={"depth": 10, "channels": 32, "dims": 1}, cli_options=cnn_options,
                 mean_field=vanilla_cnn_view, tiny={"input_shape": (3, 4, 1), "num_classes": 5, "depth": 3,
                                                    "channels": 4},
                 description="1-D vanilla CNN over the flattened image")
  register_model("lenet5", LeNet5, input_shapes=all_but_digits, cli_options=("activation",),
                 tiny={"input_shape": (12, 12, 1), "num_classes": 5}, description="LeNet-5")
  vgg_options = ("activation", "width_multiplier")
  register_model("vgg16", VGG, defaults={"repeat": 1}, input_shapes=cifar_like, cli_options=vgg_options,
                 tiny={"input_shape": (8, 8, 3), "num_classes": 5, "stages": ((4, 1), (8, 2))},
                 description="VGG16 with batch norm (CIFAR style)")
  register_model("3xvgg16", VGG, defaults={"repeat": 3}, input_shapes=cifar_like, cli_options=vgg_options,
                 tiny={"input_shape": (8, 8, 3), "num_classes": 5, "stages": ((4, 1), (8, 1))},
                 description="3xVGG16 of [R] Table 5: three times the convolutions per stage")
  resnet_options = ("depth", "activation", "stable", "width_multiplier")
  for depth, tiny_depth, description in [
      (32, 8, "CIFAR ResNet32, doubled filters; stable=True for [R] eq. 9"),
      (50, 14, "CIFAR ResNet50 (6n+2, n = 8), doubled filters"),
      (104, 20, "CIFAR ResNet104 (n = 17), doubled filters")]:
    register_model(f"resnet{depth}", ResNet, defaults={"depth": depth}, cli_options=resnet_options,
                   tiny={"input_shape": (8, 8, 3), "num_classes": 5, "depth": tiny_depth, "width_multiplier": 0.25},
                   description=description)


_register_builtin_models()
