"""Argument types and option groups shared by the ``mfprune`` commands, and building a model from them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

import numpy as np


def parse_sigma_list(text: str) -> np.ndarray:
  """Parses ``"0.3"``, ``"0,0.1,0.5"`` or ``"start:stop:count"`` (inclusive ``linspace``) into an array.

  Raises:
    argparse.ArgumentTypeError: with the expected forms, for anything else.
  """
  text = text.strip()
  try:
    if ":" in text:
      parts = text.split(":")
      if len(parts) != 3:
        raise ValueError
      start, stop, count = float(parts[0]), float(parts[1]), int(parts[2])
      if count < 1:
        raise ValueError
      values = np.linspace(start, stop, count)
    else:
      values = np.array([float(v) for v in text.split(",") if v.strip()])
  except ValueError:
    raise argparse.ArgumentTypeError(
        f"{text!r} is not a value, a comma list (0,0.1,0.5) or start:stop:count with count >= 1") from None
  if values.size == 0 or not np.all(np.isfinite(values)):
    raise argparse.ArgumentTypeError(f"{text!r} must give finite numbers")
  return values


def parse_param(text: str) -> tuple[str, float]:
  """``"KEY=VALUE"`` with a numeric value (activation parameters)."""
  key, sep, value = text.partition("=")
  try:
    if not sep or not key:
      raise ValueError
    return key.strip(), float(value)
  except ValueError:
    raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE with a numeric VALUE") from None


def _integer(minimum: int) -> Callable[[str], int]:
  def parse(text: str) -> int:
    try:
      value = int(text)
    except ValueError:
      value = minimum - 1
    if value < minimum:
      raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= {minimum}")
    return value

  return parse


positive_int = _integer(1)
non_negative_int = _integer(0)


def positive_float(text: str) -> float:
  try:
    value = float(text)
  except ValueError:
    value = float("nan")
  if not value > 0:
    raise argparse.ArgumentTypeError(f"{text!r} is not a number > 0")
  return value


def sparsity(text: str) -> float:
  """A sparsity in ``[0, 1)`` (the fraction of prunable weights removed)."""
  try:
    value = float(text)
  except ValueError:
    value = float("nan")
  if not 0.0 <= value < 1.0:
    raise argparse.ArgumentTypeError(f"{text!r} is not a sparsity in [0, 1) (the fraction of weights removed)")
  return value


def add_activation_options(sub: argparse.ArgumentParser) -> None:
  """``--activation`` (required), ``--param KEY=VALUE`` and ``--order`` for the theory commands."""
  sub.add_argument("--activation", "-a", required=True,
                   help="registry name: relu, leaky_relu, linear, tanh, erf, sigmoid, softplus, elu, selu, gelu, "
                   "silu, swish")
  sub.add_argument("--param", action="append", type=parse_param, default=[], metavar="KEY=VALUE",
                   help="activation parameter, e.g. --param negative_slope=0.2 (repeatable)")
  sub.add_argument("--order", type=positive_int, default=None, help="quadrature order (default 64)")


MODEL_FLAGS: dict[str, dict[str, Any]] = {
    "depth": {"type": positive_int, "help": "weight layers (mlp, vcnn) or 6n+2 (resnet)"},
    "width": {"type": positive_int, "help": "hidden units (mlp)"},
    "channels": {"type": positive_int, "help": "channels (vcnn)"},
    "activation": {"help": "activation registry name (see mfprune eoc --help)"},
    "stable": {"action": "store_true", "default": None, "help": "Stable ResNet: branches scaled by 1/sqrt(L)"},
    "width_multiplier": {"type": float, "help": "channel multiplier (vgg, resnet)"},
}
"""Command-line flags of the architecture options (``--width-multiplier`` for ``width_multiplier``); which of them a
model takes is its registry entry's ``cli_options`` (:class:`mfprune.models.ModelSpec`)."""


def add_model_options(sub: argparse.ArgumentParser) -> None:
  """``--model`` and the architecture options (``--depth``, ``--width``, ...; :data:`MODEL_FLAGS`)."""
  from mfprune.models import available_models, get_model

  unflagged = sorted({option for name in available_models() for option in get_model(name).cli_options}
                     - set(MODEL_FLAGS))
  if unflagged:
    raise ValueError(f"registered models offer options {unflagged} that have no command-line flag; add them to "
                     "mfprune.cli.arguments.MODEL_FLAGS")
  sub.add_argument("--model", required=True, choices=list(available_models()),
                   help="model to build (the registry: mfprune.models.available_models())")
  model = sub.add_argument_group("model options (defaults: the registry's; each model takes those its entry lists)")
  for name, flag in MODEL_FLAGS.items():
    model.add_argument("--" + name.replace("_", "-"), **flag)


def model_options(args: argparse.Namespace) -> dict[str, Any]:
  """The architecture options the user gave (the registry's defaults fill the rest).

  Raises:
    ValueError: an option the model does not take, naming the model's options.
  """
  from mfprune.models import get_model

  given = {name: getattr(args, name) for name in MODEL_FLAGS if getattr(args, name, None) is not None}
  spec = get_model(args.model)
  extra = [name for name in given if name not in spec.cli_options]
  if extra:
    flags = ", ".join("--" + name.replace("_", "-") for name in extra)
    takes = ", ".join("--" + name.replace("_", "-") for name in spec.cli_options) or "none"
    raise ValueError(f"{flags} does not apply to --model {args.model} (its options: {takes})")
  return given


def mean_field_models() -> list[str]:
  """Registered models the mean-field theory maps (those with a :class:`~mfprune.models.MeanFieldView`)."""
  from mfprune.models import available_models, get_model

  return [name for name in available_models() if get_model(name).mean_field is not None]


def mean_field_view(apply_fn, init):
  """The :class:`~mfprune.models.MeanFieldView` of the model behind ``apply_fn``/``init``, or ``None``."""
  import jax

  from mfprune.models import mean_field_view as view_of

  return view_of(apply_fn.module(jax.eval_shape(init, jax.random.key(0))))


def add_init_options(sub: argparse.ArgumentParser) -> None:
  """``--init`` and its scales."""
  from mfprune.init import SCHEMES

  inits = sub.add_argument_group("initialisation (default: the model's LeCun normal)")
  inits.add_argument("--init", choices=SCHEMES, help="initialisation scheme")
  inits.add_argument("--sigma-w", type=float, help="weight scale for --init gaussian")
  inits.add_argument("--sigma-b", type=float, default=None, help="bias scale for eoc/gaussian/orthogonal")
  inits.add_argument("--gain", type=float, default=1.0, help="gain for orthogonal/delta_orthogonal (default 1)")


def add_pruning_options(sub: argparse.ArgumentParser, *, required: bool) -> None:
  """``--method``, ``--sparsity`` and the pruning schedule options (``--prune-schedule``, the keep fraction's
  schedule over rounds, apart from ``mfprune train``'s ``--lr-schedule``)."""
  from mfprune.masks import COLLAPSE_ACTIONS
  from mfprune.pruning import SCHEDULES, SCOPES
  from mfprune.scores import available_scorers

  sub.add_argument("--method", required=required, choices=sorted(available_scorers()),
                   help="pruning method" + ("" if required else " (default: none, train the dense network)"))
  sub.add_argument("--sparsity", required=required, type=sparsity, default=None if required else 0.0,
                   help="fraction of prunable weights removed")
  sub.add_argument("--num-batches", type=positive_int, default=1,
                   help="batches whose mean loss SNIP/GraSP score (default 1)")
  sub.add_argument("--rounds", type=positive_int, default=None,
                   help="pruning rounds (default 1; 100 for the SynFlow family)")
  sub.add_argument("--prune-schedule", choices=SCHEDULES,
                   default="exponential", help="keep-fraction schedule of iterative pruning")
  sub.add_argument("--scope", choices=SCOPES, default="global", help="one threshold or one per layer")
  sub.add_argument("--on-collapse", choices=COLLAPSE_ACTIONS, default="warn",
                   help="when a layer loses every weight (default warn: the outputs show which)")


def add_seed_option(sub, what: str = "the initialisation, data and scores") -> None:
  """``--seed`` (an integer, default 0; every random draw of the command derives from it)."""
  sub.add_argument("--seed", type=int, default=0, help=f"seed of {what} (default 0)")


def output_folder(text: str) -> Path:
  """``--out``: a folder that exists or can be created (a path naming a file is an error, before any work)."""
  path = Path(text)
  blocker = next((p for p in (path, *path.parents) if p.exists()), None)
  if blocker is not None and not blocker.is_dir():
    raise argparse.ArgumentTypeError(f"{text!r} cannot be an output folder: {str(blocker)!r} is a file")
  return path


def add_out_option(sub: argparse.ArgumentParser, default: str) -> None:
  sub.add_argument("--out", type=output_folder, default=Path(default), help=f"output folder (default {default})")


def init_options(args: argparse.Namespace, activation: str) -> dict[str, Any]:
  """Keyword arguments of :func:`mfprune.init.initialise` for ``--init``."""
  sigma_b = 0.0 if args.sigma_b is None else args.sigma_b
  if args.init == "eoc":
    return {"activation": activation, "sigma_b": sigma_b}
  if args.init == "gaussian":
    if args.sigma_w is None:
      raise ValueError("--init gaussian needs --sigma-w")
    return {"sigma_w": args.sigma_w, "sigma_b": sigma_b}
  if args.init in ("orthogonal", "delta_orthogonal"):
    return {"gain": args.gain, "sigma_b": sigma_b}
  return {}


def init_scheme(args: argparse.Namespace) -> str | None:
  """The initialisation scheme: ``--init``, or ``gaussian`` when only ``--sigma-w`` is given."""
  if args.init is None and args.sigma_w is not None:
    return "gaussian"
  if args.init not in (None, "gaussian") and args.sigma_w is not None:
    raise ValueError(f"--sigma-w is the weight scale of --init gaussian; --init {args.init} does not take it")
  return args.init


def settings(args: argparse.Namespace) -> dict[str, Any]:
  """The parsed arguments as JSON-friendly settings (for the run's records)."""
  return {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()
          if key not in ("command", "x64", "run")}


def add_data_options(sub: argparse.ArgumentParser, *, validation: bool = False) -> None:
  """``--data``, ``--data-dir``, ``--input-shape`` (synthetic) and, for training, ``--validation-fraction``."""
  from mfprune.data import DATASETS
  from mfprune.models import INPUT_SHAPES

  group = sub.add_argument_group("data (docs/data.md)")
  group.add_argument("--data", default="digits", choices=DATASETS,
                     help="data set (default digits, embedded); fashion-mnist reads Debian's "
                     "/usr/share/datasets/fashion-mnist unless --data-dir is given")
  group.add_argument("--data-dir", type=Path, help="folder holding the data set's files (mnist, cifar, tiny-imagenet)")
  group.add_argument("--input-shape", default="cifar10", choices=sorted(INPUT_SHAPES),
                     help="input shape and class count for --data synthetic (default cifar10)")
  group.add_argument("--batch-size", type=positive_int, default=128, help="examples per batch (default 128)")
  if validation:
    group.add_argument("--validation-fraction", type=float, default=0.0,
                       help="fraction of the training set held out for validation (default 0; [S] uses 0.1)")


def load_data(args: argparse.Namespace):
  """The :class:`mfprune.data.Splits` the data options name."""
  from mfprune import data
  from mfprune.models import INPUT_SHAPES

  options: dict[str, Any] = {"validation_fraction": getattr(args, "validation_fraction", 0.0), "seed": args.seed}
  if args.data == "synthetic":
    shape, classes = INPUT_SHAPES[args.input_shape]
    options.update(input_shape=shape, num_classes=classes)
  return data.load_splits(args.data, args.data_dir, **options)


def build_model(args: argparse.Namespace, splits) -> tuple[Any, Callable, str]:
  """``(apply_fn, init, activation name)`` of the model the options describe, for the data's shape."""
  from mfprune import pipeline
  from mfprune.models import get_model

  options = model_options(args)
  spec = get_model(args.model)
  data = args.input_shape if args.data == "synthetic" else args.data
  if not spec.takes(data):
    raise ValueError(f"--model {args.model} takes the input shapes of {', '.join(spec.input_shapes)}; {data} "
                     f"examples are {splits.train.input_shape} (try --data synthetic --input-shape "
                     f"{spec.input_shapes[0]})")
  apply_fn, init = pipeline.model_fns(args.model, input_shape=splits.train.input_shape,
                                      num_classes=splits.num_classes, **options)
  import jax

  module = apply_fn.module(jax.eval_shape(init, jax.random.key(0)))  # shapes only: the activation is static
  activation = module.activation.name if hasattr(module, "activation") else "relu"
  return apply_fn, init, activation

