"""Monte-Carlo critical sparsity (``mfprune.signal.critical_sparsity``) and the ``mfprune scr`` command.

The per-seed values are checked three ways: against :func:`theory.sparsity.critical_sparsity_from_scores` of the same scores
(an independent implementation), against actually pruning with :func:`mfprune.prune` at ``s_cr`` (a layer is
empty) and at ``s_cr − 1/M`` (none is), with and without tied scores; and the kept-fraction curves against
:func:`mfprune.masks.global_top_k`.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mfprune import cli, masks, pipeline, pruning, report, scores, signal
from mfprune.cli import arguments, scr_command
from mfprune.models import MeanFieldView
from tests.mfprune import nets
from theory import sparsity

SHAPE = (4, 4, 1)
CLASSES = 5
GRID = tuple(i / 20 for i in range(20))  # 0, 0.05, ..., 0.95: one compiled program for most tests


@pytest.fixture(scope="module")
def mlp():
  """A depth-5, width-12 tanh MLP, its init, and a batch; M = 16·12 + 3·144 + 12·5 = 684 prunable weights."""
  apply_fn, init = pipeline.model_fns("mlp", input_shape=SHAPE, num_classes=CLASSES, depth=5, width=12,
                                      activation="tanh")
  return apply_fn, init, nets.batch_for(SHAPE, n=16, classes=CLASSES)


@pytest.fixture(scope="module")
def snip3(mlp):
  """SNIP, 3 seeds, key 0."""
  apply_fn, init, batch = mlp
  return signal.critical_sparsity(apply_fn, init, "snip", n_seeds=3, batch=batch, key=0, sparsities=GRID)


def seed_keys(key: int, n: int):
  return jax.random.split(jax.random.key(key), n)


def tree_scores(method, apply_fn, params, batch, seed_key):
  """The scores ``critical_sparsity`` uses for one seed: those of ``prune(..., key=fold_in(k_i, 2))``."""
  key = jax.random.fold_in(jax.random.fold_in(seed_key, 2), 0)
  return scores.score(method, apply_fn, params, masks.dense_mask(params), batch, key)


theory_critical_sparsity = jax.jit(sparsity.critical_sparsity_from_scores)
theory_death_sparsity = jax.jit(sparsity.layer_death_sparsity)


def check_against_theory_and_pruning(result, method, apply_fn, params_of_seed, batch, keys, prune_seeds=1):
  """Each seed: s_cr and death sparsities equal theory.sparsity's; for the first ``prune_seeds`` seeds, prune empties
  exactly the first-dead layer at s_cr and no layer at s_cr − 1/M (each prune compiles: keep them few)."""
  total = result.total
  for i, k in enumerate(keys):
    params = params_of_seed(i)
    leaves = jax.tree_util.tree_leaves(tree_scores(method, apply_fn, params, batch, k))
    keep = masks.keep_count(total, result.values[i])
    assert keep == masks.keep_count(total, float(theory_critical_sparsity(leaves)))
    assert total - keep == pytest.approx(result.values[i] * total, abs=1e-6)
    tree_names = [n for n, _ in masks.named_leaves(masks.dense_mask(params))]
    theory_death = dict(zip(tree_names, np.asarray(theory_death_sparsity(leaves), np.float64)))
    np.testing.assert_allclose(result.death_sparsity[i], [theory_death[n] for n in result.layers], atol=1e-6)
    if i >= prune_seeds:
      continue
    key = jax.random.fold_in(k, 2)
    at = pruning.prune(apply_fn, params, batch, method=method, sparsity=result.values[i], key=key,
                       on_collapse="ignore")
    assert masks.collapsed_layers(at) == [result.first_dead[i]]
    below = pruning.prune(apply_fn, params, batch, method=method, sparsity=result.values[i] - 1 / total, key=key,
                          on_collapse="raise")  # raises LayerCollapseError if a layer were empty
    assert masks.sparsity_of(below) == pytest.approx(result.values[i] - 1 / total, abs=1e-9)


def test_same_key_same_values_other_key_other_values(mlp, snip3):
  apply_fn, init, batch = mlp
  again = signal.critical_sparsity(apply_fn, init, "snip", n_seeds=3, batch=batch, key=0, sparsities=GRID)
  np.testing.assert_array_equal(again.values, snip3.values)
  np.testing.assert_array_equal(again.kept_fraction, snip3.kept_fraction)
  assert again.first_dead == snip3.first_dead
  other = signal.critical_sparsity(apply_fn, init, "snip", n_seeds=3, batch=batch, key=1, sparsities=GRID)
  assert not np.array_equal(other.values, snip3.values)


def test_each_seed_is_its_exact_critical_sparsity(mlp, snip3):
  apply_fn, init, batch = mlp
  keys = seed_keys(0, 3)
  check_against_theory_and_pruning(snip3, "snip", apply_fn, lambda i: init(keys[i]), batch, keys)
  assert snip3.values.min() > 0.5 and snip3.values.max() < 1.0
  assert snip3.layers == tuple(f"layers/{i}/kernel" for i in range(5)) and snip3.ordering == "network"


def rounded(params):
  """Weights rounded to multiples of 0.25 (biases too: they are not scored)."""
  return jax.tree.map(lambda p: jnp.round(p * 4) / 4, params)


def rounded_magnitude(apply_fn, params, mask, batch, key):
  """``|round(4W)/4|``: the magnitude scores of the rounded weights (a scorer function, not registered)."""
  return scores.magnitude(apply_fn, rounded(params), mask, batch, key)


def test_tie_rule_with_heavily_tied_magnitudes(mlp):
  """Magnitudes rounded to multiples of 0.25: each dying layer's largest score is shared with weights of other layers,
  so s_cr depends on the tie rule (earliest in parameter order kept first). prune(method="magnitude") on the rounded
  weights prunes by the same scores."""
  apply_fn, init, batch = mlp
  result = signal.critical_sparsity(apply_fn, init, rounded_magnitude, n_seeds=3, batch=batch, key=3, sparsities=GRID)
  assert result.method == "rounded_magnitude"
  keys = seed_keys(3, 3)
  for i, k in enumerate(keys):  # the test exercises ties: the dying layer's maximum also occurs in another layer
    leaves = [np.abs(np.asarray(x)) for x in jax.tree_util.tree_leaves(rounded(init(k))) if np.ndim(x) == 2]
    dying = result.layers.index(result.first_dead[i])  # MLP: network order = tree order
    top = leaves[dying].max()
    assert sum(int(np.sum(x == top)) for j, x in enumerate(leaves) if j != dying) > 0
  check_against_theory_and_pruning(result, "magnitude", apply_fn, lambda i: rounded(init(keys[i])), batch, keys)


def test_vmapped_program_equals_a_loop_over_seeds_and_global_top_k(mlp, snip3):
  """The jitted one-network program looped over the seeds gives the vmapped result, and its kept counts are the
  densities of masks.global_top_k's masks at k = keep_count(M, s) on the same scores.

  Batched and single matmuls may add in another order (SNIP scores then agree to ~1e-6 relative), which can move a
  weight across a threshold: the loop is allowed one weight of difference per entry (on this CPU it is exact)."""
  apply_fn, init, batch = mlp
  keys = seed_keys(0, 3)
  one = jax.jit(signal.critical_sparsity_fn(apply_fn, "snip", init(keys[0]), sparsities=GRID))
  score_one = jax.jit(lambda p, k: tree_scores("snip", apply_fn, p, batch, k))
  top_k = jax.jit(masks.global_top_k)
  total, sizes = snip3.total, np.array(snip3.layer_sizes)
  kept = []
  for i, k in enumerate(keys):
    out = one(init(k), batch, jax.random.fold_in(k, 2))
    death = 1.0 - np.asarray(out.death_rank) / total  # tree order = network order for the MLP
    np.testing.assert_allclose(death, snip3.death_sparsity[i], atol=1.01 / total, rtol=0)
    kept.append(np.asarray(out.kept))
    seed_scores = score_one(init(k), k)
    for row, sparsity_value in enumerate(GRID):
      table = masks.density(top_k(seed_scores, masks.keep_count(total, sparsity_value)), layer_order=snip3.layers)
      np.testing.assert_allclose(kept[-1][row], [d.kept for d in table], atol=1, rtol=0)
  np.testing.assert_allclose(snip3.kept_fraction, np.mean(np.array(kept) / sizes, axis=0), atol=1 / sizes.min())


def test_init_scheme_gives_the_pipeline_parameters(mlp):
  """With init_scheme, seed i is pipeline.initial_params(init, k_i, scheme, ...) (under jit)."""
  apply_fn, init, batch = mlp
  options = {"sigma_w": 0.6, "sigma_b": 0.2}
  result = signal.critical_sparsity(apply_fn, init, "snip", n_seeds=3, batch=batch, key=5, sparsities=GRID,
                                    init_scheme="gaussian", init_options=options)
  keys = seed_keys(5, 3)
  initial = jax.jit(lambda k: pipeline.initial_params(init, k, "gaussian", **options))
  check_against_theory_and_pruning(result, "snip", apply_fn, lambda i: initial(keys[i]), batch, keys, prune_seeds=0)
  assert not np.array_equal(result.values, signal.critical_sparsity(
      apply_fn, init, "snip", n_seeds=3, batch=batch, key=5, sparsities=GRID).values)  # the scheme was applied


def test_kept_fraction_curve(mlp, snip3):
  apply_fn, init, batch = mlp
  total, sizes = snip3.total, np.array(snip3.layer_sizes)
  # A grid through every death sparsity and the reachable sparsity just below it, plus a few others.
  death = snip3.death_sparsity[snip3.death_sparsity < 1]
  grid = np.unique(np.concatenate([death, death - 1 / total, [0.0, 0.3, 0.77, 0.9, 0.999]]))
  result = signal.critical_sparsity(apply_fn, init, "snip", n_seeds=3, batch=batch, key=0, sparsities=grid[::-1])
  np.testing.assert_array_equal(result.death_sparsity, snip3.death_sparsity)
  np.testing.assert_array_equal(result.sparsities, grid[::-1])  # any order: rows follow the grid as given
  kept = result.kept_fraction[::-1]
  assert kept.shape == (grid.size, 5)
  assert np.all(np.diff(kept, axis=0) <= 0)  # non-increasing in sparsity, per layer
  weighted = kept @ sizes / total
  np.testing.assert_allclose(weighted, [masks.keep_count(total, s) / total for s in grid], rtol=1e-12)
  assert np.all(np.abs(weighted - (1 - grid)) <= 1 / total)
  # A layer's mean kept fraction is 0 exactly from the largest of its seeds' death sparsities on (and not before).
  for layer in range(5):
    dies = result.death_sparsity[:, layer].max()
    assert np.all((kept[:, layer] == 0) == (grid >= dies - 1e-12)), layer


def test_one_seed_has_no_interval_and_the_result_serialises(mlp, tmp_path):
  apply_fn, init, batch = mlp
  result = signal.critical_sparsity(apply_fn, init, "random", n_seeds=1, batch=batch, key=0, sparsities=GRID)
  assert result.interval is None and np.isnan(result.std) and result.n_seeds == 1
  data = json.loads(report.write_json(tmp_path / "r.json", result.to_dict()).read_text())
  assert data["interval"] is None and data["std"] is None and data["first_dead_counts"] == {result.first_dead[0]: 1}
  assert np.asarray(data["kept_fraction"]).shape == (len(GRID), 5)


def test_interval_and_first_dead_summary(snip3):
  from scipy import stats

  half = stats.t.ppf(0.975, 2) * snip3.values.std(ddof=1) / np.sqrt(3)
  assert snip3.interval == pytest.approx((snip3.mean - half, snip3.mean + half))
  assert snip3.mean == pytest.approx(snip3.values.mean())
  assert sum(snip3.first_dead_counts.values()) == 3
  assert snip3.first_dead_counts[snip3.most_common_first_dead] == max(snip3.first_dead_counts.values())
  np.testing.assert_array_equal(snip3.values, snip3.death_sparsity.min(axis=1))
  assert list(snip3.to_dict()) and snip3.iterative_scorer is False


def branchy_net():
  """A plain-JAX net whose tree order (body, head, stem: sorted keys) is not its network order (stem, body, head)."""
  names = ("stem", "body", "head")
  sizes = {"stem": (16, 10), "body": (10, 10), "head": (10, CLASSES)}

  @jax.jit
  def init(key):
    keys = dict(zip(names, jax.random.split(key, 3)))
    return {n: {"kernel": jax.random.normal(keys[n], sizes[n]) / np.sqrt(sizes[n][0])} for n in names}

  def apply_fn(params, x):
    h = x.reshape(x.shape[0], -1)
    for n in names:
      h = h @ params[n]["kernel"]
      h = jnp.tanh(h) if n != "head" else h
    return h

  return apply_fn, init


def test_layers_come_in_network_order(mlp):
  apply_fn, init = branchy_net()
  batch = mlp[2]
  result = signal.critical_sparsity(apply_fn, init, "magnitude", n_seeds=2, batch=batch, key=0, sparsities=GRID)
  assert result.layers == ("stem/kernel", "body/kernel", "head/kernel") and result.ordering == "network"
  assert result.layer_sizes == (160, 100, 50)
  tree = signal.critical_sparsity(apply_fn, init, "magnitude", n_seeds=2, key=0, sparsities=GRID)  # no batch
  assert tree.ordering == "tree" and tree.layers == ("body/kernel", "head/kernel", "stem/kernel")
  np.testing.assert_array_equal(tree.values, result.values)
  np.testing.assert_array_equal(tree.death_sparsity, result.death_sparsity[:, [1, 2, 0]])


@pytest.mark.parametrize("kwargs, message", [
    ({"n_seeds": 0}, "n_seeds must be an integer >= 1"),
    ({"n_seeds": 2.5}, "n_seeds must be an integer >= 1"),
    ({"sparsities": [0.5, 1.0]}, "sparsities must lie in [0, 1)"),
    ({"sparsities": [-0.1]}, "sparsities must lie in [0, 1)"),
    ({"sparsities": []}, "at least one sparsity"),
    ({"method": "snipp"}, "unknown pruning method 'snipp'"),
    ({"confidence": 1.0}, "confidence must be in (0, 1)"),
    ({"batch": None}, "needs batch=(inputs, labels)"),
    ({"init_scheme": "xavier"}, "unknown init_scheme 'xavier'"),
    ({"key": "seven"}, "key must be an integer seed or a jax.random key"),
])
def test_bad_input_raises_naming_the_argument(mlp, kwargs, message):
  apply_fn, init, batch = mlp
  arguments = {"method": "snip", "n_seeds": 2, "batch": batch, **kwargs}
  with pytest.raises(ValueError) as error:
    signal.critical_sparsity(apply_fn, init, arguments.pop("method"), **arguments)
  assert message in str(error.value)


def test_proposition4_applies_only_with_one_largest_alpha():
  class Args:
    model = "mlp"

  def view(shapes):
    return MeanFieldView("ffnn", "tanh", tuple(shapes), use_bias=True)

  mnist_like = view([(784, 100)] + [(100, 100)] * 8 + [(100, 10)])
  assert mnist_like.width == 100 and mnist_like.depth == 10
  applies = scr_command.proposition4(Args, mnist_like)
  assert applies["applies"] and applies["layer"] == 0 and applies["gamma"] == pytest.approx(7.84)
  assert applies["bound"]["bound"] == pytest.approx(sparsity.proposition4_bound(7.84, width=100, zeta=7.84))
  digits_like = view([(64, 100)] + [(100, 100)] * 8 + [(100, 10)])
  refused = scr_command.proposition4(Args, digits_like)
  assert not refused["applies"] and refused["fan_in_ratios"][0] == pytest.approx(0.64)
  assert not scr_command.proposition4(Args, None)["applies"]  # a model the theory does not map


def test_scr_command_writes_json_and_png_and_prints_the_bound(tmp_path, capsys):
  out = tmp_path / "scr"
  """ReLU with the model's LeCun init (σw = 1, σb = 0): χ = 1/2, the ordered phase."""
  argv = ["scr", "--model", "mlp", "--depth", "4", "--width", "16", "--activation", "relu", "--method", "snip",
          "--seeds", "3", "--batch-size", "32", "--sparsities", "0:0.95:20", "--json", str(tmp_path / "x.json"),
          "--out", str(out)]
  assert cli.main(argv) == 0
  printed = capsys.readouterr().out
  assert "Theorem 1" in printed and "natural log" in printed and "log10" in printed
  assert "95% t-interval" in printed and "first layer to die" in printed
  data = json.loads((tmp_path / "x.json").read_text())
  assert data["init"] == {"scheme": None}
  assert len(data["values"]) == 3 and len(data["interval"]) == 2 and data["interval"][0] <= data["mean"]
  bound = data["bounds"]["theorem1"]
  assert bound["applies"] and bound["natural_log"]["log_base"] == pytest.approx(np.e)
  assert bound["log10"]["log_base"] == 10 and bound["natural_log"]["phase"] == "ordered"
  assert bound["natural_log"]["chi"] == pytest.approx(0.5, rel=1e-4) and bound["sigma_w"] == 1.0
  assert np.asarray(data["kept_fraction"]).shape == (20, 4)
  assert (out / "kept_fraction.png").read_bytes()[:4] == b"\x89PNG"
  assert not (out / "scr.json").exists()


def test_scr_command_magnitude_prints_proposition4(tmp_path, capsys):
  """Digits (64 inputs) at width 16: the first layer has the largest alpha = 64/16 = 4 = gamma."""
  argv = ["scr", "--model", "mlp", "--depth", "3", "--width", "16", "--method", "magnitude", "--seeds", "2",
          "--sparsities", "0.5", "--plot", str(tmp_path / "k.png"), "--out", str(tmp_path)]
  assert cli.main(argv) == 0
  printed = capsys.readouterr().out
  assert "Proposition 4" in printed and "gamma = 4" in printed and "Proposition 5" in printed
  data = json.loads((tmp_path / "scr.json").read_text())
  assert data["bounds"]["proposition4"]["bound"]["bound"] == pytest.approx(
      sparsity.proposition4_bound(4.0, width=16, zeta=4.0))
  assert "theorem1" not in data["bounds"] and data["interval"] is not None
  assert (tmp_path / "k.png").read_bytes()[:4] == b"\x89PNG"


def test_sigma_w_implies_gaussian():
  parser = cli.build_parser()
  base = ["scr", "--model", "mlp", "--method", "snip"]
  assert arguments.init_scheme(parser.parse_args(base + ["--sigma-w", "0.7"])) == "gaussian"
  assert arguments.init_scheme(parser.parse_args(base)) is None
  assert arguments.init_scheme(parser.parse_args(base + ["--init", "eoc"])) == "eoc"


@pytest.mark.parametrize("extra, message", [
    (["--seeds", "0"], "is not an integer >= 1"),
    (["--sparsities", "0:1:5"], "sparsities must lie in [0, 1)"),
    (["--init", "eoc", "--sigma-w", "0.7"], "--sigma-w is the weight scale of --init gaussian"),
    (["--confidence", "1.5"], "--confidence must be in (0, 1)"),
    (["--method", "snipp"], "invalid choice: 'snipp'"),
])
def test_scr_bad_input_exits_2_with_one_clear_line(extra, message, capsys):
  with pytest.raises(SystemExit) as exit_info:
    cli.main(["scr", "--model", "mlp", "--depth", "2", "--width", "8", "--method", "snip", *extra])
  assert exit_info.value.code == 2
  last = capsys.readouterr().err.strip().splitlines()[-1]  # argparse's own errors follow its usage lines
  assert last.startswith("mfprune scr: error:") and message in last
