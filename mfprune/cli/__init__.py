"""The ``mfprune`` command line: ``mfprune eoc | phase | prune | scr | paths | ntk | train | demo``.

Each command lives in its own module and registers its parser (``register(commands)``, which sets ``run``). Run
``mfprune COMMAND --help`` for each command's options; docs/cli.md has examples.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from mfprune.cli import (demo_command, ntk_command, paths_command, prune_command, scr_command, theory_commands,
                         train_command)
from mfprune.cli.arguments import parse_sigma_list


def build_parser() -> argparse.ArgumentParser:
  """The argument parser of the ``mfprune`` command."""
  parser = argparse.ArgumentParser(
      prog="mfprune",
      description="Mean-field theory of deep random networks for pruning at initialization.",
  )
  parser.add_argument("--x64", action="store_true", help="compute in float64 (default float32)")
  commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
  for module in (theory_commands, prune_command, scr_command, paths_command, ntk_command, train_command,
                 demo_command):
    module.register(commands)
  return parser


def main(argv: Sequence[str] | None = None) -> int:
  """Entry point of the ``mfprune`` command; returns the exit status."""
  parser = build_parser()
  args = parser.parse_args(argv)
  if args.x64:
    import jax

    jax.config.update("jax_enable_x64", True)
  try:
    return args.run(args)
  except (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError,
          PermissionError) as error:  # bad input reaching the library (or a path it cannot write): one clear line
    parser.exit(2, f"mfprune {args.command}: error: {error}\n")


__all__ = ["build_parser", "main", "parse_sigma_list"]

if __name__ == "__main__":
  sys.exit(main())
