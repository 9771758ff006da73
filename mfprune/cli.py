"""The ``mfprune`` command line: ``mfprune eoc | phase | prune | demo``.

Run ``mfprune COMMAND --help`` for each command's options; docs/cli.md has examples.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

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


def _parse_param(text: str) -> tuple[str, float]:
  key, sep, value = text.partition("=")
  try:
    if not sep or not key:
      raise ValueError
    return key.strip(), float(value)
  except ValueError:
    raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE with a numeric VALUE") from None


def _positive_int(text: str) -> int:
  try:
    value = int(text)
  except ValueError:
    value = 0
  if value < 1:
    raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 1")
  return value


def build_parser() -> argparse.ArgumentParser:
  """The argument parser of the ``mfprune`` command."""
  parser = argparse.ArgumentParser(
      prog="mfprune",
      description="Mean-field theory of deep random networks for pruning at initialization.",
  )
  parser.add_argument("--x64", action="store_true", help="compute in float64 (default float32)")
  commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

  def activation_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--activation", "-a", required=True,
                     help="registry name: relu, leaky_relu, linear, tanh, erf, sigmoid, softplus, elu, selu, gelu, "
                     "silu, swish")
    sub.add_argument("--param", action="append", type=_parse_param, default=[], metavar="KEY=VALUE",
                     help="activation parameter, e.g. --param negative_slope=0.2 (repeatable)")
    sub.add_argument("--order", type=_positive_int, default=None, help="quadrature order (default 64)")

  eoc = commands.add_parser("eoc", help="the EOC curve sigma_w(sigma_b) of an activation",
                            description="Solve chi(sigma_b, sigma_w) = 1 for each sigma_b ([R] App. B.1.3) and "
                            "print sigma_w, q*, chi, dV/dq and the status of each point.")
  activation_options(eoc)
  eoc.add_argument("--sigma-b", type=parse_sigma_list, default=parse_sigma_list("0:1:101"),
                   help="one value, a comma list, or start:stop:count (default 0:1:101)")
  eoc.add_argument("--json", type=Path, help="write the curve as JSON here")
  eoc.add_argument("--plot", type=Path, help="write a phase diagram with the EOC curve as PNG here")

  phase = commands.add_parser("phase", help="phase, q*, chi and depth scales of one (sigma_b, sigma_w)",
                              description="Ordered, EOC or chaotic; q*, chi, dV/dq, c*, xi_q, xi_c "
                              "([R] App. B.1.3-B.1.4; Schoenholz et al. 2017).")
  activation_options(phase)
  phase.add_argument("--sigma-b", type=float, required=True, help="bias standard deviation (>= 0)")
  phase.add_argument("--sigma-w", type=float, required=True, help="weight standard deviation (> 0)")
  phase.add_argument("--json", type=Path, help="write the result as JSON here")

  _add_prune_parser(commands)

  demo = commands.add_parser("demo", help="the main job: EOC curves and phase diagrams of tanh and SiLU",
                             description="Compute the EOC curves, phases and conditioning of tanh and SiLU "
                             "networks and write runs/demo/{eoc.json, phase_diagram.png}.")
  demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default runs/demo)")
  return parser


def main(argv: Sequence[str] | None = None) -> int:
  """Entry point of the ``mfprune`` command; returns the exit status."""
  parser = build_parser()
  args = parser.parse_args(argv)
  if args.x64:
    import jax

    jax.config.update("jax_enable_x64", True)
  try:
    if args.command == "eoc":
      return _run_eoc(args)
    if args.command == "phase":
      return _run_phase(args)
    if args.command == "prune":
      return _run_prune(args)
    if args.command == "demo":
      from mfprune import demo

      demo.run(args.out)
      return 0
  except ValueError as error:  # bad input reaching the library: one clear line, no traceback
    parser.exit(2, f"mfprune {args.command}: error: {error}\n")
  raise AssertionError(args.command)


def _sparsity(text: str) -> float:
  try:
    value = float(text)
  except ValueError:
    value = float("nan")
  if not 0.0 <= value < 1.0:
    raise argparse.ArgumentTypeError(f"{text!r} is not a sparsity in [0, 1) (the fraction of weights removed)")
  return value


def _add_prune_parser(commands) -> None:
  from mfprune.init import SCHEMES
  from mfprune.masks import COLLAPSE_ACTIONS
  from mfprune.models import INPUT_SHAPES, available_models
  from mfprune.pruning import SCHEDULES, SCOPES
  from mfprune.scores import available_scorers

  prune = commands.add_parser(
      "prune", help="prune a model at initialisation; write mask.npz, density.json and density.png",
      description="Initialise a model, score its weights with a pruning method and keep the top ones. Writes "
      "OUT/mask.npz (boolean mask keyed by parameter path), OUT/density.json (settings and kept fraction per "
      "layer) and OUT/density.png (kept fraction per layer, like [R] Fig. 2).")
  prune.add_argument("--model", required=True, choices=sorted(available_models()), help="model to build")
  prune.add_argument("--method", required=True, choices=sorted(available_scorers()), help="pruning method")
  prune.add_argument("--sparsity", required=True, type=_sparsity, help="fraction of prunable weights removed")
  prune.add_argument("--data", default="digits", choices=("digits", "synthetic"),
                     help="digits (scikit-learn, 8x8x1; default) or synthetic Gaussian inputs of --input-shape")
  prune.add_argument("--input-shape", default="cifar10", choices=sorted(INPUT_SHAPES),
                     help="input shape and class count for --data synthetic (default cifar10)")
  prune.add_argument("--batch-size", type=_positive_int, default=128, help="examples per batch (default 128)")
  prune.add_argument("--num-batches", type=_positive_int, default=1,
                     help="batches whose mean loss SNIP/GraSP score (default 1)")
  prune.add_argument("--rounds", type=_positive_int, default=None,
                     help="pruning rounds (default 1; 100 for the SynFlow family)")
  prune.add_argument("--schedule", choices=SCHEDULES, default="exponential", help="keep-fraction schedule")
  prune.add_argument("--scope", choices=SCOPES, default="global", help="one threshold or one per layer")
  prune.add_argument("--on-collapse", choices=COLLAPSE_ACTIONS, default="warn",
                     help="when a layer loses every weight (default warn: the outputs show which)")
  prune.add_argument("--seed", type=int, default=0, help="seed of the initialisation, data and scores")
  model = prune.add_argument_group("model options (defaults: the registry's)")
  model.add_argument("--depth", type=_positive_int, help="layers (mlp, vcnn) or 6n+2 (resnet)")
  model.add_argument("--width", type=_positive_int, help="hidden units (mlp)")
  model.add_argument("--channels", type=_positive_int, help="channels (vcnn)")
  model.add_argument("--activation", help="activation registry name (see mfprune eoc --help)")
  model.add_argument("--stable", action="store_true", help="Stable ResNet: branches scaled by 1/sqrt(L)")
  model.add_argument("--width-multiplier", type=float, help="channel multiplier (vgg, resnet)")
  inits = prune.add_argument_group("initialisation (default: the model's LeCun normal)")
  inits.add_argument("--init", choices=SCHEMES, help="initialisation scheme")
  inits.add_argument("--sigma-w", type=float, help="weight scale for --init gaussian")
  inits.add_argument("--sigma-b", type=float, default=None, help="bias scale for eoc/gaussian/orthogonal")
  inits.add_argument("--gain", type=float, default=1.0, help="gain for orthogonal/delta_orthogonal (default 1)")
  prune.add_argument("--out", type=Path, default=Path("runs/prune"), help="output folder (default runs/prune)")


def _init_options(args, activation: str) -> dict:
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


def _run_prune(args) -> int:
  import time

  import jax

  from mfprune import data, functional, init, masks, models, pruning, report

  if args.data == "digits":
    dataset = data.digits()
  else:
    shape, classes = models.INPUT_SHAPES[args.input_shape]
    dataset = data.synthetic(shape, classes, size=max(1024, args.batch_size * args.num_batches), seed=args.seed)
  options = {name: getattr(args, name) for name in ("depth", "width", "channels", "activation", "width_multiplier")
             if getattr(args, name) is not None}
  if args.stable:
    options["stable"] = True
  try:
    model = models.create_model(args.model, input_shape=dataset.input_shape, num_classes=dataset.num_classes,
                                key=args.seed, **options)
  except ValueError as error:
    hint = " (try --data synthetic --input-shape cifar10)" if args.data == "digits" else ""
    raise ValueError(f"{error}{hint}") from None
  apply_fn, params = functional.split(model)
  activation = model.activation.name if hasattr(model, "activation") else "relu"
  if args.init:
    params = init.initialise(args.init, params, jax.random.key(args.seed), **_init_options(args, activation))
  if args.num_batches * args.batch_size > len(dataset.x):
    raise ValueError(f"--num-batches x --batch-size = {args.num_batches * args.batch_size} exceeds the "
                     f"{len(dataset.x)} examples of {dataset.name}")
  batches = [dataset.batch(args.batch_size, seed=args.seed + i) for i in range(args.num_batches)]
  print(f"pruning {args.model} ({sum(masks.layer_sizes(masks.dense_mask(params)))} prunable weights) with "
        f"{args.method} to sparsity {args.sparsity} on {dataset.name} ...", flush=True)
  start = time.perf_counter()
  mask = pruning.prune(apply_fn, params, iter(batches), num_batches=args.num_batches, method=args.method,
                       sparsity=args.sparsity, key=args.seed, rounds=args.rounds, schedule=args.schedule,
                       scope=args.scope, on_collapse=args.on_collapse)
  seconds = time.perf_counter() - start
  table = masks.density(mask, order=functional.layer_order(apply_fn, params, batches[0][0][:1]))
  collapsed = masks.collapsed_layers(mask)
  settings = {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()
              if key not in ("command", "x64")}
  result = {"settings": settings, "activation": activation, "sparsity": masks.sparsity_of(mask),
            "kept": sum(d.kept for d in table), "total": sum(d.total for d in table), "collapsed": collapsed,
            "seconds": seconds, "layers": [d.to_dict() for d in table]}
  out = args.out
  masks.save_mask(out / "mask.npz", mask)
  report.write_json(out / "density.json", result)
  title = f"{args.model}, {args.method}, sparsity {args.sparsity}"
  report.save_figure(report.plot_layer_density(table, title), out / "density.png")
  rows = [[i, d.name, d.kept, d.total, d.fraction] for i, d in enumerate(table)]
  if len(rows) > 16:
    rows = rows[:8] + [["...", "", "", "", ""]] + rows[-8:]
  print(report.format_table(["#", "layer", "kept", "total", "fraction"], rows))
  print(f"sparsity {result['sparsity']:.6f} ({result['kept']} of {result['total']} kept) in {seconds:.1f} s"
        + (f"; COLLAPSED: {', '.join(collapsed)}" if collapsed else "; no layer collapsed"))
  print(f"wrote {out / 'mask.npz'}, {out / 'density.json'}, {out / 'density.png'}")
  return 0


def _activation(args):
  from theory.activations import get_activation

  return get_activation(args.activation, **dict(args.param))


def _order(args) -> dict:
  return {} if args.order is None else {"order": args.order}


def _run_eoc(args) -> int:
  import jax.numpy as jnp

  from mfprune import report
  from theory import eoc

  act = _activation(args)
  if np.any(args.sigma_b < 0):
    raise ValueError(f"--sigma-b must be >= 0; got {args.sigma_b[args.sigma_b < 0][:3].tolist()}")
  curve = eoc.eoc_curve(act, args.sigma_b, **_order(args))
  print(f"EOC of {act.name}  (chi = 1 at the fixed point q*; [R] App. B.1.3)")
  print(report.eoc_table(curve))
  codes = sorted(set(np.atleast_1d(np.asarray(curve.status)).tolist()))
  for code in codes:
    print(f"  {eoc.EOCStatus(code).name.lower()}: {eoc.EOCStatus(code).message}")
  if args.json:
    report.write_json(args.json, {"activation": act.name, **curve.to_dict()})
    print(f"wrote {args.json}")
  if args.plot:
    finite = np.asarray(curve.sigma_w)[np.isfinite(np.asarray(curve.sigma_w))]
    top = 2.0 * float(finite.max()) if finite.size else 3.0
    sigma_b = args.sigma_b if args.sigma_b.size > 1 else np.linspace(0.0, max(1.0, 2 * args.sigma_b[0]), 51)
    diagram = eoc.phase_diagram(act, jnp.asarray(sigma_b), jnp.linspace(0.05, top, 60), **_order(args))
    report.save_figure(report.plot_phase_diagrams({act.name: diagram}), args.plot)
    print(f"wrote {args.plot}")
  return 0


def _run_phase(args) -> int:
  from mfprune import report
  from theory import eoc

  act = _activation(args)
  point = eoc.phase(act, args.sigma_b, args.sigma_w, **_order(args))
  values = point.to_dict()
  reference = eoc.eoc_curve(act, args.sigma_b, **_order(args))
  status = eoc.EOCStatus(int(reference.status))
  values["eoc_sigma_w_at_this_sigma_b"] = reference.to_dict()["sigma_w"][0]
  values["eoc_status_at_this_sigma_b"] = status.name.lower()
  print(f"{act.name} at sigma_b={args.sigma_b}, sigma_w={args.sigma_w}: {values['phase'].upper()} phase")
  rows = [[key, "inf/undefined" if value is None else value] for key, value in values.items()
          if key not in ("phase", "sigma_b", "sigma_w")]
  print(report.format_table(["quantity", "value"], rows))
  if status == eoc.EOCStatus.NONE:
    print(f"  note: {status.message}")
  if args.json:
    report.write_json(args.json, {"activation": act.name, **values})
    print(f"wrote {args.json}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
