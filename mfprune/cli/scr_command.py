"""``mfprune scr``: Monte-Carlo critical sparsity of a model over many initialisations, next to [R]'s bounds."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from mfprune.cli import arguments


def register(commands) -> None:
  from mfprune.scores import available_scorers

  scr = commands.add_parser(
      "scr", help="Monte-Carlo critical sparsity E[s_cr] over seeds, against [R] Theorem 1 / Proposition 4",
      description="Initialise --seeds networks, score each once with --method (one jax.vmap program), and report "
      "the exact critical sparsity s_cr of each (the smallest sparsity at which global pruning empties a layer, "
      "[R] §2.2), their mean with a Student-t interval, the layer that dies first, and [R]'s bound: Theorem 1 for "
      "SBP on FFNN/CNN (natural log; log10 reading too), Proposition 4 for --method magnitude. Writes JSON with "
      "everything and a heat map of every layer's kept fraction against sparsity.")
  arguments.add_model_options(scr)
  scr.add_argument("--method", required=True, choices=sorted(available_scorers()),
                   help="pruning score (one-shot: the SynFlow family is scored once, not in rounds)")
  scr.add_argument("--seeds", type=arguments.positive_int, default=10, help="networks to sample (default 10)")
  arguments.add_seed_option(scr, "the initialisations (split into --seeds keys) and the batch")
  scr.add_argument("--confidence", type=float, default=0.95, help="level of the t-interval of the mean (0.95)")
  scr.add_argument("--sparsities", type=arguments.parse_sigma_list, default=None, metavar="SPEC",
                   help="grid of the kept-fraction curves: a value, a comma list or start:stop:count, each in "
                   "[0, 1) (default 0:0.99:100)")
  arguments.add_init_options(scr)
  arguments.add_data_options(scr)
  scr.add_argument("--json", type=Path, help="where to write the JSON (default OUT/scr.json)")
  scr.add_argument("--plot", type=Path, help="where to write the heat map PNG (default OUT/kept_fraction.png)")
  arguments.add_out_option(scr, "runs/scr")
  scr.set_defaults(run=run)


def _not_mapped(model: str, what: str) -> dict[str, Any]:
  return {"applies": False, "why": f"{what} cover the FFNN/CNN of [R] eq. 1-3; the mean-field theory does not map "
          f"--model {model} (mfprune.models.mean_field_view is None)"}


def theorem1(args, view, scheme: str | None, options: dict) -> dict[str, Any]:
  """[R] Theorem 1 with the natural log and the log10 reading, or why it does not apply.

  Args:
    args: the parsed arguments (``--model``).
    view: the model's :class:`~mfprune.models.MeanFieldView`, or ``None`` when the theory does not map it.
    scheme: the initialisation scheme.
    options: its options.
  """
  from mfprune.init import gaussian_scales
  from theory import sparsity

  if view is None:
    return _not_mapped(args.model, "Theorem 1 and its bound")
  scales = gaussian_scales(scheme, options)
  if scales is None:
    return {"applies": False, "why": f"Theorem 1 assumes Gaussian weights N(0, sigma_w^2/fan_in); --init {scheme} "
            "is not of that form"}
  sigma_w, sigma_b = scales
  natural = sparsity.theorem1_bound(depth=view.depth, width=view.width, activation=view.activation, sigma_b=sigma_b,
                                    sigma_w=sigma_w)
  log10 = sparsity.theorem1_bound(depth=view.depth, width=view.width, activation=view.activation, sigma_b=sigma_b,
                                  sigma_w=sigma_w, log_base=10.0)
  return {"applies": True, "sigma_w": sigma_w, "sigma_b": sigma_b, "natural_log": natural.to_dict(),
          "log10": log10.to_dict()}


def proposition4(args, view) -> dict[str, Any]:
  """[R] Propositions 4 (and 5) for magnitude pruning when one layer has the largest ``α_l = v_l/N``, else why not
  (the parameters are :func:`theory.sparsity.proposition4_parameters` of the model's fan-ins and sizes)."""
  from theory import sparsity

  if view is None:
    return _not_mapped(args.model, "Propositions 4-5")
  try:
    parameters = sparsity.proposition4_parameters(view.fan_ins, view.sizes, width=view.width)
  except ValueError as error:
    return {"applies": False, "fan_in_ratios": [fan_in / view.width for fan_in in view.fan_ins], "why": str(error)}
  bound = sparsity.proposition4(parameters.gamma, width=view.width, zeta=parameters.zeta)
  result = {"applies": True, **parameters.to_dict(), "bound": bound.to_dict()}
  if view.width >= 2:
    result["proposition5_first_dead_probability"] = sparsity.proposition5_probability(
        parameters.gamma, depth=view.depth, width=view.width)
  return result


def _bound_lines(method: str, bounds: dict[str, Any]) -> list[str]:
  lines = []
  t1 = bounds.get("theorem1")
  if t1 is not None:
    if not t1["applies"]:
      lines.append(f"Theorem 1 [R]: does not apply: {t1['why']}")
    else:
      nat, ten = t1["natural_log"], t1["log10"]
      kappa = "inf" if nat["kappa"] is None else f"{nat['kappa']:.4g}"
      head = (f"Theorem 1 [R] (SBP, FFNN/CNN; sigma_w={t1['sigma_w']:.4g}, sigma_b={t1['sigma_b']:.4g}): "
              f"chi = {nat['chi']:.4g}, kappa = {kappa}, {nat['phase']} phase")
      lines.append(head)
      if nat["leading"] is None:
        lines.append(f"  no bound: {nat['message']}")
      else:
        for name, bound in (("natural log", nat), ("log10 reading, the paper's example's", ten)):
          if bound["vacuous"]:
            lines.append(f"  {name}: leading term {bound['leading']:.4g}, vacuous ({bound['message']})")
          else:
            lines.append(f"  {name}: E[s_cr] <= {bound['bound']:.4g} (leading order)")
      if method not in ("snip", "snip_unsupervised"):
        lines.append(f"  note: Theorem 1 is about sensitivity-based pruning (snip); --method {method} is another score")
  p4 = bounds.get("proposition4")
  if p4 is not None:
    if not p4["applies"]:
      lines.append(f"Proposition 4 [R] (MBP): does not apply: {p4['why']}; no bound applies")
    else:
      b = p4["bound"]
      lines.append(f"Proposition 4 [R] (MBP, large depth; layer #{p4['layer']} has the largest alpha, gamma = "
                   f"{p4['gamma']:.4g}, zeta = {p4['zeta']:.4g}): E[s_cr] <= {b['bound']:.4g} (leading order, "
                   f"gamma read as a variance ratio)")
      if "proposition5_first_dead_probability" in p4:
        lines.append(f"Proposition 5 [R]: P(layer #{p4['layer']} is emptied first) >= "
                     f"{p4['proposition5_first_dead_probability']:.4g}")
  return lines


def run(args: argparse.Namespace) -> int:
  import jax
  import numpy as np

  from mfprune import masks, report, signal
  from mfprune.models.mean_field import most_common_width

  scheme = arguments.init_scheme(args)
  if not 0.0 < args.confidence < 1.0:
    raise ValueError(f"--confidence must be in (0, 1); got {args.confidence}")
  splits = arguments.load_data(args)
  apply_fn, init, activation = arguments.build_model(args, splits)
  args.init = scheme  # init_options reads args.init
  options = arguments.init_options(args, activation)
  batch = splits.train.batch(args.batch_size, seed=args.seed)
  shapes_tree = jax.eval_shape(init, jax.random.key(0))
  names_shapes = masks.named_leaves(masks.dense_mask(shapes_tree))
  scales = ", ".join(f"{k}={v}" for k, v in options.items() if k != "activation")
  print(f"{args.model} ({len(names_shapes)} prunable layers, "
        f"{sum(int(np.prod(m.shape)) for _, m in names_shapes):,} weights), {activation}, init "
        f"{scheme or 'lecun (the model default)'}{' ' + scales if scales else ''}; {args.method} on {splits.name}, "
        f"{args.seeds} seeds ...", flush=True)
  start = time.perf_counter()
  result = signal.critical_sparsity(apply_fn, init, args.method, n_seeds=args.seeds, batch=batch, key=args.seed,
                                    sparsities=args.sparsities, confidence=args.confidence, init_scheme=scheme,
                                    init_options=options)
  seconds = time.perf_counter() - start
  view = arguments.mean_field_view(apply_fn, init)
  shapes = [dict(names_shapes)[name].shape for name in result.layers]  # network order
  depth, width = len(shapes), most_common_width(shapes)  # a mapped model's view.depth and view.width
  bounds: dict[str, Any] = {"depth": depth, "width": width}
  if args.method == "magnitude":
    bounds["proposition4"] = proposition4(args, view)
  else:
    bounds["theorem1"] = theorem1(args, view, scheme, options)
  for line in _bound_lines(args.method, bounds):
    print(line)
  level = f"{100 * result.confidence:g}%"
  if result.interval is None:
    spread = "(one seed: no interval)"
  else:
    spread = (f"± {(result.interval[1] - result.interval[0]) / 2:.4g} ({level} t-interval "
              f"[{result.interval[0]:.4g}, {result.interval[1]:.4g}], std {result.std:.4g})")
  print(f"Monte-Carlo: E[s_cr] = {result.mean:.4g} {spread} over {result.n_seeds} seeds in {seconds:.1f} s")
  if result.iterative_scorer:
    print(f"  note: {args.method} is normally iterative; this is its one-shot score on the dense network")
  counts = result.first_dead_counts
  print(f"first layer to die: {result.most_common_first_dead} ({counts[result.most_common_first_dead]} of "
        f"{result.n_seeds} seeds)" + ("; also " + ", ".join(f"{name} ({n})" for name, n in list(counts.items())[1:6])
                                     if len(counts) > 1 else ""))
  mean_death = result.death_sparsity.mean(axis=0)
  rows = [[i, result.layers[i], result.layer_sizes[i], float(mean_death[i]), float(result.death_sparsity[:, i].min())]
          for i in np.argsort(mean_death, kind="stable")[:8]]
  print(report.format_table(["#", "layer (first to die)", "weights", "mean death sparsity", "min"], rows))
  json_path = args.json or args.out / "scr.json"
  plot_path = args.plot or args.out / "kept_fraction.png"
  report.write_json(json_path, {"settings": arguments.settings(args), "model": args.model, "activation": activation,
                                "init": {"scheme": scheme, **options}, "data": splits.name, "bounds": bounds,
                                "seconds": seconds, "device": str(jax.devices()[0]), **result.to_dict()})
  title = (f"{args.model} L={depth} N={width}, {activation}, {scheme or 'lecun'}, {args.method}: kept fraction, "
           f"{result.n_seeds} seeds")
  report.save_figure(report.plot_kept_fraction(result.sparsities, result.kept_fraction, result.layers,
                                               critical=result.mean, interval=result.interval, title=title), plot_path)
  print(f"wrote {json_path}, {plot_path}")
  return 0
