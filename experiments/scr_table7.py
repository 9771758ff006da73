"""Experiment: [R] Table 7 — critical sparsity of magnitude pruning when one layer has smaller weights (Props 4-5).

[R] App. E, Table 7: an FFNN with N = L = 100 whose layer l0 = 1 has ``α_1 = γ`` times the ``α`` of the others
(``v_l = α_l N``, so its weights have the smallest variance ``σw²/v_l``), pruned by magnitude (MBP). The paper
reports Proposition 4's bound on ``E[s_cr]`` as 5.77, 0.81, 0.72 and the measured ``E[s_cr]`` (10 networks) as ≈1,
0.79, 0.69 for γ = 2, 5, 10.

How: MBP needs no data and ignores every common scale, so only the weights matter. Each network is a list of L
Gaussian weight matrices, the first (l0) with standard deviation ``1/r`` times the others'. The ratio ``r`` depends
on how γ is read (THEORY.md §4, docs/sparsity.md): ``"variance"`` (γ is the α ratio, as [R] defines it: ``r = √γ``)
or ``"std"`` (γ is the ratio of standard deviations, as [R]'s proof uses it: ``r = γ``). Two layer-size models:

* ``square``: every layer is N × N (``ζ_{l0} = M_{l0}/N² = 1``), the default of ``theory.sparsity.proposition4``;
* ``ffnn``: the FFNN that realises the ratio through its width: ``v_1 = N_0 = α_1 N`` inputs with ``α_1 = r²``,
  so ``M_{l0} = r² N²`` (``ζ = γ`` for the variance reading, ``γ²`` for the std reading).

The scores are mfprune's ``magnitude`` scorer on the weights (``|W|``, float32), and each ``s_cr`` is exact. For the
square model it is :func:`theory.sparsity.critical_sparsity` of the scores (one compiled program, ~40 s to compile
for 100 layers on two CPU cores); for the ffnn model, whose first layer changes shape with γ (a recompile each), it
is the same formula in NumPy, ``s_cr = 1 − #{|W| > min_l max_{i∈l} |W_i|}/M``, which the script checks against
``theory.sparsity`` on every square network (they must agree exactly; a tie at the threshold has probability ~0).
Reported per (γ, reading, model): the per-network ``s_cr``, their mean with a 95% Student-t interval, the
proof's variant ``1 − R/Σ_{l≠l0} M_l`` ([R] measures the sparsity over the other layers), how often layer l0 is
emptied first, Proposition 4's bound (with its ε and ``x_ε``) and Proposition 5's lower bound on that probability.

Results: ``experiments/results/scr_table7.json`` (atomic), ``scr_table7.png`` (measured means with intervals and the
bounds against γ, both readings) and a table. About 1.5 minutes on two CPU cores (mostly the one compile).

Run: ``.venv/bin/python experiments/scr_table7.py [--gammas 2,5,10] [--networks 10] [--width 100] [--depth 100]
[--seed 0] [--quick] [--out experiments/results]``. ``--quick``: N = L = 20, 4 networks (a few seconds).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import jax
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from experiments import _common  # noqa: E402
from mfprune import masks, report, scores, statistics  # noqa: E402
from theory import sparsity  # noqa: E402

PAPER = {2.0: {"bound": 5.77, "measured": "≈1"}, 5.0: {"bound": 0.81, "measured": 0.79},
         10.0: {"bound": 0.72, "measured": 0.69}}
"""[R] Table 7 (N = L = 100, 10 simulations)."""
READINGS = ("variance", "std")
MODELS = ("square", "ffnn")


def std_ratio(gamma: float, reading: str) -> float:
  """``r``: the other layers' weight standard deviation over layer l0's."""
  return math.sqrt(gamma) if reading == "variance" else float(gamma)


def zeta(gamma: float, reading: str, model: str) -> float:
  """``ζ_{l0} = M_{l0}/N²``: 1 for the square model, ``r²`` (the FFNN's ``α_1``) for the ffnn model."""
  return 1.0 if model == "square" else std_ratio(gamma, reading) ** 2


def draw_params(rng: np.random.Generator, *, depth: int, width: int, ratio: float, first_rows: int) -> dict:
  """One network's weights as an mfprune parameter tree (layers in order ``000``, ``001``, ...; float32).

  Layer 0 (l0) is ``first_rows × width`` with standard deviation ``1/ratio``; the others are ``width × width``
  standard normal (only ratios matter to magnitude pruning).
  """
  layers = {}
  for l in range(depth):
    rows = first_rows if l == 0 else width
    w = rng.standard_normal((rows, width))
    layers[f"{l:03d}"] = {"kernel": (w / ratio if l == 0 else w).astype(np.float32)}
  return {"layers": layers}


def numpy_critical(leaves: list[np.ndarray]) -> tuple[float, int, int]:
  """``(s_cr, R, first dead layer)``: ``R = #{score > min_l max_l}`` (exact when no score ties that minimum)."""
  maxima = np.array([leaf.max() for leaf in leaves])
  first = int(np.argmin(maxima))
  rank = int(sum(int(np.count_nonzero(leaf > maxima[first])) for leaf in leaves))
  total = sum(leaf.size for leaf in leaves)
  return 1.0 - rank / total, rank, first


def run_case(args, gamma: float, reading: str, model: str, theory_critical) -> dict:
  ratio = std_ratio(gamma, reading)
  z = zeta(gamma, reading, model)
  first_rows = int(round(z * args.width))
  rng = np.random.default_rng([args.seed, int(gamma * 1000), READINGS.index(reading), MODELS.index(model)])
  values, proof_values, first_dead, l0_death, checks = [], [], [], [], []
  for _ in range(args.networks):
    params = draw_params(rng, depth=args.depth, width=args.width, ratio=ratio, first_rows=first_rows)
    mbp = scores.score("magnitude", None, params, masks.dense_mask(params), None)  # |W|, mfprune's MBP scorer
    leaves = [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(mbp)]  # tree order = 000, 001, ...
    s_cr, rank, first = numpy_critical(leaves)
    if model == "square":  # theory.sparsity's exact s_cr (mfprune's tie rule) must agree
      exact = float(theory_critical(jax.tree_util.tree_leaves(mbp)))
      checks.append(abs(exact - s_cr))
      s_cr = exact
    total = sum(leaf.size for leaf in leaves)
    values.append(s_cr)
    proof_values.append(1.0 - rank / (total - leaves[0].size))
    first_dead.append(first)
    l0_max = leaves[0].max()
    l0_death.append(1.0 - sum(int(np.count_nonzero(leaf > l0_max)) for leaf in leaves) / total)
  values = np.array(values)
  bound = sparsity.proposition4(gamma, width=args.width, zeta=z, gamma_reading=reading)
  return {
      "gamma": gamma, "reading": reading, "model": model, "std_ratio": ratio, "zeta": z,
      "layer_sizes": {"l0": first_rows * args.width, "others": args.width**2},
      "values": values.tolist(), "mean": float(values.mean()),
      "std": float(values.std(ddof=1)) if values.size > 1 else None, "interval": statistics.t_interval(values),
      "proof_sparsity_mean": float(np.mean(proof_values)),
      "l0_first_fraction": float(np.mean(np.array(first_dead) == 0)),
      "first_dead": first_dead, "l0_death_sparsity_mean": float(np.mean(l0_death)),
      "proposition4": bound.to_dict(),
      "proposition5": sparsity.proposition5_probability(gamma, depth=args.depth, width=args.width,
                                                        gamma_reading=reading),
      "max_abs_diff_numpy_vs_theory": max(checks) if checks else None,
  }


def _figure(results: dict):
  plt = report.pyplot()
  figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
  gammas = results["gammas"]
  for ax, model in zip(axes, MODELS):
    for reading, color in zip(READINGS, ("tab:blue", "tab:orange")):
      rows = [r for r in results["cases"] if r["reading"] == reading and r["model"] == model]
      means = np.array([r["mean"] for r in rows])
      low = np.array([r["interval"][0] if r["interval"] else r["mean"] for r in rows])
      high = np.array([r["interval"][1] if r["interval"] else r["mean"] for r in rows])
      label = "r = √γ (variance reading)" if reading == "variance" else "r = γ (std reading)"
      ax.errorbar(gammas, means, yerr=[means - low, high - means], fmt="o-", color=color, capsize=3,
                  label=f"measured, {label}")
      ax.plot(gammas, [r["proposition4"]["bound"] for r in rows], "s--", color=color, mfc="none",
              label=f"Prop. 4 bound, {label}")
      ax.plot(gammas, [r["proof_sparsity_mean"] for r in rows], "v:", color=color, ms=5,
              label="measured, sparsity over l ≠ l0 (the proof's)")
    paper = [(g, PAPER[g]) for g in gammas if g in PAPER]
    if paper and results["width"] == 100 and results["depth"] == 100:
      ax.plot([g for g, _ in paper], [p["bound"] if p["bound"] <= 1.05 else np.nan for _, p in paper], "k^",
              ms=8, label="[R] Table 7 bound (5.77 at γ=2 off the axis)")
      ax.plot([g for g, _ in paper], [1.0 if p["measured"] == "≈1" else p["measured"] for _, p in paper], "kx",
              ms=9, mew=2, label="[R] Table 7 measured")
    ax.set_xticks(gammas, [f"{g:g}" for g in gammas])
    ax.set_xlabel("γ = α_l0 / α_l")
    ax.set_ylim(0.2, 1.03)
    ax.grid(alpha=0.3)
    sizes = "all layers N×N (ζ = 1)" if model == "square" else "FFNN: M_l0 = r² N² (ζ = r²)"
    ax.set_title(f"{sizes}", fontsize=10)
  axes[0].set_ylabel("E[s_cr] (magnitude pruning)")
  axes[0].legend(fontsize=7, loc="lower left")
  figure.suptitle(f"[R] Table 7: MBP critical sparsity, N = {results['width']}, L = {results['depth']}, "
                  f"{results['networks']} networks per point (95% t-intervals)", fontsize=10)
  figure.tight_layout()
  return figure


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--gammas", type=_common.parse_list, default=[2.0, 5.0, 10.0])
  parser.add_argument("--networks", type=int, default=10)
  parser.add_argument("--width", type=int, default=100)
  parser.add_argument("--depth", type=int, default=100)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--quick", action="store_true", help="N = L = 20, 4 networks")
  parser.add_argument("--out", type=Path, default=_common.RESULTS)
  args = parser.parse_args(argv)
  if args.quick:
    args.width, args.depth, args.networks = 20, 20, 4
  name = "scr_table7" + ("_quick" if args.quick else "")
  start = time.perf_counter()
  theory_critical = jax.jit(sparsity.critical_sparsity)
  cases = []
  for gamma in args.gammas:
    for reading in READINGS:
      for model in MODELS:
        cases.append(run_case(args, gamma, reading, model, theory_critical))
        print(f"  γ = {gamma:g}, {reading}, {model}: E[s_cr] = {cases[-1]['mean']:.4f} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
  seconds = time.perf_counter() - start
  results = {"experiment": "[R] Table 7 (App. E, Propositions 4-5): magnitude pruning, layer l0 = first layer",
             "width": args.width, "depth": args.depth, "networks": args.networks, "seed": args.seed,
             "gammas": args.gammas, "paper": {str(g): v for g, v in PAPER.items()}, "cases": cases,
             "dtype": "float32 scores", "seconds": seconds, "load_average": os.getloadavg()[0],
             "backend": jax.default_backend()}
  path = report.write_json(args.out / f"{name}.json", results)
  report.save_figure(_figure(results), args.out / f"{name}.png")
  rows = []
  for c in cases:
    low, high = c["interval"] if c["interval"] else (math.nan, math.nan)
    paper = PAPER.get(c["gamma"], {}) if args.width == 100 and args.depth == 100 else {}
    rows.append([f"{c['gamma']:g}", c["reading"], c["model"], f"{c['std_ratio']:.3g}", f"{c['zeta']:g}",
                 f"{c['mean']:.4f} [{low:.4f}, {high:.4f}]", f"{c['proof_sparsity_mean']:.4f}",
                 f"{c['proposition4']['bound']:.4f}", str(paper.get("measured", "-")), str(paper.get("bound", "-")),
                 f"{c['l0_first_fraction']:.2f}", f"{c['proposition5']:.3f}"])
  print(report.format_table(["γ", "reading", "model", "r", "ζ", "E[s_cr] [95% CI]", "proof's s", "Prop.4",
                             "[R] meas.", "[R] bound", "P(l0 first)", "Prop.5 ≥"], rows))
  diffs = [c["max_abs_diff_numpy_vs_theory"] for c in cases if c["max_abs_diff_numpy_vs_theory"] is not None]
  print(f"NumPy s_cr vs theory.sparsity.critical_sparsity on the square networks: max |diff| = {max(diffs):.3g}")
  print(f"wrote {path} and {args.out / (name + '.png')} ({seconds:.0f} s)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
