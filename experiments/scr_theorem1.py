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
import math
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
from mfprune import data, functional, masks, pipeline, report, scores, signal  # noqa: E402
from theory import gradients, sparsity  # noqa: E402

PAPER = {"kappa": 0.2, "bound": 0.27, "measured": 0.22, "depth": 100, "width": 100}
"""[R] §2.2, Theorem 1's example."""
DEFAULT_KAPPAS = (0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6)


def _parse(text: str, kind=float) -> list:
  return [kind(v) for v in text.split(",") if v.strip()]


# ---------------------------------------------------------------------------------------------------------------
# Shared with scr_vs_sigma.py.
# ---------------------------------------------------------------------------------------------------------------


def load_batch(name: str, batch_size: int, seed: int):
  """``(splits, batch)``: digits (8×8, 64 inputs) or synthetic data of the MNIST shape (28×28×1)."""
  if name == "synthetic":
    splits = data.load_splits("synthetic", input_shape=(28, 28, 1), size=max(1024, batch_size))
  else:
    splits = data.load_splits(name)
  return splits, splits.train.batch(batch_size, seed=seed)


def mlp_widths(splits, depth: int, width: int) -> list[int]:
  """``N_0..N_L`` of the registry MLP: inputs, ``depth − 1`` hidden layers, the classes."""
  return [math.prod(splits.input_shape)] + [width] * (depth - 1) + [splits.num_classes]


def input_q1(batch, sigma_b: float, sigma_w: float) -> float:
  """First-layer variance ``σb² + σw² ‖x‖²/d`` averaged over the batch ([R] App. A; THEORY.md §2)."""
  x = np.asarray(batch[0], np.float64).reshape(len(batch[0]), -1)
  return sigma_b**2 + sigma_w**2 * float(np.mean(x**2))


def t_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float] | None:
  """Student-t interval of the mean (as ``signal.critical_sparsity`` computes it)."""
  from scipy import stats

  if values.size < 2:
    return None
  half = stats.t.ppf(0.5 + confidence / 2, values.size - 1) * values.std(ddof=1) / math.sqrt(values.size)
  return float(values.mean() - half), float(values.mean() + half)


class ScaledSeeds:
  """Monte-Carlo ``s_cr`` of SNIP over seeds for many σw from one set of draws and one compiled program.

  Seed ``i`` has key ``k_i = split(key(seed), n)[i]`` and parameters ``pipeline.initial_params(init, k_i,
  "gaussian", sigma_w=σw, sigma_b=σb)``, exactly as :func:`mfprune.signal.critical_sparsity` makes them. The
  Gaussian scheme redraws every kernel (``σw Z/√fan_in``) and bias (``σb Z``), so the model's own initial values do
  not matter (a zero tree of the right shapes is used: nothing to compile) and the kernels are linear in σw: they are
  drawn once at σw = 1 and multiplied by σw. The per-network function is
  :func:`mfprune.signal.critical_sparsity_fn` (one SNIP score and one sort per network) under ``jit(vmap)``.
  """

  def __init__(self, apply_fn, init, batch, *, n_seeds: int, seed: int, sigma_b: float, dtype=jnp.float64):
    self.apply_fn, self.batch, self.dtype = apply_fn, batch, dtype
    self.keys = jax.random.split(jax.random.key(seed), n_seeds)
    shapes = jax.eval_shape(init, self.keys[0])
    zeros = lambda key: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    base = [pipeline.initial_params(zeros, k, "gaussian", sigma_w=1.0, sigma_b=sigma_b) for k in self.keys]
    self.unit = jax.tree.map(lambda *leaves: jnp.stack(leaves).astype(dtype), *base)
    first = jax.tree.map(lambda x: x[0], self.unit)
    named = masks.named_leaves(masks.dense_mask(first))
    self.tree_names = [name for name, _ in named]
    self.sizes = np.array([int(np.size(m)) for _, m in named])
    order = functional.layer_order(apply_fn, first, jnp.asarray(batch[0])[:1])
    rank = {name: i for i, name in enumerate(n for n in order if n in self.tree_names)}  # kernels only
    self.network_index = np.array([rank[name] for name in self.tree_names])  # tree position -> network position
    self.layers = sorted(self.tree_names, key=lambda name: rank[name])
    fn = signal.critical_sparsity_fn(apply_fn, "snip", first, sparsities=(0.0,))
    self.program = jax.jit(jax.vmap(fn, in_axes=(0, None, 0)))
    self.score_keys = jax.vmap(lambda k: jax.random.fold_in(k, 2))(self.keys)
    self.inputs = (jnp.asarray(batch[0], dtype), jnp.asarray(batch[1]))

  def params(self, sigma_w: float):
    """The stacked parameters at ``sigma_w``."""
    return jax.tree_util.tree_map_with_path(lambda p, x: x * sigma_w if masks.is_kernel(p, x[0]) else x, self.unit)

  def run(self, sigma_w: float) -> dict:
    """Per-seed ``s_cr``, their mean and 95% interval, the first layer to die, every layer's death sparsity."""
    out = jax.device_get(self.program(self.params(sigma_w), self.inputs, self.score_keys))
    if not np.asarray(out.finite).all():
      raise ValueError(f"SNIP scores are not finite at sigma_w = {sigma_w}")
    ranks = np.asarray(out.death_rank, np.int64)  # (seeds, layers) in tree order
    total = int(self.sizes.sum())
    death = np.empty_like(ranks, dtype=np.float64)
    death[:, self.network_index] = 1.0 - ranks / total  # network order
    values = death.min(axis=1)
    first = death.argmin(axis=1)
    return {"sigma_w": sigma_w, "values": values, "mean": float(values.mean()),
            "std": float(values.std(ddof=1)) if values.size > 1 else None, "interval": t_interval(values),
            "first_dead_index": first.tolist(), "death_sparsity_mean": death.mean(axis=0),
            "death_sparsity_min": death.min(axis=0), "death_sparsity_max": death.max(axis=0)}


def product_law_mean(m, sizes, points: int = 257) -> float:
  """``E[s_cr]`` for iid product scores ``√m_l |X Y|`` in layers of ``M_l`` weights (extreme values).

  The formula of :func:`theory.sparsity.critical_sparsity_from_moments`, ``P(s_cr > s) = Π_l (1 − (1 −
  p_l(s))^{M_l})`` with ``p_l`` from :func:`theory.sparsity.kept_fraction_from_moments`, integrated by the trapezoid
  rule on ``2·points − 1`` sparsities (uniform, joined with a grid uniform in ``−log(1 − s)``), about 30× faster at
  L = 100 than the library's 3000-point grid.
  """
  sizes = np.asarray(sizes, np.float64)
  total = float(sizes.sum())
  top = 1.0 - 1.0 / total
  grid = np.unique(np.clip(np.concatenate([np.linspace(0.0, top, points),
                                           -np.expm1(-np.linspace(0.0, math.log(total), points))]), 0.0, top))
  shares = np.asarray(sparsity.kept_fraction_from_moments(m, sizes, grid, score_law="product"), np.float64)
  with np.errstate(divide="ignore"):  # a share of exactly 1 (s = 0): log(0) = -inf, the layer is never empty
    log_empty = sizes * np.log1p(-np.minimum(shares, 1.0))
  alive = np.prod(-np.expm1(np.minimum(log_empty, 0.0)), axis=1)
  return float(np.sum(0.5 * (alive[1:] + alive[:-1]) * np.diff(grid)))


def predictions(splits, batch, *, depth: int, width: int, sigma_b: float, sigma_w: float,
                library_product: bool = False) -> dict:
  """Mean-field ``E[s_cr]``: Gaussian scores (library), product scores (:func:`product_law_mean`; and the library's
  if ``library_product``), with the real layer sizes and the batch's ``q1``."""
  widths = mlp_widths(splits, depth, width)
  q1 = input_q1(batch, sigma_b, sigma_w)
  gaussian = sparsity.predicted_critical_sparsity("tanh", sigma_b=sigma_b, sigma_w=sigma_w, depth=depth,
                                                  widths=widths, q1=q1)
  m = gradients.gradient_moments("tanh", sigma_b, sigma_w, depth, q1=q1, widths=widths).m
  sizes = np.asarray(widths[:-1], np.float64) * np.asarray(widths[1:], np.float64)
  out = {"q1": q1, "gaussian": gaussian.to_dict(), "product_mean": product_law_mean(m, sizes)}
  if library_product:
    start = time.perf_counter()
    library = sparsity.critical_sparsity_from_moments(m, sizes, score_law="product")
    out["product_library"] = library.to_dict()
    out["product_library_seconds"] = time.perf_counter() - start
  return out


def bounds(depth: int, width: int, sigma_b: float, sigma_w: float) -> dict:
  """Theorem 1's leading term, natural log and log10 (``theory.sparsity.theorem1_bound``)."""
  return {base: sparsity.theorem1_bound(depth=depth, width=width, activation="tanh", sigma_b=sigma_b,
                                        sigma_w=sigma_w, log_base=value).to_dict()
          for base, value in (("ln", math.e), ("log10", 10.0))}


# ---------------------------------------------------------------------------------------------------------------


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
  seeds = ScaledSeeds(apply_fn, init, batch, n_seeds=args.seeds, seed=args.seed, sigma_b=args.sigma_b,
                      dtype=jnp.float32)
  result = seeds.run(sigma_w)
  params = jax.tree.map(lambda x: x[0], seeds.params(sigma_w))
  snip = scores.score("snip", apply_fn, params, masks.dense_mask(params), seeds.inputs)
  named = dict(masks.named_leaves(snip))
  first = np.asarray(named[seeds.layers[0]])
  return {"values": result["values"], "mean": result["mean"], "interval": result["interval"],
          "layer1_zero_scores": int(np.count_nonzero(first == 0)), "layer1_size": int(first.size),
          "layer1_max_score": float(first.max())}


def plot_measured_and_predicted(ax, x: np.ndarray, rows: list[dict], seeds: int) -> None:
  """Per-network s_cr (dots), their mean with its 95% interval, and the two mean-field predictions, against ``x``."""
  means = np.array([r["mc"]["mean"] for r in rows])
  low = np.array([r["mc"]["interval"][0] for r in rows])
  high = np.array([r["mc"]["interval"][1] for r in rows])
  for x_value, r in zip(x, rows):
    ax.plot([x_value] * len(r["mc"]["values"]), r["mc"]["values"], ".", color="tab:blue", alpha=0.3, ms=4)
  ax.errorbar(x, means, yerr=[means - low, high - means], fmt="o-", color="tab:blue", capsize=3,
              label=f"SNIP, Monte Carlo ({seeds} nets, 95% CI)")
  ax.plot(x, [r["predicted"]["product_mean"] for r in rows], "-", color="tab:green",
          label="mean field, product scores |XY|")
  ax.plot(x, [r["predicted"]["gaussian"]["mean"] for r in rows], "--", color="tab:green",
          label="mean field, Gaussian scores")


def _figure(results: dict):
  plt = report.pyplot()
  figure, (left, right) = plt.subplots(1, 2, figsize=(12.5, 4.6))
  rows = results["sweep"]
  kappas = np.array([r["kappa"] for r in rows])
  plot_measured_and_predicted(left, kappas, rows, results["seeds"])
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


def add_network_options(parser: argparse.ArgumentParser) -> None:
  """The tanh MLP and Monte-Carlo options shared with ``scr_vs_sigma.py``."""
  parser.add_argument("--depth", type=int, default=100)
  parser.add_argument("--width", type=int, default=100)
  parser.add_argument("--sigma-b", type=float, default=0.2)
  parser.add_argument("--seeds", type=int, default=10)
  parser.add_argument("--data", choices=("digits", "synthetic"), default="digits")
  parser.add_argument("--batch-size", type=int, default=128)
  parser.add_argument("--seed", type=int, default=0)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--kappa", type=float, default=0.2)
  parser.add_argument("--kappas", type=_parse, default=list(DEFAULT_KAPPAS))
  add_network_options(parser)
  parser.add_argument("--quick", action="store_true", help="depth 10, width 32, 3 seeds, κ in {0.1, 0.2, 0.4}")
  parser.add_argument("--out", type=Path, default=ROOT / "experiments" / "results")
  args = parser.parse_args(argv)
  if args.quick:
    args.depth, args.width, args.seeds, args.kappas, args.batch_size = 10, 32, 3, [0.1, 0.2, 0.4], 32
  if args.kappa not in args.kappas:
    args.kappas = sorted(args.kappas + [args.kappa])
  name = "scr_theorem1" + ("_quick" if args.quick else "")
  timings = {}
  start = time.perf_counter()
  splits, batch = load_batch(args.data, args.batch_size, args.seed)
  apply_fn, init = pipeline.model_fns("mlp", input_shape=splits.input_shape, num_classes=splits.num_classes,
                                      depth=args.depth, width=args.width, activation="tanh")
  sigma_w, kappa = sigma_w_for_kappa(args.kappa, depth=args.depth, width=args.width, sigma_b=args.sigma_b)
  bound = bounds(args.depth, args.width, args.sigma_b, sigma_w)
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
  main_prediction = predictions(splits, batch, depth=args.depth, width=args.width, sigma_b=args.sigma_b,
                                sigma_w=sigma_w, library_product=True)
  timings["predictions_at_kappa"] = time.perf_counter() - t

  # 2. The κ sweep from one set of draws.
  t = time.perf_counter()
  seeds = ScaledSeeds(apply_fn, init, batch, n_seeds=args.seeds, seed=args.seed, sigma_b=args.sigma_b)
  sweep = []
  for k in args.kappas:
    sw, reached = (sigma_w, kappa) if k == args.kappa else sigma_w_for_kappa(k, depth=args.depth, width=args.width,
                                                                              sigma_b=args.sigma_b)
    mc = seeds.run(sw)
    pred = main_prediction if k == args.kappa else predictions(splits, batch, depth=args.depth, width=args.width,
                                                               sigma_b=args.sigma_b, sigma_w=sw)
    sweep.append({"kappa": reached, "kappa_asked": k, "sigma_w": sw, "mc": mc, "predicted": pred,
                  "bounds": bounds(args.depth, args.width, args.sigma_b, sw)})
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
      "depth": args.depth, "width": args.width, "widths": mlp_widths(splits, args.depth, args.width),
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
