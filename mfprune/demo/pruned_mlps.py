"""Demo part 2: why pruned deep networks need the edge of chaos, and the rescaling trick ([R] §4.1, Fig. 3).

Deep tanh MLPs on scikit-learn's digits, pruned at initialisation by SNIP at one sparsity, with three
initialisations — the three panels of [R] Fig. 3:

* **ordered**: σw 30% below the EOC (χ < 1); Theorem 1: ill-conditioned, pruning empties whole layers;
* **EOC**: σw on the EOC; pruning multiplies each layer's effective σw² by α_l < 1 ([R] App. C), so the pruned net
  drifts into the ordered phase;
* **EOC + rescaling**: the same, then every kept row rescaled to its dense squared norm ([R] Prop. 1, Alg. 1), which
  puts the pruned net back on the EOC.

Before training, theory predicts per layer χ_l = α_l σw² E[φ'(√q^{l-1} Z)²] along the mean-field q^l of the pruned
net, hence the effective χ (their geometric mean) and the gradient spread log10 Π χ_l (Approximation 2: the
backpropagated gradient second moment shrinks by χ_l per layer). Then all networks (variants × seeds) train together
in one compiled program (``jax.vmap``), and the table sets the predictions next to what is measured: emptied layers,
the input-output Jacobian's mean singular value ([S] Table 1) and test accuracy.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

import theory
from mfprune import data, functional, masks, pipeline, repair, report, signal, train

ACTIVATION = "tanh"
DEPTH = 30
WIDTH = 100
SIGMA_B = 0.2
SPARSITY = 0.8
METHOD = "snip"
SEEDS = (0, 1)
ORDERED_RATIO = 0.7  # ordered phase: σw = 0.7 σw_EOC
VARIANTS = (("ordered", ORDERED_RATIO, None), ("EOC", 1.0, None), ("EOC + rescaling", 1.0, "row"))
TRAINING = train.TrainConfig(steps=1000, batch_size=100, optimizer="momentum", learning_rate=0.01, log_every=50,
                             eval_every=100)


def _variance_multipliers(dense: Any, repaired: Any, order: list[str]) -> np.ndarray:
  """α_l = ‖W_l after pruning (and repair)‖² / ‖W_l dense‖², in network order ([R] App. C)."""
  alphas = repair.kept_variance_fraction(repaired, reference=dense)
  return np.array([alphas[name] for name in order if name in alphas])


def _prediction(sigma_w: float, q1: float, alphas: np.ndarray) -> dict[str, Any]:
  """Mean-field profile of the pruned net (theory.pruned_chi): χ_l along its q^l, effective χ, gradient spread."""
  pruned = theory.pruned_chi(ACTIVATION, SIGMA_B, sigma_w, alphas=alphas, q1=q1)
  return {"chi_dense": float(theory.phase(ACTIVATION, SIGMA_B, sigma_w).chi),
          "chi_effective": float(pruned.chi_effective),  # 0 for an emptied layer (χ_l = 0)
          "log10_gradient_spread": float(pruned.log_gradient_spread) / np.log(10.0),  # −inf then (null in JSON)
          "chi_per_layer": np.asarray(pruned.chi).tolist(),
          "alpha_per_layer": alphas.tolist()}


def run(out: Path, *, depth: int = DEPTH, width: int = WIDTH, seeds: tuple[int, ...] = SEEDS,
        training: train.TrainConfig = TRAINING) -> dict:
  """Prunes, predicts, trains and reports; writes ``out/pruning.json``, ``out/pruning.png`` and ``out/training/``.

  Args:
    out: output folder.
    depth, width, seeds, training: the experiment's size (the defaults are the demo's; tests run a small one).

  Returns:
    The results written to JSON.
  """
  start = time.perf_counter()
  splits = data.load_splits("digits")
  apply_fn, init = pipeline.model_fns("mlp", input_shape=splits.input_shape, num_classes=splits.num_classes,
                                      depth=depth, width=width, activation=ACTIVATION)
  sigma_w_eoc = float(theory.eoc_sigma_w(ACTIVATION, SIGMA_B))
  x = splits.train.x
  mean_square = float(np.mean(np.sum(x.reshape(len(x), -1) ** 2, axis=1)) / np.prod(x.shape[1:]))
  order = None
  members, member_masks, labels, rows = [], [], [], []
  print(f"\n== pruning deep tanh MLPs at initialisation ([R] §4.1, Fig. 3): depth {depth}, width {width}, "
        f"{METHOD} at sparsity {SPARSITY}, digits ==", flush=True)
  for name, ratio, rescale in VARIANTS:
    sigma_w = ratio * sigma_w_eoc
    for seed in seeds:
      dense = pipeline.initial_params(init, seed, "gaussian", sigma_w=sigma_w, sigma_b=SIGMA_B)
      order = order or functional.layer_order(apply_fn, dense, x[:1])
      params, mask = pipeline.prune_and_repair(apply_fn, dense, splits.train.batch(128, seed=seed), method=METHOD,
                                               sparsity=SPARSITY, key=seed, rescale=rescale, on_collapse="ignore")
      alphas = _variance_multipliers(dense, params, order)
      jacobian = signal.jacobian_statistics(apply_fn, params, x[:128])
      rows.append({"variant": name, "seed": seed, "sigma_w": sigma_w,
                   **_prediction(sigma_w, SIGMA_B**2 + sigma_w**2 * mean_square, alphas),
                   "emptied_layers": len(masks.collapsed_layers(mask)), "jacobian": jacobian.to_dict()})
      members.append(params)
      member_masks.append(mask)
      labels.append(f"{name} #{seed}")
  print(f"training {len(members)} networks in one program ({training.steps} steps) ...", flush=True)
  shutil.rmtree(Path(out) / "training", ignore_errors=True)  # the demo starts afresh each time
  result = train.train(apply_fn, train.stack(members), train.stack(member_masks), splits, training,
                       out=Path(out) / "training", ensemble=True, labels=labels,
                       extra_config={"demo": "pruned deep tanh MLPs", "variants": labels})
  for row, accuracy in zip(rows, result.final["test"]["accuracy"]):
    row["test_accuracy"] = accuracy
  summary = _summary(rows)
  results = {"depth": depth, "width": width, "sigma_b": SIGMA_B, "sigma_w_eoc": sigma_w_eoc, "method": METHOD,
             "sparsity": SPARSITY, "training": training.to_dict(), "members": rows, "variants": summary,
             "examples_per_second": result.examples_per_second, "seconds": round(time.perf_counter() - start, 2)}
  out = Path(out)
  report.write_json(out / "pruning.json", results)
  report.save_figure(_figure(rows, result.history, labels, depth, width), out / "pruning.png")
  _print_table(summary)
  print(f"wrote {out / 'pruning.json'}, {out / 'pruning.png'} and {out / 'training'}/ in {results['seconds']} s")
  return results


def _summary(rows: list[dict]) -> list[dict]:
  """Per variant: the seed-mean of every prediction and measurement."""
  summary = []
  for name, _, _ in VARIANTS:
    group = [r for r in rows if r["variant"] == name]
    accuracy = [r["test_accuracy"] for r in group]
    summary.append({"variant": name, "sigma_w": group[0]["sigma_w"],
                    **{key: float(np.mean([r[key] for r in group]))
                       for key in ("chi_dense", "chi_effective", "log10_gradient_spread", "emptied_layers")},
                    "jacobian_mean": float(np.mean([r["jacobian"]["mean"] for r in group])),
                    "test_accuracy": float(np.mean(accuracy)), "test_accuracy_std": float(np.std(accuracy))})
  return summary


def _print_table(summary: list[dict]) -> None:
  rows = [[s["variant"], s["sigma_w"], s["chi_dense"], s["chi_effective"], s["log10_gradient_spread"],
           s["emptied_layers"], s["jacobian_mean"], f"{s['test_accuracy']:.3f} ± {s['test_accuracy_std']:.3f}"]
          for s in summary]
  print(report.format_table(["init", "sigma_w", "chi dense", "chi pruned", "log10 grad spread", "emptied layers",
                             "mean sing. J", "test accuracy"], rows))
  print("   theory (before training): chi of the dense init at q*; chi of the pruned net (geometric mean of\n"
        "   alpha_l sigma_w^2 E[phi'^2] along its mean-field q^l); log10 of the predicted gradient shrinkage over\n"
        "   the depth. Measured: layers SNIP emptied, the Jacobian's mean singular value, test accuracy.")


def _figure(rows: list[dict], history: list[dict], labels: list[str], depth: int, width: int):
  plt = report.pyplot()
  figure = plt.figure(figsize=(13, 7))
  grid = figure.add_gridspec(2, len(VARIANTS), height_ratios=(1, 1.1), hspace=0.45)
  for column, (name, _, _) in enumerate(VARIANTS):
    ax = figure.add_subplot(grid[0, column])
    row = next(r for r in rows if r["variant"] == name)
    layers = np.arange(1, depth + 1)
    ax.bar(layers, row["alpha_per_layer"], color="tab:blue", alpha=0.6, label="α_l (kept ‖W‖² share)")
    ax.plot(layers[1:], row["chi_per_layer"], color="tab:red", marker=".", label="predicted χ_l")
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1)
    ax.set_ylim(0, max(1.6, 1.1 * max(row["chi_per_layer"])))
    ax.set_xlabel("layer")
    ax.set_title(f"{name}: χ pruned {row['chi_effective']:.2f}, acc {row['test_accuracy']:.2f}", fontsize=9)
    if column == 0:
      ax.legend(fontsize=7, loc="upper right")
  ax = figure.add_subplot(grid[1, :])
  tests = [r for r in history if r["split"] == "test"]
  steps = [r["step"] for r in tests]
  accuracy = np.array([r["accuracy"] for r in tests])
  for member, label in enumerate(labels):
    variant = label.split(" #")[0]
    colour = f"C{[v[0] for v in VARIANTS].index(variant)}"
    ax.plot(steps, accuracy[:, member], color=colour, marker=".", label=label if label.endswith("#0") else None)
  ax.set_xlabel("training step")
  ax.set_ylabel("test accuracy")
  ax.set_ylim(0, 1.02)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8, loc="lower right")
  figure.suptitle(f"tanh MLP depth {depth}, width {width}, {METHOD} at sparsity {SPARSITY} on digits "
                  "(one line per seed)", fontsize=10)
  return figure
