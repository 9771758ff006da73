"""Models: shapes for the papers' data sets, parameter counts, circular padding, Stable ResNet, linearised mode."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mfprune.models import (INPUT_SHAPES, MLP, VGG16_STAGES, BasicBlock, BatchNorm, Conv, ResNet, VanillaCNN,
                            available_models, create_model, create_tiny_model, get_model, mean_field_view,
                            register_model)
from mfprune.masks import path_name
from mfprune.models.layers import activation_fn


def _abstract(name, data, **options):
  """Builds the model and its output shape without allocating or compiling anything (nnx/jax eval_shape)."""
  model = nnx.eval_shape(lambda: create_model(name, input_shape=data, **options))
  shape, classes = INPUT_SHAPES[data]
  out = nnx.eval_shape(lambda m: m(jnp.zeros((2,) + shape)), model)
  n_params = sum(math.prod(x.shape) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
  return out.shape, classes, n_params


@pytest.mark.parametrize("data", sorted(INPUT_SHAPES))
@pytest.mark.parametrize("name", sorted(available_models()))
def test_every_model_takes_exactly_the_input_shapes_its_registry_entry_names(name, data):
  """``ModelSpec.input_shapes`` is true: the model builds and maps a batch to ``(batch, classes)`` for the data sets
  it names, and refuses the others with a ValueError (VGG pools five times, LeNet-5 needs 12 × 12)."""
  if not get_model(name).takes(data):
    with pytest.raises(ValueError):
      _abstract(name, data)
    return
  out_shape, classes, _ = _abstract(name, data)
  assert out_shape == (2, classes)


def test_vgg16_parameter_count():
  """13 bias-free 3×3 convolutions with batch norm (scale, shift) and a 512 -> 10 read-out."""
  channels, convs = 3, 0
  for width, count in VGG16_STAGES:
    for _ in range(count):
      convs += 9 * channels * width + 2 * width
      channels = width
  assert _abstract("vgg16", "cifar10")[2] == convs + 512 * 10 + 10
  assert _abstract("3xvgg16", "cifar10")[2] > 3 * 14e6  # three times the convolutions per stage


def test_resnet_depths_and_doubled_filters():
  """6n + 2 layers: stem + 3n blocks of 2 convolutions + read-out; filters 32/64/128 by default ([R] §4.2)."""
  for depth, n in [(32, 5), (50, 8), (104, 17)]:
    model = nnx.eval_shape(lambda d=depth: ResNet((32, 32, 3), 10, depth=d, rngs=nnx.Rngs(0)))
    assert model.num_blocks == 3 * n
    names = [path_name(p) for p, _ in
             jax.tree_util.tree_flatten_with_path(nnx.to_pure_dict(nnx.state(model, nnx.Param)))[0]]
    kernels = [n for n in names if n.endswith("kernel") and "shortcut" not in n]
    assert len(kernels) == depth
  model = nnx.eval_shape(lambda: ResNet((32, 32, 3), 10, depth=32, rngs=nnx.Rngs(0)))
  assert model.stem.kernel.shape == (3, 3, 3, 32) and model.readout.kernel.shape == (128, 10)
  with pytest.raises(ValueError, match="6n \\+ 2"):
    ResNet((32, 32, 3), 10, depth=33, rngs=nnx.Rngs(0))


def test_stable_resnet_scales_each_branch_by_one_over_sqrt_blocks():
  """[R] eq. 9: y^l = y^{l-1} + F(y^{l-1})/√L. With a linear activation the block is exactly skip + scale·branch."""
  x = jax.random.normal(jax.random.key(0), (2, 4, 4, 3))
  act = activation_fn("linear")
  full = BasicBlock(3, 3, stride=1, scale=1.0, batch_norm=False, activation=act, rngs=nnx.Rngs(1))
  scaled = BasicBlock(3, 3, stride=1, scale=0.25, batch_norm=False, activation=act, rngs=nnx.Rngs(1))
  np.testing.assert_allclose(scaled(x) - x, 0.25 * (full(x) - x), rtol=1e-5, atol=1e-6)
  stable = ResNet((8, 8, 3), 10, depth=32, stable=True, rngs=nnx.Rngs(0))
  assert stable.blocks[0].scale == pytest.approx(1 / math.sqrt(15))
  assert ResNet((8, 8, 3), 10, depth=32, rngs=nnx.Rngs(0)).blocks[0].scale == 1.0


@pytest.mark.parametrize("dims, shape", [(1, (2, 12, 3)), (2, (2, 6, 5, 3))])
def test_circular_convolution_commutes_with_cyclic_shifts(dims, shape):
  """Circular padding ([R] App. A.1): shifting the input cyclically shifts the output the same way."""
  conv = Conv(3, 4, (3,) * dims, padding="CIRCULAR", rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(1), shape)
  for axis in range(1, dims + 1):
    np.testing.assert_allclose(conv(jnp.roll(x, 2, axis=axis)), jnp.roll(conv(x), 2, axis=axis), rtol=1e-5,
                               atol=1e-6)


def test_vanilla_cnn_has_no_pooling_and_one_readout():
  model = VanillaCNN((6, 6, 1), 10, depth=5, channels=7, rngs=nnx.Rngs(0))
  assert len(model.convs) == 4 and model.readout.kernel.shape == (6 * 6 * 7, 10)
  one_d = VanillaCNN((6, 6, 1), 10, depth=3, channels=2, dims=1, rngs=nnx.Rngs(0))
  assert one_d.convs[0].kernel.shape == (3, 1, 2) and one_d(jnp.ones((1, 6, 6, 1))).shape == (1, 10)
  with pytest.raises(ValueError, match="odd"):
    VanillaCNN((6, 6, 1), 10, depth=3, channels=2, kernel_size=4, rngs=nnx.Rngs(0))


def test_mlp_depth_counts_weight_layers_and_uses_the_theory_activation():
  model = MLP((4,), 3, depth=3, width=8, activation="erf", use_bias=False, rngs=nnx.Rngs(0))
  assert [layer.kernel.shape for layer in model.layers] == [(4, 8), (8, 8), (8, 3)]
  assert model.layers[0].bias is None
  x = jax.random.normal(jax.random.key(0), (5, 4))
  h = jax.scipy.special.erf(x @ model.layers[0].kernel[...])
  h = jax.scipy.special.erf(h @ model.layers[1].kernel[...])
  np.testing.assert_allclose(model(x), h @ model.layers[2].kernel[...], rtol=1e-5, atol=1e-6)


def test_linear_mode_is_the_bias_free_product_up_to_a_positive_factor():
  model = MLP((4,), 3, depth=3, width=8, activation="tanh", rngs=nnx.Rngs(0))
  x = jnp.abs(jax.random.normal(jax.random.key(0), (1, 4)))
  product = x
  for layer in model.layers:
    product = product @ layer.kernel[...]
  got = model(x, linear=True)
  ratio = got / product
  assert float(jnp.min(ratio)) > 0
  np.testing.assert_allclose(ratio, ratio[0, 0], rtol=1e-5)


def test_batch_norm_linear_part():
  norm = BatchNorm(3, rngs=nnx.Rngs(0))
  norm.norm.var[...] = jnp.array([1.0, 4.0, 0.25])
  norm.norm.scale[...] = jnp.array([2.0, 1.0, 3.0])
  x = jnp.ones((2, 3))
  np.testing.assert_allclose(norm(x, linear=True)[0], [2 / np.sqrt(1 + 1e-5), 1 / np.sqrt(4 + 1e-5),
                                                      3 / np.sqrt(0.25 + 1e-5)], rtol=1e-6)


def test_registry_errors():
  with pytest.raises(ValueError, match="unknown model 'resnet33'"):
    create_model("resnet33")
  with pytest.raises(ValueError, match="unknown data set 'imagenet'"):
    create_model("mlp", input_shape="imagenet")
  with pytest.raises(ValueError, match="does not take these options"):
    create_model("lenet5", input_shape="mnist", depth=3)
  with pytest.raises(ValueError, match="depth, width and num_classes must be >= 1"):
    create_model("mlp", input_shape="mnist", depth=0)


def test_registry_rejects_bad_entries(monkeypatch):
  from mfprune.models import registry

  monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # nothing registered here leaks out
  tiny = {"input_shape": (4,), "num_classes": 2}
  with pytest.raises(ValueError, match="already registered"):
    register_model("mlp", MLP, tiny=tiny)
  with pytest.raises(ValueError, match=r"cli_options of model 'new' names options \['widht'\]"):
    register_model("new", MLP, tiny=tiny, cli_options=("widht",))
  with pytest.raises(ValueError, match="unknown data sets"):
    register_model("new", MLP, tiny=tiny, input_shapes=("imagenet",))
  with pytest.raises(ValueError, match="must give input_shape and num_classes"):
    register_model("new", MLP, tiny={"depth": 2})
  assert "new" not in available_models()


def test_a_registered_model_is_built_by_name_and_read_by_the_theory(monkeypatch):
  """One register_model call is all a new model needs: create_model, the tiny version and the mean-field view."""
  from mfprune.models import registry

  monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
  spec = register_model("wide_mlp", MLP, defaults={"depth": 2, "width": 64}, cli_options=("depth",),
                        mean_field=get_model("mlp").mean_field, tiny={"input_shape": (3,), "num_classes": 2,
                                                                      "width": 4}, description="a test model")
  assert available_models()["wide_mlp"] == "a test model" and spec.takes("cifar10")
  model = create_model("wide_mlp", input_shape=(5,), num_classes=3)
  assert [layer.kernel.shape for layer in model.layers] == [(5, 64), (64, 3)]
  assert mean_field_view(create_tiny_model("wide_mlp")).kernel_shapes == ((3, 4), (4, 2))


@pytest.mark.parametrize("name", sorted(available_models()))
def test_the_mean_field_view_matches_the_parameters(name):
  """Depth, fan-ins and sizes of the view are those of the model's kernels in network order; models the theory does
  not map (pooling, batch norm, residual branches) have no view."""
  model = create_tiny_model(name)
  view = mean_field_view(model)
  if view is None:
    assert get_model(name).mean_field is None
    return
  flat = jax.tree_util.tree_flatten_with_path(nnx.to_pure_dict(nnx.state(model, nnx.Param)))[0]
  kernels = [leaf for path, leaf in flat if path_name(path).endswith("kernel")]
  assert sorted(view.sizes) == sorted(k.size for k in kernels) and view.depth == len(kernels)
  tiny = get_model(name).tiny
  if view.architecture == "ffnn":
    assert view.fan_ins[0] == math.prod(tiny["input_shape"])
  else:  # a window of (2k + 1)^dims positions over the input channels
    assert view.fan_ins[0] == tiny["input_shape"][-1] * view.kernel_size ** view.dims
  assert view.widths == tuple(shape[-1] for shape in view.kernel_shapes[:-1])
  assert model(jnp.ones((1,) + tuple(tiny["input_shape"]))).shape == (1, view.kernel_shapes[-1][-1])
  assert view.kernel_shapes[-1][-1] == tiny["num_classes"]
