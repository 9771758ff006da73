"""Results a person can look at: matplotlib figures (PNG), text tables, benchmark timings; JSON through
:mod:`mfprune.files` (re-exported here: :func:`write_json`, :func:`atomic_write`, :func:`jsonable`)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import numpy as np

from mfprune.files import atomic_write, jsonable, write_json
from theory.eoc import EOCPoint, EOCStatus, PhaseDiagram

__all__ = ["atomic_write", "jsonable", "write_json", "save_figure", "pyplot", "format_table", "eoc_table", "Timing",
           "timed", "plot_phase_diagrams", "plot_layer_density", "plot_training_curves", "plot_kept_fraction"]


def save_figure(figure, path: str | os.PathLike, dpi: int = 120) -> Path:
  """Saves a matplotlib figure as PNG, atomically, and closes it."""
  import matplotlib.pyplot as plt

  try:
    return atomic_write(path, lambda handle: figure.savefig(handle, format="png", dpi=dpi, bbox_inches="tight"))
  finally:
    plt.close(figure)


def pyplot():
  """``matplotlib.pyplot`` with the non-interactive Agg backend (figures are written to files)."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  return plt


def plot_phase_diagrams(diagrams: Mapping[str, PhaseDiagram]):
  """One panel per activation: ``log χ`` over (σb, σw), the EOC curve on top (dashed where q* is unstable).

  Args:
    diagrams: activation name -> :class:`theory.eoc.PhaseDiagram`.

  Returns:
    A matplotlib figure.
  """
  plt = pyplot()
  from matplotlib.colors import TwoSlopeNorm

  n = len(diagrams)
  figure, axes = plt.subplots(1, n, figsize=(5.2 * n, 4.4), squeeze=False)
  for ax, (name, diagram) in zip(axes[0], diagrams.items()):
    sigma_b, sigma_w = np.asarray(diagram.sigma_b), np.asarray(diagram.sigma_w)
    log_chi = np.log(np.clip(np.asarray(diagram.chi, np.float64), 1e-6, None))
    bound = max(float(np.nanmax(np.abs(log_chi))), 1e-3)
    mesh = ax.pcolormesh(sigma_b, sigma_w, log_chi, shading="auto", cmap="RdBu_r",
                         norm=TwoSlopeNorm(vcenter=0.0, vmin=-bound, vmax=bound))
    figure.colorbar(mesh, ax=ax, label="log χ  (<0 ordered, >0 chaotic)")
    if np.nanmin(log_chi) < 0 < np.nanmax(log_chi):
      ax.contour(sigma_b, sigma_w, log_chi, levels=[0.0], colors="0.45", linestyles=":", linewidths=1.5)
      ax.plot([], [], ":", color="0.45", label="χ = 1 at the attracting q*")
    _draw_eoc(ax, diagram.eoc, sigma_w)
    ax.set_xlabel("σb")
    ax.set_ylabel("σw")
    ax.set_title(f"{name}: phase diagram")
    ax.set_ylim(sigma_w.min(), sigma_w.max())
  return figure


def _draw_eoc(ax, curve: EOCPoint, sigma_w_range: np.ndarray) -> None:
  sigma_b, sigma_w = np.asarray(curve.sigma_b), np.asarray(curve.sigma_w)
  status = np.asarray(curve.status)
  stable = np.isin(status, [EOCStatus.OK, EOCStatus.LIMIT, EOCStatus.SINGLE_POINT])
  unstable = status == EOCStatus.UNSTABLE
  ax.plot(np.where(stable, sigma_b, np.nan), np.where(stable, sigma_w, np.nan), "k-", lw=2, label="EOC (stable q*)")
  isolated = np.isin(status, [EOCStatus.LIMIT, EOCStatus.SINGLE_POINT])
  if isolated.any():
    ax.plot(sigma_b[isolated], sigma_w[isolated], "ko", ms=5, label="σb = 0 limit / single point")
  if unstable.any():
    ax.plot(np.where(unstable, sigma_b, np.nan), np.where(unstable, sigma_w, np.nan), "k--", lw=1.5,
            label="χ = 1 at unstable q*")
  if (status == EOCStatus.NONE).any():
    missing = sigma_b[status == EOCStatus.NONE]
    ax.plot(missing, np.full_like(missing, sigma_w_range.min()), "x", color="0.3", label="no EOC at this σb")
  ax.legend(loc="upper left", fontsize=8)


class Timing(NamedTuple):
  """Seconds of a benchmarked call: the first (compilation included) and the median of the repeats after it."""

  first: float
  median: float
  output: Any


def timed(fn: Callable[[], Any], repeats: int) -> Timing:
  """Calls ``fn`` once, then ``repeats`` more times, each ended by ``jax.block_until_ready`` (for benchmarks).

  Returns:
    :class:`Timing`: the first call's seconds, the median of the later ones (``nan`` when ``repeats`` is 0) and the
    last output.
  """
  import jax

  start = time.perf_counter()
  output = jax.block_until_ready(fn())
  first = time.perf_counter() - start
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    output = jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return Timing(first, float(np.median(times)) if times else float("nan"), output)


def format_table(header: list[str], rows: list[list[Any]]) -> str:
  """A plain fixed-width text table (floats with 6 significant digits)."""

  def cell(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
      return "nan" if np.isnan(value) else f"{value:.6g}"
    return str(value)

  cells = [[cell(v) for v in row] for row in rows]
  widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(header)]
  lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
  lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
  return "\n".join(lines)


def eoc_table(curve: EOCPoint) -> str:
  """The EOC curve as a text table with one status per row."""
  columns = [np.atleast_1d(np.asarray(getattr(curve, f), np.float64))
             for f in ("sigma_b", "sigma_w", "q_star", "chi", "variance_slope")]
  statuses = [EOCStatus(int(s)).name.lower() for s in np.atleast_1d(np.asarray(curve.status))]
  rows = [[*(float(col[i]) for col in columns), statuses[i]] for i in range(len(statuses))]
  return format_table(["sigma_b", "sigma_w", "q*", "chi", "dV/dq", "status"], rows)


def plot_layer_density(table: Sequence[Any], title: str = ""):
  """Bar chart of the kept fraction of every prunable layer, in network order (like [R] Fig. 2).

  ``table`` holds :class:`mfprune.masks.LayerDensity` rows (anything with ``name``, ``kept``, ``total`` and
  ``fraction``), e.g. :func:`mfprune.masks.density`.

  Collapsed layers (nothing kept) are marked in red; the dashed line is the overall density.
  """
  plt = pyplot()
  fractions = np.array([d.fraction for d in table])
  overall = sum(d.kept for d in table) / max(1, sum(d.total for d in table))
  figure, ax = plt.subplots(figsize=(max(6.0, 0.22 * len(table) + 2), 3.6))
  colours = ["tab:red" if d.kept == 0 else "tab:blue" for d in table]
  ax.bar(np.arange(len(table)), fractions, color=colours, width=0.8)
  ax.axhline(overall, color="black", linestyle="--", linewidth=1, label=f"overall {overall:.3g}")
  ax.set_xlabel("prunable layer (network order)")
  ax.set_ylabel("kept fraction")
  ax.set_ylim(0, 1.02)
  ax.set_xlim(-0.8, len(table) - 0.2)
  if len(table) <= 24:
    ax.set_xticks(np.arange(len(table)), [d.name.removesuffix("/kernel") for d in table], rotation=70,
                  fontsize=7, ha="right")
  ax.legend(loc="upper right", fontsize=8)
  if title:
    ax.set_title(title, fontsize=10)
  return figure


def plot_training_curves(history: Sequence[Mapping[str, Any]], title: str = "", labels: Sequence[str] | None = None):
  """Loss and accuracy against step from the records of :func:`mfprune.train.train` (``metrics.jsonl``).

  One line per split (train, validation, test); for an ensemble, one line per member and split, named by
  ``labels`` when given.
  """
  plt = pyplot()
  figure, axes = plt.subplots(1, 2, figsize=(10, 3.6))
  styles = {"train": "-", "validation": "--", "test": ":"}
  splits = [s for s in styles if any(r["split"] == s for r in history)]
  for split in splits:
    records = [r for r in history if r["split"] == split]
    steps = np.array([r["step"] for r in records])
    for ax, metric in zip(axes, ("loss", "accuracy")):
      values = np.array([np.atleast_1d(r[metric]) for r in records], dtype=float)
      for member in range(values.shape[1] if values.size else 0):
        name = labels[member] if labels is not None else (f"#{member}" if values.shape[1] > 1 else "")
        ax.plot(steps, values[:, member], styles[split], color=f"C{member % 10}", marker="." if len(steps) < 4
                else None, label=f"{split} {name}".strip())
  for ax, metric in zip(axes, ("loss", "accuracy")):
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
  axes[1].set_ylim(0, 1.02)
  handles, names = axes[1].get_legend_handles_labels()
  if handles:
    axes[1].legend(handles, names, fontsize=7, loc="lower right", ncol=1 + len(names) // 8)
  if title:
    figure.suptitle(title, fontsize=10)
  return figure


def plot_kept_fraction(sparsities: Sequence[float], kept_fraction: Any, layers: Sequence[str], *,
                       critical: float | None = None, interval: Sequence[float] | None = None, title: str = ""):
  """Heat map of the kept fraction of every layer against sparsity (x: sparsity, y: layer in network order).

  Built for :class:`mfprune.signal.CriticalSparsity` (``sparsities``, ``kept_fraction``, ``layers``): cells where a
  layer keeps nothing are drawn light grey, so the layers that die first stand out; a dashed line marks the mean
  critical sparsity ``critical`` and a band its ``interval``. Readable for a hundred layers (ticks every few layers;
  names when there are at most 24).

  Returns:
    A matplotlib figure.
  """
  plt = pyplot()
  grid = np.asarray(sparsities, np.float64)
  values = np.asarray(kept_fraction, np.float64)
  order = np.argsort(grid, kind="stable")
  grid, values = grid[order], values[order]
  n_layers = values.shape[1]
  if grid.size > 1:  # cell edges halfway between grid points, the outer ones mirrored
    mid = (grid[1:] + grid[:-1]) / 2
    edges = np.concatenate([[2 * grid[0] - mid[0]], mid, [2 * grid[-1] - mid[-1]]])
  else:
    edges = np.array([grid[0] - 0.005, grid[0] + 0.005])
  figure, ax = plt.subplots(figsize=(8.0, min(9.0, max(3.2, 0.09 * n_layers + 2.0))))
  cmap = plt.get_cmap("viridis").with_extremes(under="0.88")
  mesh = ax.pcolormesh(edges, np.arange(n_layers + 1) - 0.5, values.T, cmap=cmap, vmin=1e-9, vmax=1.0,
                       shading="flat")
  figure.colorbar(mesh, ax=ax, label="kept fraction (mean over seeds); grey: empty", extend="min")
  if interval is not None and all(v is not None and np.isfinite(v) for v in interval):
    ax.axvspan(interval[0], interval[1], color="tab:red", alpha=0.18, lw=0)
  if critical is not None and np.isfinite(critical):
    ax.axvline(critical, color="tab:red", ls="--", lw=1.3, label=f"mean s_cr {critical:.4g}")
    ax.legend(loc="upper left", fontsize=8)
  right = edges[-1] if critical is None or not np.isfinite(critical) else max(edges[-1], critical + 0.005)
  ax.set_xlim(edges[0], right)
  ax.set_xlabel("sparsity")
  ax.set_ylabel("layer (network order)")
  ax.set_ylim(-0.5, n_layers - 0.5)
  if n_layers <= 24:
    ax.set_yticks(np.arange(n_layers), [name.removesuffix("/kernel") for name in layers], fontsize=7)
  if title:
    ax.set_title(title, fontsize=10)
  return figure
