"""The mfprune command line: parsing, outputs, and clear errors for bad input."""

import argparse
import json

import numpy as np
import pytest

import theory
from mfprune import cli


@pytest.mark.parametrize("text, expected", [
    ("0.3", [0.3]),
    ("0,0.1,0.5", [0.0, 0.1, 0.5]),
    ("0:1:5", [0.0, 0.25, 0.5, 0.75, 1.0]),
])
def test_parse_sigma_list(text, expected):
  np.testing.assert_allclose(cli.parse_sigma_list(text), expected)


@pytest.mark.parametrize("text", ["0:1", "0:1:0", "a,b", "0:1:x", "", "nan"])
def test_parse_sigma_list_rejects_bad_specs(text):
  with pytest.raises(argparse.ArgumentTypeError):
    cli.parse_sigma_list(text)


def test_eoc_writes_json_matching_the_library(tmp_path, capsys):
  out_json = tmp_path / "eoc.json"
  assert cli.main(["eoc", "-a", "tanh", "--sigma-b", "0,0.3,1", "--json", str(out_json)]) == 0
  data = json.loads(out_json.read_text())
  expected = theory.eoc_curve("tanh", np.array([0.0, 0.3, 1.0]))
  np.testing.assert_allclose(data["sigma_w"], np.asarray(expected.sigma_w), rtol=1e-6)
  assert data["status"] == ["limit", "ok", "ok"]
  assert "limit" in capsys.readouterr().out


@pytest.mark.slow  # compiles a phase diagram (tens of seconds on two cores)
def test_eoc_plot_is_a_png(tmp_path):
  out_png = tmp_path / "eoc.png"
  assert cli.main(["eoc", "-a", "tanh", "--sigma-b", "0:1:5", "--plot", str(out_png)]) == 0
  assert out_png.read_bytes()[:4] == b"\x89PNG"


def test_eoc_reports_missing_eoc_explicitly(tmp_path):
  out_json = tmp_path / "softplus.json"
  assert cli.main(["eoc", "-a", "softplus", "--sigma-b", "0.2", "--json", str(out_json)]) == 0
  data = json.loads(out_json.read_text())
  assert data["status"] == ["none"] and data["sigma_w"] == [None]
  assert "no EOC" in data["status_messages"]["none"]


def test_phase_prints_phase_and_writes_json(tmp_path, capsys):
  out_json = tmp_path / "phase.json"
  assert cli.main(["phase", "-a", "tanh", "--sigma-b", "0.1", "--sigma-w", "1.5", "--json", str(out_json)]) == 0
  data = json.loads(out_json.read_text())
  assert data["phase"] == "chaotic" and data["chi"] > 1
  assert "CHAOTIC" in capsys.readouterr().out


def test_activation_parameters_reach_the_library(tmp_path):
  out_json = tmp_path / "leaky.json"
  cli.main(["eoc", "-a", "leaky_relu", "--param", "negative_slope=0.2", "--sigma-b", "0", "--json",
            str(out_json)])
  # Single EOC point of leaky ReLU: σw = 1/√((1 + a²)/2).
  assert json.loads(out_json.read_text())["sigma_w"][0] == pytest.approx(1 / np.sqrt((1 + 0.04) / 2), rel=1e-5)


@pytest.mark.parametrize("argv, message", [
    (["eoc", "-a", "nope"], "unknown activation 'nope'"),
    (["phase", "-a", "tanh", "--sigma-b", "-1", "--sigma-w", "1"], "sigma_b must be >= 0"),
    (["phase", "-a", "tanh", "--sigma-b", "0.1", "--sigma-w", "0"], "sigma_w must be > 0"),
    (["eoc", "-a", "tanh", "--sigma-b=-0.5,1"], "--sigma-b must be >= 0"),
    (["eoc", "-a", "elu", "--param", "alpha=-1"], "elu.alpha must be > 0"),
    (["eoc", "-a", "tanh", "--param", "slope=1"], "takes parameters"),
])
def test_bad_input_exits_2_with_one_clear_line(argv, message, capsys):
  with pytest.raises(SystemExit) as exit_info:
    cli.main(argv)
  assert exit_info.value.code == 2
  assert message in capsys.readouterr().err


@pytest.mark.slow
def test_demo_writes_results(tmp_path):
  results = cli.main(["demo", "--out", str(tmp_path)])
  assert results == 0
  data = json.loads((tmp_path / "eoc.json").read_text())
  tanh = data["activations"]["tanh"]
  assert tanh["probes"]["eoc"]["phase"] == "eoc"
  assert tanh["conditioning"]["eoc"]["well_conditioned"]
  assert not tanh["conditioning"]["ordered"]["well_conditioned"]
  assert (tmp_path / "phase_diagram.png").read_bytes()[:4] == b"\x89PNG"
