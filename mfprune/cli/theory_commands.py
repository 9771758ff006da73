"""``mfprune eoc`` (the EOC curve of an activation) and ``mfprune phase`` (one initialisation's phase)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mfprune.cli.arguments import add_activation_options, parse_sigma_list


def register(commands) -> None:
  eoc = commands.add_parser("eoc", help="the EOC curve sigma_w(sigma_b) of an activation",
                            description="Solve chi(sigma_b, sigma_w) = 1 for each sigma_b ([R] App. B.1.3) and "
                            "print sigma_w, q*, chi, dV/dq and the status of each point.")
  add_activation_options(eoc)
  eoc.add_argument("--sigma-b", type=parse_sigma_list, default=parse_sigma_list("0:1:101"),
                   help="one value, a comma list, or start:stop:count (default 0:1:101)")
  eoc.add_argument("--json", type=Path, help="write the curve as JSON here")
  eoc.add_argument("--plot", type=Path, help="write a phase diagram with the EOC curve as PNG here")
  eoc.set_defaults(run=run_eoc)

  phase = commands.add_parser("phase", help="phase, q*, chi and depth scales of one (sigma_b, sigma_w)",
                              description="Ordered, EOC or chaotic; q*, chi, dV/dq, c*, xi_q, xi_c "
                              "([R] App. B.1.3-B.1.4; Schoenholz et al. 2017).")
  add_activation_options(phase)
  phase.add_argument("--sigma-b", type=float, required=True, help="bias standard deviation (>= 0)")
  phase.add_argument("--sigma-w", type=float, required=True, help="weight standard deviation (> 0)")
  phase.add_argument("--json", type=Path, help="write the result as JSON here")
  phase.set_defaults(run=run_phase)


def _activation(args: argparse.Namespace):
  from theory.activations import get_activation

  return get_activation(args.activation, **dict(args.param))


def _order(args: argparse.Namespace) -> dict:
  return {} if args.order is None else {"order": args.order}

def run_eoc(args) -> int:
  import jax.numpy as jnp

  from mfprune import report
  from theory import eoc

  act = _activation(args)
  if np.any(args.sigma_b < 0):
    raise ValueError(f"--sigma-b must be >= 0; got {args.sigma_b[args.sigma_b < 0][:3].tolist()}")
  curve = eoc.eoc_curve(act, args.sigma_b, **_order(args))
  print(f"EOC of {act.name}  (chi = 1 at the fixed point q*; [R] App. B.1.3)")
  print(report.eoc_table(curve))
  codes = sorted(set(np.atleast_1d(np.asarray(curve.status)).tolist()))
  for code in codes:
    print(f"  {eoc.EOCStatus(code).name.lower()}: {eoc.EOCStatus(code).message}")
  if args.json:
    report.write_json(args.json, {"activation": act.name, **curve.to_dict()})
    print(f"wrote {args.json}")
  if args.plot:
    finite = np.asarray(curve.sigma_w)[np.isfinite(np.asarray(curve.sigma_w))]
    top = 2.0 * float(finite.max()) if finite.size else 3.0
    sigma_b = args.sigma_b if args.sigma_b.size > 1 else np.linspace(0.0, max(1.0, 2 * args.sigma_b[0]), 51)
    diagram = eoc.phase_diagram(act, jnp.asarray(sigma_b), jnp.linspace(0.05, top, 60), **_order(args))
    report.save_figure(report.plot_phase_diagrams({act.name: diagram}), args.plot)
    print(f"wrote {args.plot}")
  return 0


def run_phase(args) -> int:
  from mfprune import report
  from theory import eoc

  act = _activation(args)
  point = eoc.phase(act, args.sigma_b, args.sigma_w, **_order(args))
  values = point.to_dict()
  reference = eoc.eoc_curve(act, args.sigma_b, **_order(args))
  status = eoc.EOCStatus(int(reference.status))
  values["eoc_sigma_w_at_this_sigma_b"] = reference.to_dict()["sigma_w"][0]
  values["eoc_status_at_this_sigma_b"] = status.name.lower()
  print(f"{act.name} at sigma_b={args.sigma_b}, sigma_w={args.sigma_w}: {values['phase'].upper()} phase")
  rows = [[key, "inf/undefined" if value is None else value] for key, value in values.items()
          if key not in ("phase", "sigma_b", "sigma_w")]
  print(report.format_table(["quantity", "value"], rows))
  if status == eoc.EOCStatus.NONE:
    print(f"  note: {status.message}")
  if args.json:
    report.write_json(args.json, {"activation": act.name, **values})
    print(f"wrote {args.json}")
  return 0
