"""The demo (``make demo``): both parts write their files, and what they show is what theory says."""

import json

import numpy as np
import pytest

from mfprune import cli, train
from mfprune.demo import pruned_mlps


def _check_edge_of_chaos(out):
  data = json.loads((out / "eoc.json").read_text())
  tanh = data["activations"]["tanh"]
  assert tanh["probes"]["eoc"]["phase"] == "eoc"
  assert tanh["conditioning"]["eoc"]["well_conditioned"]
  assert not tanh["conditioning"]["ordered"]["well_conditioned"]
  assert (out / "phase_diagram.png").read_bytes()[:4] == b"\x89PNG"


def test_pruning_part_small(tmp_path, capsys):
  """A small version (depth 8, one seed, 40 steps): the files, and the mean-field story before training."""
  config = train.TrainConfig(steps=40, batch_size=64, optimizer="momentum", learning_rate=0.01, log_every=20,
                             eval_every=20)
  results = pruned_mlps.run(tmp_path, depth=8, width=32, seeds=(0,), training=config)
  saved = json.loads((tmp_path / "pruning.json").read_text())
  assert [v["variant"] for v in saved["variants"]] == ["ordered", "EOC", "EOC + rescaling"]
  ordered, eoc, rescaled = results["variants"]
  assert ordered["chi_dense"] < 0.9 and eoc["chi_dense"] == pytest.approx(1.0, abs=1e-3)
  # Pruning moves the EOC net into the ordered phase (α_l < 1); the rescaling restores each kept row's norm.
  assert eoc["chi_effective"] < 0.85 < rescaled["chi_effective"]
  member = {m["variant"]: m for m in results["members"]}
  assert max(member["EOC"]["alpha_per_layer"]) < 0.9
  assert np.median(member["EOC + rescaling"]["alpha_per_layer"]) > 0.85
  assert all(0.0 <= m["test_accuracy"] <= 1.0 for m in results["members"])
  assert (tmp_path / "pruning.png").read_bytes()[:4] == b"\x89PNG"
  assert (tmp_path / "training" / "metrics.jsonl").exists()
  assert "EOC + rescaling" in capsys.readouterr().out


@pytest.mark.slow
def test_the_full_demo_reproduces_fig3_of_the_paper(tmp_path):
  """``mfprune demo``: at depth 30 and 80% sparsity only the rescaled EOC net trains ([R] Fig. 3)."""
  assert cli.main(["demo", "--out", str(tmp_path)]) == 0
  _check_edge_of_chaos(tmp_path)
  variants = {v["variant"]: v for v in json.loads((tmp_path / "pruning.json").read_text())["variants"]}
  assert variants["EOC + rescaling"]["test_accuracy"] > 0.85
  assert variants["EOC + rescaling"]["test_accuracy"] > variants["EOC"]["test_accuracy"] + 0.3
  assert variants["EOC + rescaling"]["test_accuracy"] > variants["ordered"]["test_accuracy"] + 0.3
