"""``make demo`` (``mfprune demo``): the toolkit's showcase, on the embedded digits data, on a CPU in about 2 min.

1. :mod:`mfprune.demo.edge_of_chaos`: EOC curves, phases, conditioning verdicts and phase diagrams of tanh and SiLU
   (``eoc.json``, ``phase_diagram.png``).
2. :mod:`mfprune.demo.pruned_mlps`: deep tanh MLPs pruned by SNIP with ordered-phase, EOC and EOC + rescaling
   initialisations ([R] Fig. 3), theory's predictions next to accuracy after training them together under
   ``jax.vmap`` (``pruning.json``, ``pruning.png``, ``training/``).
"""

from __future__ import annotations

from pathlib import Path

from mfprune.demo import edge_of_chaos, pruned_mlps


def run(out: str | Path = "runs/demo") -> dict:
  """Runs both parts and writes their files under ``out``; returns ``{"edge_of_chaos": ..., "pruning": ...}``."""
  out = Path(out)
  return {"edge_of_chaos": edge_of_chaos.run(out), "pruning": pruned_mlps.run(out)}


__all__ = ["run", "edge_of_chaos", "pruned_mlps"]
