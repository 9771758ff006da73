"""Masks: exact top-k with the documented tie rule, density tables, collapse guard, save/load."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mfprune import masks
from tests.mfprune.nets import plain_mlp_params


def _reference_top_k(x: np.ndarray, k: int) -> np.ndarray:
  """Keeps the k largest, ties to the lower index (a stable sort on −x)."""
  order = np.lexsort((np.arange(x.size), -x.ravel()))
  keep = np.zeros(x.size, bool)
  keep[order[:k]] = True
  return keep.reshape(x.shape)


@pytest.mark.parametrize("seed", range(20))
def test_top_k_is_exact_with_ties_to_the_earliest(seed):
  rng = np.random.default_rng(seed)
  n = int(rng.integers(1, 60))
  x = rng.integers(-3, 4, size=n).astype(np.float32) * 0.5  # many ties
  x[rng.integers(0, n)] = -np.inf
  k = int(rng.integers(0, n + 1))
  got = np.asarray(masks.top_k_mask(jnp.asarray(x), k))
  np.testing.assert_array_equal(got, _reference_top_k(x, k))
  assert got.sum() == k


def test_top_k_orders_signed_zeros_and_extremes():
  x = jnp.array([0.0, -0.0, 1e-38, -1e-38, 3e38, -3e38, 1.0])
  got = np.asarray(masks.top_k_mask(x, 4))
  np.testing.assert_array_equal(got, [True, False, True, False, True, False, True])


def test_top_k_under_jit_and_vmap_with_traced_k():
  x = jax.random.normal(jax.random.key(0), (3, 50))
  ks = jnp.array([0, 7, 50])
  got = jax.jit(jax.vmap(masks.top_k_mask))(x, ks)
  for row, k, m in zip(np.asarray(x), np.asarray(ks), np.asarray(got)):
    np.testing.assert_array_equal(m, _reference_top_k(row, int(k)))


def test_global_top_k_spans_layers_in_tree_order():
  scores = {"a": {"kernel": jnp.array([[1.0, 5.0], [2.0, 2.0]])}, "b": {"kernel": jnp.array([[2.0, 9.0]])},
            "c": None}
  mask = masks.global_top_k(scores, 3)
  assert mask["c"] is None
  np.testing.assert_array_equal(mask["a"]["kernel"], [[False, True], [True, False]])  # tie at 2: earliest wins
  np.testing.assert_array_equal(mask["b"]["kernel"], [[False, True]])


def test_keep_count_rounds_and_keeps_one():
  assert masks.keep_count(1000, 0.9) == 100
  assert masks.keep_count(10, 0.25) == 8  # round(2.5) = 2 (ties to even)
  assert masks.keep_count(3, 0.99) == 1
  assert masks.keep_count(7, 0.0) == 7
  with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\)"):
    masks.keep_count(10, 1.0)


def test_dense_mask_marks_kernels_only():
  params = plain_mlp_params(jax.random.key(0), [3, 4, 2], bias=True)
  mask = masks.dense_mask(params)
  assert mask["layers"][0]["bias"] is None and mask["layers"][0]["kernel"].dtype == jnp.bool_
  custom = masks.dense_mask(params, prunable=lambda path, x: masks.path_name(path) == "layers/1/kernel")
  assert custom["layers"][0]["kernel"] is None and custom["layers"][1]["kernel"].shape == (4, 2)
  with pytest.raises(ValueError, match="prunable selects no parameter"):
    masks.dense_mask(params, prunable=lambda path, x: False)


def test_apply_mask_zeroes_pruned_weights_only():
  params = plain_mlp_params(jax.random.key(0), [3, 4, 2], bias=True)
  mask = masks.dense_mask(params)
  mask["layers"][0]["kernel"] = mask["layers"][0]["kernel"].at[0].set(False)
  out = masks.apply_mask(params, mask)
  assert np.all(out["layers"][0]["kernel"][0] == 0)
  np.testing.assert_array_equal(out["layers"][0]["kernel"][1:], params["layers"][0]["kernel"][1:])
  np.testing.assert_array_equal(out["layers"][0]["bias"], params["layers"][0]["bias"])


def test_density_table_and_collapse_guard():
  mask = {"l1": {"kernel": jnp.array([[True, False], [False, False]])}, "l2": {"kernel": jnp.zeros((3,), bool)}}
  table = masks.density(mask)
  assert [(d.name, d.kept, d.total) for d in table] == [("l1/kernel", 1, 4), ("l2/kernel", 0, 3)]
  assert table[0].fraction == 0.25 and table[0].to_dict()["fraction"] == 0.25
  assert masks.sparsity_of(mask) == pytest.approx(6 / 7)
  assert masks.collapsed_layers(mask) == ["l2/kernel"]
  with pytest.raises(masks.LayerCollapseError, match="l2/kernel"):
    masks.check_collapse(mask)
  with pytest.warns(UserWarning, match="l2/kernel"):
    assert masks.check_collapse(mask, "warn") == ["l2/kernel"]
  assert masks.check_collapse(mask, "ignore") == ["l2/kernel"]
  with pytest.raises(ValueError, match="on_collapse must be one of"):
    masks.check_collapse(mask, "maybe")


def test_save_load_round_trip(tmp_path):
  params = plain_mlp_params(jax.random.key(0), [5, 4, 3], bias=True)
  mask = masks.global_top_k(jax.tree.map(lambda m, p: None if m is None else p, masks.dense_mask(params), params,
                                         is_leaf=lambda v: v is None), 9)
  path = masks.save_mask(tmp_path / "run" / "mask.npz", mask)
  assert sorted(np.load(path).files) == ["layers/0/kernel", "layers/1/kernel"]
  assert not [p for p in path.parent.iterdir() if p.name != "mask.npz"]  # no temporary file left behind
  loaded = masks.load_mask(path, params)
  assert loaded["layers"][0]["bias"] is None
  for a, b in zip(jax.tree_util.tree_leaves(mask), jax.tree_util.tree_leaves(loaded)):
    np.testing.assert_array_equal(a, b)


def test_load_rejects_a_mask_of_another_model(tmp_path):
  params = plain_mlp_params(jax.random.key(0), [5, 4, 3])
  path = masks.save_mask(tmp_path / "m.npz", masks.dense_mask(params))
  wider = plain_mlp_params(jax.random.key(0), [5, 6, 3])
  with pytest.raises(ValueError, match="does not fit the model at 'layers/0/kernel'"):
    masks.load_mask(path, wider)
  other = {"conv": {"kernel": jnp.ones((3, 3, 1, 2))}}
  with pytest.raises(ValueError, match="not parameters of it"):
    masks.load_mask(path, other)
  with pytest.raises(FileNotFoundError, match="no mask file"):
    masks.load_mask(tmp_path / "missing.npz", params)


@pytest.mark.parametrize("damage", ["truncated", "not_npz"])
def test_a_damaged_mask_file_is_a_clear_error(tmp_path, damage):
  params = plain_mlp_params(jax.random.key(0), [5, 4, 3])
  path = masks.save_mask(tmp_path / "m.npz", masks.dense_mask(params))
  data = path.read_bytes()
  path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not a mask")
  with pytest.raises(ValueError, match="is not a readable .npz mask"):
    masks.load_mask(path, params)


def test_check_mask_names_dtype_problems():
  params = plain_mlp_params(jax.random.key(0), [2, 2])
  mask = {"layers": [{"kernel": jnp.ones((2, 2))}]}
  with pytest.raises(ValueError, match="must be boolean"):
    masks.check_mask(mask, params)


def test_density_follows_a_given_order():
  mask = {"b": {"kernel": jnp.ones((2,), bool)}, "a": {"kernel": jnp.zeros((3,), bool)}}
  assert [d.name for d in masks.density(mask)] == ["a/kernel", "b/kernel"]
  assert [d.name for d in masks.density(mask, layer_order=["b/kernel", "a/kernel"])] == ["b/kernel", "a/kernel"]
