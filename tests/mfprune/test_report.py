"""mfprune.report: atomic writes, JSON strictness, tables and figures."""

import json
import os

import numpy as np
import pytest

import theory
from mfprune import report


def test_write_json_is_atomic_and_leaves_no_temporary_files(tmp_path):
  path = tmp_path / "sub" / "out.json"
  report.write_json(path, {"a": [1, 2.5, None]})
  assert json.loads(path.read_text()) == {"a": [1, 2.5, None]}
  assert os.listdir(path.parent) == ["out.json"]


def test_failed_write_keeps_the_previous_file(tmp_path):
  path = tmp_path / "out.json"
  report.write_json(path, {"version": 1})
  with pytest.raises(TypeError):  # not JSON-serialisable: the write fails before replacing anything
    report.write_json(path, {"version": object()})
  assert json.loads(path.read_text()) == {"version": 1}
  assert os.listdir(tmp_path) == ["out.json"]


def test_non_finite_numbers_are_written_as_null(tmp_path):
  path = report.write_json(tmp_path / "out.json", {"a": float("nan"), "b": [np.float32(np.inf), -np.inf, 2.5],
                                                   "c": np.array([1.0, np.nan]), "d": np.int64(3)})
  assert json.loads(path.read_text()) == {"a": None, "b": [None, None, 2.5], "c": [1.0, None], "d": 3}


def test_float32_numbers_are_written_as_their_shortest_decimal(tmp_path):
  """What the user typed comes back as typed: float32 0.1 is written 0.1 (which reads back as the same float32),
  float64 keeps every digit, shapes, integers and booleans are kept."""
  import jax.numpy as jnp

  data = {"f32": np.float32(0.1), "jax": jnp.asarray([0.3, 1 / 3], jnp.float32), "f64": np.float64(1 / 3),
          "grid": np.full((2, 2), 0.7, np.float32), "flag": np.bool_(True), "n": np.arange(2)}
  text = report.write_json(tmp_path / "out.json", data).read_text()
  assert "0.10000000149" not in text
  got = json.loads(text)
  assert got["f32"] == 0.1 and got["jax"] == [0.3, 0.33333334] and got["f64"] == 1 / 3
  assert got["grid"] == [[0.7, 0.7], [0.7, 0.7]] and got["flag"] is True and got["n"] == [0, 1]
  assert np.float32(got["jax"][1]) == np.float32(1 / 3)  # the shortest decimal is the same float32


def test_the_phase_command_echoes_sigma_b_and_sigma_w_as_typed(tmp_path):
  from mfprune import cli

  assert cli.main(["phase", "-a", "tanh", "--sigma-b", "0.1", "--sigma-w", "1.3", "--json",
                   str(tmp_path / "p.json")]) == 0
  values = json.loads((tmp_path / "p.json").read_text())
  assert values["sigma_b"] == 0.1 and values["sigma_w"] == 1.3


def test_eoc_table_lists_every_status():
  curve = theory.eoc_curve("relu", np.array([0.0, 0.5]))
  table = report.eoc_table(curve)
  assert "single_point" in table and "none" in table
  assert len(table.splitlines()) == 4


@pytest.mark.slow  # compiles a phase diagram (tens of seconds on two cores)
def test_phase_diagram_figure_is_a_png(tmp_path):
  diagram = theory.phase_diagram("tanh", np.linspace(0.0, 1.0, 5), np.linspace(0.5, 2.5, 6))
  path = report.save_figure(report.plot_phase_diagrams({"tanh": diagram}), tmp_path / "pd.png")
  assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
