"""``mfprune prune``: prune a model at initialisation and write its mask, density table and chart."""

from __future__ import annotations

import argparse
import time

from mfprune.cli import arguments


def register(commands) -> None:
  prune = commands.add_parser(
      "prune", help="prune a model at initialisation; write mask.npz, density.json and density.png",
      description="Initialise a model, score its weights with a pruning method and keep the top ones. Writes "
      "OUT/mask.npz (boolean mask keyed by parameter path), OUT/density.json (settings and kept fraction per "
      "layer) and OUT/density.png (kept fraction per layer, like [R] Fig. 2).")
  arguments.add_model_options(prune)
  arguments.add_pruning_options(prune, required=True)
  arguments.add_data_options(prune)
  arguments.add_seed_option(prune)
  arguments.add_init_options(prune)
  arguments.add_out_option(prune, "runs/prune")
  prune.set_defaults(run=run)


def density_chart(out, mask, apply_fn, params, x, title: str) -> list:
  """Writes ``density.png`` (kept fraction per layer) and returns the density table in network order."""
  from mfprune import functional, masks, report

  table = masks.density(mask, layer_order=functional.layer_order(apply_fn, params, x[:1]))
  report.save_figure(report.plot_layer_density(table, title), out / "density.png")
  return table


def print_density(table) -> None:
  from mfprune import report

  rows = [[i, d.name, d.kept, d.total, d.fraction] for i, d in enumerate(table)]
  if len(rows) > 16:
    rows = rows[:8] + [["...", "", "", "", ""]] + rows[-8:]
  print(report.format_table(["#", "layer", "kept", "total", "fraction"], rows))


def prune_from_args(args: argparse.Namespace, apply_fn, params, dataset):
  """Prunes ``params`` as the pruning options say (:func:`arguments.add_pruning_options`).

  Returns:
    ``(mask, batches, seconds)``: the mask, the batches it was scored on and the time it took.
  """
  from mfprune import masks, pruning

  if args.num_batches * args.batch_size > len(dataset.x):
    raise ValueError(f"--num-batches x --batch-size = {args.num_batches * args.batch_size} exceeds the "
                     f"{len(dataset.x)} examples of {dataset.name}")
  batches = [dataset.batch(args.batch_size, seed=args.seed + i) for i in range(args.num_batches)]
  print(f"pruning {args.model} ({sum(masks.layer_sizes(masks.dense_mask(params)))} prunable weights) with "
        f"{args.method} to sparsity {args.sparsity} on {dataset.name} ...", flush=True)
  start = time.perf_counter()
  mask = pruning.prune(apply_fn, params, iter(batches), num_batches=args.num_batches, method=args.method,
                       sparsity=args.sparsity, key=args.seed, rounds=args.rounds, schedule=args.prune_schedule,
                       scope=args.scope, on_collapse=args.on_collapse)
  return mask, batches, time.perf_counter() - start


def run(args: argparse.Namespace) -> int:
  from mfprune import masks, pipeline, report

  splits = arguments.load_data(args)
  apply_fn, init, activation = arguments.build_model(args, splits)
  params = pipeline.initial_params(init, args.seed, args.init, **arguments.init_options(args, activation))
  mask, batches, seconds = prune_from_args(args, apply_fn, params, splits.train)
  masks.save_mask(args.out / "mask.npz", mask)
  table = density_chart(args.out, mask, apply_fn, params, batches[0][0],
                        f"{args.model}, {args.method}, sparsity {args.sparsity}")
  collapsed = masks.collapsed_layers(mask)
  result = {"settings": arguments.settings(args), "activation": activation, "sparsity": masks.sparsity_of(mask),
            "kept": sum(d.kept for d in table), "total": sum(d.total for d in table), "collapsed": collapsed,
            "seconds": seconds, "layers": [d.to_dict() for d in table]}
  report.write_json(args.out / "density.json", result)
  print_density(table)
  print(f"sparsity {result['sparsity']:.6f} ({result['kept']} of {result['total']} kept) in {seconds:.1f} s"
        + (f"; COLLAPSED: {', '.join(collapsed)}" if collapsed else "; no layer collapsed"))
  print(f"wrote {args.out / 'mask.npz'}, {args.out / 'density.json'}, {args.out / 'density.png'}")
  return 0
