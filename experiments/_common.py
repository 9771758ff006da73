"""What the experiment and benchmark scripts share, so that each piece lives once.

* command lines: :func:`parse_list` (comma lists of numbers or names), :data:`RESULTS` (the default ``--out``),
  :func:`add_network_options` (the tanh-MLP options of ``scr_theorem1.py`` and ``scr_vs_sigma.py``);
* the machine a result was measured on: :func:`machine_info`, :func:`backend_info`, :func:`cpu_model`;
* benchmarks: :func:`compile_program` (ahead-of-time compilation, timed);
* pruning sweeps: :func:`density` (``10^-ratio``, [P] §5), :func:`zero_init`;
* SNIP's critical sparsity of a deep tanh MLP (``scr_theorem1.py``, ``scr_vs_sigma.py``): :func:`load_batch`,
  :func:`mlp_widths`, :func:`input_q1`, :class:`ScaledSeeds`, :func:`product_law_mean`, :func:`predictions`,
  :func:`bounds`, :func:`plot_measured_and_predicted`.

Scripts import it as ``from experiments import _common`` after putting the repository root on ``sys.path``, which
works both for ``python experiments/NAME.py`` and ``python -m experiments.NAME``. Importing it changes no JAX
setting: the float64 scripts enable ``jax_enable_x64`` themselves, before they import it.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mfprune import data, functional, masks, pipeline, signal, statistics
from theory import gradients, sparsity

T = TypeVar("T")

RESULTS = Path(__file__).resolve().parent / "results"
"""The folder the scripts write to by default (``--out``)."""


# ---------------------------------------------------------------------------------------------------------------
# Command lines.
# ---------------------------------------------------------------------------------------------------------------


def parse_list(text: str, kind: Callable[[str], T] = float) -> list[T]:
  """Parses a comma-separated option value such as ``--ratios 0.5,1,2`` into a list (argparse's ``type=``).

  Empty items (``""``, ``"1,,2"``, a trailing comma) are skipped; every other item goes to ``kind`` as it is
  (``int`` and ``float`` ignore the spaces around a number, ``str`` keeps them).

  Args:
    text: the option's value.
    kind: the element type, e.g. ``float`` (the default), ``int`` or ``str``.

  Returns:
    The parsed items, in order.

  Raises:
    ValueError: an item that ``kind`` rejects; the message names the item and the whole value. argparse reports
      it as ``argument --NAME: invalid parse_list value: 'TEXT'`` (``<lambda>`` where a lambda passes ``kind``).
  """
  values = []
  for item in text.split(","):
    if not item.strip():
      continue
    try:
      values.append(kind(item))
    except ValueError:
      name = getattr(kind, "__name__", repr(kind))
      raise ValueError(f"{item!r} in {text!r} is not a valid {name}") from None
  return values


def add_network_options(parser: argparse.ArgumentParser) -> None:
  """Adds the tanh MLP and Monte-Carlo options of ``scr_theorem1.py`` and ``scr_vs_sigma.py`` to ``parser``.

  Args:
    parser: the script's parser; gains ``--depth``, ``--width``, ``--sigma-b``, ``--seeds``, ``--data``,
      ``--batch-size`` and ``--seed``.
  """
  parser.add_argument("--depth", type=int, default=100)
  parser.add_argument("--width", type=int, default=100)
  parser.add_argument("--sigma-b", type=float, default=0.2)
  parser.add_argument("--seeds", type=int, default=10)
  parser.add_argument("--data", choices=("digits", "synthetic"), default="digits")
  parser.add_argument("--batch-size", type=int, default=128)
  parser.add_argument("--seed", type=int, default=0)


# ---------------------------------------------------------------------------------------------------------------
# The machine behind a result.
# ---------------------------------------------------------------------------------------------------------------


def cpu_model() -> str:
  """The processor's name from ``/proc/cpuinfo`` where there is one (Linux), else ``platform.processor()``."""
  try:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor()


def backend_info() -> dict[str, Any]:
  """JAX's default backend and its devices.

  Returns:
    ``{"backend": "cpu", "devices": ["TFRT_CPU_0", ...]}`` (the devices as ``str``).
  """
  return {"backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()]}


def machine_info() -> dict[str, Any]:
  """Which machine, threads and versions ran a benchmark (the fields every ``bench_*.py`` records).

  Returns:
    ``device`` (first device's platform and kind), ``backend``, ``devices``, ``platform`` (the OS),
    ``cpu`` (:func:`cpu_model`), ``cpu_count``, ``cpus_usable`` (the CPUs this process may run on), ``jax``,
    ``flax``, ``optax``, ``python`` (versions) and ``xla_flags`` (``$XLA_FLAGS``, ``""`` if unset). Scripts add
    their own fields (load averages, dtype) next to these.
  """
  device = jax.devices()[0]
  usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  return {"device": f"{device.platform} ({device.device_kind})", **backend_info(), "platform": platform.platform(),
          "cpu": cpu_model(), "cpu_count": os.cpu_count(), "cpus_usable": usable, "jax": jax.__version__,
          "flax": flax.__version__, "optax": optax.__version__, "python": platform.python_version(),
          "xla_flags": os.environ.get("XLA_FLAGS", "")}


# ---------------------------------------------------------------------------------------------------------------
# Benchmarks and pruning sweeps.
# ---------------------------------------------------------------------------------------------------------------


def compile_program(fn: Callable, args: tuple) -> tuple[Callable, float]:
  """Compiles ``jit(fn)`` ahead of time for ``args``.

  Args:
    fn: the function to compile.
    args: example arguments (their shapes and dtypes fix the program).

  Returns:
    ``(compiled, seconds)``: the executable and the seconds tracing, lowering and compiling took.
  """
  start = time.perf_counter()
  compiled = jax.jit(fn).lower(*args).compile()
  return compiled, time.perf_counter() - start


def density(ratio: float) -> float:
  """The kept fraction at compression ratio ``ratio``: ``10^-ratio`` ([P] §5, Fig. 3's x axis)."""
  return 10.0 ** (-ratio)


def zero_init(init: Callable) -> Callable:
  """An initialiser with ``init``'s parameter shapes and dtypes that returns zeros (nothing to compile).

  For schemes that redraw every kernel and bias (``pipeline.initial_params(..., "gaussian" | "eoc")``), where the
  model's own initial values do not matter.

  Args:
    init: ``key -> params``.

  Returns:
    ``key -> params`` of zeros.
  """
  shapes = jax.eval_shape(init, jax.random.key(0))
  return lambda key: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


# ---------------------------------------------------------------------------------------------------------------
# SNIP's critical sparsity of a deep tanh MLP (scr_theorem1.py, scr_vs_sigma.py).
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
    zeros = zero_init(init)
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
            "std": float(values.std(ddof=1)) if values.size > 1 else None,
            "interval": statistics.t_interval(values),
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
