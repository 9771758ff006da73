"""Data: readers of every format on tiny files written here, splits and standardisation, batching, augmentation."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mfprune import data

IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
             np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}
MNIST_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")


def idx_bytes(array: np.ndarray) -> bytes:
  header = bytes([0, 0, IDX_CODES[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
  return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray) -> Path:
  content = idx_bytes(array)
  path.write_bytes(gzip.compress(content) if path.suffix == ".gz" else content)
  return path


# --- IDX ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32])
def test_read_idx_round_trips_plain_and_gzip(tmp_path, suffix, dtype):
  array = (np.arange(2 * 5 * 3) - 7).reshape(2, 5, 3).astype(dtype)
  if dtype == np.uint8:
    array = np.arange(30, dtype=np.uint8).reshape(2, 5, 3) * 8
  out = data.read_idx(write_idx(tmp_path / f"a-idx3{suffix}", array))
  assert out.dtype == np.dtype(dtype) and out.dtype.isnative and out.shape == (2, 5, 3)
  np.testing.assert_array_equal(out, array)
  labels = np.array([3, 0, 9], np.uint8)
  np.testing.assert_array_equal(data.read_idx(write_idx(tmp_path / f"l-idx1{suffix}", labels)), labels)


def test_read_idx_rejects_bad_magic_truncation_and_trailing_bytes(tmp_path):
  good = idx_bytes(np.zeros((4, 3, 3), np.uint8))
  bad_magic = tmp_path / "magic-idx3-ubyte"
  bad_magic.write_bytes(b"\x01" + good[1:])
  with pytest.raises(ValueError, match=r"magic-idx3-ubyte.*not an IDX file"):
    data.read_idx(bad_magic)
  bad_type = tmp_path / "type-idx3-ubyte"
  bad_type.write_bytes(good[:2] + b"\x0a" + good[3:])  # 0x0a is no IDX type
  with pytest.raises(ValueError, match="type-idx3-ubyte.*type code"):
    data.read_idx(bad_type)
  truncated = tmp_path / "cut-idx3-ubyte.gz"
  truncated.write_bytes(gzip.compress(good[:-5]))
  with pytest.raises(ValueError, match=r"cut-idx3-ubyte\.gz.*truncated"):
    data.read_idx(truncated)
  header_cut = tmp_path / "header-idx3-ubyte"
  header_cut.write_bytes(good[:9])
  with pytest.raises(ValueError, match="header-idx3-ubyte.*truncated IDX header"):
    data.read_idx(header_cut)
  trailing = tmp_path / "long-idx3-ubyte"
  trailing.write_bytes(good + b"\x00")
  with pytest.raises(ValueError, match="long-idx3-ubyte.*trailing bytes"):
    data.read_idx(trailing)
  broken_gzip = tmp_path / "broken.gz"
  broken_gzip.write_bytes(gzip.compress(good)[:-12])
  with pytest.raises(ValueError, match=r"broken\.gz.*gzip"):
    data.read_idx(broken_gzip)
  with pytest.raises(FileNotFoundError, match="absent"):
    data.read_idx(tmp_path / "absent")


def write_mnist(directory: Path, n_train: int = 6, n_test: int = 4, seed: int = 0, gz: bool = True) -> dict:
  rng = np.random.default_rng(seed)
  arrays = {
      "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
      "train-labels-idx1-ubyte": rng.integers(0, 10, n_train).astype(np.uint8),
      "t10k-images-idx3-ubyte": rng.integers(100, 256, (n_test, 28, 28), dtype=np.uint8),  # brighter than train
      "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test).astype(np.uint8),
  }
  directory.mkdir(parents=True, exist_ok=True)
  for i, (stem, array) in enumerate(arrays.items()):
    write_idx(directory / (stem + (".gz" if gz and i % 2 == 0 else "")), array)  # a mix of .gz and plain names
  return arrays


@pytest.mark.parametrize("reader", [data.mnist, data.fashion_mnist])
def test_mnist_layout_reads_images_labels_and_standardises_with_train_statistics(tmp_path, reader):
  arrays = write_mnist(tmp_path / "mnist")
  splits = reader(tmp_path / "mnist")
  assert splits.train.x.shape == (6, 28, 28, 1) and splits.test.x.shape == (4, 28, 28, 1)
  assert splits.train.x.dtype == np.float32 and splits.train.y.dtype == np.int32 and splits.validation is None
  assert splits.num_classes == 10 and splits.input_shape == (28, 28, 1)
  np.testing.assert_array_equal(splits.train.y, arrays["train-labels-idx1-ubyte"])
  np.testing.assert_array_equal(splits.test.y, arrays["t10k-labels-idx1-ubyte"])
  raw = arrays["train-images-idx3-ubyte"][..., None]
  np.testing.assert_allclose(splits.mean, [raw.mean()], rtol=1e-12)
  np.testing.assert_allclose(splits.std, [raw.std()], rtol=1e-12)
  np.testing.assert_allclose(splits.train.x.mean(), 0.0, atol=1e-5)
  np.testing.assert_allclose(splits.train.x.std(), 1.0, atol=1e-5)
  assert splits.test.x.mean() > 0.5  # the brighter test images keep their offset: test statistics are never used
  np.testing.assert_array_equal(np.rint(splits.denormalise(splits.test.x)).astype(np.uint8)[..., 0],
                                arrays["t10k-images-idx3-ubyte"])
  np.testing.assert_array_equal(splits.normalise(raw), splits.train.x)


def test_mnist_missing_files_name_what_is_expected(tmp_path):
  with pytest.raises(FileNotFoundError) as missing_dir:
    data.mnist(tmp_path / "nowhere")
  message = str(missing_dir.value)
  assert "nowhere" in message and "does not exist" in message
  assert all(stem in message for stem in MNIST_STEMS)
  write_mnist(tmp_path / "partial")
  (tmp_path / "partial" / "t10k-images-idx3-ubyte.gz").unlink()
  with pytest.raises(FileNotFoundError, match=r"partial lacks t10k-images-idx3-ubyte \(with or without \.gz\)"):
    data.mnist(tmp_path / "partial")
  with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
    data.fashion_mnist(tmp_path / "nowhere")


def test_mnist_rejects_wrong_image_size_and_labels(tmp_path):
  arrays = write_mnist(tmp_path / "m", gz=False)
  write_idx(tmp_path / "m" / "t10k-images-idx3-ubyte", np.zeros((4, 27, 28), np.uint8))
  with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte: expected uint8 images \(n, 28, 28\)"):
    data.mnist(tmp_path / "m")
  write_idx(tmp_path / "m" / "t10k-images-idx3-ubyte", arrays["t10k-images-idx3-ubyte"])
  write_idx(tmp_path / "m" / "train-labels-idx1-ubyte", np.array([0, 1, 2, 3, 4, 10], np.uint8))
  with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte: labels must lie in \[0, 10\)"):
    data.mnist(tmp_path / "m")


@pytest.mark.skipif(not data.FASHION_MNIST_DIR.is_dir(), reason="dataset-fashion-mnist is not installed")
def test_installed_fashion_mnist():
  splits = data.load_splits("fashion-mnist")
  assert (len(splits.train), len(splits.test)) == (60000, 10000)
  assert splits.input_shape == (28, 28, 1) and splits.num_classes == 10
  assert set(np.unique(splits.train.y)) == set(range(10)) == set(np.unique(splits.test.y))
  np.testing.assert_allclose(splits.train.x.mean(), 0.0, atol=1e-4)
  np.testing.assert_allclose(splits.train.x.std(), 1.0, atol=1e-4)


# --- CIFAR -------------------------------------------------------------------------------------------------------


class Py2Pickler(pickle._Pickler):
  """Writes bytes as Python 2 ``str`` (BINSTRING), as the official CIFAR batches were pickled by cPickle."""

  def save_bytes(self, obj):
    size = len(obj)
    if size < 256:
      self.write(pickle.SHORT_BINSTRING + bytes([size]) + obj)
    else:
      self.write(pickle.BINSTRING + struct.pack("<i", size) + obj)
    self.memoize(obj)

  dispatch = dict(pickle._Pickler.dispatch)
  dispatch[bytes] = save_bytes


def write_batch(path: Path, batch: dict) -> None:
  stream = io.BytesIO()
  Py2Pickler(stream, protocol=2).dump(batch)
  # Python 2 NumPy names numpy.core.multiarray, which NumPy 2 renamed numpy._core.
  path.write_bytes(stream.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))


def cifar_rows(n: int, seed: int, low: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).integers(low, 256, (n, 3072), dtype=np.uint8)


def hwc(rows: np.ndarray) -> np.ndarray:
  """The expected HWC image of channel-major rows, element by element (no reshape tricks)."""
  out = np.empty((len(rows), 32, 32, 3), np.uint8)
  for i in range(len(rows)):
    for c in range(3):
      for h in range(32):
        out[i, h, :, c] = rows[i, c * 1024 + h * 32:c * 1024 + h * 32 + 32]
  return out


def write_cifar10(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  folder = root / "cifar-10-batches-py"
  folder.mkdir(parents=True)
  rows, labels = [], []
  for i in range(1, 6):
    batch_rows, batch_labels = cifar_rows(2, seed=i), [i % 10, (2 * i) % 10]
    write_batch(folder / f"data_batch_{i}", {b"batch_label": b"training batch", b"labels": batch_labels,
                                             b"data": batch_rows, b"filenames": [b"a.png", b"b.png"]})
    rows.append(batch_rows)
    labels += batch_labels
  test_rows = cifar_rows(3, seed=9, low=128)
  write_batch(folder / "test_batch", {b"labels": [7, 8, 9], b"data": test_rows})
  return np.concatenate(rows), np.array(labels), test_rows, np.array([7, 8, 9])


def test_cifar10_converts_channel_major_rows_to_hwc_exactly(tmp_path):
  rows, labels, test_rows, test_labels = write_cifar10(tmp_path)
  for data_dir in (tmp_path, tmp_path / "cifar-10-batches-py"):  # the parent or the batch folder
    splits = data.cifar10(data_dir)
    assert splits.train.x.shape == (10, 32, 32, 3) and splits.test.x.shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(splits.train.y, labels)
    np.testing.assert_array_equal(splits.test.y, test_labels)
    np.testing.assert_array_equal(np.rint(splits.denormalise(splits.train.x)), hwc(rows))
    np.testing.assert_array_equal(np.rint(splits.denormalise(splits.test.x)), hwc(test_rows))
  # pixel (h=1, w=2) of channel 1 of the first image is element 1024 + 32 + 2 of its row
  assert np.rint(splits.denormalise(splits.train.x[:1]))[0, 1, 2, 1] == rows[0, 1024 + 32 + 2]
  np.testing.assert_allclose(splits.train.x.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
  np.testing.assert_allclose(splits.train.x.std(axis=(0, 1, 2)), 1.0, atol=1e-5)
  assert np.all(splits.test.x.mean(axis=(0, 1, 2)) > 0.5)  # test pixels are brighter; not re-centred
  np.testing.assert_allclose(splits.mean, hwc(rows).reshape(-1, 3).mean(axis=0), rtol=1e-12)


def test_cifar_errors_name_files_and_keys(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"data_batch_1, data_batch_2.*test_batch.*cifar-10-batches-py"):
    data.cifar10(tmp_path)
  write_cifar10(tmp_path)
  folder = tmp_path / "cifar-10-batches-py"
  (folder / "test_batch").unlink()
  with pytest.raises(FileNotFoundError, match="lacks test_batch"):
    data.cifar10(tmp_path)
  write_batch(folder / "test_batch", {b"labels": [1], b"data": np.zeros((1, 3000), np.uint8)})
  with pytest.raises(ValueError, match=r"test_batch: 'data' must be uint8 \(n, 3072\)"):
    data.cifar10(folder)
  write_batch(folder / "test_batch", {b"data": np.zeros((1, 3072), np.uint8)})
  with pytest.raises(ValueError, match="test_batch: the batch has no 'labels' entry"):
    data.cifar10(folder)
  (folder / "test_batch").write_bytes(b"garbage")
  with pytest.raises(ValueError, match="test_batch: not a CIFAR python-version batch"):
    data.cifar10(folder)
  (folder / "test_batch").write_bytes(pickle.dumps({b"data": Path("x")}))  # arbitrary objects are refused
  with pytest.raises(ValueError, match="refusing to load pathlib"):
    data.cifar10(folder)


def test_cifar100_fine_and_coarse_labels(tmp_path):
  folder = tmp_path / "cifar-100-python"
  folder.mkdir()
  train_rows, test_rows = cifar_rows(4, seed=1), cifar_rows(2, seed=2)
  write_batch(folder / "train", {b"data": train_rows, b"fine_labels": [0, 99, 50, 3], b"coarse_labels": [0, 19, 5, 1]})
  write_batch(folder / "test", {b"data": test_rows, b"fine_labels": [98, 1], b"coarse_labels": [18, 2]})
  fine = data.cifar100(tmp_path)
  assert fine.num_classes == 100 and fine.train.x.shape == (4, 32, 32, 3)
  np.testing.assert_array_equal(fine.train.y, [0, 99, 50, 3])
  np.testing.assert_array_equal(np.rint(fine.denormalise(fine.test.x)), hwc(test_rows))
  coarse = data.load_splits("cifar100", folder, labels="coarse")
  assert coarse.num_classes == 20
  np.testing.assert_array_equal(coarse.test.y, [18, 2])
  with pytest.raises(ValueError, match="labels must be 'fine' or 'coarse'"):
    data.cifar100(tmp_path, "medium")
  with pytest.raises(FileNotFoundError, match="train, test"):
    data.cifar100(tmp_path / "elsewhere")


# --- Tiny ImageNet -----------------------------------------------------------------------------------------------


def write_tiny_imagenet(root: Path) -> dict[str, np.ndarray]:
  """2 classes × 2 train images (lossless PNG data under .JPEG names), 3 val images (one grayscale JPEG)."""
  from PIL import Image

  rng = np.random.default_rng(0)
  wnids = ["n09999999", "n01443537"]  # not sorted: the label is the line index
  (root / "wnids.txt").parent.mkdir(parents=True)
  (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
  images = {}
  for wnid in wnids:
    folder = root / "train" / wnid / "images"
    folder.mkdir(parents=True)
    for k in range(2):
      pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
      Image.fromarray(pixels).save(folder / f"{wnid}_{k}.JPEG", format="PNG")
      images[f"{wnid}_{k}"] = pixels
    (folder.parent / f"{wnid}_boxes.txt").write_text("")  # present in the real layout; ignored
  val = root / "val" / "images"
  val.mkdir(parents=True)
  for name in ("val_0", "val_1"):
    pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(val / f"{name}.JPEG", format="PNG")
    images[name] = pixels
  Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8), mode="L").save(val / "val_2.JPEG")
  (root / "val" / "val_annotations.txt").write_text(
      "val_0.JPEG\tn01443537\t0\t1\t60\t62\nval_1.JPEG\tn09999999\t3\t4\t5\t6\nval_2.JPEG\tn01443537\t0\t0\t9\t9\n")
  return images


def test_tiny_imagenet_layout_labels_and_pixels(tmp_path):
  images = write_tiny_imagenet(tmp_path / "tiny-imagenet-200")
  for data_dir in (tmp_path, tmp_path / "tiny-imagenet-200"):
    splits = data.tiny_imagenet(data_dir)
    assert splits.num_classes == 2 and splits.input_shape == (64, 64, 3)
    assert splits.train.x.shape == (4, 64, 64, 3) and splits.test.x.shape == (3, 64, 64, 3)
    np.testing.assert_array_equal(splits.train.y, [0, 0, 1, 1])  # n09999999 is line 0 of wnids.txt
    np.testing.assert_array_equal(splits.test.y, [1, 0, 1])
  train = np.rint(splits.denormalise(splits.train.x))
  expected = [images[name] for name in ("n09999999_0", "n09999999_1", "n01443537_0", "n01443537_1")]
  np.testing.assert_array_equal(train, np.stack(expected))
  test = np.rint(splits.denormalise(splits.test.x))
  np.testing.assert_array_equal(test[:2], np.stack([images["val_0"], images["val_1"]]))
  np.testing.assert_array_equal(test[2, ..., 0], test[2, ..., 1])  # the grayscale image became RGB
  np.testing.assert_array_equal(test[2, ..., 0], test[2, ..., 2])


def test_tiny_imagenet_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"no wnids.txt.*train/<wnid>/images/\*\.JPEG.*val_annotations"):
    data.tiny_imagenet(tmp_path)
  root = tmp_path / "tiny-imagenet-200"
  write_tiny_imagenet(root)
  annotations = root / "val" / "val_annotations.txt"
  annotations.write_text("val_0.JPEG\tn00000000\t0\t0\t1\t1\n")
  with pytest.raises(ValueError, match="val_annotations.txt line 1"):
    data.tiny_imagenet(root)
  annotations.write_text("missing.JPEG\tn01443537\t0\t0\t1\t1\n")
  with pytest.raises(FileNotFoundError, match="missing.JPEG"):
    data.tiny_imagenet(root)
  from PIL import Image

  annotations.write_text("small.JPEG\tn01443537\t0\t0\t1\t1\n")
  Image.new("RGB", (32, 64)).save(root / "val" / "images" / "small.JPEG")
  with pytest.raises(ValueError, match="small.JPEG: expected a 64×64 image; got 32×64"):
    data.tiny_imagenet(root)


# --- splits and standardisation ----------------------------------------------------------------------------------


def rows(x: np.ndarray) -> set[bytes]:
  return {example.tobytes() for example in x}


def test_validation_split_is_deterministic_disjoint_and_excluded_from_statistics():
  options = dict(input_shape=(4, 4, 2), size=100)
  splits = data.load_splits("synthetic", validation_fraction=0.2, seed=3, **options)
  assert len(splits.train) == 80 and len(splits.validation) == 20
  assert not rows(splits.train.x) & rows(splits.validation.x)
  everything = data.synthetic((4, 4, 2), size=100, seed=0).x
  restored = np.concatenate([splits.denormalise(splits.train.x), splits.denormalise(splits.validation.x)])
  np.testing.assert_allclose(np.sort(restored.ravel()), np.sort(everything.ravel()), atol=1e-5)
  again = data.load_splits("synthetic", validation_fraction=0.2, seed=3, **options)
  np.testing.assert_array_equal(again.validation.x, splits.validation.x)
  np.testing.assert_array_equal(again.validation.y, splits.validation.y)
  other = data.load_splits("synthetic", validation_fraction=0.2, seed=4, **options)
  assert rows(other.validation.x) != rows(splits.validation.x)
  # statistics of the 80 training examples only, applied to all splits
  train_raw = splits.denormalise(splits.train.x)
  np.testing.assert_allclose(splits.mean, train_raw.mean(axis=(0, 1, 2)), atol=1e-5)
  assert not np.allclose(splits.mean, everything.mean(axis=(0, 1, 2)), atol=1e-5)
  np.testing.assert_allclose(splits.train.x.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
  np.testing.assert_allclose(splits.train.x.std(axis=(0, 1, 2)), 1.0, atol=1e-5)
  assert splits.train.mean is splits.mean and splits.validation.std is splits.std


def test_digits_splits_fixed_test_set_and_backward_compatible_loaders():
  splits = data.load_splits("digits")
  assert (len(splits.train), len(splits.test)) == (1438, 359) and splits.input_shape == (8, 8, 1)
  with_validation = data.load_splits("digits", validation_fraction=0.1, seed=7)
  assert (len(with_validation.train), len(with_validation.validation)) == (1294, 144)
  np.testing.assert_array_equal(with_validation.test.y, splits.test.y)  # the test split ignores the seed
  raw_test = with_validation.denormalise(with_validation.test.x)
  np.testing.assert_allclose(raw_test, splits.denormalise(splits.test.x), atol=1e-5)
  np.testing.assert_allclose(splits.train.x.mean(), 0.0, atol=1e-5)
  np.testing.assert_allclose(splits.train.x.std(), 1.0, atol=1e-5)
  everything = data.digits()  # unchanged: all 1797, standardised overall
  assert len(everything) == 1797 and everything.num_classes == 10 and everything.input_shape == (8, 8, 1)
  np.testing.assert_array_equal(np.bincount(splits.train.y) + np.bincount(splits.test.y), np.bincount(everything.y))
  np.testing.assert_allclose([everything.x.mean(), everything.x.std()], [0.0, 1.0], atol=1e-5)
  trained = data.load("digits")
  assert isinstance(trained, data.Dataset) and len(trained) == 1438
  x, y = everything.batch(16, seed=1)
  assert isinstance(x, jax.Array) and x.shape == (16, 8, 8, 1) and y.shape == (16,)
  assert data.load("synthetic", input_shape=(3, 3, 1), num_classes=4).input_shape == (3, 3, 1)


def test_loader_argument_errors():
  with pytest.raises(ValueError, match="unknown data set 'imagenet'; available: digits, mnist"):
    data.load_splits("imagenet")
  with pytest.raises(ValueError, match="synthetic data needs input_shape"):
    data.load("synthetic")
  with pytest.raises(ValueError, match="data_dir is required for cifar10"):
    data.load_splits("cifar10")
  with pytest.raises(ValueError, match=r"validation_fraction must be in \[0, 1\); got 1.0"):
    data.load_splits("digits", validation_fraction=1.0)
  with pytest.raises(ValueError, match="leaves 0 for validation"):
    data.load_splits("synthetic", input_shape=(2,), size=10, validation_fraction=0.01)


def test_every_named_data_set_has_a_shape_the_models_know():
  from mfprune import models

  assert models.INPUT_SHAPES is data.INPUT_SHAPES
  assert set(data.INPUT_SHAPES) | {"synthetic"} == set(data.DATASETS)


# --- deterministic batching --------------------------------------------------------------------------------------


def test_batch_indices_cover_each_epoch_once_and_depend_only_on_seed_and_step():
  n, size = 103, 10  # 10 steps per epoch; 3 examples dropped each epoch
  epoch0 = np.concatenate([data.batch_indices(n, size, 5, step) for step in range(10)])
  assert len(np.unique(epoch0)) == 100 and epoch0.min() >= 0 and epoch0.max() < n
  np.testing.assert_array_equal(epoch0, data.epoch_permutation(n, 5, 0)[:100])
  epoch1 = np.concatenate([data.batch_indices(n, size, 5, step) for step in range(10, 20)])
  assert len(np.unique(epoch1)) == 100 and not np.array_equal(epoch0, epoch1)
  np.testing.assert_array_equal(data.batch_indices(n, size, 5, 13), data.batch_indices(n, size, 5, 13))
  assert not np.array_equal(data.batch_indices(n, size, 5, 13), data.batch_indices(n, size, 6, 13))
  assert sorted(data.epoch_permutation(n, 5, 2).tolist()) == list(range(n))
  # a pure function of its arguments: fixed values, whatever NumPy's random generators do
  np.testing.assert_array_equal(data.epoch_permutation(10, 0, 0), [6, 1, 7, 3, 4, 8, 2, 0, 5, 9])
  dataset = data.load("synthetic", input_shape=(2, 2, 1), size=50)
  x, y = dataset.batch_at(7, 8, seed=1)
  index = data.batch_indices(50, 8, 1, 7)
  assert isinstance(x, np.ndarray) and dataset.steps_per_epoch(8) == 6
  np.testing.assert_array_equal(x, dataset.x[index])
  np.testing.assert_array_equal(y, dataset.y[index])
  with pytest.raises(ValueError, match=r"batch_size must be an integer in \[1, 50\]"):
    dataset.batch_at(0, 51)
  with pytest.raises(ValueError, match="step must be an integer >= 0"):
    data.batch_indices(50, 8, 1, -1)


# --- augmentation ------------------------------------------------------------------------------------------------


augment = jax.jit(data.augment, static_argnames=("crop_padding", "flip"))  # one compilation per setting


def test_augment_identity_shape_and_determinism():
  x = jnp.asarray(np.random.default_rng(0).standard_normal((8, 6, 5, 3)), jnp.float32)
  key = jax.random.key(0)
  np.testing.assert_array_equal(data.augment(key, x, crop_padding=0, flip=False), x)
  out = augment(key, x)
  assert out.shape == x.shape and out.dtype == x.dtype
  np.testing.assert_array_equal(out, augment(key, x))
  np.testing.assert_array_equal(out, data.augment(key, x))  # eager and jitted agree
  assert not np.array_equal(out, augment(jax.random.key(1), x))
  keys = jax.random.split(key, 3)
  stacked = jax.jit(jax.vmap(lambda k: data.augment(k, x)))(keys)
  assert stacked.shape == (3, *x.shape)
  np.testing.assert_array_equal(stacked[1], augment(keys[1], x))
  with pytest.raises(ValueError, match="x must be a batch"):
    data.augment(key, x[0])
  with pytest.raises(ValueError, match="crop_padding must be an integer >= 0"):
    data.augment(key, x, crop_padding=-1)


def test_augment_flip_mirrors_width():
  x = jnp.arange(16 * 4 * 5 * 2, dtype=jnp.float32).reshape(16, 4, 5, 2)  # no image is its own mirror
  out = np.asarray(augment(jax.random.key(3), x, crop_padding=0))
  flipped = np.asarray(x)[:, :, ::-1]
  is_flipped = np.array([np.array_equal(out[i], flipped[i]) for i in range(16)])
  is_same = np.array([np.array_equal(out[i], np.asarray(x)[i]) for i in range(16)])
  assert np.all(is_flipped ^ is_same) and 0 < is_flipped.sum() < 16


def test_augment_crop_is_a_shifted_window_of_the_zero_padded_image():
  p, n = 2, 32
  x = (np.arange(n * 5 * 6 * 1, dtype=np.float32) + 1).reshape(n, 5, 6, 1)  # nonzero, all values distinct
  out = np.asarray(augment(jax.random.key(4), x, crop_padding=p, flip=False))
  padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
  offsets = []
  for i in range(n):
    matches = [(dy, dx) for dy in range(2 * p + 1) for dx in range(2 * p + 1)
               if np.array_equal(out[i], padded[i, dy:dy + 5, dx:dx + 6])]
    assert len(matches) == 1, (i, matches)
    offsets.append(matches[0])
  assert len(set(offsets)) > 5  # offsets drawn independently per example
  dy, dx = offsets[0]  # spelled out for one example: out[i, h, w] = x[i, h + dy - p, w + dx - p] or 0 outside
  for h in range(5):
    for w in range(6):
      source_h, source_w = h + dy - p, w + dx - p
      inside = 0 <= source_h < 5 and 0 <= source_w < 6
      assert out[0, h, w, 0] == (x[0, source_h, source_w, 0] if inside else 0.0)
