"""Benchmark: the EOC curve of tanh over 101 σb by quadrature (`theory.eoc_curve`) against plain Monte-Carlo.

What is measured (σb = linspace(0, 1, 101), float32, JAX's default precision, for both timed methods):

* quadrature: ``theory.eoc_curve('tanh', jnp.linspace(0, 1, 101))``. The first call in this process compiles and
  runs (the library's jitted solver has not been traced yet); later calls reuse the executable. Reported: the first
  call, the median of ``--repeats`` later calls (each ended by ``block_until_ready``), and their difference as the
  compile time.
* plain Monte-Carlo: E[φ²(√q Z)] and E[φ'²(√q Z)] (φ = tanh, φ' = 1 − tanh²) replaced by means over n fixed
  standard-normal samples (``jax.random``, one sample set per n, summed in chunks so memory stays bounded), then
  G(q) = σb² + E[φ²]/E[φ'²] − q bracketed on the library's log grid of q (``theory.maps.Q_GRID``) and bisected
  (32 geometric halvings, as the library does in float32), all 101 σb at once, in one jitted program;
  σw = 1/√E[φ'²(√q* Z)]. Where G has no sign change (σb = 0, where the root is q* = 0) q* is the grid's smallest q,
  i.e. the q → 0 limit, as the library's LIMIT status. Sampling time is not counted (it is ~1% of a run).
  n grows by ×10 from 1e3 to ``--max-samples``.

Accuracy (max relative error of σw over the 101 points):

* reference: an independent float64 scipy computation (adaptive ``scipy.integrate.quad`` split at 0, ``brentq``),
  written out here with tanh by hand; σb = 0 is the exact limit σw = 1/|tanh'(0)| = 1;
* cross-check: the library's quadrature in float64 (a subprocess with JAX_ENABLE_X64=1; x64 is process-global in JAX,
  and the timed runs must stay float32) against the same scipy reference;
* target: the float32 quadrature's own error against scipy. Monte-Carlo is judged against the same scipy reference
  (the float64 quadrature agrees with it to ~1e-12, far below every error compared here, so either would do).

Monte-Carlo's error falls like 1/√n and its time grows like n. If no n run reaches the target, the n and time it
would need are extrapolated: C = median of err·√n over the runs with n >= 1e4, n_eq = (C/target)², and
t_eq = (time of the largest run)·n_eq/n_largest. The ratio MC time / quadrature time is reported at equal accuracy
(measured or extrapolated) and, for scale, at the largest n run. Results: JSON written atomically and a table.

Why the max error of Monte-Carlo is erratic: at small σb the EOC root is ill-conditioned. For tanh,
E[φ²]/E[φ'²] = q + O(q³) near q = 0, so G(q) ≈ σb² − a·q³ and G'(q*) → 0 as σb → 0. With samples, the ratio becomes
q·m̂ + O(q³) with m̂ = mean(z²) = 1 ± √(2/n), which shifts q* (and σw ≈ 1 + O(q*)) by an amount that is large
against σb² until n is very large; at σb = 0 it can even create a spurious root. So the worst σb is near 0 and the
max error is not yet in its 1/√n regime at the n we can afford; the median error over the curve is, and the JSON
also reports the equal-accuracy extrapolation on the median (against the quadrature's median error).

Run: ``.venv/bin/python experiments/bench_eoc.py [--out experiments/results] [--max-samples 10000000] [--repeats 5]``
(about 2-3 minutes on two CPU cores).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from scipy import integrate, optimize

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import theory  # noqa: E402
from experiments import _common  # noqa: E402
from mfprune import report  # noqa: E402
from theory import maps  # noqa: E402

POINTS = 101
SIGMA_B = np.linspace(0.0, 1.0, POINTS)
CHUNK = 10_000  # Monte-Carlo samples per chunk: 101 × CHUNK float32 values live at once (4 MB)
BISECTION_STEPS = 32  # what theory._roots uses in float32


# ---------------------------------------------------------------------------------------------------------------
# References.
# ---------------------------------------------------------------------------------------------------------------


def _gauss(h, q: float) -> float:
  """E[h(√q Z)] by adaptive quadrature, each half-line separately (float64)."""
  s = math.sqrt(q)
  density = lambda z: h(s * z) * math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
  return sum(integrate.quad(density, a, b, epsabs=0.0, epsrel=1e-13, limit=400)[0] for a, b in ((-40, 0), (0, 40)))


def scipy_reference(sigma_b: np.ndarray) -> np.ndarray:
  """EOC σw of tanh in float64, independent of the library: brentq on G(q), σw = 1/√E[tanh'(√q* Z)²]."""
  m2 = lambda q: _gauss(lambda u: math.tanh(u) ** 2, q)
  d2 = lambda q: _gauss(lambda u: (1.0 - math.tanh(u) ** 2) ** 2, q)
  out = []
  for b in sigma_b:
    if b == 0.0:
      out.append(1.0)  # q* = 0: the limit σw = 1/|tanh'(0)|
      continue
    gap = lambda q: b * b + m2(q) / d2(q) - q  # > 0 at q → 0 (σb² > 0), < 0 at q = 100 for σb <= 1
    q = optimize.brentq(gap, 1e-14, 100.0, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=300)
    out.append(1.0 / math.sqrt(d2(q)))
  return np.asarray(out)


def quadrature_float64() -> np.ndarray:
  """The library's EOC σw in float64, from a subprocess with JAX_ENABLE_X64=1."""
  code = ("import json, numpy as np, theory; "
          f"c = theory.eoc_curve('tanh', np.linspace(0.0, 1.0, {POINTS})); "
          "print(json.dumps(np.asarray(c.sigma_w, np.float64).tolist()))")
  env = {**os.environ, "JAX_ENABLE_X64": "1", "PYTHONPATH": str(ROOT)}
  out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True, cwd=ROOT)
  return np.asarray(json.loads(out.stdout.strip().splitlines()[-1]))


def max_rel_error(values, reference: np.ndarray) -> float:
  return float(np.max(np.abs(np.asarray(values, np.float64) / reference - 1.0)))


# ---------------------------------------------------------------------------------------------------------------
# Monte-Carlo EOC solver (float32, jitted, vectorised over σb).
# ---------------------------------------------------------------------------------------------------------------


def _mc_moments(chunks: jax.Array, q: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Sample means of tanh²(√q z) and (1 − tanh²(√q z))² for each entry of q (shape (k,))."""
  root = jnp.sqrt(q)[:, None]

  def body(carry, z):
    t2 = jnp.tanh(root * z[None, :]) ** 2
    return (carry[0] + jnp.sum(t2, axis=-1), carry[1] + jnp.sum((1.0 - t2) ** 2, axis=-1)), None

  zeros = jnp.zeros_like(q)
  (s_phi, s_dphi), _ = jax.lax.scan(body, (zeros, zeros), chunks)
  n = chunks.shape[0] * chunks.shape[1]
  return s_phi / n, s_dphi / n


@jax.jit
def monte_carlo_curve(chunks: jax.Array, sigma_b: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(σw, q*) of the EOC for every σb, with Gaussian expectations replaced by means over ``chunks``' samples."""
  low, high, points = maps.Q_GRID
  grid = jnp.logspace(math.log10(low), math.log10(high), points, dtype=sigma_b.dtype)
  m2, d2 = _mc_moments(chunks, grid)  # the moments do not depend on σb: one pass over the grid serves all
  values = sigma_b[:, None] ** 2 + (m2 / d2)[None, :] - grid[None, :]  # G on the grid, (B, grid)
  positive = values > 0
  crossing = positive[:, :-1] & ~positive[:, 1:]
  found = jnp.any(crossing, axis=1)
  k = jnp.argmax(crossing, axis=1)
  lo, hi = grid[k], grid[k + 1]

  def step(_, bracket):
    lo, hi = bracket
    mid = jnp.sqrt(lo * hi)
    m2, d2 = _mc_moments(chunks, mid)
    above = sigma_b**2 + m2 / d2 - mid > 0  # G(lo) > 0 >= G(hi)
    return jnp.where(above, mid, lo), jnp.where(above, hi, mid)

  lo, hi = jax.lax.fori_loop(0, BISECTION_STEPS, step, (lo, hi))
  q = jnp.where(found, jnp.sqrt(lo * hi), grid[0])  # no sign change: the q → 0 limit (σb = 0)
  _, d2 = _mc_moments(chunks, q)
  return jax.lax.rsqrt(d2), q


# ---------------------------------------------------------------------------------------------------------------


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", type=Path, default=_common.RESULTS,
                      help="directory for bench_eoc.json (default: experiments/results)")
  parser.add_argument("--max-samples", type=int, default=10_000_000,
                      help="largest Monte-Carlo n; n runs over 1e3, 1e4, ... up to this (default 1e7)")
  parser.add_argument("--repeats", type=int, default=5, help="timed calls after the first (quadrature)")
  parser.add_argument("--mc-repeats", type=int, default=2, help="timed calls after the first (Monte-Carlo)")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  if jax.config.jax_enable_x64:
    parser.error("run in float32: unset JAX_ENABLE_X64 (the float64 cross-check runs in a subprocess)")
  wall = time.perf_counter()

  # (a) Quadrature, timed first so that its first call is a fresh compile in this process.
  sigma_b = jnp.linspace(0.0, 1.0, POINTS)
  curve = lambda: theory.eoc_curve("tanh", sigma_b).sigma_w
  first, steady, _ = report.timed(curve, args.repeats)
  sigma_w_quad = np.asarray(curve(), np.float64)

  # References.
  start = time.perf_counter()
  reference = scipy_reference(SIGMA_B)
  scipy_seconds = time.perf_counter() - start
  quad64 = quadrature_float64()
  target = max_rel_error(sigma_w_quad, reference)
  quad64_error = max_rel_error(quad64, reference)

  results = {
      "benchmark": "EOC curve of tanh, sigma_b = linspace(0, 1, 101)",
      **_common.machine_info(),
      "device": f"{jax.devices()[0].platform} ({os.cpu_count()} cores)",  # this benchmark's own form (its table)
      "dtype": "float32", "points": POINTS,
      "reference": {"method": "scipy float64: integrate.quad (split at 0, epsrel 1e-13) + brentq",
                    "seconds": scipy_seconds, "quadrature_float64_max_rel_error": quad64_error},
      "quadrature": {"first_call_seconds": first, "seconds": steady, "compile_seconds": first - steady,
                     "repeats": args.repeats, "max_rel_error_sigma_w": target},
      "monte_carlo": [],
  }

  # (b) Monte-Carlo with growing n.
  sizes = [n for n in (10**k for k in range(3, 10)) if n <= args.max_samples]
  key = jax.random.PRNGKey(args.seed)
  reached = None
  for n in sizes:
    chunk = min(n, CHUNK)
    chunks = jax.random.normal(jax.random.fold_in(key, n), (n // chunk, chunk), jnp.float32)
    jax.block_until_ready(chunks)
    # Large n: one timed call after the first is enough (a run takes tens of seconds, noise is small).
    mc_first, mc_steady, _ = report.timed(lambda: monte_carlo_curve(chunks, sigma_b),
                                          args.mc_repeats if n < 10**7 else 1)
    sigma_w_mc, q_mc = monte_carlo_curve(chunks, sigma_b)
    errors = np.abs(np.asarray(sigma_w_mc, np.float64) / reference - 1.0)
    row = {"samples": n, "first_call_seconds": mc_first, "seconds": mc_steady,
           "max_rel_error_sigma_w": float(errors.max()), "median_rel_error_sigma_w": float(np.median(errors)),
           "worst_sigma_b": float(SIGMA_B[int(errors.argmax())])}
    results["monte_carlo"].append(row)
    if reached is None and row["max_rel_error_sigma_w"] <= target:
      reached = row

  # Equal accuracy: measured if some n reached the target, else extrapolated with the 1/√n law.
  largest = results["monte_carlo"][-1]
  fit_rows = [r for r in results["monte_carlo"] if r["samples"] >= 10_000] or results["monte_carlo"]
  constant = float(np.median([r["max_rel_error_sigma_w"] * math.sqrt(r["samples"]) for r in fit_rows]))
  # The same on the median error over the curve (kinder to Monte-Carlo: the max is set by σb → 0, where q* is
  # ill-conditioned, see the docstring of the module).
  quad_median = float(np.median(np.abs(sigma_w_quad / reference - 1.0)))
  constant_median = float(np.median([r["median_rel_error_sigma_w"] * math.sqrt(r["samples"]) for r in fit_rows]))
  n_eq_median = (constant_median / quad_median) ** 2
  results["quadrature"]["median_rel_error_sigma_w"] = quad_median
  if reached is not None:
    equal = {"measured": True, "samples": reached["samples"], "seconds": reached["seconds"]}
  else:
    n_eq = (constant / target) ** 2
    equal = {"measured": False, "samples": n_eq, "seconds": largest["seconds"] * n_eq / largest["samples"]}
  equal.update({
      "target_max_rel_error": target,
      "error_times_sqrt_n": constant,
      "ratio_monte_carlo_over_quadrature": equal["seconds"] / steady,
      "best_monte_carlo": {"samples": largest["samples"], "seconds": largest["seconds"],
                           "max_rel_error_sigma_w": largest["max_rel_error_sigma_w"],
                           "time_ratio_over_quadrature": largest["seconds"] / steady,
                           "error_ratio_over_quadrature": largest["max_rel_error_sigma_w"] / target},
  })
  results["equal_accuracy"] = equal
  seconds_median = largest["seconds"] * n_eq_median / largest["samples"]
  results["equal_median_accuracy"] = {
      "measured": False, "target_median_rel_error": quad_median, "error_times_sqrt_n": constant_median,
      "samples": n_eq_median, "seconds": seconds_median, "ratio_monte_carlo_over_quadrature": seconds_median / steady}
  results["total_seconds"] = time.perf_counter() - wall

  out = args.out / "bench_eoc.json"
  report.write_json(out, results)  # atomic; refuses NaN/inf rather than writing invalid JSON

  # Table.
  print(f"EOC curve of tanh, {POINTS} sigma_b in [0, 1], float32, {results['device']}, jax {jax.__version__}")
  print(f"reference: scipy float64 ({scipy_seconds:.1f} s); library quadrature in float64 agrees to "
        f"{quad64_error:.1e}")
  print(f"{'method':<22}{'first call s':>14}{'run s':>12}{'max rel err':>14}{'median rel err':>16}")
  print(f"{'quadrature':<22}{first:>14.3f}{steady:>12.4f}{target:>14.2e}{quad_median:>16.2e}")
  for r in results["monte_carlo"]:
    print(f"{'MC n=%.0e' % r['samples']:<22}{r['first_call_seconds']:>14.3f}{r['seconds']:>12.4f}"
          f"{r['max_rel_error_sigma_w']:>14.2e}{r['median_rel_error_sigma_w']:>16.2e}")
  print(f"quadrature compile time: {first - steady:.2f} s")
  how = "measured" if equal["measured"] else "extrapolated (1/sqrt(n))"
  print(f"MC at equal accuracy ({target:.1e}, {how}): n = {equal['samples']:.2e}, {equal['seconds']:.3g} s, "
        f"{equal['ratio_monte_carlo_over_quadrature']:.3g}x the quadrature's run time")
  print(f"on the median error over the curve ({quad_median:.1e}): n = {n_eq_median:.2e}, "
        f"{results['equal_median_accuracy']['ratio_monte_carlo_over_quadrature']:.3g}x")
  print(f"best MC run (n = {largest['samples']:.0e}): {largest['seconds'] / steady:.3g}x the time at "
        f"{largest['max_rel_error_sigma_w'] / target:.3g}x the error")
  print(f"wrote {out} (total {results['total_seconds']:.0f} s)")


if __name__ == "__main__":
  main()
