"""``mfprune ntk``: a (pruned) model's empirical NTK against the infinite-width one and neural-tangents', and the
training loss it predicts against real gradient descent ([P] eq. 3-8; THEORY.md §7-8)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from mfprune.cli import arguments


def register(commands) -> None:
  ntk = commands.add_parser(
      "ntk", help="empirical vs analytic vs neural-tangents NTK, and predicted vs actual MSE training loss",
      description="Initialise a model (optionally prune it), take --examples training inputs, and compute its "
      "empirical NTK in plain JAX and with neural-tangents (when installed), the infinite-width NTK of the same "
      "architecture and initialisation (mlp, vcnn: theory.kernels, standard parameterisation), their traces, "
      "leading eigenvalues and relative differences. Then train the model by full-batch gradient descent on the "
      "mean squared error to one-hot targets for --steps steps and compare the loss curve with the one the "
      "linearised network predicts from the empirical kernel ([P] eq. 7-8 in discrete steps) and from the analytic "
      "one. Writes OUT/ntk.json and OUT/ntk.png.")
  arguments.add_model_options(ntk)
  arguments.add_pruning_options(ntk, required=False)
  arguments.add_init_options(ntk)
  arguments.add_data_options(ntk)
  group = ntk.add_argument_group("kernel and training")
  group.add_argument("--examples", type=arguments.positive_int, default=64,
                     help="training inputs the kernels and the training use (default 64)")
  group.add_argument("--steps", type=arguments.positive_int, default=200,
                     help="full-batch gradient-descent steps (default 200)")
  group.add_argument("--lr", type=arguments.positive_float, default=None,
                     help="step size (default: half the largest stable one, N/lambda_max of the empirical NTK, "
                     "N = examples x outputs)")
  group.add_argument("--top-k", type=arguments.positive_int, default=10,
                     help="leading eigenvalues reported (default 10)")
  arguments.add_seed_option(ntk)
  arguments.add_out_option(ntk, "runs/ntk")
  ntk.set_defaults(run=run)


def _neural_tangents_kernel(apply_fn, params, x, mask) -> tuple[Any, str | None]:
  """neural-tangents' empirical NTK, or ``(None, why not)``."""
  from mfprune import ntk

  try:
    return ntk.empirical_ntk(apply_fn, params, x, mask=mask, implementation="nt_jacobian"), None
  except ImportError as error:
    return None, str(error)


def _output_mean(kernel):
  """``(1/K) Σ_k Θ_kk`` of a full ``(n, n, K, K)`` kernel (the output-averaged kernel)."""
  import jax.numpy as jnp

  return jnp.einsum("abkk->ab", kernel) / kernel.shape[-1]


def plot_ntk(spectra: dict[str, list[float]], training, title: str):
  """Two panels: the leading eigenvalues of each kernel, and predicted vs actual loss curves."""
  import numpy as np

  from mfprune import report

  plt = report.pyplot()
  fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
  for (label, values), marker in zip(spectra.items(), "o^s"):
    left.semilogy(np.arange(1, len(values) + 1), values, marker=marker, linestyle="-", label=label)
  left.set_xlabel("eigenvalue index")
  left.set_ylabel("eigenvalue of the output-averaged NTK")
  left.legend()
  steps = np.asarray(training.steps)
  right.semilogy(steps, np.asarray(training.actual), label="gradient descent (measured)", linewidth=2)
  right.semilogy(steps, np.asarray(training.predicted), "--", label="linearised, empirical NTK")
  if training.analytic is not None:
    right.semilogy(steps, np.asarray(training.analytic), ":", label="linearised, infinite-width NTK")
  right.set_xlabel("step")
  right.set_ylabel("MSE loss ‖f − y‖²/(2N)")
  right.legend()
  fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  return fig


def run(args: argparse.Namespace) -> int:
  import jax
  import numpy as np

  from mfprune import masks, ntk, pipeline, report
  from mfprune.init import gaussian_scales
  from mfprune.cli.prune_command import prune_from_args

  scheme = arguments.init_scheme(args)
  args.init = scheme  # init_options reads args.init
  splits = arguments.load_data(args)
  apply_fn, init, activation = arguments.build_model(args, splits)
  options = arguments.init_options(args, activation)
  params = pipeline.initial_params(init, args.seed, scheme, **options)
  mask = None
  if args.method is not None and args.sparsity > 0:
    mask, _, _ = prune_from_args(args, apply_fn, params, splits.train)
  dataset = splits.train
  if args.examples > len(dataset.x):
    raise ValueError(f"--examples must be <= {len(dataset.x)}, the training examples of {dataset.name}; "
                     f"got {args.examples}")
  x = jax.numpy.asarray(dataset.x[:args.examples])
  y = jax.nn.one_hot(jax.numpy.asarray(dataset.y[:args.examples]), splits.num_classes)
  n_outputs = y.size

  start = time.perf_counter()
  full = ntk.empirical_ntk(apply_fn, params, x, mask=mask)
  seconds = {"empirical_jax": time.perf_counter() - start}
  averaged = _output_mean(full)  # what empirical_ntk(..., trace_outputs=True) returns, without a second pass
  spectra = {"empirical (JAX)": ntk.ntk_spectrum(averaged, args.top_k)}
  result: dict[str, Any] = {"settings": arguments.settings(args), "activation": activation, "data": splits.name,
                            "init": {"scheme": scheme, **options}, "examples": args.examples,
                            "sparsity": 0.0 if mask is None else masks.sparsity_of(mask),
                            "device": str(jax.devices()[0])}

  start = time.perf_counter()
  nt_kernel, nt_missing = _neural_tangents_kernel(apply_fn, params, x, mask)
  if nt_kernel is None:
    print(f"neural-tangents: skipped ({nt_missing})")
    result["neural_tangents"] = {"skipped": nt_missing}
  else:
    seconds["empirical_neural_tangents"] = time.perf_counter() - start
    difference = float(np.max(np.abs(np.asarray(nt_kernel) - np.asarray(full))) / np.max(np.abs(np.asarray(full))))
    print(f"neural-tangents empirical NTK vs plain JAX: max |difference| / max |kernel| = {difference:.3g}")
    result["neural_tangents"] = {"max_relative_difference": difference}
    spectra["empirical (neural-tangents)"] = ntk.ntk_spectrum(_output_mean(nt_kernel), args.top_k)

  scales = gaussian_scales(scheme, options)
  analytic = None
  if arguments.mean_field_view(apply_fn, init) is None or scales is None:
    why = ("the infinite-width kernel covers the models the mean-field theory maps (FFNN/CNN of [R] eq. 1-3: "
           f"{', '.join(arguments.mean_field_models())}) with Gaussian inits")
    print(f"analytic NTK: skipped ({why}; --model {args.model}, --init {scheme})")
    result["analytic"] = {"skipped": why}
  else:
    sigma_w, sigma_b = scales
    start = time.perf_counter()
    analytic = ntk.analytic_kernels(apply_fn, params, x, sigma_w=sigma_w, sigma_b=sigma_b).ntk
    seconds["analytic"] = time.perf_counter() - start
    comparison = ntk.compare_ntk(averaged, analytic, k=args.top_k)
    spectra["infinite width"] = ntk.ntk_spectrum(analytic, args.top_k)
    result["analytic"] = {"sigma_w": sigma_w, "sigma_b": sigma_b, **comparison.to_dict()}
    print(f"empirical vs infinite-width NTK (sigma_w={sigma_w:.4g}, sigma_b={sigma_b:.4g}): relative Frobenius "
          f"error {float(comparison.relative_error):.3g}, trace ratio {float(comparison.trace_ratio):.4g}"
          + ("" if mask is None else " (the analytic kernel is the dense network's)"))
  rows = [[i + 1] + [float(s.eigenvalues[i]) if i < len(s.eigenvalues) else "" for s in spectra.values()]
          for i in range(args.top_k)]
  print(report.format_table(["#"] + [f"lambda {name}" for name in spectra], rows))
  result["spectra"] = {name: s.to_dict() for name, s in spectra.items()}

  lambda_max = float(ntk.ntk_spectrum(full, 1).eigenvalues[0])
  learning_rate = args.lr if args.lr is not None else n_outputs / lambda_max
  stable = 2.0 * n_outputs / lambda_max
  print(f"full-batch gradient descent, lr {learning_rate:.4g} (stable below {stable:.4g}), {args.steps} steps ...",
        flush=True)
  start = time.perf_counter()
  training = ntk.predict_training(apply_fn, params, x, y, mask=mask, learning_rate=learning_rate, steps=args.steps,
                                  ntk=full, analytic=analytic)
  seconds["training"] = time.perf_counter() - start
  checkpoints = sorted({0, args.steps // 10, args.steps // 2, args.steps})
  rows = [[t, float(training.actual[t]), float(training.predicted[t])]
          + ([float(training.analytic[t])] if training.analytic is not None else []) for t in checkpoints]
  print(report.format_table(["step", "loss measured", "predicted (empirical NTK)"]
                            + (["predicted (infinite width)"] if training.analytic is not None else []), rows))
  print(f"max relative gap, empirical-NTK prediction vs measured: {float(training.max_relative_gap):.3g}")
  result.update(learning_rate=learning_rate, stable_learning_rate=stable, training=training.to_dict(),
                seconds=seconds)
  report.write_json(args.out / "ntk.json", result)
  title = (f"{args.model}, {activation}, {scheme or 'lecun'}"
           + ("" if mask is None else f", {args.method} at sparsity {args.sparsity}") + f", {args.examples} examples")
  report.save_figure(plot_ntk({k: np.asarray(s.eigenvalues).tolist() for k, s in spectra.items()}, training, title),
                     args.out / "ntk.png")
  print(f"wrote {args.out / 'ntk.json'}, {args.out / 'ntk.png'}")
  return 0
