"""Benchmark: training throughput of pruned networks, and K seeds in one vmapped program against K separate runs.

Models (registry defaults; SNIP-pruned to 90% at initialisation; float32):

* MLP (depth 5, width 100) on Fashion-MNIST when Debian's ``dataset-fashion-mnist`` is installed (else synthetic
  data of its shape), batch 128;
* ResNet32 (filters doubled as in [R] §4.2, batch norm) on synthetic CIFAR-shaped data, batch ``--resnet-batch``.

What is measured, everything through :func:`mfprune.train.train` (host batching, the mask-preserving optimizer,
SGD with momentum 0.9; no checkpoints, no evaluation until the end):

* throughput: training examples per second after the first (compiling) step, one network;
* seeds: K networks (K seeds, K SNIP masks) trained with ``ensemble=True`` (one ``jax.vmap``-ed program) against K
  calls of ``train`` one after the other (compiled once: the jitted step is cached per model and set-up). Reported:
  the wall time of the K-seed ensemble over the K sequential runs, both with compilation (what a user waits for)
  and in steady state (the per-step times after the first step).

Results: ``bench_train.json`` (atomic) and a table. ``--quick``: tiny models and few steps (smoke test).

Run: ``.venv/bin/python experiments/bench_train.py [--models mlp,resnet32] [--seeds 8] [--mlp-steps 300]
[--resnet-steps 4] [--quick] [--out experiments/results]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from experiments import _common  # noqa: E402
from mfprune import data, pipeline, report, train  # noqa: E402


def _setup(name: str, quick: bool, resnet_batch: int):
  if name == "mlp":
    try:
      splits = data.load_splits("fashion-mnist")
    except FileNotFoundError:
      splits = data.load_splits("synthetic", input_shape=(28, 28, 1), size=4096)
    options = {"depth": 3, "width": 32} if quick else {}
    return splits, pipeline.model_fns("mlp", input_shape=splits.input_shape, num_classes=10, **options), 128
  splits = data.load_splits("synthetic", input_shape=(32, 32, 3), size=512)
  options = {"depth": 8, "width_multiplier": 0.5} if quick else {}
  return splits, pipeline.model_fns("resnet32", input_shape=(32, 32, 3), num_classes=10, **options), resnet_batch


def _pruned(apply_fn, init, splits, seed: int, batch_size: int):
  params = pipeline.initial_params(init, seed)
  return pipeline.prune_and_repair(apply_fn, params, splits.train.batch(batch_size, seed=seed), method="snip",
                                   sparsity=0.9, key=seed)


def _steady_seconds(result: train.TrainResult, steps: int, batch_size: int, members: int) -> float:
  """Seconds for ``steps`` steps at the run's measured steady-state throughput."""
  return steps * batch_size * members / result.examples_per_second


def bench(name: str, args) -> dict:
  splits, (apply_fn, init), batch_size = _setup(name, args.quick, args.resnet_batch)
  steps = args.mlp_steps if name == "mlp" else args.resnet_steps
  config = train.TrainConfig(steps=steps, batch_size=batch_size, optimizer="momentum", learning_rate=0.01,
                             log_every=steps, eval_every=0, eval_batch_size=256)
  small = data.Splits(splits.train, None, data.Dataset("tiny-test", splits.test.x[:256], splits.test.y[:256],
                                                       splits.num_classes), splits.mean, splits.std)
  members = [_pruned(apply_fn, init, splits, seed, batch_size) for seed in range(args.seeds)]
  print(f"{name}: {args.seeds} single runs of {steps} steps ...", flush=True)
  start = time.perf_counter()
  singles = [train.train(apply_fn, p, m, small, config, progress=False) for p, m in members]
  sequential_seconds = time.perf_counter() - start
  print(f"{name}: one ensemble of {args.seeds} ...", flush=True)
  start = time.perf_counter()
  ensemble = train.train(apply_fn, train.stack([p for p, _ in members]), train.stack([m for _, m in members]),
                         small, config, ensemble=True, progress=False)
  ensemble_seconds = time.perf_counter() - start
  single_throughput = float(np.median([r.examples_per_second for r in singles]))
  steady_sequential = sum(_steady_seconds(r, steps - 1, batch_size, 1) for r in singles)
  steady_ensemble = _steady_seconds(ensemble, steps - 1, batch_size, args.seeds)
  return {"model": name, "batch_size": batch_size, "steps": steps, "seeds": args.seeds,
          "examples_per_second_one_network": single_throughput,
          "seconds_per_step_one_network": batch_size / single_throughput,
          "examples_per_second_ensemble": ensemble.examples_per_second,
          "k_sequential_seconds_with_compile": sequential_seconds, "ensemble_seconds_with_compile": ensemble_seconds,
          "ensemble_over_sequential_with_compile": ensemble_seconds / sequential_seconds,
          "ensemble_over_sequential_steady": steady_ensemble / steady_sequential,
          "first_single_run_seconds": singles[0].seconds, "load_average": os.getloadavg()[0]}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--models", default="mlp,resnet32")
  parser.add_argument("--seeds", type=int, default=8)
  parser.add_argument("--mlp-steps", type=int, default=300)
  parser.add_argument("--resnet-steps", type=int, default=4)
  parser.add_argument("--resnet-batch", type=int, default=128)
  parser.add_argument("--quick", action="store_true")
  parser.add_argument("--out", type=Path, default=_common.RESULTS)
  args = parser.parse_args(argv)
  if args.quick:
    args.mlp_steps, args.resnet_steps, args.seeds, args.resnet_batch = 30, 3, 2, 16
  rows = [bench(name, args) for name in args.models.split(",")]
  results = {**_common.machine_info(), "quick": args.quick, "models": rows}
  path = args.out / ("bench_train" + ("_quick" if args.quick else "") + ".json")
  report.write_json(path, results)
  print(report.format_table(
      ["model", "batch", "examples/s (1 net)", "s/step", f"K={args.seeds} vmap / seq (steady)",
       "vmap / seq (with compile)"],
      [[r["model"], r["batch_size"], r["examples_per_second_one_network"], r["seconds_per_step_one_network"],
        r["ensemble_over_sequential_steady"], r["ensemble_over_sequential_with_compile"]] for r in rows]))
  print(f"wrote {path}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
