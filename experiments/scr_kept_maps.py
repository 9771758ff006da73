"""Experiment: [R] Fig. 1 and Fig. 2 — where SNIP keeps its weights: deep tanh FFNN on/off the EOC, ResNet32 vs Stable.

[R] Fig. 1: "Percentage of weights kept after SBP applied to a randomly initialized FFNN with depth 100 and width 100
for 70% sparsity on MNIST. Each pixel (i, j) corresponds to a neuron and shows the proportion of connections to
neuron (i, j) that have not been pruned." (a) EOC: the kept weights spread over the whole net; (b) chaotic phase:
exploding gradients make SNIP empty whole layers (the dark area). [R] Fig. 2: the percentage of weights kept per
layer of ResNet32 and Stable ResNet32 ([R] eq. 9) with Kaiming initialisation on CIFAR10 after SNIP; Stable ResNet
keeps a more uniform share within each stage. The text does not say at which sparsity Fig. 2 was made.

How (float32):

* Fig. 1: the registry tanh MLP (100 dense layers, width 100) on a batch of 128 Fashion-MNIST images (28×28, the
  MNIST shape; Debian's ``dataset-fashion-mnist``; MNIST cannot be downloaded here; falls back to synthetic 28×28
  data), σb = 0.2, σw on the EOC (``init_scheme="eoc"``, σw = 1.3041) and in the chaotic phase (σw = 2.0, χ = 1.35).
  The map is one network (seed 0's keys of the Monte Carlo below) pruned by ``mfprune.prune(..., method="snip",
  sparsity=0.7)``: row = layer, column = neuron, colour = the fraction of that neuron's incoming weights kept (the
  read-out has 10 neurons; the rest of its row is blank). The per-layer kept fraction at 70% is the mean over 4
  networks of :func:`mfprune.signal.critical_sparsity` (which also gives ``s_cr``), next to theory's
  ``predicted_kept_fraction`` (product and Gaussian score laws; real layer sizes and the batch's ``q1``).
  In the chaotic phase a float32 network is sensitive to the last bit of its weights: the map's network, drawn
  eagerly, differs from the Monte Carlo's (jitted) seed 0 by at most 1.2e-7 in a weight, which changes its logits by
  ~80% and its layers' death sparsities by up to 0.04 (on the EOC: 6e-6 and nothing). Only the statistics over
  networks are reproducible there; the map's network gets its own ``s_cr``.
* Fig. 2: ``resnet32`` (doubled filters, batch norm, ReLU) with ``stable=False`` and ``stable=True``, He (Kaiming)
  normal initialisation (``init_scheme="he"``), SNIP on one batch of 128 synthetic CIFAR-shaped images (no CIFAR-10
  here), 2 networks each through :func:`mfprune.signal.critical_sparsity` with the grid 90%, 95%, 98%; layers in
  network order (``functional.layer_order``: stem, then each block's conv1, conv2 and, at stage changes, the 1×1
  shortcut; the dense read-out last). Theory's reference: ``theory.gradients.gradient_moments`` of a ReLU ResNet and
  Stable ResNet (σw = √2, σb = 0, stem + 15 one-layer blocks, no batch norm: [R] Theorem 2 and Prop. 2) assigned to
  the real layers (stem, each block's layers, read-out = last block) and turned into kept shares with the real
  layer sizes (``theory.sparsity.kept_fraction_from_moments``, product law). It does not model batch norm, the two
  convolutions per block or the stage changes: it only says "flat within the blocks".

Results: ``experiments/results/scr_kept_maps.json`` (atomic), ``scr_kept_maps_fig1.png`` (two maps and the
per-layer curves) and ``scr_kept_maps_fig2.png`` (per-layer kept fraction of both ResNets at 90% and 98%).
About 6 minutes on two CPU cores (the ResNets are most of it; ``--part fig1`` or ``--part fig2`` runs one half).

Run: ``.venv/bin/python experiments/scr_kept_maps.py [--part both|fig1|fig2] [--sparsity 0.7] [--chaotic-sigma-w 2.0]
[--sigma-b 0.2] [--mlp-seeds 4] [--resnet-seeds 2] [--resnet-sparsities 0.9,0.95,0.98] [--data fashion-mnist]
[--batch-size 128] [--quick] [--out experiments/results]``. ``--quick``: depth-12 width-32 MLPs and ResNet8 at
half width, 2 networks each (about a minute).
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
import theory  # noqa: E402
from experiments import _common  # noqa: E402
from mfprune import data, masks, pipeline, pruning, report, scores, signal  # noqa: E402
from theory import gradients, sparsity  # noqa: E402


def _interval(result) -> list | None:
  return None if result.interval is None else list(result.interval)


# ---------------------------------------------------------------------------------------------------------------
# Fig. 1: deep tanh MLP, EOC vs chaotic.
# ---------------------------------------------------------------------------------------------------------------


def neuron_map(mask, layers: list[str], width: int) -> np.ndarray:
  """``(n_layers, width)``: per layer (network order) and output neuron, the fraction of incoming weights kept."""
  named = dict(masks.named_leaves(mask))
  image = np.full((len(layers), width), np.nan)
  for row, name in enumerate(layers):
    kept = np.asarray(named[name], np.float64).reshape(-1, named[name].shape[-1]).mean(axis=0)
    image[row, :kept.size] = kept[:width]
  return image


def fig1(args) -> dict:
  if args.data == "synthetic":
    splits = data.load_splits("synthetic", input_shape=(28, 28, 1), size=1024)
  else:
    try:
      splits = data.load_splits(args.data)
    except FileNotFoundError as error:
      print(f"  {args.data} not found ({error}); using synthetic 28×28 data", flush=True)
      splits = data.load_splits("synthetic", input_shape=(28, 28, 1), size=1024)
  batch = splits.train.batch(args.batch_size, seed=args.seed)
  apply_fn, init = pipeline.model_fns("mlp", input_shape=splits.input_shape, num_classes=splits.num_classes,
                                      depth=args.depth, width=args.width, activation="tanh")
  widths = _common.mlp_widths(splits, args.depth, args.width)
  x2 = float(np.mean(np.asarray(batch[0], np.float64) ** 2))
  sigma_w_eoc = float(theory.eoc_sigma_w("tanh", args.sigma_b))
  settings = {"EOC": ("eoc", {"activation": "tanh", "sigma_b": args.sigma_b}, sigma_w_eoc),
              "chaotic": ("gaussian", {"sigma_w": args.chaotic_sigma_w, "sigma_b": args.sigma_b},
                          args.chaotic_sigma_w)}
  zeros = _common.zero_init(init)
  out = {"data": splits.name, "depth": args.depth, "width": args.width, "sigma_b": args.sigma_b,
         "sparsity": args.sparsity, "seeds": args.mlp_seeds, "batch_size": args.batch_size, "inits": {}}
  for label, (scheme, options, sigma_w) in settings.items():
    start = time.perf_counter()
    result = signal.critical_sparsity(apply_fn, init, "snip", n_seeds=args.mlp_seeds, batch=batch, key=args.seed,
                                      sparsities=[args.sparsity], init_scheme=scheme, init_options=options)
    # The map's network: seed 0's keys, drawn eagerly (the scheme redraws every kernel and bias, so the model's own
    # initial values, here zeros, do not matter). It can differ from the Monte Carlo's jitted seed 0 in the last bit
    # of a weight, which the chaotic phase amplifies (see the module docstring): its own s_cr is computed here.
    key0 = jax.random.split(jax.random.key(args.seed), args.mlp_seeds)[0]
    params = pipeline.initial_params(zeros, key0, scheme, **options)
    mask = pruning.prune(apply_fn, params, batch, method="snip", sparsity=args.sparsity,
                         key=jax.random.fold_in(key0, 2), on_collapse="ignore")
    snip = [np.asarray(leaf) for leaf in
            jax.tree_util.tree_leaves(scores.score("snip", apply_fn, params, masks.dense_mask(params), batch))]
    flat = np.concatenate([leaf.ravel() for leaf in snip])
    map_s_cr = 1.0 - np.sum(flat > min(leaf.max() for leaf in snip)) / flat.size  # no ties in float SNIP scores
    image = neuron_map(mask, list(result.layers), args.width)
    q1 = args.sigma_b**2 + sigma_w**2 * x2
    predicted = {law: np.asarray(sparsity.predicted_kept_fraction(
        "tanh", sigma_b=args.sigma_b, sigma_w=sigma_w, depth=args.depth, sparsity=args.sparsity, widths=widths,
        q1=q1, score_law=law)) for law in ("product", "gaussian")}
    kept = result.kept_fraction[0]
    chi = float(theory.phase("tanh", args.sigma_b, sigma_w).chi)
    out["inits"][label] = {
        "scheme": scheme, "sigma_w": sigma_w, "chi": chi, "layers": result.layers,
        "kept_fraction": kept, "kept_fraction_map_network": masks.density(mask, list(result.layers)),
        "empty_layers_mean": float(np.mean(result.death_sparsity <= args.sparsity + 1e-12) * args.depth),
        "empty_layers_map_network": int(np.sum(np.nan_to_num(np.nanmax(image, axis=1)) == 0)),
        "s_cr_map_network": float(map_s_cr),
        "s_cr_values": result.values, "s_cr_mean": result.mean, "s_cr_interval": _interval(result),
        "first_dead_counts": result.first_dead_counts, "predicted": predicted, "neuron_map": np.round(image, 4),
        "seconds": time.perf_counter() - start}
    out["inits"][label]["kept_fraction_map_network"] = [d.fraction for d in
                                                       out["inits"][label]["kept_fraction_map_network"]]
    print(f"  Fig. 1, {label} (σw = {sigma_w:.4f}, χ = {chi:.3f}): E[s_cr] = {result.mean:.4f}; at "
          f"{args.sparsity:.0%} {out['inits'][label]['empty_layers_mean']:.1f} layers empty on average "
          f"(map network: {out['inits'][label]['empty_layers_map_network']}) "
          f"({out['inits'][label]['seconds']:.0f} s)", flush=True)
  return out


def _fig1_figure(results: dict):
  plt = report.pyplot()
  figure, axes = plt.subplots(1, 3, figsize=(14, 5.8), gridspec_kw={"width_ratios": [1, 1, 1.25]})
  cmap = plt.get_cmap("viridis").with_extremes(bad="white")
  inits = results["inits"]
  depth = results["depth"]
  for ax, (label, r) in zip(axes[:2], inits.items()):
    image = np.array(r["neuron_map"], np.float64)
    shown = ax.imshow(np.ma.masked_invalid(image), origin="lower", aspect="auto", cmap=cmap, vmin=0, vmax=1,
                      interpolation="nearest", extent=(0.5, image.shape[1] + 0.5, 0.5, depth + 0.5))
    ax.set_xlabel("neuron")
    ax.set_title(f"({'a' if label == 'EOC' else 'b'}) {label}: σw = {r['sigma_w']:.3f}, χ = {r['chi']:.2f}\n"
                 f"{r['empty_layers_map_network']} layers empty; its s_cr = {r['s_cr_map_network']:.3f}", fontsize=9)
  axes[0].set_ylabel("layer (1 = input layer)")
  figure.colorbar(shown, ax=axes[:2], shrink=0.85, label="fraction of the neuron's incoming weights kept")
  ax = axes[2]
  layers = np.arange(1, depth + 1)
  for (label, r), color in zip(inits.items(), ("tab:blue", "tab:orange")):
    ax.plot(r["kept_fraction"], layers, "-", color=color, lw=1.8,
            label=f"{label}: SNIP, mean of {results['seeds']} nets (E[s_cr] = {r['s_cr_mean']:.3f})")
    ax.plot(r["predicted"]["product"], layers, "--", color=color, lw=1, label=f"{label}: theory, product scores")
    ax.plot(r["predicted"]["gaussian"], layers, ":", color=color, lw=1, label=f"{label}: theory, Gaussian scores")
  ax.axvline(1 - results["sparsity"], color="0.5", lw=0.8)
  ax.set_xlabel(f"fraction of the layer kept at {results['sparsity']:.0%} sparsity")
  ax.set_ylabel("layer")
  ax.set_ylim(0.5, depth + 0.5)
  ax.set_xlim(0, 1)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
  figure.suptitle(f"[R] Fig. 1: SNIP at {results['sparsity']:.0%} on a tanh MLP, depth {depth}, width "
                  f"{results['width']}, σb = {results['sigma_b']}, {results['data']} batch of {results['batch_size']}",
                  fontsize=10)
  return figure


# ---------------------------------------------------------------------------------------------------------------
# Fig. 2: ResNet32 vs Stable ResNet32.
# ---------------------------------------------------------------------------------------------------------------


def resnet_theory(layers: list[str], sizes: list[int], sparsities: list[float], *, stable: bool,
                  n_blocks: int) -> np.ndarray:
  """Kept share per real layer from the mean-field profile of a ReLU (Stable) ResNet without batch norm.

  ``gradient_moments`` for the chain stem + ``n_blocks`` one-layer blocks (σw = √2, σb = 0); the stem gets ``m_1``,
  every layer of block ``b`` gets ``m_{b+2}``, the read-out the last block's; shares from the real sizes.
  """
  arch = "stable_resnet" if stable else "resnet"
  m = np.asarray(gradients.gradient_moments("relu", 0.0, math.sqrt(2.0), n_blocks + 1, architecture=arch,
                                            n_blocks=n_blocks).m, np.float64)
  profile = []
  for name in layers:
    parts = name.split("/")
    if parts[0] == "stem":
      profile.append(m[0])
    elif parts[0] == "blocks":
      profile.append(m[int(parts[1]) + 1])
    else:
      profile.append(m[-1])
  return np.asarray(sparsity.kept_fraction_from_moments(np.array(profile), np.array(sizes, np.float64),
                                                        np.array(sparsities), score_law="product"))


def fig2(args) -> dict:
  splits = data.load_splits("synthetic", input_shape=(32, 32, 3), size=max(256, args.batch_size))
  batch = splits.train.batch(args.batch_size, seed=args.seed)
  out = {"data": "synthetic CIFAR-shaped (32x32x3), 10 classes", "seeds": args.resnet_seeds,
         "batch_size": args.batch_size, "sparsities": args.resnet_sparsities, "models": {}}
  for stable in (False, True):
    depth = args.resnet_options.get("depth", 32)
    label = f"Stable ResNet{depth}" if stable else f"ResNet{depth}"
    start = time.perf_counter()
    apply_fn, init = pipeline.model_fns("resnet32", input_shape=splits.input_shape, num_classes=splits.num_classes,
                                        stable=stable, **args.resnet_options)
    result = signal.critical_sparsity(apply_fn, init, "snip", n_seeds=args.resnet_seeds, batch=batch, key=args.seed,
                                      sparsities=args.resnet_sparsities, init_scheme="he")
    n_blocks = sum(1 for name in result.layers if name.endswith("conv1/kernel"))
    predicted = resnet_theory(list(result.layers), list(result.layer_sizes), args.resnet_sparsities,
                              stable=stable, n_blocks=n_blocks)
    out["models"][label] = {
        "stable": stable, "layers": result.layers, "layer_sizes": result.layer_sizes,
        "kept_fraction": result.kept_fraction, "predicted_no_bn": predicted, "s_cr_values": result.values,
        "s_cr_mean": result.mean, "s_cr_interval": _interval(result), "first_dead_counts": result.first_dead_counts,
        "seconds": time.perf_counter() - start}
    print(f"  Fig. 2, {label}: E[s_cr] = {result.mean:.4f} {np.round(result.values, 4).tolist()}, first to die "
          f"{result.first_dead_counts} ({out['models'][label]['seconds']:.0f} s)", flush=True)
  return out


def _fig2_figure(results: dict, shown: list[float]):
  plt = report.pyplot()
  figure, axes = plt.subplots(len(shown), 1, figsize=(12, 3.4 * len(shown)), squeeze=False)
  grid = list(results["sparsities"])
  largest = max(max(r["layer_sizes"]) for r in results["models"].values())
  floor = 0.5 / largest  # below one kept weight in every layer: empty layers (0) are drawn here, with a cross
  for ax, s in zip(axes[:, 0], shown):
    column = grid.index(s)
    for (label, r), color in zip(results["models"].items(), ("tab:red", "tab:blue")):
      kept = np.array(r["kept_fraction"])[column]
      x = np.arange(1, kept.size + 1)
      ax.plot(x, np.maximum(kept, floor), "o-", color=color, ms=3.5, lw=1.3,
              label=f"{label}: SNIP, mean of {results['seeds']} nets (E[s_cr] = {r['s_cr_mean']:.4f})")
      empty = kept == 0
      if empty.any():
        ax.plot(x[empty], np.full(empty.sum(), floor), "x", color=color, ms=9, mew=2,
                label=f"{label}: empty in every net ({int(empty.sum())} layers)")
      ax.plot(x, np.array(r["predicted_no_bn"])[column], "--", color=color, lw=0.9, alpha=0.8,
              label=f"{label}: mean-field profile without batch norm (reference)")
    layers = next(iter(results["models"].values()))["layers"]
    shortcut = [i + 1 for i, name in enumerate(layers) if "shortcut" in name]
    for i in shortcut:
      ax.axvline(i, color="0.6", lw=0.8, ls=":")
    ax.axhline(1 - s, color="0.5", lw=0.8)
    ax.set_yscale("log")
    ax.set_ylim(floor / 1.6, 1.6)
    ax.set_xlim(0.5, len(layers) + 0.5)
    ax.set_ylabel("fraction kept (log)")
    ax.set_title(f"sparsity {s:.0%}  (dotted verticals: the 1×1 shortcut convolutions at the stage changes; "
                 f"grey line: 1 − s; crosses at the bottom: empty layers)", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower left")
  axes[-1, 0].set_xticks(np.arange(1, len(layers) + 1),
                         [name.removesuffix("/kernel").replace("blocks/", "b") for name in layers], rotation=90,
                         fontsize=7)
  for ax in axes[:-1, 0]:
    ax.set_xticks(np.arange(1, len(layers) + 1), [""] * len(layers))
  figure.suptitle(f"[R] Fig. 2: SNIP kept fraction per layer, {' vs '.join(results['models'])} (He init, "
                  f"{results['data']}, batch {results['batch_size']})", fontsize=10)
  figure.tight_layout()
  return figure


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--part", choices=("both", "fig1", "fig2"), default="both")
  parser.add_argument("--sparsity", type=float, default=0.7, help="Fig. 1's sparsity")
  parser.add_argument("--chaotic-sigma-w", type=float, default=2.0)
  parser.add_argument("--sigma-b", type=float, default=0.2)
  parser.add_argument("--depth", type=int, default=100)
  parser.add_argument("--width", type=int, default=100)
  parser.add_argument("--mlp-seeds", type=int, default=4)
  parser.add_argument("--resnet-seeds", type=int, default=2)
  parser.add_argument("--resnet-sparsities", type=_common.parse_list, default=[0.9, 0.95, 0.98])
  parser.add_argument("--data", default="fashion-mnist", help="Fig. 1's data: fashion-mnist, mnist or synthetic")
  parser.add_argument("--batch-size", type=int, default=128)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--quick", action="store_true", help="small MLPs and ResNet8 at half width, 2 networks")
  parser.add_argument("--out", type=Path, default=_common.RESULTS)
  args = parser.parse_args(argv)
  args.resnet_options = {}
  if args.quick:
    args.depth, args.width, args.mlp_seeds, args.resnet_seeds, args.batch_size = 12, 32, 2, 2, 32
    args.resnet_options = {"depth": 8, "width_multiplier": 0.5}
  name = "scr_kept_maps" + ("_quick" if args.quick else "")
  start = time.perf_counter()
  path = args.out / f"{name}.json"
  results = {"experiment": "[R] Fig. 1 (tanh FFNN, EOC vs chaotic) and Fig. 2 (ResNet32 vs Stable ResNet32)",
             "dtype": "float32", "backend": jax.default_backend()}
  if args.part in ("both", "fig1"):
    results["fig1"] = fig1(args)
    report.save_figure(_fig1_figure(results["fig1"]), args.out / f"{name}_fig1.png")
  if args.part in ("both", "fig2"):
    results["fig2"] = fig2(args)
    shown = [s for s in (0.9, 0.98) if s in args.resnet_sparsities] or args.resnet_sparsities[:1]
    report.save_figure(_fig2_figure(results["fig2"], shown), args.out / f"{name}_fig2.png")
  results["seconds"] = time.perf_counter() - start
  results["load_average"] = os.getloadavg()[0]
  report.write_json(path, results)
  if "fig1" in results:
    r = results["fig1"]
    picks = sorted({0, 1, 4, 9, 24, 49, 74, 89, 94, 98, r["depth"] - 1} & set(range(r["depth"])))
    rows = []
    for label, init in r["inits"].items():
      rows.append([f"{label} SNIP"] + [f"{init['kept_fraction'][i]:.3f}" for i in picks] + [f"{init['s_cr_mean']:.4f}"])
      rows.append([f"{label} theory (product)"] + [f"{init['predicted']['product'][i]:.3f}" for i in picks] + ["-"])
    print(f"Fig. 1: kept fraction at {r['sparsity']:.0%} per layer")
    print(report.format_table(["init"] + [f"l{i + 1}" for i in picks] + ["E[s_cr]"], rows))
  if "fig2" in results:
    r = results["fig2"]
    rows = []
    for label, model in r["models"].items():
      kept = np.array(model["kept_fraction"])
      for j, s in enumerate(r["sparsities"]):
        rows.append([label, f"{s:.0%}", f"{kept[j, 0]:.3f}", f"{kept[j, 1:-1].min():.4f}", f"{kept[j, 1:-1].max():.3f}",
                     int(np.sum(kept[j] == 0)), f"{kept[j, -1]:.3f}", f"{model['s_cr_mean']:.4f}"])
    print("Fig. 2: kept fraction per layer (stem, min/max over the block layers, empty layers, read-out)")
    print(report.format_table(["model", "s", "stem", "blocks min", "blocks max", "empty", "read-out", "E[s_cr]"], rows))
  print(f"wrote {path} and the PNGs ({results['seconds']:.0f} s)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
