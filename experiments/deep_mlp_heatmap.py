"""Experiment: [R] Fig. 3 — test accuracy of pruned deep tanh MLPs against depth and sparsity, three initialisations.

The demo's experiment (``mfprune demo``, part 2) on a grid: for every depth, the networks of every sparsity and
initialisation — ordered phase (σw = ``--ordered-ratio`` × σw_EOC), EOC, EOC + rescaling ([R] Alg. 1, per row) —
are pruned by SNIP at initialisation and trained together in one compiled program (``train(..., ensemble=True)``,
one ``jax.vmap`` over the members). [R] §4.1 trains on MNIST with SGD, batch 100, lr 1e-3 for 10k iterations; we
default to Fashion-MNIST (Debian's ``dataset-fashion-mnist``; MNIST from ``--data mnist --data-dir``) and, to fit a
CPU, SGD with momentum 0.9, lr 0.003, 1000 steps (with lr 0.01 nets of depth >= 60 stayed at chance).

Results: ``deep_mlp_heatmap.json`` (accuracy per depth × sparsity × initialisation, the mean-field χ of each pruned
net, wall time per depth, the machine's load) written atomically after every depth, so an interrupted run keeps what
it finished and ``--resume`` skips the depths done; ``deep_mlp_heatmap.png``: three heat maps like [R] Fig. 3.

Run: ``.venv/bin/python experiments/deep_mlp_heatmap.py [--data fashion-mnist] [--depths 20,40,60,80,100]
[--sparsities 0.5,0.6,0.7,0.8,0.9] [--width 100] [--steps 1000] [--resume] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import theory  # noqa: E402
from experiments import _common  # noqa: E402
from mfprune import data, masks, pipeline, report, train  # noqa: E402

VARIANTS = ("EOC + rescaling", "EOC", "ordered")  # the order of [R] Fig. 3's panels (a), (b), (c)


def _grid_point(args, splits, depth: int) -> dict:
  """Prunes and trains every (initialisation, sparsity) network of one depth in one vmapped program."""
  apply_fn, init = pipeline.model_fns("mlp", input_shape=splits.input_shape, num_classes=splits.num_classes,
                                      depth=depth, width=args.width, activation="tanh")
  sigma_w_eoc = float(theory.eoc_sigma_w("tanh", args.sigma_b))
  settings = {"EOC + rescaling": (sigma_w_eoc, "row"), "EOC": (sigma_w_eoc, None),
              "ordered": (args.ordered_ratio * sigma_w_eoc, None)}
  start = time.perf_counter()
  members, member_masks, labels = [], [], []
  for variant in VARIANTS:
    sigma_w, rescale = settings[variant]
    for sparsity in args.sparsities:
      params = pipeline.initial_params(init, args.seed, "gaussian", sigma_w=sigma_w, sigma_b=args.sigma_b)
      params, mask = pipeline.prune_and_repair(apply_fn, params, splits.train.batch(args.batch_size, seed=args.seed),
                                               method=args.method, sparsity=sparsity, key=args.seed,
                                               rescale=rescale, on_collapse="ignore")
      members.append(params)
      member_masks.append(mask)
      labels.append({"variant": variant, "sparsity": sparsity, "sigma_w": sigma_w,
                     "emptied_layers": len(masks.collapsed_layers(mask))})
  prune_seconds = time.perf_counter() - start
  config = train.TrainConfig(steps=args.steps, batch_size=args.batch_size, optimizer="momentum",
                             learning_rate=args.lr, log_every=max(1, args.steps // 10), eval_every=args.steps,
                             seed=args.seed)
  result = train.train(apply_fn, train.stack(members), train.stack(member_masks), splits, config, ensemble=True,
                       progress=not args.no_progress)
  for label, accuracy in zip(labels, result.final["test"]["accuracy"]):
    label["test_accuracy"] = accuracy
  return {"depth": depth, "members": labels, "prune_seconds": prune_seconds,
          "train_seconds": result.seconds, "examples_per_second": result.examples_per_second,
          "load_average": os.getloadavg()[0]}


def _figure(results: dict):
  plt = report.pyplot()
  depths = [row["depth"] for row in results["depths"]]
  sparsities = results["sparsities"]
  figure, axes = plt.subplots(1, len(VARIANTS), figsize=(4.2 * len(VARIANTS), 3.8), sharey=True)
  for ax, variant in zip(axes, VARIANTS):
    grid = np.full((len(depths), len(sparsities)), np.nan)
    for i, row in enumerate(results["depths"]):
      for member in row["members"]:
        if member["variant"] == variant:
          grid[i, sparsities.index(member["sparsity"])] = member["test_accuracy"]
    image = ax.imshow(grid, origin="lower", vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    for i in range(len(depths)):
      for j in range(len(sparsities)):
        ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7,
                color="white" if grid[i, j] < 0.5 else "black")
    ax.set_xticks(range(len(sparsities)), [f"{s:.0%}" for s in sparsities])
    ax.set_yticks(range(len(depths)), depths)
    ax.set_xlabel("sparsity")
    ax.set_title(variant, fontsize=10)
  axes[0].set_ylabel("depth")
  figure.colorbar(image, ax=axes, shrink=0.8, label="test accuracy")
  figure.suptitle(f"tanh MLP width {results['width']}, {results['method']} on {results['data']}, "
                  f"{results['steps']} steps ([R] Fig. 3)", fontsize=10)
  return figure


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--data", default="fashion-mnist")
  parser.add_argument("--data-dir", type=Path)
  parser.add_argument("--depths", type=lambda t: _common.parse_list(t, int), default=[20, 40, 60, 80, 100])
  parser.add_argument("--sparsities", type=_common.parse_list, default=[0.5, 0.6, 0.7, 0.8, 0.9])
  parser.add_argument("--width", type=int, default=100)
  parser.add_argument("--method", default="snip")
  parser.add_argument("--sigma-b", type=float, default=0.2)
  parser.add_argument("--ordered-ratio", type=float, default=0.7)
  parser.add_argument("--steps", type=int, default=1000)
  parser.add_argument("--batch-size", type=int, default=100)
  parser.add_argument("--lr", type=float, default=0.003)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--resume", action="store_true", help="keep the depths already in the JSON")
  parser.add_argument("--quick", action="store_true", help="digits, depths 4,8, sparsities 0.5,0.9, 50 steps")
  parser.add_argument("--no-progress", action="store_true")
  parser.add_argument("--out", type=Path, default=_common.RESULTS)
  args = parser.parse_args(argv)
  if args.quick:
    args.data, args.depths, args.sparsities, args.steps, args.width = "digits", [4, 8], [0.5, 0.9], 50, 32
  name = "deep_mlp_heatmap" + ("_quick" if args.quick else "")
  path = args.out / f"{name}.json"
  results = {"data": args.data, "width": args.width, "method": args.method, "sigma_b": args.sigma_b,
             "ordered_ratio": args.ordered_ratio, "steps": args.steps, "batch_size": args.batch_size,
             "learning_rate": args.lr, "optimizer": "momentum 0.9", "seed": args.seed, "sparsities": args.sparsities,
             **_common.backend_info(), "depths": []}
  if args.resume and path.exists():
    results["depths"] = [row for row in json.loads(path.read_text())["depths"] if row["depth"] in args.depths]
  splits = data.load_splits(args.data, args.data_dir)
  done = {row["depth"] for row in results["depths"]}
  start = time.perf_counter()
  for depth in args.depths:
    if depth in done:
      continue
    print(f"depth {depth}: pruning and training {len(VARIANTS) * len(args.sparsities)} networks ...", flush=True)
    row = _grid_point(args, splits, depth)
    results["depths"] = sorted(results["depths"] + [row], key=lambda r: r["depth"])
    results["seconds"] = sum(r["prune_seconds"] + r["train_seconds"] for r in results["depths"])
    report.write_json(path, results)
    print(report.format_table(["variant", "sparsity", "emptied", "test accuracy"],
                              [[m["variant"], m["sparsity"], m["emptied_layers"], m["test_accuracy"]]
                               for m in row["members"]]))
    print(f"  depth {depth}: pruning {row['prune_seconds']:.0f} s, training {row['train_seconds']:.0f} s "
          f"({row['examples_per_second']:.0f} examples/s over all members)", flush=True)
  report.save_figure(_figure(results), args.out / f"{name}.png")
  print(f"wrote {path} and {args.out / (name + '.png')} ({time.perf_counter() - start:.0f} s this call)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
