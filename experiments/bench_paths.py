"""Benchmark: the Path Kernel trace Tr Π by one gradient against the empirical NTK trace Tr Θ over n inputs.

[P] eq. 14-15 (THEORY.md §7): ``Tr Π_θ = Σ_j ∂R_pk(1, θ)/∂(θ_j²)`` costs one forward and one backward pass of the
linearised network, whatever the data; the trace of the empirical NTK on ``n`` inputs, ``Tr Θ = Σ_x Σ_k
‖∂f_k(x)/∂θ‖²``, needs the per-example Jacobian: ``n · K`` backward passes. Both on the same model:

* ``mlp``: [P] §5.2's FC, a bias-free ReLU MLP with six hidden layers of width 100 (``--depth 7``, ``--width 100``)
  on the embedded 8×8 digits (64 features, 10 classes);
* ``cnn``: a bias-free ReLU VanillaCNN (``--cnn-depth 4`` layers, ``--channels 16``, 3×3 circular convolutions) on
  the same digits (``--no-cnn`` skips it).

What is timed, every program compiled ahead of time (``jit(...).lower(...).compile()``, compile time reported apart),
run time = the median of ``--repeats`` warm calls, each ended by ``block_until_ready``, float32:

* ``trace_pi``: the compiled core, ``mfprune.paths.path_kernel_diagonal`` (the linearised network on ``θ²`` with its
  renormalisation recorded) summed per layer, under one ``jit``;
* ``trace_pi_call``: the public ``mfprune.paths.path_kernel_trace`` end to end, warm (adds the layer-order trace and
  the Python assembly of the result);
* ``ntk_trace_n``: ``Tr Θ`` over the first ``n`` training digits (``--n 100 1000``): ``jax.lax.map`` over chunks of
  ``--chunk`` examples of ``vmap(jacrev(f))`` and the sum of squares of the per-example Jacobians, in plain JAX.

The ratio ``ntk_trace_n / trace_pi`` is the speed-up of the data-free trace. The values (``log Tr Π``, ``Tr Θ``,
``Tr Θ / n``) are reported too. JSON written atomically by ``mfprune.report.write_json`` (default
``experiments/results/bench_paths.json``).

Run: ``nice .venv/bin/python experiments/bench_paths.py [--n 100 1000] [--repeats 5] [--no-cnn] [--out PATH]``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from experiments import _common  # noqa: E402
from mfprune import data, functional, masks, paths, report  # noqa: E402
from mfprune.models import MLP, VanillaCNN  # noqa: E402


def progress(message: str) -> None:
  print(message, file=sys.stderr, flush=True)


def ntk_trace_fn(apply_fn, chunk: int) -> Callable:
  """``(params, x) -> Tr Θ = Σ_x Σ_k ‖∂f_k(x)/∂θ‖²``: per-example Jacobians by ``vmap(jacrev)``, ``chunk`` at a time."""

  def f_single(params, x):
    return apply_fn(params, x[None])[0]

  def chunk_sum(params, xs):
    jac = jax.vmap(jax.jacrev(f_single), in_axes=(None, 0))(params, xs)
    return sum(jnp.sum(j * j) for j in jax.tree_util.tree_leaves(jac))

  def trace(params, x):
    n = x.shape[0]
    if n % chunk:
      raise ValueError(f"n = {n} must be a multiple of --chunk {chunk}")
    xs = x.reshape((n // chunk, chunk) + x.shape[1:])
    return jnp.sum(jax.lax.map(lambda c: chunk_sum(params, c), xs))

  return trace


def trace_pi_fn(apply_fn, shape: tuple[int, ...]) -> Callable:
  """``params -> per-layer log Tr Π`` through ``mfprune.paths.path_kernel_diagonal`` (jit-able)."""

  def trace(params):
    diagonal = paths.path_kernel_diagonal(apply_fn, params, shape)
    sums = jnp.stack([jnp.sum(d) for _, d in masks.named_leaves(diagonal.diagonal)])
    return jnp.log(sums) + diagonal.log_scale

  return trace


def bench_model(name: str, make: Callable, splits, args) -> dict[str, Any]:
  shape = splits.input_shape
  apply_fn, init = functional.init_fn(make)
  params = jax.block_until_ready(init(jax.random.key(args.seed)))
  count = sum(int(np.size(p)) for p in jax.tree_util.tree_leaves(params))
  progress(f"[{name}] {count:,} parameters; compiling Tr Π ...")
  pi_program, pi_compile = _common.compile_program(trace_pi_fn(apply_fn, shape), (params,))
  _, pi_run, pi_layers = report.timed(lambda: pi_program(params), args.repeats)
  log_trace_pi = float(np.logaddexp.reduce(np.asarray(pi_layers, np.float64)))
  progress(f"[{name}] Tr Π: compile {pi_compile:.2f} s, run {pi_run * 1e3:.3f} ms, log Tr Π = {log_trace_pi:.4f}")
  _, call_run, public = report.timed(lambda: paths.path_kernel_trace(apply_fn, params, shape), args.repeats)
  progress(f"[{name}] path_kernel_trace (public call, warm): {call_run * 1e3:.2f} ms")
  result: dict[str, Any] = {
      "model": name, "parameters": count, "input_shape": list(shape), "num_classes": splits.num_classes,
      "trace_pi": {"compile_s": pi_compile, "run_s": pi_run, "log_trace": log_trace_pi,
                   "trace": float(np.exp(log_trace_pi)), "layers": public.layers,
                   "log_layer_traces": np.asarray(pi_layers).tolist()},
      "trace_pi_call": {"run_s": call_run, "log_trace": float(public.log_trace),
                        "agrees_with_core": bool(abs(float(public.log_trace) - log_trace_pi) < 1e-4)},
      "ntk": [],
  }
  for n in args.n:
    x = jnp.asarray(splits.train.x[:n])
    if x.shape[0] < n:
      raise SystemExit(f"--n {n}: the digits training split has only {x.shape[0]} examples")
    progress(f"[{name}] compiling Tr Θ over n = {n} ...")
    program, compile_s = _common.compile_program(ntk_trace_fn(apply_fn, args.chunk), (params, x))
    progress(f"[{name}] Tr Θ (n = {n}): compiled in {compile_s:.2f} s, timing {args.repeats} runs ...")
    _, run, value = report.timed(lambda: program(params, x), args.repeats)
    value = float(value)
    progress(f"[{name}] Tr Θ (n = {n}): run {run:.4f} s, Tr Θ = {value:.6g}, ratio to Tr Π {run / pi_run:.4g}")
    result["ntk"].append({"n": n, "chunk": args.chunk, "compile_s": compile_s, "run_s": run, "trace": value,
                          "trace_per_input": value / n, "ratio_to_trace_pi": run / pi_run,
                          "ratio_to_trace_pi_call": run / call_run})
  return result


def main() -> None:
  args = parse_args()
  wall = time.perf_counter()
  load_start = os.getloadavg()[0]
  device = jax.devices()[0]
  splits = data.load_splits("digits")
  shape, classes = splits.input_shape, splits.num_classes
  progress(f"{device.platform} ({device.device_kind}), jax {jax.__version__}, load average {load_start:.2f}; "
           f"digits {shape} -> {classes}; n = {args.n}, repeats {args.repeats}")
  models = {"mlp": lambda k: MLP(shape, classes, depth=args.depth, width=args.width, activation="relu",
                                 use_bias=False, rngs=nnx.Rngs(params=k))}
  if not args.no_cnn:
    models["cnn"] = lambda k: VanillaCNN(shape, classes, depth=args.cnn_depth, channels=args.channels,
                                         activation="relu", use_bias=False, rngs=nnx.Rngs(params=k))
  results = {
      "benchmark": "Tr Π by one gradient of R_pk ([P] eq. 15) vs the empirical NTK trace over n inputs "
                   "(vmap(jacrev), sum of squares)",
      **_common.machine_info(), "dtype": "float32",
      "load_average_start": load_start, "repeats": args.repeats, "seed": args.seed, "data": splits.name,
      "config": {"mlp": {"depth": args.depth, "width": args.width, "activation": "relu", "bias": False},
                 "cnn": None if args.no_cnn else {"depth": args.cnn_depth, "channels": args.channels,
                                                  "kernel_size": 3, "activation": "relu", "bias": False}},
      "models": [bench_model(name, make, splits, args) for name, make in models.items()],
  }
  results["load_average_end"] = os.getloadavg()[0]
  results["total_seconds"] = time.perf_counter() - wall
  out = report.write_json(args.out, results)
  rows = []
  for model in results["models"]:
    rows.append([model["model"], "Tr Π (one gradient)", model["trace_pi"]["compile_s"],
                 model["trace_pi"]["run_s"] * 1e3, 1.0, model["trace_pi"]["log_trace"]])
    rows.append([model["model"], "Tr Π (public call)", math.nan, model["trace_pi_call"]["run_s"] * 1e3,
                 model["trace_pi_call"]["run_s"] / model["trace_pi"]["run_s"], model["trace_pi_call"]["log_trace"]])
    for entry in model["ntk"]:
      rows.append([model["model"], f"Tr Θ, n = {entry['n']}", entry["compile_s"], entry["run_s"] * 1e3,
                   entry["ratio_to_trace_pi"], math.log(entry["trace"])])
  print(report.format_table(["model", "program", "compile s", "run ms", "x Tr Π time", "log value"], rows))
  print(f"wrote {out} (total {results['total_seconds']:.0f} s)")


def parse_args() -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--n", type=int, nargs="+", default=[100, 1000], help="inputs of the NTK trace (default 100 1000)")
  parser.add_argument("--chunk", type=int, default=100, help="examples per vmapped Jacobian chunk (default 100)")
  parser.add_argument("--depth", type=int, default=7, help="MLP layers (default 7: six hidden layers, [P]'s FC)")
  parser.add_argument("--width", type=int, default=100, help="MLP hidden width (default 100)")
  parser.add_argument("--cnn-depth", type=int, default=4, help="VanillaCNN weight layers (default 4)")
  parser.add_argument("--channels", type=int, default=16, help="VanillaCNN channels (default 16)")
  parser.add_argument("--no-cnn", action="store_true", help="benchmark the MLP only")
  parser.add_argument("--repeats", type=int, default=5, help="timed warm calls, median reported (default 5)")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--out", type=Path, default=_common.RESULTS / "bench_paths.json",
                      help="JSON path (default experiments/results/bench_paths.json)")
  args = parser.parse_args()
  for name in ("chunk", "depth", "width", "cnn_depth", "channels", "repeats"):
    if getattr(args, name) < 1:
      parser.error(f"--{name.replace('_', '-')} must be >= 1")
  for n in args.n:
    if n < 1 or n % args.chunk:
      parser.error(f"--n values must be positive multiples of --chunk ({args.chunk}); got {n}")
  return args


if __name__ == "__main__":
  main()
