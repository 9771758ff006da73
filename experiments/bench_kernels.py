"""Benchmark: the analytic NTK of a depth-20 MLP on 1000 inputs (`theory.kernels.mlp_kernels`) against neural-tangents.

What is measured (float32, CPU, the NTK parameterisation, ``x`` = 1000 standard-normal inputs of dimension 64, the
kernel of ``x`` with itself, both NNGP and NTK computed):

* relu (closed-form arc-cosine moments, σw = √2, σb = 0.05): ``theory.kernels.mlp_kernels`` and neural-tangents'
  ``stax.serial(Dense, Relu, ..., Dense)`` kernel function under ``jax.jit``, on all 1000 inputs. Reported: the
  first call (compile + run), the median of ``--repeats`` later calls (each ended by ``block_until_ready``), and the
  largest difference of each float32 NTK to ours in float64 (a subprocess with JAX_ENABLE_X64=1), relative to the
  largest entry.
* tanh (no closed form; σw = 1.3, σb = 0.1): ours integrates every pair by the quadrature of :mod:`theory.gaussian`
  (``6·order²`` nodes per pair and moment; with ``x2`` omitted only the ``n(n+1)/2`` pairs of the upper triangle).
  At the default order (64) 1000 inputs take hours on two CPU cores, so ours is timed on ``--tanh-inputs`` inputs
  (the first ones of the same set) at orders 64 and 32, and at order 32 also on half as many to show that the time
  is linear in the number of pairs; the 1000-input time is extrapolated as ``warm time × 500500 / (n(n+1)/2)``.
  neural-tangents has no analytic tanh kernel; its ``ElementwiseNumerical(tanh, deg)`` uses a ``deg × deg``
  Gauss–Hermite rule (``deg = 25``, its documented example) and is timed on all 1000 inputs and on the small set.
  Accuracy on the small set: the largest difference to ours at order 64 relative to the largest entry (ours at
  order 64 agrees with Monte-Carlo and, in float64, with neural-tangents' rule as ``deg`` grows; see the tests).

Results: ``bench_kernels.json`` (``mfprune.report.write_json``) and a table on stdout. The machine's load average is
recorded with the timings: the CPU is shared, so timings taken under load are inflated.

Run: ``nice .venv/bin/python experiments/bench_kernels.py [--out experiments/results] [--inputs 1000]
[--tanh-inputs 64] [--repeats 3] [--tanh-repeats 3]`` (3-6 minutes on two shared CPU cores).
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from experiments import _common  # noqa: E402
from mfprune import report  # noqa: E402
from theory import kernels, ntk_compat  # noqa: E402

DEPTH = 20
DIM = 64
RELU = {"activation": "relu", "sigma_w": math.sqrt(2.0), "sigma_b": 0.05}
TANH = {"activation": "tanh", "sigma_w": 1.3, "sigma_b": 0.1}
NT_DEG = 25


def scaled_difference(a, b) -> float:
  """``max|a − b| / max|b|``: relative to the kernel's scale (entries near 0 make entrywise ratios meaningless)."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def nt_kernel_fn(nt, phi, sigma_w: float, sigma_b: float):
  """Jitted stax kernel function of ``Dense, φ, ..., Dense`` (``DEPTH`` dense layers)."""
  stax = nt.stax
  layers = [stax.Dense(1, sigma_w, sigma_b)]
  for _ in range(DEPTH - 1):
    layers += [phi(), stax.Dense(1, sigma_w, sigma_b)]
  kernel_fn = stax.serial(*layers)[2]
  return jax.jit(lambda x: kernel_fn(x, None, ("nngp", "ntk")))


def ours(x, spec: dict, order: int = kernels.ORDER):
  return lambda: kernels.mlp_kernels(x, activation=spec["activation"], depth=DEPTH, sigma_w=spec["sigma_w"],
                                     sigma_b=spec["sigma_b"], order=order)


def relu_float64(inputs: int, seed: int) -> np.ndarray:
  """Our relu NTK in float64, from a subprocess (x64 is process-global in JAX and the timed runs stay float32)."""
  with tempfile.TemporaryDirectory() as folder:
    target = Path(folder) / "ntk.npy"
    code = ("import sys, numpy as np; sys.path.insert(0, sys.argv[1]); "
            "from experiments.bench_kernels import DEPTH, DIM, RELU; from theory import kernels; "
            f"x = np.random.default_rng({seed}).normal(size=({inputs}, DIM)); "
            "k = kernels.mlp_kernels(x, depth=DEPTH, **RELU); "
            "np.save(sys.argv[2], np.asarray(k.ntk, np.float64))")
    env = {**os.environ, "JAX_ENABLE_X64": "1"}
    subprocess.run([sys.executable, "-c", code, str(ROOT), str(target)], env=env, check=True, cwd=ROOT)
    return np.load(target)


def row(name: str, n: int, first: float, warm: float, note: str = "") -> dict:
  print(f"{name:<34} n={n:<5} first {first:9.3f} s   warm {warm:9.3f} s   {note}", flush=True)
  return {"inputs": n, "first_call_s": first, "warm_s": warm, "compile_s": first - warm}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", type=Path, default=_common.RESULTS,
                      help="directory for bench_kernels.json (default: experiments/results)")
  parser.add_argument("--inputs", type=int, default=1000, help="inputs for relu and for neural-tangents' tanh")
  parser.add_argument("--tanh-inputs", type=int, default=64,
                      help="inputs for our tanh quadrature kernel (timed, then extrapolated to --inputs)")
  parser.add_argument("--repeats", type=int, default=3, help="timed calls after the first (relu, NT)")
  parser.add_argument("--tanh-repeats", type=int, default=3, help="timed calls after the first (our tanh)")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  if jax.config.jax_enable_x64:
    parser.error("run in float32: unset JAX_ENABLE_X64")
  wall, load_start = time.perf_counter(), list(os.getloadavg())
  nt = ntk_compat.import_neural_tangents()
  x = jnp.asarray(np.random.default_rng(args.seed).normal(size=(args.inputs, DIM)), jnp.float32)
  small = x[:args.tanh_inputs]
  half = x[:max(1, args.tanh_inputs // 2)]
  pairs = lambda n: n * (n + 1) // 2
  results: dict = {"depth": DEPTH, "input_dim": DIM, "inputs": args.inputs, "tanh_inputs": args.tanh_inputs,
                   "relu": RELU, "tanh": TANH, "nt_gauss_hermite_deg": NT_DEG, "dtype": "float32"}

  # relu: closed forms on both sides, all inputs.
  relu_ours, relu_nt = ours(x, RELU), nt_kernel_fn(nt, nt.stax.Relu, RELU["sigma_w"], RELU["sigma_b"])
  results["relu_ours"] = row("relu, theory.kernels", args.inputs, *report.timed(relu_ours, args.repeats)[:2])
  results["relu_nt"] = row("relu, neural-tangents stax", args.inputs,
                           *report.timed(lambda: relu_nt(x), args.repeats)[:2])
  reference64 = relu_float64(args.inputs, args.seed)
  results["relu_ours_ntk_error_vs_float64"] = scaled_difference(relu_ours().ntk, reference64)
  results["relu_nt_ntk_error_vs_float64"] = scaled_difference(relu_nt(x).ntk, reference64)
  results["relu_ours_vs_nt_ntk_difference"] = scaled_difference(relu_ours().ntk, relu_nt(x).ntk)
  print(f"relu: NTK error vs float64 (max|Δ|/max): ours {results['relu_ours_ntk_error_vs_float64']:.2e}, "
        f"neural-tangents {results['relu_nt_ntk_error_vs_float64']:.2e}", flush=True)

  # tanh: neural-tangents' Gauss-Hermite rule on all inputs and on the small set.
  with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Numerical Activation Layer")
    warnings.filterwarnings("ignore", message="Using JAX autodiff")
    tanh_nt = nt_kernel_fn(nt, lambda: nt.stax.ElementwiseNumerical(jnp.tanh, deg=NT_DEG), TANH["sigma_w"],
                           TANH["sigma_b"])
    results["tanh_nt_all"] = row(f"tanh, NT ElementwiseNumerical({NT_DEG})", args.inputs,
                                 *report.timed(lambda: tanh_nt(x), args.repeats)[:2])
    nt_small = tanh_nt(small)

  # tanh: ours by quadrature on the small set (orders 64 and 32) and on half of it (order 32).
  reference = None
  for order, data, key in [(64, small, "tanh_ours_order64"), (32, small, "tanh_ours_order32"),
                           (32, half, "tanh_ours_order32_half")]:
    run = ours(data, TANH, order)
    entry = row(f"tanh, theory.kernels order {order}", data.shape[0], *report.timed(run, args.tanh_repeats)[:2])
    entry["order"] = order
    entry["pairs_integrated"] = pairs(data.shape[0])
    entry["seconds_per_pair_layer"] = entry["warm_s"] / (pairs(data.shape[0]) * (DEPTH - 1))
    entry["extrapolated_warm_s_at_inputs"] = entry["warm_s"] * pairs(args.inputs) / pairs(data.shape[0])
    if data is small:
      kernel = run()
      if reference is None:
        reference = kernel
      entry["ntk_difference_to_order64"] = scaled_difference(kernel.ntk, reference.ntk)
    results[key] = entry
  results["tanh_nt_small"] = {
      "inputs": args.tanh_inputs,
      "ntk_difference_to_ours_order64": scaled_difference(nt_small.ntk, reference.ntk),
      "nngp_difference_to_ours_order64": scaled_difference(nt_small.nngp, reference.nngp),
  }
  print(f"tanh: NT ElementwiseNumerical({NT_DEG}) vs ours (order 64): NTK difference "
        f"{results['tanh_nt_small']['ntk_difference_to_ours_order64']:.2e}; ours order 32 vs 64: "
        f"{results['tanh_ours_order32']['ntk_difference_to_order64']:.2e}", flush=True)
  for key in ("tanh_ours_order64", "tanh_ours_order32"):
    print(f"tanh, {key}: extrapolated to {args.inputs} inputs "
          f"{results[key]['extrapolated_warm_s_at_inputs']:.0f} s", flush=True)

  results["machine"] = {**_common.machine_info(), "neural_tangents": nt.__version__, "load_average_start": load_start,
                        "load_average_end": list(os.getloadavg())}
  results["wall_s"] = time.perf_counter() - wall
  path = report.write_json(args.out / "bench_kernels.json", results)
  print(f"wrote {path} ({results['wall_s']:.0f} s)")


if __name__ == "__main__":
  main()
