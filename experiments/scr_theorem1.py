"""Experiment: [R] Theorem 1's example — SNIP's critical sparsity of a deep tanh FFNN in the ordered phase.

[R] §2.2: for an FFNN of depth L and width N initialised in the ordered phase (χ < 1),
``E[s_cr] <= (1/L)(1 + log(κ L N²)/κ) + O(1/(κ² √(L N²)))`` with ``κ = |log χ|/8``; "for constant width FFNN with
L = 100, N = 100 and κ = 0.2, the theoretical upper bound is E[s_cr] ≈ 27% while we obtain E[s_cr] ≈ 22% based on
10 simulations". The leading term is 62.0% with the natural log (the proof's) and 27.5% with log10 (THEORY.md §3).

How: a tanh MLP (``mfprune.models`` "mlp") of depth L = 100 (L dense layers, the last the linear read-out) and width
N = 100, on a batch of 128 of the embedded 8×8 digits (64 inputs; ``--data synthetic`` for MNIST-shaped 28×28 random
data), Gaussian initialisation with σb = 0.2 (σb > 0, THEORY.md §3) and the σw of the ordered phase at which
theory's χ (at the stable q*, ``theory.sparsity.theorem1_bound``) gives κ = 0.2, found by root finding
(``--kappa``). SNIP scores; the exact ``s_cr`` of each network. All in float64 (``jax_enable_x64``): at κ = 0.2 the
scores fall by ``√χ = e^{-0.8}`` per layer, ``e^{-80}`` over the net, past float32's range (in float32 about half of
layer 1's scores are exactly 0; the script measures what float32 gives as well).

* The κ = 0.2 point: :func:`mfprune.signal.critical_sparsity` over 10 networks (Student-t 95% interval, first layer to
  die, per-layer death sparsities).
* A sweep over κ (σw in the ordered phase): the same Monte Carlo through :func:`mfprune.signal.critical_sparsity_fn`
  under ``jit(vmap)``, on parameters drawn once at σw = 1 and rescaled (the Gaussian initialisation is linear in σw:
  ``W = σw Z/√fan_in``, same keys, same biases), so one program serves every σw; re-initialising per σw through
  ``critical_sparsity`` would recompile the initialisation (~30 s each). The κ = 0.2 sweep point repeats the
  ``critical_sparsity`` networks and must give the same values (checked).
* Theory at every κ: the bound (natural log and log10) and the mean-field prediction of ``E[s_cr]``
  (``theory.sparsity``): Gaussian scores (``predicted_critical_sparsity``) and product scores ``|X Y|``. The
  library's product-law ``critical_sparsity_from_moments`` takes ~30 s per call at L = 100 (a 3000-point grid with a
  48-node quadrature inside a 44-step bisection per point), so the sweep integrates
  ``P(s_cr > s) = Π_l (1 − (1 − p_l(s))^{M_l})`` itself from ``kept_fraction_from_moments`` on a 513-point grid;
  at κ = 0.2 both are computed and compared.

Results: ``experiments/results/scr_theorem1.json`` (atomic) and ``scr_theorem1.png`` (left: E[s_cr] against κ,
measured and predicted, with both bounds; right: per-layer death sparsity at κ = 0.2). About 4 minutes on two CPU
cores (compiling dominates: ~30 s for the depth-100 initialisation, ~15 s per scoring program).

Run: ``.venv/bin/python experiments/scr_theorem1.py [--kappa 0.2] [--kappas 0.025,0.05,...] [--depth 100]
[--width 100] [--sigma-b 0.2] [--seeds 10] [--data digits|synthetic] [--batch-size 128] [--seed 0] [--quick]
[--out experiments/results]``. ``--quick``: depth 10, width 32, 3 seeds, 3 κ (about a minute).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)  # before any array is made: the ordered-phase scores need float64

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from scipy import optimize  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import theory  # noqa: E402
from experiments import _common  # noqa: E402
from mfprune import masks, pipeline, report, scores, signal  # noqa: E402
from theory import sparsity  # noqa: E402

PAPER = {"kappa": 0.2, "bound": 0.27, "measured": 0.22, "depth": 100, "width": 100}
"""[R] §2.2, Theorem 1's example."""
DEFAULT_KAPPAS = (0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6)


def sigma_w_for_kappa(kappa: float, *, depth: int, width: int, sigma_b: float) -> tuple[float, float]:
  """``(σw, κ reached)``: the ordered-phase σw whose theory χ gives ``|log χ|/8 = kappa`` (Brent's method)."""
  sigma_w_eoc = float(theory.eoc_sigma_w("tanh", sigma_b))

  def kappa_of(sigma_w: float) -> float:
    return sparsity.theorem1_bound(depth=depth, width=width, activation="tanh", sigma_b=sigma_b,
                                   sigma_w=sigma_w).kappa

  low, high = 1e-3, sigma_w_eoc * (1 - 1e-6)  # κ falls from large (χ → 0) to 0 on the EOC
  if kappa_of(low) < kappa:  # not reachable: report the closest
    return low, kappa_of(low)
  sigma_w = optimize.brentq(lambda s: kappa_of(s) - kappa, low, high, xtol=1e-10)
  return float(sigma_w), kappa_of(sigma_w)


def float32_check(apply_fn, init, batch, args, sigma_w: float) -> dict:
  """The κ point's Monte Carlo in float32, and how many of seed 0's layer-1 SNIP scores are 0 there."""
  seeds = _common.ScaledSeeds(apply_fn, init, batch, n_seeds=args.seeds, seed=args.seed, sigma_b=args.sigma_b,
                              dtype=jnp.float32)
  result = seeds.run(sigma_w)
  params = jax.tree.map(lambda x: x[0], seeds.params(sigma_w))
  snip = scores.score("snip", apply_fn, params, masks.dense_mask(params), seeds.inputs)
  named = dict(masks.named_leaves(snip))
  first = np.asarray(named[seeds.layers[0]])
  return {"values": result["values"], "mean": result["mean"], "interval": result["interval"],
          "layer1_zero_scores": int(np.count_nonzero(first == 0)), "layer1_size": int(first.size),
          "layer1_max_score": float(first.max())}


def _figure(results: dict):
  plt = report.pyplot()
  figure, (left, right) = plt.subplots(1, 2, figsize=(12.5, 4.6))
  rows = results["sweep"]
  kappas = np.array([r["kappa"] for r in rows])
  _common.plot_measured_and_predicted(left, kappas, rows, results["seeds"])
  left.plot(kappas, [r["bounds"]["ln"]["leading"] for r in rows], "-", color="tab:red",
            label="Theorem 1 bound, natural log")
  left.plot(kappas, [r["bounds"]["log10"]["leading"] for r in rows], ":", color="tab:red",
            label="Theorem 1 bound, log10")
  if results["depth"] == PAPER["depth"] and results["width"] == PAPER["width"]:
    left.plot([PAPER["kappa"]], [PAPER["bound"]], "k^", ms=8, label="[R] bound ≈ 27%")
    left.plot([PAPER["kappa"]], [PAPER["measured"]], "kx", ms=9, mew=2, label="[R] measured ≈ 22%")
  left.set_xscale("log")
  left.set_xticks(kappas, [f"{k:g}" for k in kappas], fontsize=7)
  left.xaxis.set_minor_formatter(plt.NullFormatter())
  left.set_ylim(0, 1.02)
  left.set_xlabel("κ = |log χ| / 8   (σw from theory's χ; ordered phase)")
  left.set_ylabel("E[s_cr]")
  left.grid(alpha=0.3)
  left.legend(fontsize=7, loc="upper right")
  top = left.twiny()  # the σw of each κ
  top.set_xscale("log")
  top.set_xlim(left.get_xlim())
  top.set_xticks(kappas, [f"{r['sigma_w']:.2f}" for r in rows], fontsize=7)
  top.xaxis.set_minor_locator(plt.NullLocator())
  top.set_xlabel("σw", fontsize=8)
  main = results["main"]
  death_mean = np.array(main["death_sparsity_mean"])
  layers = np.arange(1, death_mean.size + 1)
  right.fill_between(layers, main["death_sparsity_min"], main["death_sparsity_max"], color="tab:blue", alpha=0.2,
                     lw=0, label="range over networks")
  right.plot(layers, death_mean, "-", color="tab:blue", label="sparsity at which layer l is emptied (mean)")
  right.axhline(main["mean"], color="tab:blue", ls="--", lw=1, label=f"E[s_cr] = {main['mean']:.3f} (MC)")
  right.axhline(results["bounds"]["ln"]["leading"], color="tab:red", lw=1,
                label=f"bound, ln: {results['bounds']['ln']['leading']:.3f}")
  right.axhline(results["bounds"]["log10"]["leading"], color="tab:red", ls=":", lw=1,
                label=f"bound, log10: {results['bounds']['log10']['leading']:.3f}")
  if results["depth"] == PAPER["depth"] and results["width"] == PAPER["width"]:
    right.axhline(PAPER["measured"], color="k", ls="-.", lw=1, label="[R] measured 0.22")
  right.set_xlabel("layer l (1 = input layer)")
  right.set_ylabel("death sparsity 1 − R_l / M")
  right.set_ylim(0, 1.02)
  right.set_xlim(1, layers[-1])
  right.grid(alpha=0.3)
  right.legend(fontsize=7, loc="lower right")
  right.set_title(f"κ = {results['kappa']:.3g} (σw = {results['sigma_w']:.4f}, χ = {results['chi']:.4f})",
                  fontsize=10)
  figure.suptitle(f"[R] Theorem 1: SNIP on a tanh MLP, L = {results['depth']}, N = {results['width']}, "
                  f"σb = {results['sigma_b']}, {results['data']} batch of {results['batch_size']}, float64",
                  fontsize=10)
  figure.tight_layout()
  return figure


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--kappa", type=float, default=0.2)
  parser.add_argument("--kappas", type=_common.parse_list, default=list(DEFAULT_KAPPAS))
  _common.add_network_options(parser)
  parser.add_argument("--quick", action="store_true", help="depth 10, width 32, 3 seeds, κ in {0.1, 0.2, 0.4}")
  parser.add_argument("--out", type=Path, default=_common.RESULTS)
  args = parser.parse_args(argv)
  if args.quick:
    args.depth, args.width, args.seeds, args.kappas, args.batch_size = 10, 32, 3, [0.1, 0.2, 0.4], 32
  if args.kappa not in args.kappas:
    args.kappas = sorted(args.kappas + [args.kappa])
  name = "scr_theorem1" + ("_quick" if args.quick else "")
  timings = {}
  start = time.perf_counter()
  splits, batch = _common.load_batch(args.data, args.batch_size, args.seed)
  apply_fn, init = pipeline.model_fns("mlp", input_shape=splits.input_shape, num_classes=splits.num_classes,
                                      depth=args.depth, width=args.width, activation="tanh")
  sigma_w, kappa = sigma_w_for_kappa(args.kappa, depth=args.depth, width=args.width, sigma_b=args.sigma_b)
  bound = _common.bounds(args.depth, args.width, args.sigma_b, sigma_w)
  print(f"κ = {kappa:.6g} at σw = {sigma_w:.6f} (σb = {args.sigma_b}, χ = {bound['ln']['chi']:.6f}); "
        f"bounds: ln {bound['ln']['leading']:.4f}, log10 {bound['log10']['leading']:.4f}", flush=True)

  # 1. The example's point through mfprune.signal.critical_sparsity.
  t = time.perf_counter()
  main_result = signal.critical_sparsity(apply_fn, init, "snip", n_seeds=args.seeds, batch=batch, key=args.seed,
                                         init_scheme="gaussian",
                                         init_options={"sigma_w": sigma_w, "sigma_b": args.sigma_b})
  timings["critical_sparsity_call"] = time.perf_counter() - t
  low, high = main_result.interval
  print(f"signal.critical_sparsity: E[s_cr] = {main_result.mean:.4f} [{low:.4f}, {high:.4f}] "
        f"({timings['critical_sparsity_call']:.0f} s); first to die: {main_result.first_dead_counts}", flush=True)
  death = main_result.death_sparsity
  main = {"mean": main_result.mean, "std": main_result.std, "interval": main_result.interval,
          "values": main_result.values, "first_dead_counts": main_result.first_dead_counts,
          "layers": main_result.layers, "layer_sizes": main_result.layer_sizes,
          "death_sparsity_mean": death.mean(axis=0), "death_sparsity_min": death.min(axis=0),
          "death_sparsity_max": death.max(axis=0)}
  t = time.perf_counter()
  main_prediction = _common.predictions(splits, batch, depth=args.depth, width=args.width, sigma_b=args.sigma_b,
                                sigma_w=sigma_w, library_product=True)
  timings["predictions_at_kappa"] = time.perf_counter() - t

  # 2. The κ sweep from one set of draws.
  t = time.perf_counter()
  seeds = _common.ScaledSeeds(apply_fn, init, batch, n_seeds=args.seeds, seed=args.seed, sigma_b=args.sigma_b)
  sweep = []
  for k in args.kappas:
    sw, reached = (sigma_w, kappa) if k == args.kappa else sigma_w_for_kappa(k, depth=args.depth, width=args.width,
                                                                              sigma_b=args.sigma_b)
    mc = seeds.run(sw)
    pred = main_prediction if k == args.kappa else _common.predictions(splits, batch, depth=args.depth,
                                                                       width=args.width, sigma_b=args.sigma_b,
                                                                       sigma_w=sw)
    sweep.append({"kappa": reached, "kappa_asked": k, "sigma_w": sw, "mc": mc, "predicted": pred,
                  "bounds": _common.bounds(args.depth, args.width, args.sigma_b, sw)})
    print(f"  κ = {reached:.4g} (σw = {sw:.4f}): E[s_cr] = {mc['mean']:.4f}, product {pred['product_mean']:.4f}, "
          f"gaussian {pred['gaussian']['mean']:.4f}, bound ln {sweep[-1]['bounds']['ln']['leading']:.4f} "
          f"({time.perf_counter() - start:.0f} s)", flush=True)
  timings["sweep"] = time.perf_counter() - t
  same = next(r for r in sweep if r["kappa_asked"] == args.kappa)["mc"]
  check = {"max_abs_diff": float(np.max(np.abs(same["values"] - main_result.values))),
           "same_first_dead": [main_result.layers[i] for i in same["first_dead_index"]] == list(
               main_result.first_dead)}

  # 3. float32 at the example's point.
  t = time.perf_counter()
  f32 = float32_check(apply_fn, init, batch, args, sigma_w)
  timings["float32_check"] = time.perf_counter() - t
  seconds = time.perf_counter() - start

  results = {
      "experiment": "[R] Theorem 1 example: SNIP on a tanh MLP in the ordered phase", "data": splits.name,
      "depth": args.depth, "width": args.width, "widths": _common.mlp_widths(splits, args.depth, args.width),
      "sigma_b": args.sigma_b, "kappa_asked": args.kappa, "kappa": kappa, "sigma_w": sigma_w,
      "sigma_w_eoc": float(theory.eoc_sigma_w("tanh", args.sigma_b)), "chi": bound["ln"]["chi"],
      "seeds": args.seeds, "seed": args.seed, "batch_size": args.batch_size, "dtype": "float64",
      "paper": PAPER, "bounds": bound, "main": main, "predicted": main_prediction,
      "sweep_matches_critical_sparsity": check, "float32": f32, "sweep": sweep, "timings": timings,
      "seconds": seconds, "load_average": os.getloadavg()[0], "backend": jax.default_backend()}
  path = report.write_json(args.out / f"{name}.json", results)
  report.save_figure(_figure(results), args.out / f"{name}.png")

  print(report.format_table(
      ["κ", "σw", "χ", "E[s_cr] MC [95% CI]", "pred. product", "pred. gaussian", "bound ln", "bound log10"],
      [[f"{r['kappa']:.3g}", f"{r['sigma_w']:.4f}", f"{r['bounds']['ln']['chi']:.4f}",
        f"{r['mc']['mean']:.4f} [{r['mc']['interval'][0]:.4f}, {r['mc']['interval'][1]:.4f}]"
        if r["mc"]["interval"] else f"{r['mc']['mean']:.4f}",
        f"{r['predicted']['product_mean']:.4f}", f"{r['predicted']['gaussian']['mean']:.4f}",
        f"{r['bounds']['ln']['leading']:.4f}", f"{r['bounds']['log10']['leading']:.4f}"] for r in sweep]))
  print(f"κ = {kappa:.3g}: critical_sparsity {main_result.mean:.4f} vs sweep {same['mean']:.4f} "
        f"(max |diff| {check['max_abs_diff']:.2g}); float32 {f32['mean']:.4f} ({f32['layer1_zero_scores']} of "
        f"{f32['layer1_size']} layer-1 scores are 0); library product-law prediction "
        f"{main_prediction['product_library']['mean']:.4f} vs {main_prediction['product_mean']:.4f} here "
        f"({main_prediction['product_library_seconds']:.0f} s); [R]: bound 0.27, measured 0.22")
  print(f"wrote {path} and {args.out / (name + '.png')} ({seconds:.0f} s)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
