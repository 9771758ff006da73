"""The mfprune command line: parsing, outputs, and clear errors for bad input."""

import argparse
import json

import numpy as np
import pytest

import jax

import theory
from mfprune import cli, functional, masks
from mfprune.cli import arguments
from mfprune.models import create_model


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
    (["prune", "--model", "mlp", "--method", "snip", "--sparsity", "1"], "not a sparsity in [0, 1)"),
    (["prune", "--model", "mlp", "--method", "snipp", "--sparsity", "0.5"], "invalid choice: 'snipp'"),
    (["prune", "--model", "vgg16", "--method", "snip", "--sparsity", "0.5"],
     "--model vgg16 takes the input shapes of cifar10, cifar100, tiny-imagenet; digits examples are (8, 8, 1) "
     "(try --data synthetic --input-shape cifar10)"),
    (["prune", "--model", "vgg16", "--width", "8", "--method", "snip", "--sparsity", "0.5"],
     "--width does not apply to --model vgg16 (its options: --activation, --width-multiplier)"),
    (["scr", "--model", "lenet5", "--stable", "--method", "snip", "--data", "synthetic"],
     "--stable does not apply to --model lenet5 (its options: --activation)"),
    (["prune", "--model", "mlp", "--method", "snip", "--sparsity", "0.5", "--init", "gaussian"],
     "--init gaussian needs --sigma-w"),
    (["prune", "--model", "mlp", "--method", "snip", "--sparsity", "0.5", "--init", "eoc", "--activation", "relu",
      "--sigma-b", "0.5"], "relu"),
    (["ntk", "--model", "mlp", "--examples", "5000"], "--examples must be <="),
    (["ntk", "--model", "mlp", "--lr", "0"], "argument --lr"),
    (["paths", "--model", "mlp", "--method", "synflow", "--sparsity", "-0.1"], "not a sparsity in [0, 1)"),
    (["prune", "--model", "mlp", "--method", "random", "--sparsity", "0.5", "--out", "README.md"],
     "'README.md' cannot be an output folder: 'README.md' is a file"),
    (["scr", "--model", "mlp", "--method", "snip", "--out", "README.md/run"],
     "'README.md/run' cannot be an output folder: 'README.md' is a file"),
])
def test_bad_input_exits_2_with_one_clear_line(argv, message, capsys):
  with pytest.raises(SystemExit) as exit_info:
    cli.main(argv)
  assert exit_info.value.code == 2
  assert message in capsys.readouterr().err


@pytest.mark.slow
def test_prune_writes_mask_density_and_chart(tmp_path, capsys):
  out = tmp_path / "run"
  argv = ["prune", "--model", "mlp", "--depth", "4", "--width", "32", "--method", "snip", "--sparsity", "0.9",
          "--init", "eoc", "--sigma-b", "0.3", "--batch-size", "64", "--num-batches", "2", "--out", str(out)]
  assert cli.main(argv) == 0
  result = json.loads((out / "density.json").read_text())
  assert [layer["name"] for layer in result["layers"]] == [f"layers/{i}/kernel" for i in range(4)]
  assert result["kept"] == masks.keep_count(result["total"], 0.9)
  assert result["settings"]["method"] == "snip" and result["collapsed"] == []
  loaded = masks.load_mask(out / "mask.npz", functional.split(
      create_model("mlp", input_shape="digits", depth=4, width=32))[1])
  assert sum(int(np.sum(m)) for m in jax.tree_util.tree_leaves(loaded)) == result["kept"]
  assert (out / "density.png").read_bytes()[:4] == b"\x89PNG"
  assert "no layer collapsed" in capsys.readouterr().out


def test_prune_reports_collapse_in_the_outputs(tmp_path):
  """A badly scaled deep tanh net at 99.5% loses whole layers; the default warns and the JSON names them."""
  out = tmp_path / "run"
  argv = ["prune", "--model", "mlp", "--depth", "12", "--width", "16", "--init", "gaussian", "--sigma-w", "0.3",
          "--sigma-b", "0.3", "--method", "snip", "--sparsity", "0.995", "--out", str(out)]
  with pytest.warns(UserWarning, match="removes every weight"):
    assert cli.main(argv) == 0
  result = json.loads((out / "density.json").read_text())
  assert result["collapsed"] and all(name.endswith("kernel") for name in result["collapsed"])


def test_train_prunes_repairs_trains_and_resumes(tmp_path, capsys):
  out = tmp_path / "run"
  argv = ["train", "--model", "mlp", "--depth", "4", "--width", "16", "--activation", "tanh", "--init", "eoc",
          "--sigma-b", "0.3", "--method", "snip", "--sparsity", "0.8", "--rescale", "--optimizer", "momentum",
          "--lr", "0.05", "--steps", "20", "--seeds", "2", "--checkpoint-every", "10", "--no-progress",
          "--out", str(out)]
  assert cli.main(argv) == 0
  printed = capsys.readouterr().out
  assert "test accuracy" in printed and "resumed" not in printed
  for name in ("config.json", "mask.npz", "density.png", "diagnostics.json", "metrics.jsonl", "curves.png",
               "result.json"):
    assert (out / name).exists(), name
  diagnostics = json.loads((out / "diagnostics.json").read_text())
  assert [m["seed"] for m in diagnostics["members"]] == [0, 1]
  assert all(abs(m["sparsity"] - 0.8) < 1e-3 and m["jacobian"]["mean"] > 0 for m in diagnostics["members"])
  result = json.loads((out / "result.json").read_text())
  assert len(result["final"]["test"]["accuracy"]) == 2
  metrics = (out / "metrics.jsonl").read_text()
  # The run is complete: --resume restores step 20 and changes nothing; without --resume the folder is refused.
  assert cli.main(argv + ["--resume"]) == 0
  assert "resumed from step 20" in capsys.readouterr().out
  assert (out / "metrics.jsonl").read_text() == metrics
  with pytest.raises(SystemExit) as exit_info:
    cli.main(argv)
  assert exit_info.value.code == 2 and "already holds checkpoints" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--steps", "-5"], "is not an integer >= 1"),
    (["--data", "mnist", "--data-dir", "/nonexistent/mnist"], "/nonexistent/mnist"),
    (["--sparsity", "0.5"], "--sparsity needs --method"),
    (["--resume", "--out", "/nonexistent/run"], "cannot resume"),
])
def test_train_bad_input_exits_2_with_one_clear_line(extra, message, capsys):
  with pytest.raises(SystemExit) as exit_info:
    cli.main(["train", "--model", "mlp", "--depth", "2", "--no-progress", *extra])
  assert exit_info.value.code == 2
  assert message in capsys.readouterr().err


def test_paths_reports_the_path_kernel_trace_before_and_after_pruning(tmp_path, capsys):
  """The dense trace equals theory.paths on the same initial kernels; per-layer traces add up; pruning lowers them."""
  from theory import paths as theory_paths
  from mfprune import pipeline

  out = tmp_path / "paths"
  argv = ["paths", "--model", "mlp", "--depth", "3", "--width", "16", "--activation", "relu", "--method",
          "magnitude", "--sparsity", "0.5", "--seed", "3", "--out", str(out)]
  assert cli.main(argv) == 0
  result = json.loads((out / "paths.json").read_text())
  _, init = pipeline.model_fns("mlp", input_shape="digits", depth=3, width=16, activation="relu")
  params = pipeline.initial_params(init, 3)
  kernels = [params["layers"][i]["kernel"] for i in range(3)]
  expected = theory_paths.chain_path_kernel_trace(kernels, per_layer=True)
  np.testing.assert_allclose([layer["log_trace_dense"] for layer in result["layers"]], np.log(expected), rtol=1e-4)
  for state in ("dense", "pruned"):
    layers = [layer["log_trace"] for layer in result[state]["layers"]]
    np.testing.assert_allclose(np.logaddexp.reduce(layers), result[state]["log_trace"], rtol=1e-5)
  assert all(layer["log_trace_pruned"] < layer["log_trace_dense"] for layer in result["layers"])
  assert result["sparsity"] == pytest.approx(0.5, abs=1e-3)
  assert (out / "paths.png").read_bytes()[:4] == b"\x89PNG"
  assert "pruning changed log10 Tr" in capsys.readouterr().out


def test_ntk_compares_kernels_and_predicts_the_training_loss(tmp_path, capsys):
  """Both empirical kernels agree, the infinite-width one is reported, and the prediction starts at the measured loss."""
  out = tmp_path / "ntk"
  argv = ["ntk", "--model", "mlp", "--depth", "2", "--width", "64", "--activation", "relu", "--sigma-w", "1.4",
          "--sigma-b", "0.1", "--method", "magnitude", "--sparsity", "0.5", "--examples", "8", "--steps", "10",
          "--top-k", "4", "--out", str(out)]
  assert cli.main(argv) == 0
  result = json.loads((out / "ntk.json").read_text())
  assert result["sparsity"] == pytest.approx(0.5, abs=1e-3) and result["init"]["scheme"] == "gaussian"
  from theory import ntk_compat

  if ntk_compat.is_installed():
    assert result["neural_tangents"]["max_relative_difference"] < 1e-5
  else:
    assert ntk_compat.INSTALL_COMMAND in result["neural_tangents"]["skipped"]
  assert result["analytic"]["sigma_w"] == 1.4 and 0.0 < result["analytic"]["trace_ratio"] < 2.0
  training = result["training"]
  assert training["predicted"][0] == pytest.approx(training["actual"][0], rel=1e-5)
  assert training["actual"][-1] < training["actual"][0]
  assert result["learning_rate"] == pytest.approx(result["stable_learning_rate"] / 2)
  assert (out / "ntk.png").read_bytes()[:4] == b"\x89PNG"
  assert "max relative gap" in capsys.readouterr().out


def test_a_registered_model_is_a_model_choice_and_its_options_need_flags(monkeypatch):
  """--model reads the registry; an option a model offers but the CLI has no flag for fails when the parser is
  built, not silently at run time."""
  from mfprune.models import MLP, VanillaCNN, register_model, registry

  monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
  register_model("wide_mlp", MLP, defaults={"depth": 2, "width": 512}, cli_options=("depth",),
                 tiny={"input_shape": (3,), "num_classes": 2, "width": 4})
  args = cli.build_parser().parse_args(["prune", "--model", "wide_mlp", "--depth", "3", "--method", "random",
                                        "--sparsity", "0.5"])
  assert args.model == "wide_mlp" and arguments.model_options(args) == {"depth": 3}
  register_model("odd_cnn", VanillaCNN, defaults={"depth": 2, "channels": 4}, cli_options=("kernel_size",),
                 tiny={"input_shape": (4, 4, 1), "num_classes": 2})
  with pytest.raises(ValueError, match=r"options \['kernel_size'\] that have no command-line flag"):
    cli.build_parser()
