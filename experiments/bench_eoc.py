"""Benchmark: the EOC curve of tanh over 101 σb by quadrature, against plain Monte-Carlo at equal accuracy.

Measured in one run, in float32 (the default precision):
* quadrature (``theory.eoc_curve``): compile time (first call minus a steady call) and steady time (median);
* plain Monte-Carlo: the same solver structure (log grid + bisection of G(q) = σb² + E[φ²]/E[φ'²] − q, one jitted
  vmapped program) with expectations replaced by means over n standard-normal samples, for growing n;
* accuracy of both against a float64 quadrature reference computed in a subprocess (JAX_ENABLE_X64=1), max relative
  error of σw over the curve.
Monte-Carlo's error falls like 1/√n, so the n (and, its time being linear in n, the time) it needs to match the
quadrature's accuracy is extrapolated from the largest n run. Results: JSON (atomic) and a table.

Run: ``.venv/bin/python experiments/bench_eoc.py [--out experiments/results] [--max-log2-samples 22]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import theory  # noqa: E402
from theory import _roots, maps  # noqa: E402

SIGMA_B = np.linspace(0.05, 1.0, 101)  # σb = 0 is the LIMIT point, solved without expectations; leave it out


def reference_sigma_w() -> np.ndarray:
  """σw of the curve in float64 (quadrature), from a subprocess with x64 on."""
  code = ("import numpy as np, json, theory; c = theory.eoc_curve('tanh', np.linspace(0.05, 1.0, 101)); "
          "print(json.dumps(np.asarray(c.sigma_w, np.float64).tolist()))")
  env = {**os.environ, "JAX_ENABLE_X64": "1"}
  out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parents[1])
  return np.array(json.loads(out.stdout.strip().splitlines()[-1]))


def timed(fn, repeats: int) -> tuple[float, float]:
  """(first call seconds, median of ``repeats`` later calls)."""
  start = time.perf_counter()
  jax.block_until_ready(fn())
  first = time.perf_counter() - start
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return first, float(np.median(times))


def monte_carlo_curve(samples: jax.Array, sigma_b: jax.Array) -> jax.Array:
  """EOC σw with E[h(√q Z)] ≈ mean of h(√q z_i) over the given samples (same bracketing as the library)."""
  grid = maps.q_grid(samples.dtype)[1:]
  dtanh = lambda u: 1.0 - jnp.tanh(u) ** 2

  def mean(h, q):
    return jnp.mean(h(jnp.sqrt(q)[..., None] * samples), axis=-1)

  def solve(b):
    gap = lambda q: b**2 + mean(lambda u: jnp.tanh(u) ** 2, q) / mean(lambda u: dtanh(u) ** 2, q) - q
    values = jax.lax.map(gap, grid)  # one q at a time: n samples each, bounded memory
    k, _ = _roots.sign_changes(values, 1)
    q = _roots.bisect(gap, grid[k[0]], grid[k[0] + 1], _roots.bisection_steps(samples.dtype))
    return jax.lax.rsqrt(mean(lambda u: dtanh(u) ** 2, q))

  return jax.lax.map(solve, sigma_b)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", type=Path, default=Path("experiments/results"))
  parser.add_argument("--max-log2-samples", type=int, default=20, help="largest Monte-Carlo n is 2**this")
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()

  reference = reference_sigma_w()
  sigma_b = jnp.asarray(SIGMA_B, jnp.float32)

  curve = lambda: theory.eoc_curve("tanh", sigma_b).sigma_w
  first, steady = timed(curve, args.repeats)
  quad_error = float(np.max(np.abs(np.asarray(curve(), np.float64) / reference - 1)))
  results = {
      "device": jax.devices()[0].device_kind, "dtype": "float32", "points": len(SIGMA_B),
      "quadrature": {"compile_seconds": first - steady, "seconds": steady, "max_rel_error_sigma_w": quad_error},
      "monte_carlo": [],
  }
  print(f"quadrature: compile {first - steady:.2f} s, run {steady * 1e3:.1f} ms, max rel error {quad_error:.2e}")

  solver = jax.jit(monte_carlo_curve)
  for log2_n in range(10, args.max_log2_samples + 1, 2):
    n = 2**log2_n
    samples = jax.random.normal(jax.random.PRNGKey(log2_n), (n,), jnp.float32)
    mc_first, mc_steady = timed(lambda: solver(samples, sigma_b), max(1, args.repeats // 2))
    error = float(np.max(np.abs(np.asarray(solver(samples, sigma_b), np.float64) / reference - 1)))
    results["monte_carlo"].append({"samples": n, "seconds": mc_steady, "max_rel_error_sigma_w": error})
    print(f"monte carlo n = 2^{log2_n}: run {mc_steady:.3f} s, max rel error {error:.2e}")

  last = results["monte_carlo"][-1]
  # 1/√n error, time linear in n: samples and seconds Monte-Carlo needs to reach the quadrature's error.
  factor = (last["max_rel_error_sigma_w"] / max(quad_error, 1e-12)) ** 2
  results["equal_accuracy"] = {
      "target_max_rel_error": quad_error,
      "monte_carlo_samples_extrapolated": last["samples"] * factor,
      "monte_carlo_seconds_extrapolated": last["seconds"] * factor,
      "ratio_monte_carlo_over_quadrature": last["seconds"] * factor / steady,
      "ratio_at_largest_n_run": last["seconds"] / steady,
  }
  print(f"equal accuracy ({quad_error:.1e}): Monte-Carlo needs ~{last['samples'] * factor:.2e} samples, "
        f"~{last['seconds'] * factor:.3g} s: {last['seconds'] * factor / steady:.3g}x the quadrature's time")

  args.out.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=args.out, suffix=".tmp")
  with os.fdopen(fd, "w") as handle:
    json.dump(results, handle, indent=2)
  os.replace(tmp, args.out / "bench_eoc.json")
  print(f"wrote {args.out / 'bench_eoc.json'}")


if __name__ == "__main__":
  main()
