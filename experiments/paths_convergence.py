"""Experiment: [P] Fig. 1-2 — the Path Kernel trace at initialisation against how far training moves a pruned net.

[P] §5.1 prunes FC-X, ResNet-20 and WideResNet-20 models at initialisation with SNIP, GraSP, SynFlow and SynFlow-L2
at compression ratios 0.5-3 (density ``10^-ratio``), trains them (SGD, η = 0.001) and measures at epoch 60 the
parameter movement ``‖ω_t‖ = ‖θ_t − θ_0‖`` and the output norm ``‖f(X, θ_t)‖``. Fig. 1 plots them against ``Tr Π``
(after one epoch) with the linearised-dynamics curves ``‖ω_t‖ ≈ a(1 − e^{−η Tr(Π) t})`` and ``‖f(X, θ_t)‖ ≈ (1 −
e^{−η Tr(Π) t}) a + e^{−η Tr(Π) t} b`` (THEORY.md §7); Fig. 2 fits ``value ≈ α + β log Tr Π_{θ_0}`` per model and
reports R². Its claims: the values grow log-linearly with ``Tr Π_{θ_0}``, with about the same slope for every model
and different intercepts; SNIP gives the largest ``Tr Π``, GraSP the smallest, SynFlow lies between; the L2 variant
lies closest to the curve.

Miniature (about 6 minutes on two shared CPU cores): digits (8×8, 1437 training images; the evaluation batch X is
the first 256 test images), ReLU MLPs with six hidden layers of width 100 and 300 (``mlp``, depth 7, biases) and a
ResNet-20 (``resnet32`` with depth 20: three stages of three basic blocks, batch norm) at half width (8/16/32
filters, on 8×8 inputs; the full width triples its training time, the ResNets train one after the other), He
(Kaiming) normal kernels, zero biases. Pruners ``snip``, ``grasp`` (one shot, on a training batch of 256),
``synflow``, ``synflow_l2`` (100 rounds), ratios 0.5-3 in steps of 0.5, one seed: 24 nets per family. Every net
trains with the same plain SGD at [P]'s η = 0.001, batch 128, for 300 steps (27 epochs; [P]: 60); the MLPs of one
width train in one vmapped program. At η = 0.01 (tried first) two GraSP-pruned MLPs, whose initial outputs are
10²-10³ times the others', ran away (one to NaN, one to ‖f(X, θ_t) − f(X, θ_0)‖ = 4·10⁴). The choices, and why:

* ``t`` and ``η`` of the curves are the training steps and the SGD learning rate (gradient flow time ``η t``); [P]
  fits "at epoch 60" without saying which unit ``t`` has. ``Tr Π`` is :func:`mfprune.paths.path_kernel_trace` of the
  pruned net (``θ ⊙ mask``, input all ones), at initialisation (Fig. 2) and after one epoch (Fig. 1, as [P]).
* One measurement per net fixes one constant: following :func:`theory.paths.fit_convergence_scale`, ``b`` is the
  net's own initial ``‖f(X, θ_0)‖`` and ``a`` is fitted. [P] says "free parameters a and b for each point"; a curve
  fitted to each point passes through it, so we fit one ``a`` per model family (the median of the per-point ``a_i``
  where the curve has risen, :func:`curve_fit`) and report how far each pruner's nets lie from that curve (mean
  ``|log(value / estimate)|``). The ``‖f‖`` curve is drawn with ``b`` = the family's median ``‖f(X, θ_0)‖``.
* ``‖ω_t‖`` is over the prunable kernels (the path weights; pruned ones stay 0); ``‖ω_t‖`` over all parameters
  (biases and batch-norm parameters too) is stored as well. ``f(X, θ)`` is the logits on X; batch norm normalises
  by X's own statistics at ``θ_0`` and ``θ_t`` alike (training mode, no state update), so both ends are the same
  function of the parameters.
* Nets left with no complete input-output path (a layer emptied, or the kept weights of consecutive layers
  disjoint) have ``Tr Π = 0`` (``log = −inf``; ``null`` in the JSON), and runs that diverge have NaN values: they
  are kept in the JSON and left out of the fits.
* Ours, next to [P]'s fits of ``value`` on ``log Tr Π``: fits of ``log value`` on ``log Tr Π`` (power laws), per
  family, pooled, with a common slope, and per family and pruner; and, as a baseline predictor on the same nets,
  ``log value`` on the log of the kept weight count.

Results: ``paths_convergence.json`` (per net: family, pruner, ratio, kept weights, emptied layers, ``log Tr Π`` at
init and after one epoch, ``log R_pk``, ``log R_sf``, ``‖ω_t‖``, ``‖f(X, θ_0)‖``, ``‖f(X, θ_t)‖``, ``‖f(X, θ_t) −
f(X, θ_0)‖``, test accuracy; the regressions with R²; the Fig. 1 curve fits and distances per pruner; ``log Tr Π``
per pruner and ratio and the order of the pruners), rewritten atomically after every family (``--resume`` keeps the
families done and, when all are, only refits and replots); ``paths_convergence_fig1.png`` (values against ``log Tr
Π`` after one epoch, log scale, with the curves) and ``paths_convergence_fig2.png`` (top: [P]'s fits; bottom: the
log-log fits).

Run: ``.venv/bin/python experiments/paths_convergence.py [--mlp-widths 100,300] [--resnet-width 0.5] [--ratios
0.5,1,1.5,2,2.5,3] [--seeds 1] [--steps 300] [--lr 0.001] [--resume] [--quick] [--out experiments/results]``
(``--resnet-width 0`` leaves the ResNet out). ``--quick``: one MLP of width 32, a quarter-width ResNet-8, ratios 1
and 2, 10 SynFlow rounds, 30 steps (about a minute).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from experiments import _common  # noqa: E402
from mfprune import data, masks, paths, pipeline, pruning, report, train  # noqa: E402
from theory import paths as theory_paths  # noqa: E402

METHODS = ("snip", "grasp", "synflow", "synflow_l2")
LABELS = {"snip": "SNIP", "grasp": "GraSP", "synflow": "SynFlow", "synflow_l2": "SynFlow-L2"}
COLOURS = {"snip": "C3", "grasp": "C1", "synflow": "C0", "synflow_l2": "C2"}
VALUES = {"weight_change": "‖ω_t‖ = ‖θ_t − θ_0‖", "output_norm": "‖f(X, θ_t)‖",
          "output_change": "‖f(X, θ_t) − f(X, θ_0)‖"}
TRACES = {"log_trace_init": "log Tr Π at initialisation", "log_trace_epoch1": "log Tr Π after one epoch"}


# ---------------------------------------------------------------------------------------------------------------
# Fits (Fig. 2: log-linear regressions; Fig. 1: the convergence curves).
# ---------------------------------------------------------------------------------------------------------------


def linear_fit(x: np.ndarray, y: np.ndarray) -> dict:
  """Least squares ``y ≈ α + β x`` with its coefficient of determination ``R² = 1 − SS_res / SS_tot``."""
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  if len(x) < 3 or np.ptp(x) == 0:
    return {"n": int(len(x)), "intercept": None, "slope": None, "r2": None}
  design = np.stack([np.ones_like(x), x], axis=1)
  coef, *_ = np.linalg.lstsq(design, y, rcond=None)
  residual = y - design @ coef
  total = np.sum((y - y.mean()) ** 2)
  return {"n": int(len(x)), "intercept": float(coef[0]), "slope": float(coef[1]),
          "r2": float(1.0 - np.sum(residual ** 2) / total) if total > 0 else None}


def common_slope_fit(x: np.ndarray, y: np.ndarray, groups: list[str]) -> dict:
  """``y ≈ α_g + β x``: one intercept per group and one shared slope ([P] Fig. 2: "equivalent slopes")."""
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  names = sorted(set(groups))
  if len(x) < len(names) + 2:
    return {"n": int(len(x)), "slope": None, "intercepts": None, "r2": None}
  design = np.stack([np.asarray([g == name for g in groups], np.float64) for name in names] + [x], axis=1)
  coef, *_ = np.linalg.lstsq(design, y, rcond=None)
  residual = y - design @ coef
  total = np.sum((y - y.mean()) ** 2)
  return {"n": int(len(x)), "slope": float(coef[-1]), "intercepts": dict(zip(names, map(float, coef[:-1]))),
          "r2": float(1.0 - np.sum(residual ** 2) / total) if total > 0 else None}


def finite(member: dict, *keys: str) -> bool:
  """Whether every ``member[key]`` is a finite number (``None``: ``−inf`` or NaN after the JSON round trip)."""
  return all(member.get(key) is not None and np.isfinite(member[key]) for key in keys)


def regressions(members: list[dict], trace_key: str, value_key: str, *, log_value: bool = False) -> dict:
  """Fig. 2's fits of ``value`` (or ``log value``) on ``log Tr Π`` per family, pooled, and with a common slope.

  Nets whose trace or value is not finite (an emptied layer: ``Tr Π = 0``; a diverged run: NaN) are left out and
  counted in ``left_out``; with ``log_value`` so are nets that did not move (value 0).
  """
  usable = [m for m in members if finite(m, trace_key, value_key) and (not log_value or m[value_key] > 0)]
  families = sorted({m["family"] for m in usable})
  x = np.asarray([m[trace_key] for m in usable])
  y = np.asarray([m[value_key] for m in usable])
  if log_value:
    y = np.log(y)
  out = {"per_family": {f: linear_fit(x[[m["family"] == f for m in usable]], y[[m["family"] == f for m in usable]])
                        for f in families},
         "pooled": linear_fit(x, y), "common_slope": common_slope_fit(x, y, [m["family"] for m in usable]),
         "left_out": len(members) - len(usable)}
  return out


def _rise(log_trace: np.ndarray, learning_rate: float, t: float) -> np.ndarray:
  """``1 − e^{−η Tr t}`` from ``log Tr`` (float64; Tr = 0 gives 0)."""
  with np.errstate(over="ignore"):
    trace = np.exp(np.asarray(log_trace, np.float64))
  return -np.expm1(-learning_rate * trace * t)


def curve_fit(members: list[dict], trace_key: str, value_key: str, learning_rate: float, t: float) -> dict:
  """One family's Fig. 1 curve: one ``a`` for all its nets, and how far each pruner's nets lie from the curve.

  ``theory.paths.fit_convergence_scale`` gives every net's own ``a_i`` (with ``b_i`` = its initial output norm for
  the ``‖f‖`` curve). The family's ``a`` is the median of the ``a_i`` of the nets with ``g_i = 1 − e^{−η Tr_i t}
  >= 1/2`` (all nets if none), where ``a`` is identified; a least-squares ``a`` would follow the few GraSP nets whose
  values are 10-1000× the others'. The distance of a net to the curve is ``|log(value / estimate)|``. The helper runs
  in float32, so ``log Tr`` is clipped to ``[−80, 80]`` for it; the estimates the distances are measured against are
  the same formula (:func:`theory.paths.convergence_estimate`) in float64.
  """
  usable = [m for m in members if finite(m, trace_key, value_key, "output_norm_init")]
  if not usable:
    return {"scale": None}
  log_trace = np.asarray([m[trace_key] for m in usable])
  value = np.asarray([m[value_key] for m in usable])
  initial = np.asarray([m["output_norm_init"] for m in usable]) if value_key == "output_norm" else None
  per_point = np.asarray(theory_paths.fit_convergence_scale(np.exp(np.clip(log_trace, -80.0, 80.0)), learning_rate,
                                                            t, value, initial=initial).scale, np.float64)
  g = _rise(log_trace, learning_rate, t)
  identified = g >= 0.5 if np.any(g >= 0.5) else np.ones_like(g, bool)
  scale = float(np.median(per_point[identified]))
  offset = np.zeros_like(value) if initial is None else initial
  estimate = g * scale + (1.0 - g) * offset
  with np.errstate(divide="ignore", invalid="ignore"):
    log_ratio = np.log(value / estimate)
  distance = {}
  for method in sorted({m["method"] for m in usable}):
    picked = [i for i, m in enumerate(usable) if m["method"] == method and np.isfinite(log_ratio[i])]
    distance[method] = float(np.mean(np.abs(log_ratio[picked]))) if picked else None
  return {"scale": scale, "offset_median": float(np.median(offset)), "n": len(usable),
          "n_identified": int(np.sum(identified)), "mean_abs_log_ratio_per_method": distance,
          "median_log_ratio": float(np.median(log_ratio[np.isfinite(log_ratio)]))}


def trace_order(members: list[dict], trace_key: str = "log_trace_init") -> dict:
  """Which pruner gives the larger ``Tr Π`` at the same family, ratio and seed ([P] §5.1's SNIP > SynFlow > GraSP).

  Returns ``log Tr Π`` per family, pruner and ratio (mean over seeds; ``−inf``, ``null`` in the JSON, when no path
  is left), and over the cells (family, ratio, seed), the fraction in which each ordered pair holds (``−inf``
  counts as the smallest).
  """
  cells: dict[tuple, dict[str, float]] = {}
  for m in members:
    value = m[trace_key] if m[trace_key] is not None else -math.inf
    cells.setdefault((m["family"], m["ratio"], m["seed"]), {})[m["method"]] = value
  pairs = [("snip", "synflow"), ("snip", "synflow_l2"), ("synflow", "grasp"), ("synflow_l2", "grasp"),
           ("snip", "grasp"), ("synflow_l2", "synflow")]
  fractions = {}
  for a, b in pairs:
    held = [c[a] > c[b] for c in cells.values() if a in c and b in c]
    fractions[f"{a} > {b}"] = float(np.mean(held)) if held else None
  between = [c["snip"] >= c[s] >= c["grasp"] for c in cells.values() for s in ("synflow", "synflow_l2")
             if {"snip", "grasp", s} <= set(c)]
  ratios = sorted({m["ratio"] for m in members})
  per_ratio = {}
  for family in sorted({m["family"] for m in members}):
    per_ratio[family] = {}
    for method in sorted({m["method"] for m in members}, key=lambda name: METHODS.index(name)
                         if name in METHODS else len(METHODS)):
      row = []
      for ratio in ratios:
        values = [m[trace_key] if m[trace_key] is not None else -math.inf for m in members
                  if m["family"] == family and m["method"] == method and m["ratio"] == ratio]
        row.append(float(np.mean(values)) if values else None)
      per_ratio[family][method] = row
  return {"fraction_of_cells": fractions, "snip_ge_synflow_ge_grasp": float(np.mean(between)) if between else None,
          "cells": len(cells), "ratios": ratios, "log_trace_per_ratio": per_ratio}


# ---------------------------------------------------------------------------------------------------------------
# Pruning, training and measuring one model family.
# ---------------------------------------------------------------------------------------------------------------


def _families(args) -> list[dict]:
  families = [{"name": f"FC-{w}", "model": "mlp", "options": {"depth": args.hidden_layers + 1, "width": w,
                                                              "activation": "relu"}} for w in args.mlp_widths]
  if args.resnet_width > 0:
    families.append({"name": f"ResNet-{args.resnet_depth}" + ("" if args.resnet_width == 1 else
                                                              f" ×{args.resnet_width:g}"),
                     "model": "resnet32", "options": {"depth": args.resnet_depth,
                                                      "width_multiplier": args.resnet_width}})
  return families


def _sq_norm(tree) -> float:
  return float(sum(np.sum(np.square(np.asarray(v, np.float64))) for v in jax.tree.leaves(tree)))


def _difference(a, b):
  return jax.tree.map(lambda x, y: np.asarray(x, np.float64) - np.asarray(y, np.float64), a, b)


def _family_point(args, splits, family: dict) -> dict:
  """Prunes, measures ``Tr Π``, trains and measures every (seed, pruner, ratio) net of one family."""
  apply_fn, init = pipeline.model_fns(family["model"], input_shape=splits.input_shape,
                                      num_classes=splits.num_classes, **family["options"])
  model_state = train.initial_model_state(apply_fn)
  forward = jax.jit(lambda p, x: train.apply_model(apply_fn, p, model_state, x, training=True)[0])
  x_eval = jnp.asarray(splits.test.x[:args.eval_size])
  start = time.perf_counter()
  members, thetas, mask_list = [], [], []
  for seed in range(args.seeds):
    params = pipeline.initial_params(init, seed, "he")
    batch = splits.train.batch(args.prune_batch, seed=seed)
    for method in tqdm(args.methods, desc=f"prune {family['name']} seed {seed}", disable=args.no_progress,
                       leave=False):
      rounds = args.rounds if pruning.get_scorer(method).rounds > 1 else 1
      for ratio in args.ratios:
        mask = pruning.prune(apply_fn, params, batch, method=method, sparsity=1.0 - _common.density(ratio), key=seed,
                             rounds=rounds, on_collapse="ignore")
        theta = masks.apply_mask(params, mask)
        pk = paths.path_kernel_trace(apply_fn, theta, splits.input_shape, mask=mask)
        f0 = np.asarray(forward(theta, x_eval), np.float64)
        kept = [d.kept for d in masks.density(mask)]
        members.append({"family": family["name"], "seed": seed, "method": method, "ratio": ratio,
                        "kept": int(sum(kept)), "emptied_layers": len(masks.collapsed_layers(mask)),
                        "log_trace_init": float(pk.log_trace), "log_r_pk": float(pk.log_r_pk),
                        "log_r_sf": float(pk.log_r_sf), "output_norm_init": float(np.linalg.norm(f0))})
        thetas.append(theta)
        mask_list.append(mask)
        members[-1]["_f0"] = f0
  prune_seconds = time.perf_counter() - start

  config = train.TrainConfig(steps=args.steps, batch_size=args.batch_size, optimizer="sgd",
                             learning_rate=args.lr, log_every=max(1, args.steps // 10), eval_every=args.steps, seed=0)
  epoch_steps = min(args.steps, splits.train.steps_per_epoch(args.batch_size))
  captured = {}

  def capture(step, state):
    if step == epoch_steps:  # a copy on the host: the step donates its input buffers
      captured["params"] = jax.device_get(state.params)

  start = time.perf_counter()
  if family["model"] == "mlp":
    result = train.train(apply_fn, train.stack(thetas), train.stack(mask_list), splits, config, ensemble=True,
                         progress=not args.no_progress, callback=capture)
    finals = train.unstack(jax.device_get(result.state.params))
    epoch1 = train.unstack(captured["params"])
    accuracies = result.final["test"]["accuracy"]
  else:
    finals, epoch1, accuracies = [], [], []
    for theta, mask in tqdm(list(zip(thetas, mask_list)), desc=f"train {family['name']}",
                            disable=args.no_progress, leave=False):
      result = train.train(apply_fn, theta, mask, splits, config, progress=False, callback=capture)
      finals.append(jax.device_get(result.state.params))
      epoch1.append(captured["params"])
      accuracies.append(result.final["test"]["accuracy"])
  train_seconds = time.perf_counter() - start

  for member, theta, mask, final, first, accuracy in zip(members, thetas, mask_list, finals, epoch1, accuracies):
    f0 = member.pop("_f0")
    ft = np.asarray(forward(final, x_eval), np.float64)
    kernel_change = _difference(masks.apply_mask(final, mask), masks.apply_mask(theta, mask))
    kernels_only = jax.tree.map(lambda m, d: None if m is None else d, mask, kernel_change,
                                is_leaf=lambda v: v is None)
    pk1 = paths.path_kernel_trace(apply_fn, first, splits.input_shape, mask=mask)
    member.update({"log_trace_epoch1": float(pk1.log_trace),
                   "weight_change": math.sqrt(_sq_norm(kernels_only)),
                   "weight_change_all": math.sqrt(_sq_norm(_difference(final, theta))),
                   "output_norm": float(np.linalg.norm(ft)), "output_change": float(np.linalg.norm(ft - f0)),
                   "test_accuracy": float(accuracy)})
  return {"family": family["name"], "model": family["model"], "options": family["options"],
          "prunable_weights": int(sum(masks.layer_sizes(mask_list[0]))), "members": members,
          "epoch_steps": epoch_steps, "prune_seconds": prune_seconds, "train_seconds": train_seconds,
          "load_average": os.getloadavg()[0]}


def analyse(results: dict) -> dict:
  """Every fit of Fig. 1 and Fig. 2 over the families done so far."""
  members = [m for row in results["families"] for m in row["members"]]
  lr, t = results["learning_rate"], results["steps"]
  fig2 = {trace: {value: regressions(members, trace, value) for value in VALUES} for trace in TRACES}
  loglog = {trace: {value: regressions(members, trace, value, log_value=True) for value in VALUES}
            for trace in TRACES}
  # Baseline predictor: the log of the kept weight count, which orders the nets of one pruner exactly like the ratio.
  for m in members:
    m["log_kept"] = math.log(m["kept"])
  baseline = {value: regressions([m for m in members if finite(m, "log_trace_init")], "log_kept", value,
                                 log_value=True) for value in VALUES}
  fig1 = {}
  for value in ("weight_change", "output_norm"):
    fig1[value] = {row["family"]: curve_fit(row["members"], "log_trace_epoch1", value, lr, t)
                   for row in results["families"]}
    per_method: dict[str, list[float]] = {}
    for fit in fig1[value].values():
      for method, d in (fit.get("mean_abs_log_ratio_per_method") or {}).items():
        if d is not None:
          per_method.setdefault(method, []).append(d)
    fig1[value]["mean_over_families"] = {method: float(np.mean(d)) for method, d in per_method.items()}
  per_pruner = {}
  for family in sorted({m["family"] for m in members}):
    for method in results["methods"]:
      picked = [m for m in members if m["family"] == family and m["method"] == method]
      per_pruner[f"{family} {method}"] = {value: regressions(picked, "log_trace_init", value, log_value=True)["pooled"]
                                          for value in VALUES}
  diverged = [f"{m['family']} {m['method']} {m['ratio']:g}" for m in members if not finite(m, "weight_change")]
  return {"fig2_regressions": fig2, "loglog_regressions": loglog, "loglog_per_family_and_pruner": per_pruner,
          "loglog_on_log_kept": baseline,
          "fig1_curves": fig1, "diverged": diverged, "trace_order_init": trace_order(members),
          "trace_order_epoch1": trace_order(members, "log_trace_epoch1")}


# ---------------------------------------------------------------------------------------------------------------
# Figures and tables.
# ---------------------------------------------------------------------------------------------------------------

MARKERS = "osD^vP*X"


def _figure1(results: dict):
  plt = report.pyplot()
  rows = results["families"]
  lr, t = results["learning_rate"], results["steps"]
  figure, axes = plt.subplots(2, len(rows), figsize=(3.8 * len(rows), 6.6), squeeze=False)
  for j, row in enumerate(rows):
    for i, value in enumerate(("weight_change", "output_norm")):
      ax = axes[i, j]
      usable = [m for m in row["members"] if finite(m, "log_trace_epoch1", value, "output_norm_init")]
      for method in results["methods"]:
        pts = [(m["log_trace_epoch1"], m[value]) for m in usable if m["method"] == method]
        if pts:
          ax.plot(*zip(*pts), "o", color=COLOURS.get(method), ms=4, label=LABELS.get(method, method))
      fit = results["analysis"]["fig1_curves"][value].get(row["family"], {})
      if usable and fit.get("scale") is not None:
        grid = np.linspace(min(m["log_trace_epoch1"] for m in usable) - 1,
                           max(m["log_trace_epoch1"] for m in usable) + 1, 200)
        curve = theory_paths.convergence_estimate(np.exp(np.clip(grid, -80.0, 80.0)), lr, t, scale=fit["scale"],
                                                  offset=None if value == "weight_change" else fit["offset_median"])
        ax.plot(grid, np.asarray(curve), "k-", lw=1, label="a(1 − exp(−η Tr t))" if value == "weight_change"
                else "(1 − exp(−η Tr t))a + exp(−η Tr t)b, b = median ‖f(X, θ_0)‖")
      ax.set_yscale("log")
      ax.set_xlabel("log Tr Π after one epoch")
      ax.set_ylabel(VALUES[value])
      ax.set_title(row["family"], fontsize=10)
      ax.grid(alpha=0.3)
  axes[0, 0].legend(fontsize=7)
  figure.suptitle(f"[P] Fig. 1 in miniature: {results['data']}, SGD η = {lr:g}, t = {t} steps", fontsize=10)
  figure.tight_layout()
  return figure


def _figure2(results: dict):
  """Top row: [P]'s ``value ≈ α + β log Tr Π_0`` per family; bottom row: our ``log value ≈ α + β log Tr Π_0``."""
  plt = report.pyplot()
  members = [m for row in results["families"] for m in row["members"]]
  families = [row["family"] for row in results["families"]]
  figure, axes = plt.subplots(2, len(VALUES), figsize=(4.4 * len(VALUES), 7.2), squeeze=False)
  for i, (kind, log_value) in enumerate((("fig2_regressions", False), ("loglog_regressions", True))):
    fits = results["analysis"][kind]["log_trace_init"]
    for ax, value in zip(axes[i], VALUES):
      for k, family in enumerate(families):
        pts = [(m["log_trace_init"], m[value]) for m in members if m["family"] == family
               and finite(m, "log_trace_init", value) and (not log_value or m[value] > 0)]
        if not pts:
          continue
        x, y = map(np.asarray, zip(*pts))
        y = np.log(y) if log_value else y
        fit = fits[value]["per_family"].get(family, {})
        r2 = fit.get("r2")
        ax.plot(x, y, MARKERS[k % len(MARKERS)], color=f"C{k}", ms=4,
                label=f"{family}: R² = {r2:.2f}" if r2 is not None else family)
        if fit.get("slope") is not None:
          grid = np.linspace(x.min(), x.max(), 50)
          ax.plot(grid, fit["intercept"] + fit["slope"] * grid, "-", color=f"C{k}", lw=1)
      pooled = fits[value]["pooled"].get("r2")
      name = ("log " if log_value else "") + VALUES[value]
      ax.set_title(f"{name} (pooled R² = {pooled:.2f})" if pooled is not None else name, fontsize=9)
      ax.set_xlabel("log Tr Π at initialisation")
      ax.grid(alpha=0.3)
      ax.legend(fontsize=7)
  figure.suptitle(f"[P] Fig. 2 in miniature: {results['data']}, SGD η = {results['learning_rate']:g}, "
                  f"{results['steps']} steps; top: [P]'s model, bottom: log of the value", fontsize=10)
  figure.tight_layout()
  return figure


def _print_summary(results: dict) -> None:
  analysis = results["analysis"]
  rows = []
  for kind, prefix in (("fig2_regressions", ""), ("loglog_regressions", "log ")):
    for trace in TRACES:
      for value in VALUES:
        fit = analysis[kind][trace][value]
        rows.append([trace.replace("log_trace_", ""), prefix + value]
                    + [fit["per_family"].get(row["family"], {}).get("r2") for row in results["families"]]
                    + [fit["pooled"]["r2"], fit["common_slope"]["r2"]])
  print(report.format_table(["Tr Π at", "fitted"] + [f"R² {row['family']}" for row in results["families"]]
                            + ["R² pooled", "R² common slope"],
                            [[("nan" if v is None else v) for v in r] for r in rows]))
  print("baseline, log value on log kept weights (same nets), R² pooled / common slope: " + ", ".join(
      f"{v} {analysis['loglog_on_log_kept'][v]['pooled']['r2']:.2f} / "
      f"{analysis['loglog_on_log_kept'][v]['common_slope']['r2']:.2f}" for v in VALUES))
  if analysis["diverged"]:
    print(f"diverged (NaN, left out): {', '.join(analysis['diverged'])}")
  order = analysis["trace_order_init"]
  print(report.format_table(["family", "pruner"] + [f"log Tr Π, ratio {r:g}" for r in order["ratios"]],
                            [[family, LABELS.get(method, method)] + [("-inf" if v is None or not np.isfinite(v) else v)
                                                                     for v in row]
                             for family, rows in order["log_trace_per_ratio"].items()
                             for method, row in rows.items()]))
  print("Tr Π order at init (fraction of cells): "
        + ", ".join(f"{k}: {v:.2f}" for k, v in order["fraction_of_cells"].items() if v is not None))
  print(report.format_table(
      ["family and pruner"] + [f"log {v}: slope, R²" for v in VALUES],
      [[name] + [("nan" if fits[v]["slope"] is None else f"{fits[v]['slope']:.2f}, {fits[v]['r2']:.2f}")
                 for v in VALUES] for name, fits in analysis["loglog_per_family_and_pruner"].items()]))
  for value in ("weight_change", "output_norm"):
    dist = analysis["fig1_curves"][value]["mean_over_families"]
    print(f"distance to the Fig. 1 curve ({value}, mean |log(value/estimate)|): "
          + ", ".join(f"{LABELS.get(k, k)} {v:.3f}" for k, v in dist.items()))


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--data", default="digits")
  parser.add_argument("--data-dir", type=Path)
  parser.add_argument("--mlp-widths", type=lambda t: _common.parse_list(t, int), default=[100, 300])
  parser.add_argument("--hidden-layers", type=int, default=6)
  parser.add_argument("--resnet-depth", type=int, default=20)
  parser.add_argument("--resnet-width", type=float, default=0.5,
                      help="ResNet width multiplier (1: 16/32/64 filters; 0: no ResNet)")
  parser.add_argument("--methods", type=lambda t: _common.parse_list(t, str), default=list(METHODS))
  parser.add_argument("--ratios", type=_common.parse_list, default=[0.5, 1.0, 1.5, 2.0, 2.5, 3.0],
                      help="compression ratios: density 10^-ratio")
  parser.add_argument("--seeds", type=int, default=1)
  parser.add_argument("--rounds", type=int, default=100, help="SynFlow pruning rounds")
  parser.add_argument("--prune-batch", type=int, default=256, help="SNIP/GraSP batch")
  parser.add_argument("--eval-size", type=int, default=256, help="the evaluation batch X (first test images)")
  parser.add_argument("--steps", type=int, default=300)
  parser.add_argument("--batch-size", type=int, default=128)
  parser.add_argument("--lr", type=float, default=0.001, help="plain SGD learning rate (η of the curves)")
  parser.add_argument("--resume", action="store_true", help="keep the families already in the JSON")
  parser.add_argument("--quick", action="store_true")
  parser.add_argument("--no-progress", action="store_true")
  parser.add_argument("--out", type=Path, default=_common.RESULTS)
  args = parser.parse_args(argv)
  if args.quick:
    args.mlp_widths, args.resnet_depth, args.resnet_width = [32], 8, 0.25
    args.ratios, args.rounds, args.steps = [1.0, 2.0], 10, 30
  name = "paths_convergence" + ("_quick" if args.quick else "")
  path = args.out / f"{name}.json"
  results = {"data": args.data, "methods": args.methods, "ratios": args.ratios, "seeds": args.seeds,
             "rounds": args.rounds, "prune_batch": args.prune_batch, "eval_size": args.eval_size,
             "steps": args.steps, "batch_size": args.batch_size, "optimizer": "sgd", "learning_rate": args.lr,
             "init": "he normal", **_common.backend_info(), "families": []}
  families = _families(args)
  if args.resume and path.exists():
    names = {f["name"] for f in families}
    results["families"] = [row for row in json.loads(path.read_text())["families"] if row["family"] in names]
  splits = data.load_splits(args.data, args.data_dir)
  done = {row["family"] for row in results["families"]}
  start = time.perf_counter()
  for family in families:
    if family["name"] in done:
      continue
    print(f"{family['name']}: pruning, measuring and training "
          f"{len(args.methods) * len(args.ratios) * args.seeds} networks ...", flush=True)
    row = _family_point(args, splits, family)
    results["families"].append(row)
    results["seconds"] = sum(r["prune_seconds"] + r["train_seconds"] for r in results["families"])
    results["analysis"] = analyse(results)
    report.write_json(path, results)
    emptied = sum(m["emptied_layers"] > 0 for m in row["members"])
    print(f"  {family['name']}: pruning + Tr Π {row['prune_seconds']:.0f} s, training {row['train_seconds']:.0f} s; "
          f"{emptied} of {len(row['members'])} nets have an emptied layer", flush=True)
  results["seconds"] = sum(r["prune_seconds"] + r["train_seconds"] for r in results["families"])
  results["analysis"] = analyse(results)
  report.write_json(path, results)
  _print_summary(results)
  report.save_figure(_figure1(results), args.out / f"{name}_fig1.png")
  report.save_figure(_figure2(results), args.out / f"{name}_fig2.png")
  print(f"wrote {path}, {name}_fig1.png and {name}_fig2.png ({time.perf_counter() - start:.0f} s this call)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
