"""Experiment: [P] Fig. 3 (top row) in miniature — SynFlow against its Path Kernel variants as the width grows.

[P] §5.2 prunes four fully connected ReLU nets with six hidden layers on MNIST — FC (width 100) and three wider
FC-W, among them FC-1000 and FC-2000 — at initialisation with SynFlow, SynFlow-L2, SynFlow-Dist and SynFlow-L2-Dist
([P] §4.2; registry names ``synflow``, ``synflow_l2``, ``synflow_dist``, ``synflow_l2_dist``; 100 rounds of
SynFlow's exponential schedule) at compression ratios 0.5-3 (density ``10^-ratio``), trains them and plots the top-1
test accuracy averaged over three seeds. Its claims: the L2 variants underperform on narrow nets and become
competitive as the width grows, SynFlow-L2 surpassing SynFlow at high compression on FC-1000 and FC-2000; the Dist
variants underperform their plain counterparts.

Miniature (10 minutes on two lightly loaded CPU cores, 27 at load 6): digits (8×8 inputs, 1437 training and 359 test
images, embedded), widths 100, 300 and 1000, ratios 1, 2 and 3, two seeds (seed = the initialisation; every member
of a width sees the same batches). Width 1000 (5.1M prunable weights) is most of the cost: 100 rounds of global
top-k over 5.1M scores per net (8 s on an idle machine) and the training; FC-2000 has four times as many weights and
is left out. Ratio 0.5 is left out too: in an earlier run at widths 100 and 300 every pruner reached 0.95-0.98
there. Networks: the registry ``mlp`` with depth 7 (six hidden layers), ReLU, biases, He (Kaiming) normal kernels
and zero biases (our choice: [P] does not give its initialisation). Biases are never pruned ([P] A.4.2). The Dist
variants take μ = the per-pixel mean of the whole (standardised) training split, as ``|μ|``
(:func:`mfprune.scores.synflow_dist`). :func:`mfprune.prune` compiles once per width and method (the keep counts are
an argument of its compiled program). The 4 × ratios × seeds networks of one width train together in one vmapped
program (``train(..., ensemble=True)``): Adam, lr 0.01, batch 128, 300 steps (27 epochs); Adam at lr 1e-3 left the
sparsest nets far from converged after 600 steps (the choice is ours; [P] gives no optimiser for Fig. 3).

Results: ``paths_width.json`` (per member: method, ratio, seed, kept weights per layer, emptied layers, test
accuracy; per width: the mean accuracy table, the L2 − plain and Dist − plain differences, wall times, the
machine's load), rewritten atomically after every width (``--resume`` keeps the widths done);
``paths_width.png``: accuracy against the compression ratio, one panel per width, one line per pruner (seed means,
seeds as dots), like [P] Fig. 3.

Run: ``.venv/bin/python experiments/paths_width.py [--data digits] [--widths 100,300,1000] [--ratios 1,2,3]
[--seeds 2] [--steps 300] [--lr 0.01] [--rounds 100] [--resume] [--quick] [--out experiments/results]``.
``--quick``: widths 32 and 64, ratios 1 and 2, 10 rounds, 30 steps (under a minute).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from experiments import _common  # noqa: E402
from mfprune import data, masks, pipeline, pruning, report, train  # noqa: E402

METHODS = ("synflow", "synflow_l2", "synflow_dist", "synflow_l2_dist")
LABELS = {"synflow": "SynFlow", "synflow_l2": "SynFlow-L2", "synflow_dist": "SynFlow-Dist",
          "synflow_l2_dist": "SynFlow-L2-Dist"}
STYLES = {"synflow": ("C0", "-"), "synflow_l2": ("C2", "-"), "synflow_dist": ("C0", "--"),
          "synflow_l2_dist": ("C2", "--")}


def mean_table(members: list[dict], methods, ratios) -> dict:
  """``{method: [mean test accuracy over seeds per ratio]}`` from a width's members."""
  table = {}
  for method in methods:
    row = []
    for ratio in ratios:
      values = [m["test_accuracy"] for m in members if m["method"] == method and m["ratio"] == ratio]
      row.append(float(np.mean(values)) if values else float("nan"))
    table[method] = row
  return table


def differences(table: dict, ratios) -> dict:
  """Accuracy differences the paper's claims are about, per ratio and averaged over ratios >= 2 ("high")."""
  out = {}
  pairs = {"l2_minus_synflow": ("synflow_l2", "synflow"), "l2_dist_minus_synflow": ("synflow_l2_dist", "synflow"),
           "dist_minus_synflow": ("synflow_dist", "synflow"), "l2_dist_minus_l2": ("synflow_l2_dist", "synflow_l2")}
  high = [i for i, r in enumerate(ratios) if r >= 2]
  for name, (a, b) in pairs.items():
    if a in table and b in table:
      diff = np.asarray(table[a]) - np.asarray(table[b])
      out[name] = {"per_ratio": diff.tolist(), "mean_high_ratios": float(np.mean(diff[high])) if high else None,
                   "mean_all": float(np.mean(diff))}
  return out


def _width_point(args, splits, width: int) -> dict:
  """Prunes every (seed, method, ratio) net of one width, then trains them all in one vmapped program."""
  apply_fn, init = pipeline.model_fns("mlp", input_shape=splits.input_shape, num_classes=splits.num_classes,
                                      depth=args.hidden_layers + 1, width=width, activation="relu")
  # Data-free scorers read the input shape; the Dist variants take the per-feature mean of the whole training split.
  prune_batch = (splits.train.x, splits.train.y)
  jobs = [(seed, method, ratio) for seed in range(args.seeds) for method in args.methods for ratio in args.ratios]
  members, params_list, mask_list = [], [], []
  start = time.perf_counter()
  params_by_seed = {seed: pipeline.initial_params(init, seed, "he") for seed in range(args.seeds)}
  for seed, method, ratio in tqdm(jobs, desc=f"prune W={width}", disable=args.no_progress, leave=False):
    params = params_by_seed[seed]
    mask = pruning.prune(apply_fn, params, prune_batch, method=method, sparsity=1.0 - _common.density(ratio), key=seed,
                         rounds=args.rounds, on_collapse="ignore")
    params_list.append(masks.apply_mask(params, mask))
    mask_list.append(mask)
    kept = [d.kept for d in masks.density(mask)]
    members.append({"seed": seed, "method": method, "ratio": ratio, "kept": int(sum(kept)),
                    "kept_per_layer": kept, "emptied_layers": len(masks.collapsed_layers(mask))})
  prune_seconds = time.perf_counter() - start
  config = train.TrainConfig(steps=args.steps, batch_size=args.batch_size, optimizer="adam", learning_rate=args.lr,
                             log_every=max(1, args.steps // 10), eval_every=args.steps, seed=0)
  result = train.train(apply_fn, train.stack(params_list), train.stack(mask_list), splits, config, ensemble=True,
                       progress=not args.no_progress)
  for member, accuracy in zip(members, result.final["test"]["accuracy"]):
    member["test_accuracy"] = accuracy
  table = mean_table(members, args.methods, args.ratios)
  total = sum(masks.layer_sizes(mask_list[0]))
  return {"width": width, "prunable_weights": total, "members": members, "mean_test_accuracy": table,
          "differences": differences(table, args.ratios), "prune_seconds": prune_seconds,
          "train_seconds": result.seconds, "examples_per_second": result.examples_per_second,
          "load_average": os.getloadavg()[0]}


def _figure(results: dict):
  plt = report.pyplot()
  rows = results["widths"]
  figure, axes = plt.subplots(1, len(rows), figsize=(3.8 * len(rows), 3.4), sharey=True, squeeze=False)
  for ax, row in zip(axes[0], rows):
    for method in results["methods"]:
      colour, style = STYLES.get(method, (None, "-"))
      ax.plot(results["ratios"], row["mean_test_accuracy"][method], style, color=colour, marker="o", ms=3,
              label=LABELS.get(method, method))
      seeds = [(m["ratio"], m["test_accuracy"]) for m in row["members"] if m["method"] == method]
      ax.plot(*zip(*seeds), ".", color=colour, alpha=0.35, ms=4)
    ax.set_title(f"FC-{row['width']} ({row['prunable_weights'] / 1e6:.2g}M weights)", fontsize=10)
    ax.set_xlabel("compression ratio (density 10^-ratio)")
    ax.grid(alpha=0.3)
  axes[0, 0].set_ylabel("top-1 test accuracy")
  axes[0, 0].legend(fontsize=8)
  figure.suptitle(f"[P] Fig. 3 in miniature: {results['data']}, six hidden ReLU layers, {results['steps']} Adam "
                  f"steps, mean of {results['seeds']} seeds", fontsize=10)
  return figure


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--data", default="digits")
  parser.add_argument("--data-dir", type=Path)
  parser.add_argument("--widths", type=lambda t: _common.parse_list(t, int), default=[100, 300, 1000])
  parser.add_argument("--ratios", type=_common.parse_list, default=[1.0, 2.0, 3.0],
                      help="compression ratios: density 10^-ratio")
  parser.add_argument("--methods", type=lambda t: _common.parse_list(t, str), default=list(METHODS))
  parser.add_argument("--hidden-layers", type=int, default=6)
  parser.add_argument("--seeds", type=int, default=2)
  parser.add_argument("--rounds", type=int, default=100, help="SynFlow pruning rounds")
  parser.add_argument("--steps", type=int, default=300)
  parser.add_argument("--batch-size", type=int, default=128)
  parser.add_argument("--lr", type=float, default=0.01, help="Adam learning rate")
  parser.add_argument("--resume", action="store_true", help="keep the widths already in the JSON")
  parser.add_argument("--quick", action="store_true", help="widths 32,64, ratios 1,2, 10 rounds, 30 steps")
  parser.add_argument("--no-progress", action="store_true")
  parser.add_argument("--out", type=Path, default=_common.RESULTS)
  args = parser.parse_args(argv)
  if args.quick:
    args.widths, args.ratios, args.rounds, args.steps = [32, 64], [1.0, 2.0], 10, 30
  name = "paths_width" + ("_quick" if args.quick else "")
  path = args.out / f"{name}.json"
  results = {"data": args.data, "hidden_layers": args.hidden_layers, "activation": "relu", "init": "he normal",
             "methods": args.methods, "ratios": args.ratios, "densities": [_common.density(r) for r in args.ratios],
             "seeds": args.seeds, "rounds": args.rounds, "steps": args.steps, "batch_size": args.batch_size,
             "optimizer": "adam", "learning_rate": args.lr, **_common.backend_info(), "widths": []}
  if args.resume and path.exists():
    previous = json.loads(path.read_text())
    results["widths"] = [row for row in previous["widths"] if row["width"] in args.widths]
  splits = data.load_splits(args.data, args.data_dir)
  results["train_examples"], results["test_examples"] = len(splits.train.x), len(splits.test.x)
  done = {row["width"] for row in results["widths"]}
  start = time.perf_counter()
  for width in args.widths:
    if width in done:
      continue
    print(f"width {width}: pruning and training {len(args.methods) * len(args.ratios) * args.seeds} networks ...",
          flush=True)
    row = _width_point(args, splits, width)
    results["widths"] = sorted(results["widths"] + [row], key=lambda r: r["width"])
    results["seconds"] = sum(r["prune_seconds"] + r["train_seconds"] for r in results["widths"])
    report.write_json(path, results)
    print(report.format_table(["method"] + [f"ratio {r:g}" for r in args.ratios],
                              [[LABELS.get(m, m)] + row["mean_test_accuracy"][m] for m in args.methods]))
    emptied = sum(m["emptied_layers"] > 0 for m in row["members"])
    print(f"  width {width}: pruning {row['prune_seconds']:.0f} s, training {row['train_seconds']:.0f} s; "
          f"{emptied} of {len(row['members'])} nets have an emptied layer", flush=True)
  results["seconds"] = sum(r["prune_seconds"] + r["train_seconds"] for r in results["widths"])
  report.write_json(path, results)
  report.save_figure(_figure(results), args.out / f"{name}.png")
  print(f"wrote {path} and {args.out / (name + '.png')} ({time.perf_counter() - start:.0f} s this call)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
