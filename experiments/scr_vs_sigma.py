"""Experiment: SNIP's critical sparsity of a deep tanh MLP against σw, across the ordered phase, the EOC and chaos.

[R] §2.2 (Theorem 1, Definition 1): off the edge of chaos the SBP score profile ``m_l`` is exponential in depth, so
global pruning empties the layers at one end early (the input end in the ordered phase, the output end in the
chaotic phase); on the EOC the profile is flat and ``s_cr`` is close to 1. This sweeps σw through all three.

How: the registry MLP (tanh, L = 100 dense layers, width 100; 64 digit inputs, 10 outputs) at σb = 0.2 and 13 values
of σw from 0.5 to 2 times theory's ``σw_EOC`` (``theory.eoc_sigma_w``, 1.3041 at σb = 0.2), SNIP on one batch of
128 digits, 10 networks per σw, float64 (the ordered-phase scores span more than float32's range; see
``scr_theorem1.py``). The Monte Carlo is ``_common.ScaledSeeds``: the networks
:func:`mfprune.signal.critical_sparsity` would draw (same keys), drawn once at σw = 1 and rescaled, scored by
:func:`mfprune.signal.critical_sparsity_fn` under ``jit(vmap)`` (one compiled program for all σw). At the EOC point
:func:`mfprune.signal.critical_sparsity` itself also runs with ``init_scheme="eoc"`` as a check (``--no-check``
skips it, ~50 s). Theory at every σw: the mean-field prediction of ``E[s_cr]`` with Gaussian scores
(``theory.sparsity.predicted_critical_sparsity``) and with product scores ``|X Y|`` (same formula, integrated on a
coarser grid, ``_common.product_law_mean``), with the real layer sizes and the batch's ``q1``; [R] Theorem 1's
bound (natural log and log10) off the EOC, where it is not vacuous; and the layer predicted to die first.

Results: ``experiments/results/scr_vs_sigma.json`` (atomic), ``scr_vs_sigma.png`` (left: E[s_cr] against σw with the
EOC marked; right: which layer dies first) and a table. About 4 minutes on two CPU cores.

Run: ``.venv/bin/python experiments/scr_vs_sigma.py [--ratios 0.5,0.7,...,2] [--depth 100] [--width 100]
[--sigma-b 0.2] [--seeds 10] [--data digits|synthetic] [--batch-size 128] [--seed 0] [--no-check] [--quick]
[--out experiments/results]``. ``--quick``: depth 10, width 32, 3 seeds, 5 values of σw (under a minute).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)  # before any array is made: the ordered-phase scores need float64

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import theory  # noqa: E402
from experiments import _common  # noqa: E402
from mfprune import pipeline, report, signal  # noqa: E402

DEFAULT_RATIOS = (0.5, 0.7, 0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.2, 1.35, 1.5, 1.75, 2.0)
"""σw / σw_EOC."""


def _figure(results: dict):
  plt = report.pyplot()
  figure, (left, right) = plt.subplots(1, 2, figsize=(12.5, 5.4), gridspec_kw={"width_ratios": [1.35, 1]})
  rows = results["points"]
  sw = np.array([r["sigma_w"] for r in rows])
  eoc = results["sigma_w_eoc"]
  for ax in (left, right):
    ax.axvspan(sw.min() * 0.97, eoc, color="tab:blue", alpha=0.05, lw=0)
    ax.axvspan(eoc, sw.max() * 1.03, color="tab:orange", alpha=0.06, lw=0)
    ax.axvline(eoc, color="k", lw=1.2, ls="--")
    ax.set_xlim(sw.min() * 0.97, sw.max() * 1.03)
    ax.set_xlabel("σw")
    ax.grid(alpha=0.3)
  _common.plot_measured_and_predicted(left, sw, rows, results["seeds"])
  for base, style in (("ln", "-"), ("log10", ":")):
    values = [r["bounds"][base]["leading"] if not r["bounds"][base]["vacuous"] else np.nan for r in rows]
    left.plot(sw, values, style, color="tab:red", marker="s", ms=3,
              label=f"Theorem 1 bound, {'natural log' if base == 'ln' else 'log10'} (where < 1)")
  left.set_ylim(0, 1.03)
  left.set_ylabel("E[s_cr]")
  left.text(0.02, 0.04, "ordered (χ < 1)", transform=left.transAxes, fontsize=8, color="tab:blue")
  left.text(0.98, 0.04, "chaotic (χ > 1)", transform=left.transAxes, fontsize=8, color="tab:orange", ha="right")
  left.text(eoc, 1.035, f"EOC σw = {eoc:.4f}", ha="center", va="bottom", fontsize=8)
  left.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
  depth = results["depth"]
  for r in rows:
    first = np.array(r["mc"]["first_dead_index"]) + 1
    right.plot(np.full(first.shape, r["sigma_w"]), first, "o", color="tab:blue", alpha=0.35, ms=4)
  right.plot(sw, [np.mean(np.array(r["mc"]["first_dead_index"]) + 1) for r in rows], "-", color="tab:blue",
             label="first layer emptied (each net; line: mean)")
  right.plot(sw, [r["predicted"]["gaussian"]["first_layer"] + 1 for r in rows], "x--", color="tab:green",
             label="mean field (Gaussian scores), most likely first")
  right.set_ylim(0, depth + 1)
  right.set_ylabel(f"layer (1 = input, {depth} = read-out)")
  right.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=1)
  figure.suptitle(f"SNIP critical sparsity of a tanh MLP, L = {depth}, N = {results['width']}, σb = "
                  f"{results['sigma_b']}, {results['data']} batch of {results['batch_size']}, float64", fontsize=10)
  figure.tight_layout()
  return figure


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--ratios", type=_common.parse_list, default=list(DEFAULT_RATIOS), help="σw / σw_EOC")
  _common.add_network_options(parser)
  parser.add_argument("--no-check", action="store_true", help="skip signal.critical_sparsity at the EOC")
  parser.add_argument("--quick", action="store_true", help="depth 10, width 32, 3 seeds, 5 σw")
  parser.add_argument("--out", type=Path, default=_common.RESULTS)
  args = parser.parse_args(argv)
  if args.quick:
    args.depth, args.width, args.seeds, args.batch_size = 10, 32, 3, 32
    args.ratios = [0.5, 0.9, 1.0, 1.1, 2.0]
  name = "scr_vs_sigma" + ("_quick" if args.quick else "")
  start = time.perf_counter()
  splits, batch = _common.load_batch(args.data, args.batch_size, args.seed)
  apply_fn, init = pipeline.model_fns("mlp", input_shape=splits.input_shape, num_classes=splits.num_classes,
                                      depth=args.depth, width=args.width, activation="tanh")
  sigma_w_eoc = float(theory.eoc_sigma_w("tanh", args.sigma_b))
  seeds = _common.ScaledSeeds(apply_fn, init, batch, n_seeds=args.seeds, seed=args.seed, sigma_b=args.sigma_b)
  points = []
  for ratio in args.ratios:
    sigma_w = ratio * sigma_w_eoc
    t = time.perf_counter()
    mc = seeds.run(sigma_w)
    mc_seconds = time.perf_counter() - t
    t = time.perf_counter()
    predicted = _common.predictions(splits, batch, depth=args.depth, width=args.width, sigma_b=args.sigma_b,
                                    sigma_w=sigma_w)
    phase = theory.phase("tanh", args.sigma_b, sigma_w)
    points.append({"ratio": ratio, "sigma_w": sigma_w, "chi": float(phase.chi), "mc": mc, "predicted": predicted,
                   "bounds": _common.bounds(args.depth, args.width, args.sigma_b, sigma_w),
                   "mc_seconds": mc_seconds, "theory_seconds": time.perf_counter() - t})
    print(f"  σw = {sigma_w:.4f} ({ratio:g} σw_EOC, χ = {float(phase.chi):.4f}): E[s_cr] = {mc['mean']:.4f}, "
          f"product {predicted['product_mean']:.4f}, gaussian {predicted['gaussian']['mean']:.4f} "
          f"({time.perf_counter() - start:.0f} s)", flush=True)
  check = None
  if not args.no_check and 1.0 in args.ratios:
    t = time.perf_counter()
    at_eoc = signal.critical_sparsity(apply_fn, init, "snip", n_seeds=args.seeds, batch=batch, key=args.seed,
                                      init_scheme="eoc", init_options={"activation": "tanh",
                                                                       "sigma_b": args.sigma_b})
    sweep = next(p for p in points if p["ratio"] == 1.0)["mc"]
    check = {"mean": at_eoc.mean, "interval": at_eoc.interval, "values": at_eoc.values,
             "first_dead_counts": at_eoc.first_dead_counts,
             "max_abs_diff_vs_sweep": float(np.max(np.abs(at_eoc.values - sweep["values"]))),
             "seconds": time.perf_counter() - t}
    print(f"  check: signal.critical_sparsity(init_scheme='eoc') E[s_cr] = {at_eoc.mean:.5f} "
          f"(sweep {sweep['mean']:.5f}, max |diff| {check['max_abs_diff_vs_sweep']:.2g}; {check['seconds']:.0f} s)")
  seconds = time.perf_counter() - start
  results = {"experiment": "SNIP critical sparsity of a tanh MLP against sigma_w (ordered, EOC, chaotic)",
             "data": splits.name, "depth": args.depth, "width": args.width,
             "widths": _common.mlp_widths(splits, args.depth, args.width), "sigma_b": args.sigma_b,
             "sigma_w_eoc": sigma_w_eoc, "seeds": args.seeds, "seed": args.seed, "batch_size": args.batch_size,
             "dtype": "float64", "layers": seeds.layers, "points": points, "eoc_check": check, "seconds": seconds,
             "load_average": os.getloadavg()[0], "backend": jax.default_backend()}
  path = report.write_json(args.out / f"{name}.json", results)
  report.save_figure(_figure(results), args.out / f"{name}.png")
  rows = []
  for p in points:
    mc, b = p["mc"], p["bounds"]
    first = np.bincount(mc["first_dead_index"], minlength=args.depth)
    rows.append([f"{p['ratio']:g}", f"{p['sigma_w']:.4f}", f"{p['chi']:.4f}",
                 f"{mc['mean']:.4f} [{mc['interval'][0]:.4f}, {mc['interval'][1]:.4f}]",
                 f"{p['predicted']['product_mean']:.4f}", f"{p['predicted']['gaussian']['mean']:.4f}",
                 "-" if b["ln"]["vacuous"] else f"{b['ln']['leading']:.4f}",
                 "-" if b["log10"]["vacuous"] else f"{b['log10']['leading']:.4f}",
                 f"{int(np.argmax(first)) + 1} ({int(first.max())}/{args.seeds})",
                 p["predicted"]["gaussian"]["first_layer"] + 1])
  print(report.format_table(["σw/EOC", "σw", "χ", "E[s_cr] MC [95% CI]", "pred. product", "pred. gauss",
                             "bound ln", "bound log10", "first dead (MC)", "first (theory)"], rows))
  print(f"wrote {path} and {args.out / (name + '.png')} ({seconds:.0f} s)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
