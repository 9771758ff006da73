"""CIFAR-10 and CIFAR-100 from the official "python version" pickle batches."""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mfprune.data.dataset import PathLike, Splits, _check_labels, _make_splits, read_file


class _ArrayUnpickler(pickle.Unpickler):
  """Unpickles only what the CIFAR batches hold (dicts, lists, bytes, numbers, NumPy arrays): never runs code."""

  _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
              ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
              ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
              ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

  def find_class(self, module: str, name: str) -> Any:
    if (module, name) not in self._ALLOWED:
      raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only NumPy arrays, lists and dicts expected")
    if module.startswith("numpy.core.") and hasattr(np, "_core"):
      module = "numpy._core." + module.split(".", 2)[2]  # NumPy 2 renamed numpy.core (old pickles still name it)
    return super().find_class(module, name)


def _read_pickle(path: Path) -> dict:
  content = read_file(path)
  try:
    batch = _ArrayUnpickler(io.BytesIO(content), encoding="bytes").load()
  except Exception as error:  # corrupt pickles raise many types
    raise ValueError(f"{path}: not a CIFAR python-version batch ({type(error).__name__}: {error})") from None
  if not isinstance(batch, dict):
    raise ValueError(f"{path}: expected a pickled dict, got {type(batch).__name__}")
  return {key.decode("latin1") if isinstance(key, bytes) else key: value for key, value in batch.items()}


def _cifar_batch(path: Path, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
  batch = _read_pickle(path)
  for key in ("data", label_key):
    if key not in batch:
      raise ValueError(f"{path}: the batch has no {key!r} entry (keys: {', '.join(map(str, batch))})")
  data = np.asarray(batch["data"])
  if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.dtype != np.uint8:
    raise ValueError(f"{path}: 'data' must be uint8 (n, 3072) (channel-major 3×32×32 rows); got {data.dtype} "
                     f"{data.shape}")
  labels = _check_labels(np.asarray(batch[label_key]), len(data), num_classes, f"{path} {label_key!r}")
  return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels  # channel-major rows -> HWC


def _cifar_folder(name: str, data_dir: PathLike, folder: str, files: Sequence[str]) -> Path:
  """``data_dir`` itself when it holds ``files``, else ``data_dir/folder``; FileNotFoundError naming both."""
  directory = Path(data_dir)
  for candidate in (directory, directory / folder):
    if all((candidate / file).is_file() for file in files):
      return candidate
  searched = directory / folder if (directory / folder).is_dir() else directory
  missing = [file for file in files if not (searched / file).is_file()]
  raise FileNotFoundError(f"{name}: expected {', '.join(files)} (the official python version) in {directory} or "
                          f"{directory / folder}; {searched} lacks {', '.join(missing)}")


def cifar10(data_dir: PathLike, *, validation_fraction: float = 0.0, seed: int = 0) -> Splits:
  """CIFAR-10 from ``cifar-10-batches-py/{data_batch_1..5, test_batch}``.

  Args:
    data_dir: the ``cifar-10-batches-py`` folder or its parent.
    validation_fraction: fraction of the 50000 training examples held out (see :func:`load_splits`).
    seed: chooses the validation examples.

  Returns:
    :class:`Splits` of 32×32×3 images, 10 classes, standardised per channel with the training statistics.

  Raises:
    FileNotFoundError: a batch file is missing (the message lists the expected names).
    ValueError: a batch that is not the expected dict of ``data`` (uint8 ``(n, 3072)``) and ``labels``.
  """
  train_files = [f"data_batch_{i}" for i in range(1, 6)]
  folder = _cifar_folder("cifar10", data_dir, "cifar-10-batches-py", [*train_files, "test_batch"])
  train = [_cifar_batch(folder / file, "labels", 10) for file in train_files]
  x_train, y_train = np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train])
  return _make_splits("cifar10", 10, (x_train, y_train), _cifar_batch(folder / "test_batch", "labels", 10),
                      validation_fraction, seed)


def cifar100(data_dir: PathLike, labels: str = "fine", *, validation_fraction: float = 0.0, seed: int = 0) -> Splits:
  """CIFAR-100 from ``cifar-100-python/{train, test}``.

  Args:
    data_dir: the ``cifar-100-python`` folder or its parent.
    labels: ``"fine"`` (100 classes) or ``"coarse"`` (the 20 superclasses).
    validation_fraction: fraction of the 50000 training examples held out (see :func:`load_splits`).
    seed: chooses the validation examples.

  Returns:
    :class:`Splits` of 32×32×3 images, standardised per channel with the training statistics.

  Raises:
    FileNotFoundError: ``train`` or ``test`` is missing.
    ValueError: unknown ``labels``, or a file that is not the expected dict of ``data`` and labels.
  """
  if labels not in ("fine", "coarse"):
    raise ValueError(f"labels must be 'fine' or 'coarse'; got {labels!r}")
  num_classes = 100 if labels == "fine" else 20
  folder = _cifar_folder("cifar100", data_dir, "cifar-100-python", ["train", "test"])
  key = f"{labels}_labels"
  return _make_splits("cifar100", num_classes, _cifar_batch(folder / "train", key, num_classes),
                      _cifar_batch(folder / "test", key, num_classes), validation_fraction, seed)
