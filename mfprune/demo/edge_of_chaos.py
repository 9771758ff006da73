"""Demo part 1: the edge of chaos of tanh and SiLU networks, what it predicts, as a table, JSON and PNG.

For each activation: the EOC curve σw(σb) ([R] App. B.1.3), the phase, χ and depth scales of three initialisations
at one σb (ordered, EOC, chaotic), the well-/ill-conditioning verdict of Definition 1 of [R] for a depth-20 network
(Theorem 1), and a phase diagram.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

import theory
from mfprune import report

ACTIVATIONS = ("tanh", "silu")
SIGMA_B = np.linspace(0.0, 1.0, 41)
SIGMA_W = np.linspace(0.2, 3.0, 57)
PROBE_SIGMA_B = 0.3
DEPTH = 20  # 4L = 80 layers: a chaotic SiLU net (variance ~2.1^l) still fits float32


def _probes(activation: str) -> dict[str, float]:
  """Three σw at σb = PROBE_SIGMA_B: 30% below the EOC, on it, 30% above (the EOC must exist there)."""
  sigma_w = theory.eoc_sigma_w(activation, PROBE_SIGMA_B)
  return {"ordered": 0.7 * sigma_w, "eoc": sigma_w, "chaotic": 1.3 * sigma_w}


def run(out: Path) -> dict:
  """Computes the EOC part, prints a summary, writes ``out/eoc.json`` and ``out/phase_diagram.png``.

  Args:
    out: output folder (created if missing).

  Returns:
    The results written to JSON.
  """
  start = time.perf_counter()
  results: dict = {"activations": {}, "depth": DEPTH, "probe_sigma_b": PROBE_SIGMA_B}
  diagrams = {}
  steps = [(a, s) for a in ACTIVATIONS for s in ("EOC curve", "phases", "conditioning", "phase diagram")]
  for activation, step in tqdm(steps, desc="edge of chaos", unit="step", leave=False):
    entry = results["activations"].setdefault(activation, {})
    if step == "EOC curve":
      entry["eoc"] = theory.eoc_curve(activation, SIGMA_B).to_dict()
    elif step == "phases":
      probes = _probes(activation)
      points = theory.phase(activation, PROBE_SIGMA_B, jnp.asarray(list(probes.values())))
      entry["probes"] = dict(zip(probes, _split(points.to_dict(), len(probes))))
    elif step == "conditioning":
      entry["conditioning"] = {}
      for name, sigma_w in _probes(activation).items():
        verdict = theory.conditioning(activation, PROBE_SIGMA_B, sigma_w, DEPTH)
        entry["conditioning"][name] = {"well_conditioned": bool(verdict.well_conditioned),
                                       "spread_at_L_2L_4L": np.asarray(verdict.spread, float).tolist(),
                                       "log_spread_growth": float(verdict.growth)}
    else:
      diagrams[activation] = theory.phase_diagram(activation, SIGMA_B, SIGMA_W)
  results["seconds"] = round(time.perf_counter() - start, 2)

  out = Path(out)
  report.write_json(out / "eoc.json", results)
  report.save_figure(report.plot_phase_diagrams(diagrams), out / "phase_diagram.png")
  _print_summary(results)
  print(f"\nwrote {out / 'eoc.json'} and {out / 'phase_diagram.png'} in {results['seconds']} s")
  return results


def _split(values: dict, n: int) -> list[dict]:
  return [{k: (v[i] if isinstance(v, list) else v) for k, v in values.items()} for i in range(n)]


def _print_summary(results: dict) -> None:
  shown = [0, 4, 12, 20, 40]  # σb = 0, 0.1, 0.3, 0.5, 1.0
  for activation, entry in results["activations"].items():
    eoc = entry["eoc"]
    print(f"\n== {activation}: edge of chaos ([R] App. B.1.3) ==")
    rows = [[eoc["sigma_b"][i], _num(eoc["sigma_w"][i]), _num(eoc["q_star"][i]), eoc["status"][i]] for i in shown]
    print(report.format_table(["sigma_b", "sigma_w", "q*", "status"], rows))
    for status, message in eoc["status_messages"].items():
      print(f"  {status}: {message}")
    print(f"\n   initialisations at sigma_b = {results['probe_sigma_b']}, depth {results['depth']} "
          "(Theorem 1 / Definition 1 of [R])")
    rows = []
    for name, point in entry["probes"].items():
      verdict = entry["conditioning"][name]
      q_star = "inf" if point["q_star"] is None else point["q_star"]
      rows.append([name, point["sigma_w"], q_star, point["chi"], _num(point["xi_c"]), point["phase"],
                   "well" if verdict["well_conditioned"] else "ill"])
    print(report.format_table(["init", "sigma_w", "q*", "chi", "xi_c", "phase", "conditioned"], rows))
    if any(point["q_star"] is None for point in entry["probes"].values()):
      print("   q* = inf: the variance explodes; the forward growth then balances the gradient growth in m_l, so the\n"
            "   SBP profile stays level (see docs/concepts.md, 'Diverging variance').")


def _num(value):
  return float("nan") if value is None else value
