"""``mfprune demo``: the toolkit's showcase (see :mod:`mfprune.demo`)."""

from __future__ import annotations

import argparse

from mfprune.cli import arguments


def register(commands) -> None:
  demo = commands.add_parser("demo", help="the main job: EOC curves and phase diagrams of tanh and SiLU",
                             description="Compute the EOC curves, phases and conditioning of tanh and SiLU "
                             "networks and write runs/demo/{eoc.json, phase_diagram.png}.")
  arguments.add_out_option(demo, "runs/demo")
  demo.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
  from mfprune import demo

  demo.run(args.out)
  return 0
