"""``mfprune paths``: the Path Kernel trace of a model before and after pruning, layer by layer ([P] §3-4)."""

from __future__ import annotations

import argparse
import math

from mfprune.cli import arguments
from mfprune.cli.prune_command import prune_from_args


def register(commands) -> None:
  paths = commands.add_parser(
      "paths", help="Path Kernel trace Tr Π before and after pruning, by layer ([P] eq. 14-16)",
      description="Initialise a model, prune it, and report the trace of its Path Kernel Tr Π = Σ_p Σ_j "
      "(∂v_p/∂θ_j)² ([P] eq. 14), computed by one gradient of R_pk(1, θ) = 1ᵀ(Π_l θ_l²)1 (eq. 15) on the "
      "model's linearised network (no biases, identity activations), exact in log space, for the dense network "
      "and for the pruned one (θ ⊙ mask), in total and per layer, with R_pk and SynFlow's R_sf (eq. 16). The "
      "trace depends on the weights only; it is the NTK's path part for bias-free ReLU-like networks. Writes "
      "OUT/paths.json and OUT/paths.png (log10 Tr Π per layer, dense vs pruned).")
  arguments.add_model_options(paths)
  arguments.add_pruning_options(paths, required=True)
  arguments.add_data_options(paths)
  arguments.add_seed_option(paths)
  arguments.add_init_options(paths)
  arguments.add_out_option(paths, "runs/paths")
  paths.set_defaults(run=run)


LOG10 = math.log(10.0)


def _log10(value: float | None) -> float | None:
  return None if value is None or value == -math.inf else value / LOG10


def plot_layer_traces(names: list[str], dense: list[float], pruned: list[float], title: str):
  """Bar chart of ``log10 Tr Π_l`` per layer for the dense and the pruned network (emptied layers: no bar)."""
  from mfprune import report

  import numpy as np

  plt = report.pyplot()
  fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * len(names) + 2.0), 4.0))
  positions = np.arange(len(names))
  for offset, values, label in ((-0.2, dense, "dense"), (0.2, pruned, "pruned")):
    heights = [np.nan if v is None else v for v in values]
    ax.bar(positions + offset, heights, width=0.4, label=label)
  ax.set_xticks(positions, [str(i) for i in positions])
  ax.set_xlabel("layer (network order)")
  ax.set_ylabel("log10 Tr Π of the layer's weights")
  ax.set_title(title, fontsize=9)
  ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
  fig.tight_layout()
  return fig


def run(args: argparse.Namespace) -> int:
  import jax

  from mfprune import masks, paths, pipeline, report

  args.init = arguments.init_scheme(args)  # --sigma-w alone means --init gaussian
  splits = arguments.load_data(args)
  apply_fn, init, activation = arguments.build_model(args, splits)
  params = pipeline.initial_params(init, args.seed, args.init, **arguments.init_options(args, activation))
  mask, batches, seconds = prune_from_args(args, apply_fn, params, splits.train)
  input_shape = splits.train.input_shape
  dense = paths.path_kernel_trace(apply_fn, params, input_shape)
  pruned = paths.path_kernel_trace(apply_fn, params, input_shape, mask=mask)
  sizes = dict((d.name, d) for d in masks.density(mask))
  rows, layers = [], []
  for i, name in enumerate(dense.layers):
    before, after = float(dense.log_layer_traces[i]), float(pruned.log_layer_traces[i])
    d = sizes[name]
    change = None if after == -math.inf else _log10(after - before)
    rows.append([i, name, d.kept, d.total, _log10(before), _log10(after), "emptied" if change is None else change])
    layers.append({"name": name, "kept": d.kept, "total": d.total, "log_trace_dense": before,
                   "log_trace_pruned": after})
  print(report.format_table(["#", "layer", "kept", "total", "log10 TrΠ dense", "log10 TrΠ pruned", "change (log10)"],
                            rows if len(rows) <= 16 else rows[:8] + [["..."] + [""] * 6] + rows[-8:]))
  for label, t in (("dense ", dense), ("pruned", pruned)):
    print(f"{label}: log10 Tr Π = {_log10(float(t.log_trace)):.4f}, log10 R_pk = {_log10(float(t.log_r_pk)):.4f}, "
          f"log10 R_sf = {_log10(float(t.log_r_sf)):.4f}")
  print(f"pruning changed log10 Tr Π by {_log10(float(pruned.log_trace - dense.log_trace)):+.4f} "
        f"(sparsity {masks.sparsity_of(mask):.4f}, pruned in {seconds:.1f} s)")
  collapsed = masks.collapsed_layers(mask)
  if collapsed:
    print(f"COLLAPSED (no path left through them): {', '.join(collapsed)}")
  report.write_json(args.out / "paths.json", {
      "settings": arguments.settings(args), "activation": activation, "data": splits.name,
      "sparsity": masks.sparsity_of(mask), "collapsed": collapsed, "prune_seconds": seconds,
      "device": str(jax.devices()[0]), "dense": dense.to_dict(), "pruned": pruned.to_dict(), "layers": layers})
  figure = plot_layer_traces(list(dense.layers), [_log10(r["log_trace_dense"]) for r in layers],
                             [_log10(r["log_trace_pruned"]) for r in layers],
                             f"{args.model}, {args.method} at sparsity {args.sparsity}: Path Kernel trace per layer")
  report.save_figure(figure, args.out / "paths.png")
  print(f"wrote {args.out / 'paths.json'}, {args.out / 'paths.png'}")
  return 0
