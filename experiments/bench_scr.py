"""Benchmark: Monte-Carlo ``E[s_cr]`` over seeds in one vmapped program against a Python loop over the seeds.

Setting ([R] §2.2, Theorem 1's example): an MLP of depth L = 100 and width N = 100, tanh, Gaussian initialisation
in the ordered phase (σw = 0.7, σb = 0.1 by default), SNIP on one batch of 128 examples of synthetic data of the
MNIST shape 28×28×1 (``mfprune.data``'s ``synthetic``, 10 classes; ``--data digits`` for the embedded 8×8 digits),
10 seeds, the default kept-fraction grid (0, 0.01, ..., 0.99). float32.

What is measured, each program compiled ahead of time (``jit(...).lower(...).compile()``, compile time reported
apart), run time = the median of ``--repeats`` calls after a first one, every call ended by ``block_until_ready``:

* vmapped: ``jit(vmap(fn))`` over the stacked parameters and keys of all seeds, with
  ``fn = mfprune.signal.critical_sparsity_fn(apply_fn, "snip", params)`` (score once, sort once, death ranks and
  kept counts on the grid): the program ``mfprune.signal.critical_sparsity`` runs.
* loop: ``jit(fn)`` called once per seed from Python (dispatched one after the other, all awaited at the end).
  The ratio loop/vmapped is the speed-up of vmapping. The outputs are compared: batched and single matmuls may sum
  in another order, so SNIP scores agree to about 1e-6 (relative) and a kept count can differ by a weight; the JSON
  says whether the death ranks (hence ``s_cr``) are identical and the largest kept-count difference.
* score only: ``jit(vmap(score))``, the SNIP scores of all seeds without the sort, to show where the time goes.
* init: the seeds' parameters as ``critical_sparsity`` makes them (``pipeline.initial_params`` jitted, looped over
  the seeds; compile included).
* end to end: one call of ``mfprune.signal.critical_sparsity`` (initialisation of every seed, compile, run), its
  ``E[s_cr]`` with the 95% t-interval, and [R] Theorem 1's bound for the same (σw, σb) (natural log and log10).

Results: JSON written atomically with ``mfprune.report.write_json`` (default
``experiments/results/bench_scr.json``; ``--quick`` writes ``bench_scr_quick.json``) and a table. ``--quick``: depth
10, width 32, 3 seeds, batch 32, 2 repeats (a smoke test of a minute or two on two CPU cores).

Run: ``.venv/bin/python experiments/bench_scr.py [--quick] [--depth 100] [--width 100] [--seeds 10]
[--data synthetic|digits] [--sigma-w 0.7] [--sigma-b 0.1] [--batch-size 128] [--repeats 3] [--out PATH]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from experiments import _common  # noqa: E402
from mfprune import data, masks, pipeline, report, scores, signal  # noqa: E402
from theory import sparsity  # noqa: E402

METHOD = "snip"


def load_batch(args) -> tuple[Any, tuple[int, ...], int, str]:
  """One batch ``(x, y)``, the input shape, the class count and the data set's name."""
  if args.data == "synthetic":
    splits = data.load_splits("synthetic", input_shape=(28, 28, 1), num_classes=10)
  else:
    splits = data.load_splits("digits")
  return splits.train.batch(args.batch_size, seed=args.seed), splits.input_shape, splits.num_classes, splits.name


def main() -> None:
  args = parse_args()
  wall = time.perf_counter()
  load_start = os.getloadavg()[0]
  device = jax.devices()[0]
  batch, shape, classes, data_name = load_batch(args)
  apply_fn, init = pipeline.model_fns("mlp", input_shape=shape, num_classes=classes, depth=args.depth,
                                      width=args.width, activation="tanh")
  options = {"sigma_w": args.sigma_w, "sigma_b": args.sigma_b}
  keys = jax.random.split(jax.random.key(args.seed), args.seeds)
  print(f"{device.platform} ({device.device_kind}), jax {jax.__version__}; load average {load_start:.2f}; "
        f"MLP L={args.depth} N={args.width} tanh sigma_w={args.sigma_w} sigma_b={args.sigma_b}, {METHOD}, "
        f"{args.seeds} seeds, {data_name} batch {args.batch_size}", flush=True)

  # The seeds' parameters as critical_sparsity makes them: pipeline.initial_params of each key, jitted, looped.
  start = time.perf_counter()
  initial = jax.jit(lambda k: pipeline.initial_params(init, k, "gaussian", **options))
  singles = jax.block_until_ready([initial(k) for k in keys])
  stacked = jax.block_until_ready(jax.tree.map(lambda *leaves: jax.numpy.stack(leaves), *singles))
  init_s = time.perf_counter() - start
  score_keys = jax.vmap(lambda k: jax.random.fold_in(k, 2))(keys)
  total = sum(masks.layer_sizes(masks.dense_mask(singles[0])))
  print(f"  {total:,} prunable weights; initialised {args.seeds} seeds in {init_s:.1f} s", flush=True)

  fn = signal.critical_sparsity_fn(apply_fn, METHOD, singles[0])
  vmapped, vmapped_compile = _common.compile_program(jax.vmap(fn, in_axes=(0, None, 0)), (stacked, batch, score_keys))
  v_first, v_run, v_out = report.timed(lambda: vmapped(stacked, batch, score_keys), args.repeats)
  print(f"  vmapped: compile {vmapped_compile:.1f} s, run {v_run:.3f} s", flush=True)
  single, single_compile = _common.compile_program(fn, (singles[0], batch, score_keys[0]))
  l_first, l_run, l_out = report.timed(
      lambda: [single(p, batch, k) for p, k in zip(singles, score_keys)], args.repeats)
  print(f"  loop:    compile {single_compile:.1f} s, run {l_run:.3f} s", flush=True)
  # Batched and single matmuls may sum in another order: scores then agree to ~1e-6 (relative), which can move a
  # weight across a threshold. Report how far the two are apart rather than demand bitwise equality.
  same_death = all(np.array_equal(np.asarray(v_out.death_rank[i]), np.asarray(o.death_rank))
                   for i, o in enumerate(l_out))
  kept_diff = max(int(np.abs(np.asarray(v_out.kept[i]) - np.asarray(o.kept)).max()) for i, o in enumerate(l_out))
  agree = same_death and kept_diff == 0

  def score_all(params, key):
    mask = masks.dense_mask(params)
    leaves = jax.tree_util.tree_leaves(scores.snip(apply_fn, params, mask, batch, key))
    return [leaf.reshape(-1) for leaf in leaves]

  score_only, score_compile = _common.compile_program(jax.vmap(score_all), (stacked, score_keys))
  _, s_run, _ = report.timed(lambda: score_only(stacked, score_keys), args.repeats)
  print(f"  score only (vmapped): compile {score_compile:.1f} s, run {s_run:.3f} s", flush=True)

  start = time.perf_counter()
  result = signal.critical_sparsity(apply_fn, init, METHOD, n_seeds=args.seeds, batch=batch, key=args.seed,
                                    init_scheme="gaussian", init_options=options)
  end_to_end = time.perf_counter() - start
  manual = 1.0 - np.asarray(v_out.death_rank).max(axis=1) / total
  bound = {base: sparsity.theorem1_bound(depth=args.depth, width=args.width, activation="tanh",
                                         sigma_b=args.sigma_b, sigma_w=args.sigma_w, log_base=b).to_dict()
           for base, b in (("natural_log", np.e), ("log10", 10.0))}
  results = {
      "benchmark": "Monte-Carlo E[s_cr]: one jit(vmap) program over the seeds against a Python loop of jit(fn)",
      **_common.machine_info(), "dtype": "float32", "quick": args.quick, "load_average_start": load_start,
      "model": {"name": "mlp", "depth": args.depth, "width": args.width, "activation": "tanh", **options,
                "prunable_weights": total},
      "method": METHOD, "seeds": args.seeds, "data": data_name, "batch_size": args.batch_size,
      "sparsity_grid": len(signal.DEFAULT_SPARSITIES), "repeats": args.repeats,
      "init_s": init_s,
      "vmapped": {"compile_s": vmapped_compile, "first_call_s": v_first, "run_s": v_run},
      "loop": {"compile_s": single_compile, "first_call_s": l_first, "run_s": l_run},
      "loop_over_vmapped": l_run / v_run, "vmapped_equals_loop": bool(agree),
      "vmapped_vs_loop": {"same_death_ranks": bool(same_death), "max_kept_count_difference": kept_diff},
      "score_only_vmapped": {"compile_s": score_compile, "run_s": s_run, "share_of_vmapped": s_run / v_run},
      "end_to_end_s": end_to_end, "end_to_end_equals_manual": bool(np.array_equal(result.values, manual)),
      "estimate": {"mean": result.mean, "std": result.std, "interval_95": result.interval,
                   "values": result.values, "most_common_first_dead": result.most_common_first_dead,
                   "first_dead_counts": result.first_dead_counts},
      "theorem1": bound,
  }
  results["load_average_end"] = os.getloadavg()[0]
  results["total_seconds"] = time.perf_counter() - wall
  out = report.write_json(args.out, results)
  rows = [["vmapped (jit(vmap(fn)))", vmapped_compile, v_run], [f"loop ({args.seeds} x jit(fn))", single_compile, l_run],
          ["score only (vmapped)", score_compile, s_run]]
  print(report.format_table(["program", "compile s", "run s"], rows))
  interval = "" if result.interval is None else f" [{result.interval[0]:.4g}, {result.interval[1]:.4g}]"
  print(f"loop / vmapped = {l_run / v_run:.3g}; same death ranks (s_cr): {same_death}, kept counts differ by at most "
        f"{kept_diff} weight(s); end to end (init + compile + run) "
        f"{end_to_end:.1f} s")
  def reading(b):
    return "none (EOC)" if b["leading"] is None else f"{b['leading']:.4g}" + (" (vacuous)" if b["vacuous"] else "")

  print(f"E[s_cr] = {result.mean:.4g}{interval} over {args.seeds} seeds; first to die: "
        f"{result.most_common_first_dead}; Theorem 1's leading term: {reading(bound['natural_log'])} (natural log), "
        f"{reading(bound['log10'])} (log10)")
  print(f"wrote {out} (total {results['total_seconds']:.0f} s)")


def parse_args() -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="depth 10, width 32, 3 seeds, batch 32: a smoke test")
  parser.add_argument("--depth", type=int, default=None, help="layers L (default 100; 10 with --quick)")
  parser.add_argument("--width", type=int, default=None, help="width N (default 100; 32 with --quick)")
  parser.add_argument("--seeds", type=int, default=None, help="networks (default 10; 3 with --quick)")
  parser.add_argument("--data", choices=("synthetic", "digits"), default="synthetic",
                      help="synthetic 28x28x1 (MNIST shape, default) or the embedded digits")
  parser.add_argument("--sigma-w", type=float, default=0.7, help="weight scale (default 0.7: ordered phase)")
  parser.add_argument("--sigma-b", type=float, default=0.1, help="bias scale (default 0.1)")
  parser.add_argument("--batch-size", type=int, default=None, help="examples SNIP scores (default 128; 32 quick)")
  parser.add_argument("--repeats", type=int, default=None, help="timed calls after the first (default 3; 2 quick)")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--out", type=Path, default=None,
                      help="JSON path (default experiments/results/bench_scr.json, bench_scr_quick.json with --quick)")
  args = parser.parse_args()
  quick = args.quick
  for name, full, small in (("depth", 100, 10), ("width", 100, 32), ("seeds", 10, 3), ("batch_size", 128, 32),
                            ("repeats", 3, 2)):
    if getattr(args, name) is None:
      setattr(args, name, small if quick else full)
    if getattr(args, name) < 1:
      parser.error(f"--{name.replace('_', '-')} must be >= 1")
  if args.out is None:
    args.out = _common.RESULTS / ("bench_scr_quick.json" if quick else "bench_scr.json")
  return args


if __name__ == "__main__":
  main()
