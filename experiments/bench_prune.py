"""Benchmark: the cost of pruning at initialisation, against one training step of the same model and batch.

Models (registry defaults, synthetic data: inputs uniform in [0, 1), integer labels uniform over the classes):
MLP (depth 5, width 100) on the MNIST shape 28×28×1 with batch 256; VGG16 and ResNet32 (doubled filters, batch
norm using batch statistics, the mode ``create_model`` returns) on the CIFAR shape 32×32×3 with batch 128. float32.

What is measured (each program jitted and compiled ahead of time with ``jit(...).lower(...).compile()``, so the
compile time is reported on its own; every call ended by ``block_until_ready``; run time = median of up to
``--repeats`` calls after the first (reported apart), fewer once ``--budget`` seconds are spent, or the first call
alone when it used up the budget):

* training step: loss = mean softmax cross-entropy (integer labels) of ``apply_fn(apply_mask(params, mask), x)``,
  its gradient with respect to ``params``, and an ``optax.sgd(0.1)`` update (all weights kept, as before pruning).
* forward+backward: ``value_and_grad`` of the same loss, no optimizer.
* every registered scorer: the whole pruning call to sparsity 0.9 (global scope, exponential schedule), i.e.
  ``jit(make_pruner(apply_fn, method, keep_schedule(...)))(params, mask, batch, key)`` with the scorer's default
  rounds (100 for the SynFlow family, 1 otherwise), reported as a ratio to the training step and to the
  forward+backward pass. Targets: snip <= 1.5 training steps, grasp <= 3 training steps, synflow <= one
  forward+backward pass per round (100 at 100 rounds).
* iterative pruners (the SynFlow family), diagnostic: one scoring + top-k round as a plain jitted function, which
  separates the cost of the computation from the cost of running it inside the pruner's ``fori_loop``
  (``pruner_over_rounds_times_this`` is 1 when the loop costs nothing).
* SynFlow family, bounded run time: a call with rounds/16 rounds predicts the full call (× 16); when that exceeds
  ``--max-call-seconds``, the full call is not run: a second call with 2·rounds/16 rounds fixes
  ``time = fixed + per_round · rounds``, evaluated at the full rounds. Rounds cost the same whatever weights they keep
  (the scorers compute on dense arrays). Such entries say ``"extrapolated": true``.
* seeds: pruning 8 networks (8 seeds, 8 parameter sets from ``mfprune.init_fn`` under ``jax.vmap``) with
  ``jit(vmap(pruner))`` against 8 calls of the jitted single pruner (dispatched one after the other, all results
  awaited at the end), for ``snip`` and ``random``; also how many mask entries the two disagree on. By default on
  the MLP and ResNet32 when running on CPU (VGG16 would add about 7 minutes there), on every model elsewhere and
  with ``--quick``; ``--vmap-models`` chooses.

Results: JSON written atomically (``mfprune.report.write_json``) and tables. ``--quick`` runs tiny variants of the
models (and 5 SynFlow rounds) as a smoke test. The machine's load average is recorded for each model: the timings are
only as good as the machine was idle.

Run: ``.venv/bin/python experiments/bench_prune.py [--models mlp,vgg16,resnet32] [--repeats 5] [--quick]
[--out experiments/results/bench_prune.json]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import mfprune  # noqa: E402
from experiments import _common  # noqa: E402
from mfprune import masks, models, report  # noqa: E402

SPARSITY = 0.9
LEARNING_RATE = 0.1
SEEDS = 8
VMAP_METHODS = ("snip", "random")
PROBE_DIVISOR = 16  # SynFlow probes run rounds/16 and 2·rounds/16 rounds
TARGETS = {"snip": ("train_step", 1.5), "grasp": ("train_step", 3.0), "synflow": ("fwd_bwd", None)}
"""Scorer -> (reference, max ratio); ``None``: one forward+backward pass per round."""


@dataclasses.dataclass(frozen=True)
class Setup:
  """One benchmarked network: registry name, data set (input shape and classes), batch size, model options."""

  model: str
  data: str
  batch: int
  options: dict[str, Any] = dataclasses.field(default_factory=dict)

  def create(self, key: jax.Array | int = 0):
    """The model, initialised from ``key``."""
    return models.create_model(self.model, input_shape=self.data, key=key, **self.options)


SETUPS = {
    "mlp": Setup("mlp", "mnist", 256),
    "vgg16": Setup("vgg16", "cifar10", 128),
    "resnet32": Setup("resnet32", "cifar10", 128),
}
QUICK_SETUPS = {
    "mlp": Setup("mlp", "mnist", 32, {"depth": 3, "width": 32}),
    "vgg16": Setup("vgg16", "cifar10", 8, {"width_multiplier": 1 / 16}),
    "resnet32": Setup("resnet32", "cifar10", 8, {"depth": 8, "width_multiplier": 0.25}),
}
QUICK_ROUNDS = 5


# ---------------------------------------------------------------------------------------------------------------
# Timing.
# ---------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Timing:
  """Seconds of one measured program: compile, the first call, the reported run time and the calls it used."""

  compile_s: float
  first_call_s: float
  run_s: float
  calls: int
  output: Any = None

  def to_dict(self) -> dict[str, Any]:
    return {"compile_s": self.compile_s, "first_call_s": self.first_call_s, "run_s": self.run_s, "calls": self.calls}


def summarise(times: list[float]) -> tuple[float, float, int]:
  """(first call s, run s, calls behind the run time): the median of the calls after the first, if any."""
  later = times[1:]
  return times[0], float(np.median(later)) if later else times[0], max(len(later), 1)


def time_calls(call: Callable[[], Any], repeats: int, budget: float) -> tuple[list[float], Any]:
  """Seconds of each call and the last output: up to ``1 + repeats`` calls, stopping once ``budget`` s are spent."""
  times, output = [], None
  while len(times) <= repeats and sum(times) < budget:
    start = time.perf_counter()
    output = jax.block_until_ready(call())
    times.append(time.perf_counter() - start)
  return times, output


def measure(fn: Callable, args: tuple, repeats: int, budget: float) -> Timing:
  """Compiles ``fn`` for ``args`` and times calls of the executable."""
  compiled, compile_s = _common.compile_program(fn, args)
  times, output = time_calls(lambda: compiled(*args), repeats, budget)
  return Timing(compile_s, *summarise(times), output)


# ---------------------------------------------------------------------------------------------------------------
# Programs.
# ---------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Prepared:
  """A model's pure function, parameters, all-kept mask, batch and pruning key."""

  apply_fn: Callable
  params: Any
  mask: Any
  batch: tuple[jax.Array, jax.Array]
  key: jax.Array


def prepare(setup: Setup, seed: int) -> Prepared:
  """Builds the model of ``setup`` and its synthetic batch from ``seed``."""
  key = jax.random.key(seed)
  apply_fn, params = mfprune.split(setup.create(key))
  return Prepared(apply_fn, params, mfprune.dense_mask(params), synthetic_batch(setup, jax.random.fold_in(key, 1)),
                  jax.random.fold_in(key, 2))


def synthetic_batch(setup: Setup, key: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Inputs uniform in [0, 1) (pixel-like, non-negative) and uniform integer labels."""
  shape, classes = models.INPUT_SHAPES[setup.data]
  kx, ky = jax.random.split(key)
  return (jax.random.uniform(kx, (setup.batch, *shape), jnp.float32),
          jax.random.randint(ky, (setup.batch,), 0, classes))


def make_loss(apply_fn: Callable) -> Callable:
  """Mean softmax cross-entropy of the masked network, ``loss(params, mask, x, y)``."""

  def loss(params, mask, x, y):
    logits = apply_fn(mfprune.apply_mask(params, mask), x)
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))

  return loss


def make_train_step(apply_fn: Callable, optimizer: optax.GradientTransformation) -> Callable:
  """One SGD step ``(params, opt_state, mask, x, y) -> (params, opt_state, loss)``."""
  loss = make_loss(apply_fn)

  def step(params, opt_state, mask, x, y):
    value, grads = jax.value_and_grad(loss)(params, mask, x, y)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, value

  return step


def make_round(apply_fn: Callable, method: str, keep: int) -> Callable:
  """One scoring + global top-k round as a plain function (what one iteration of the pruner's loop computes)."""
  score = mfprune.get_scorer(method).fn

  def one_round(params, mask, batch, key):
    scores = score(apply_fn, params, mask, batch, key)
    scores = jax.tree.map(lambda s, m: jnp.where(m, s, -jnp.inf), scores, mask)
    return masks.global_top_k(scores, keep)

  return one_round


def pruner_for(apply_fn: Callable, method: str, mask, rounds: int) -> Callable:
  """``make_pruner`` to sparsity 0.9 in ``rounds`` rounds (global scope, exponential schedule)."""
  counts = mfprune.keep_schedule(masks.layer_sizes(mask), SPARSITY, rounds)
  return mfprune.make_pruner(apply_fn, method, counts)


# ---------------------------------------------------------------------------------------------------------------
# Scorer measurements.
# ---------------------------------------------------------------------------------------------------------------


def rounds_of(method: str, quick: bool) -> int:
  """The scorer's default rounds (at most ``QUICK_ROUNDS`` with ``--quick``)."""
  rounds = mfprune.get_scorer(method).rounds
  return min(rounds, QUICK_ROUNDS) if quick else rounds


def target_of(method: str, rounds: int) -> dict[str, Any] | None:
  """The issue's target for ``method``: reference program and largest allowed ratio to it."""
  if method not in TARGETS:
    return None
  against, ratio = TARGETS[method]
  ratio = float(rounds) if ratio is None else ratio
  names = {"train_step": "training steps", "fwd_bwd": "forward+backward passes"}
  return {"against": against, "max_ratio": ratio, "text": f"{method} <= {ratio:g} {names[against]}"}


def mask_checks(output) -> dict[str, Any]:
  """Sparsity reached and whether every score was finite, from a pruner's ``(mask, finite)``."""
  new_mask, finite = output
  return {"sparsity": masks.sparsity_of(new_mask), "finite": bool(np.all(np.asarray(finite)))}


def measure_rounds(prep: Prepared, method: str, rounds: int, args) -> dict[str, Any]:
  """An iterative pruner at ``rounds`` rounds, measured, or extrapolated from two reduced-round calls."""
  inputs = (prep.params, prep.mask, prep.batch, prep.key)
  probe = max(1, rounds // PROBE_DIVISOR)
  estimate = None
  if 2 * probe < rounds:
    first = measure(pruner_for(prep.apply_fn, method, prep.mask, probe), inputs, args.repeats, args.budget)
    estimate = first.run_s * rounds / probe
  if estimate is None or estimate <= args.max_call_seconds:
    timing = measure(pruner_for(prep.apply_fn, method, prep.mask, rounds), inputs, args.repeats, args.budget)
    return {**timing.to_dict(), "extrapolated": False, "probe_estimate_s": estimate, **mask_checks(timing.output)}
  second = measure(pruner_for(prep.apply_fn, method, prep.mask, 2 * probe), inputs, args.repeats, args.budget)
  per_round = (second.run_s - first.run_s) / probe
  fixed = first.run_s - per_round * probe
  if per_round <= 0:  # timing noise swamped the difference: proportional to the rounds instead
    per_round, fixed = second.run_s / (2 * probe), 0.0
  return {"compile_s": second.compile_s, "first_call_s": None, "run_s": fixed + per_round * rounds, "calls": None,
          "extrapolated": True, "measured_rounds": [probe, 2 * probe], "measured_run_s": [first.run_s, second.run_s],
          "measured_calls": [first.calls, second.calls], "per_round_s": per_round, "fixed_s": fixed}


def add_ratios(row: dict[str, Any], method: str, reference: dict[str, Any]) -> None:
  """Ratios to the training step and the forward+backward pass, the method's target and whether it is met."""
  for name in ("train_step", "fwd_bwd"):
    row[f"ratio_to_{name}"] = row["run_s"] / reference[f"{name}_s"]
  target = target_of(method, row["rounds"])
  row["target"] = target
  row["meets_target"] = None if target is None else bool(row[f"ratio_to_{target['against']}"] <= target["max_ratio"])


def measure_scorer(prep: Prepared, method: str, reference: dict[str, Any], args) -> dict[str, Any]:
  """One scorer's pruner: time, ratios to the references, target, sanity checks (and the unlooped diagnostic)."""
  rounds = rounds_of(method, args.quick)
  inputs = (prep.params, prep.mask, prep.batch, prep.key)
  if rounds > 1:
    row = {"rounds": rounds, **measure_rounds(prep, method, rounds, args)}
  else:
    timing = measure(pruner_for(prep.apply_fn, method, prep.mask, rounds), inputs, args.repeats, args.budget)
    row = {"rounds": rounds, **timing.to_dict(), "extrapolated": False, **mask_checks(timing.output)}
  add_ratios(row, method, reference)
  if rounds > 1:
    keep = masks.keep_count(sum(masks.layer_sizes(prep.mask)), SPARSITY)
    one = measure(make_round(prep.apply_fn, method, keep), inputs, args.repeats, args.budget)
    row["one_round_outside_loop"] = {"compile_s": one.compile_s, "run_s": one.run_s, "calls": one.calls,
                                     "pruner_over_rounds_times_this": row["run_s"] / (rounds * one.run_s)}
  return row


def describe(method: str, row: dict[str, Any]) -> str:
  """One progress line for a scorer."""
  how = " (extrapolated)" if row["extrapolated"] else ""
  unlooped = row.get("one_round_outside_loop")
  loop_text = f"; one round outside the loop {unlooped['run_s']:.4g} s" if unlooped else ""
  verdict = {None: "", True: "  meets target", False: "  MISSES target"}[row["meets_target"]]
  return (f"  {method:<17} {row['rounds']:>3} rounds: {row['run_s']:.4g} s{how} = {row['ratio_to_train_step']:.3g} "
          f"training steps = {row['ratio_to_fwd_bwd']:.3g} fwd+bwd (compile {row['compile_s']:.2f} s{loop_text})"
          f"{verdict}")


# ---------------------------------------------------------------------------------------------------------------
# Models and seeds.
# ---------------------------------------------------------------------------------------------------------------


def benchmark_model(name: str, setup: Setup, methods: list[str], args) -> dict[str, Any]:
  """Training step, forward+backward pass and every scorer's pruner on one model."""
  prep = prepare(setup, args.seed)
  x, y = prep.batch
  optimizer = optax.sgd(LEARNING_RATE)
  sizes = masks.layer_sizes(prep.mask)
  result = {"model": setup.model, "data": setup.data, "input_shape": list(x.shape[1:]), "batch": setup.batch,
            "options": setup.options, "prunable_weights": int(sum(sizes)), "prunable_layers": len(sizes),
            "parameters": int(sum(np.size(p) for p in jax.tree_util.tree_leaves(prep.params))),
            "load_average_start": list(os.getloadavg())}
  print(f"\n[{name}] {setup.model} on {setup.data} shape, batch {setup.batch}: {result['parameters']:,} parameters, "
        f"{result['prunable_weights']:,} prunable in {len(sizes)} layers", flush=True)

  step = measure(make_train_step(prep.apply_fn, optimizer), (prep.params, optimizer.init(prep.params), prep.mask, x, y),
                 args.repeats, args.budget)
  fwd_bwd = measure(jax.value_and_grad(make_loss(prep.apply_fn)), (prep.params, prep.mask, x, y), args.repeats,
                    args.budget)
  result.update({"train_step_s": step.run_s, "train_step": step.to_dict(),
                 "fwd_bwd_s": fwd_bwd.run_s, "fwd_bwd": fwd_bwd.to_dict()})
  print(f"  training step {step.run_s:.4g} s (compile {step.compile_s:.2f} s), "
        f"forward+backward {fwd_bwd.run_s:.4g} s (compile {fwd_bwd.compile_s:.2f} s)", flush=True)

  result["scorers"] = {}
  for method in methods:
    start = time.perf_counter()
    row = measure_scorer(prep, method, result, args)
    result["scorers"][method] = row
    print(f"{describe(method, row)}  [{time.perf_counter() - start:.0f} s]", flush=True)
  result["load_average_end"] = list(os.getloadavg())
  return result


def masks_differ(a, b) -> int:
  """Number of mask entries where two masks disagree."""
  return int(sum(np.sum(np.asarray(u) != np.asarray(v))
                 for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b))))


def benchmark_vmap(name: str, setup: Setup, args) -> dict[str, Any]:
  """``jit(vmap(pruner))`` over 8 seeds and parameter sets against 8 sequential calls of the jitted pruner."""
  key = jax.random.key(args.seed)
  apply_fn, init = mfprune.init_fn(setup.create)
  keys = jax.random.split(jax.random.fold_in(key, 3), SEEDS)
  stacked = jax.block_until_ready(jax.jit(jax.vmap(init))(keys))
  singles = [jax.tree.map(lambda p, i=i: p[i], stacked) for i in range(SEEDS)]
  mask = mfprune.dense_mask(singles[0])
  batch = synthetic_batch(setup, jax.random.fold_in(key, 1))
  result = {"seeds": SEEDS, "prunable_weights": int(sum(masks.layer_sizes(mask))), "methods": {}}
  print(f"\n[{name}] {SEEDS} seeds: vmap against sequential calls", flush=True)
  for method in VMAP_METHODS:
    pruner = pruner_for(apply_fn, method, mask, 1)
    vmapped = measure(jax.vmap(pruner, in_axes=(0, None, None, 0)), (stacked, mask, batch, keys), args.repeats,
                      args.budget)
    single, single_compile = _common.compile_program(pruner, (singles[0], mask, batch, keys[0]))
    times, outputs = time_calls(lambda: [single(p, mask, batch, k) for p, k in zip(singles, keys)], args.repeats,
                                args.budget)
    first, run, calls = summarise(times)
    differ = sum(masks_differ(jax.tree.map(lambda m, i=i: m[i], vmapped.output[0]), out[0])
                 for i, out in enumerate(outputs))
    result["methods"][method] = {
        "vmapped": vmapped.to_dict(),
        "sequential": {"compile_s": single_compile, "first_call_s": first, "run_s": run, "calls": calls},
        "ratio_vmapped_over_sequential": vmapped.run_s / run, "mask_entries_differing": differ}
    print(f"  {method:<8} vmapped {vmapped.run_s:.4g} s, sequential {run:.4g} s: ratio "
          f"{vmapped.run_s / run:.3g}; masks differ in {differ} of {SEEDS} x {result['prunable_weights']:,} entries",
          flush=True)
  return result


# ---------------------------------------------------------------------------------------------------------------
# Output.
# ---------------------------------------------------------------------------------------------------------------


def table_row(method: str, row: dict[str, Any]) -> list[Any]:
  """One row of a model's table."""
  target, unlooped = row["target"], row.get("one_round_outside_loop")
  return [method, row["rounds"], row["compile_s"], row["run_s"], row["ratio_to_train_step"], row["ratio_to_fwd_bwd"],
          unlooped["run_s"] if unlooped else "-", target["text"] if target else "-",
          {None: "-", True: "yes", False: "NO"}[row["meets_target"]], "extrapolated" if row["extrapolated"] else ""]


def print_tables(results: dict[str, Any]) -> None:
  """The per-scorer table of every model and the vmap table."""
  print(f"\nPruning to sparsity {SPARSITY} against one training step, {results['device']}, jax {results['jax']}")
  for name, entry in results["models"].items():
    print(f"\n{name}: training step {entry['train_step_s']:.4g} s, forward+backward {entry['fwd_bwd_s']:.4g} s, "
          f"batch {entry['batch']}")
    rows = [table_row(method, row) for method, row in entry["scorers"].items()]
    print(report.format_table(["scorer", "rounds", "compile s", "run s", "x train", "x fwd+bwd", "round unlooped s",
                               "target", "meets", ""], rows))
  vmap = results["vmap"]
  if vmap["models"]:
    print(f"\n{SEEDS} seeds and parameter sets: jit(vmap(pruner)) against {SEEDS} calls of jit(pruner)")
    rows = [[name, method, m["vmapped"]["run_s"], m["sequential"]["run_s"], m["ratio_vmapped_over_sequential"],
             m["mask_entries_differing"]]
            for name, entry in vmap["models"].items() for method, m in entry["methods"].items()]
    print(report.format_table(["model", "scorer", "vmapped s", "sequential s", "ratio", "mask diffs"], rows))
  for name, why in vmap["skipped"].items():
    print(f"vmap skipped on {name}: {why}")


def output_path(out: Path) -> Path:
  """``out`` itself when it names a ``.json`` file, else ``out/bench_prune.json`` (a results folder)."""
  return out if out.suffix == ".json" else out / "bench_prune.json"


def parse_args() -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--models", default="mlp,vgg16,resnet32", help="comma-separated, from: mlp, vgg16, resnet32")
  parser.add_argument("--scorers", default=None, help="comma-separated scorers (default: every registered one)")
  parser.add_argument("--repeats", type=int, default=5, help="timed calls after the first (default 5)")
  parser.add_argument("--budget", type=float, default=20.0,
                      help="seconds one measurement may spend on calls before it stops repeating (default 20)")
  parser.add_argument("--max-call-seconds", type=float, default=60.0,
                      help="SynFlow-family calls predicted longer than this are extrapolated (default 60)")
  parser.add_argument("--vmap-models", default="auto",
                      help="models for the vmap comparison; 'auto': all but full-size vgg16 on CPU, all elsewhere")
  parser.add_argument("--quick", action="store_true", help="tiny models, batch <= 32, 5 SynFlow rounds: smoke test")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--out", type=Path, default=ROOT / "experiments" / "results" / "bench_prune.json",
                      help="JSON file, or a folder for bench_prune.json (default experiments/results/bench_prune.json)")
  args = parser.parse_args()
  args.setups = QUICK_SETUPS if args.quick else SETUPS
  args.model_names = [m for m in args.models.split(",") if m]
  unknown = [m for m in args.model_names if m not in args.setups]
  if unknown or not args.model_names:
    parser.error(f"--models: unknown {unknown}; choose from {', '.join(args.setups)}")
  scorers = list(mfprune.available_scorers())
  args.methods = scorers if args.scorers is None else [s for s in args.scorers.split(",") if s]
  if not args.methods or any(s not in scorers for s in args.methods):
    parser.error(f"--scorers: choose from {', '.join(scorers)}")
  if args.repeats < 1 or args.budget <= 0 or args.max_call_seconds <= 0:
    parser.error("--repeats must be >= 1, --budget and --max-call-seconds > 0")
  if args.vmap_models == "auto":
    on_cpu = jax.default_backend() == "cpu"
    args.vmap_names = [m for m in args.model_names if m != "vgg16" or not on_cpu or args.quick]
  else:
    args.vmap_names = [m for m in args.vmap_models.split(",") if m]
    if any(m not in args.setups for m in args.vmap_names):
      parser.error(f"--vmap-models: choose from {', '.join(args.setups)}")
  return args


def main() -> None:
  args = parse_args()
  wall = time.perf_counter()
  results = {
      "benchmark": f"pruning at initialisation to sparsity {SPARSITY} against one SGD training step",
      **_common.machine_info(), "dtype": "float32",
      "quick": args.quick, "sparsity": SPARSITY, "repeats": args.repeats, "budget_s": args.budget,
      "max_call_seconds": args.max_call_seconds, "learning_rate": LEARNING_RATE,
      "load_average_start": list(os.getloadavg()), "models": {}, "vmap": {"models": {}, "skipped": {}},
  }
  print(f"{results['device']}, {results['cpus_usable']} CPUs usable, jax {jax.__version__}; load average "
        f"{results['load_average_start'][0]:.2f}", flush=True)
  for name in args.model_names:
    results["models"][name] = benchmark_model(name, args.setups[name], args.methods, args)
  for name in args.model_names:
    if name in args.vmap_names:
      results["vmap"]["models"][name] = benchmark_vmap(name, args.setups[name], args)
    else:
      results["vmap"]["skipped"][name] = ("not run on CPU by default: 8 sequential + 8 vmapped VGG16 pruners take "
                                          "about 7 minutes there; pass --vmap-models to run it")
  results["load_average_end"] = list(os.getloadavg())
  results["total_seconds"] = time.perf_counter() - wall
  out = report.write_json(output_path(args.out), results)
  print_tables(results)
  print(f"\nwrote {out} (total {results['total_seconds']:.0f} s; load average {results['load_average_start'][0]:.2f} "
        f"at the start, {results['load_average_end'][0]:.2f} at the end)")


if __name__ == "__main__":
  main()
