"""Data sets for pruning and training: readers, splits, standardisation, deterministic batching, augmentation.

Readers (docs/data.md has the file layouts):

- ``digits``: scikit-learn's 1797 handwritten digits, 8×8×1 (embedded, no download; the default everywhere).
- ``mnist`` and ``fashion-mnist``: the IDX files (:func:`read_idx`), gzipped or not, 28×28×1.
- ``cifar10`` and ``cifar100``: the official "python version" pickle batches, 32×32×3.
- ``tiny-imagenet``: the ``tiny-imagenet-200/`` folder of JPEGs, 64×64×3, 200 classes; its val split is our test.
- ``synthetic``: standard Gaussian inputs of any shape with uniform random labels.

Examples are float32 channels-last ``(n, H, W, C)``, labels int32 ``(n,)``. :func:`load_splits` returns train,
optional validation and test :class:`Dataset` objects standardised per channel with the statistics of the training
split only (after the validation examples are removed). Batches are pure functions of ``(seed, step)``
(:func:`batch_indices`), so a resumed run sees exactly the batches it would have seen; :func:`augment` is the CIFAR
random crop and flip in JAX.

Modules (everything public is re-exported here): :mod:`~mfprune.data.dataset` (:class:`Dataset`, :class:`Splits`,
standardisation and splitting), :mod:`~mfprune.data.batching` (:func:`epoch_permutation`, :func:`batch_indices`),
:mod:`~mfprune.data.augmentation` (:func:`augment`), :mod:`~mfprune.data.builtin` (:func:`digits`,
:func:`synthetic`), :mod:`~mfprune.data.idx` (:func:`read_idx`, :func:`mnist`, :func:`fashion_mnist`),
:mod:`~mfprune.data.cifar` (:func:`cifar10`, :func:`cifar100`) and :mod:`~mfprune.data.tinyimagenet`
(:func:`tiny_imagenet`); :func:`load_splits` and :func:`load` (by name) live here.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from mfprune.data.augmentation import augment
from mfprune.data.batching import batch_indices, epoch_permutation
from mfprune.data.builtin import DIGITS_TEST_FRACTION, _digits_splits, digits, synthetic
from mfprune.data.cifar import cifar10, cifar100
from mfprune.data.dataset import INPUT_SHAPES, Dataset, PathLike, Splits, _make_splits
from mfprune.data.idx import FASHION_MNIST_DIR, fashion_mnist, mnist, read_idx
from mfprune.data.tinyimagenet import tiny_imagenet

__all__ = [
    "DATASETS", "load", "load_splits",
    "INPUT_SHAPES", "Dataset", "PathLike", "Splits",
    "augment",
    "batch_indices", "epoch_permutation",
    "DIGITS_TEST_FRACTION", "digits", "synthetic",
    "cifar10", "cifar100",
    "FASHION_MNIST_DIR", "fashion_mnist", "mnist", "read_idx",
    "tiny_imagenet",
]


DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10", "cifar100", "tiny-imagenet", "synthetic")
"""Names :func:`load_splits` and :func:`load` accept."""


def load_splits(name: str, data_dir: PathLike | None = None, *, validation_fraction: float = 0.0, seed: int = 0,
                labels: str = "fine", input_shape: Sequence[int] | None = None, num_classes: int = 10,
                size: int = 1024) -> Splits:
  """Train, validation and test splits of a data set by name, standardised with the training statistics.

  Standardisation: the per-channel mean and standard deviation of the raw training examples (after the validation
  examples are removed) are subtracted and divided out of every split; they are kept on the result
  (``Splits.mean``, ``Splits.std``, also on each :class:`Dataset`) to invert or reuse. The test split is never
  looked at, so its mean is close to, not exactly, zero.

  Args:
    name: one of :data:`DATASETS`.
    data_dir: where the files are (see each reader); required except for ``digits``, ``synthetic`` and
      ``fashion-mnist`` (default :data:`FASHION_MNIST_DIR`).
    validation_fraction: fraction in ``[0, 1)`` of the training examples held out as ``validation``
      (``round(fraction * n)`` of them, chosen by a permutation of ``seed``); 0 for none.
    seed: chooses the validation examples (deterministic; the same seed gives the same split).
    labels: ``cifar100`` only: ``"fine"`` (100 classes) or ``"coarse"`` (20).
    input_shape: ``synthetic`` only (required): one example's shape.
    num_classes: ``synthetic`` only: number of classes.
    size: ``synthetic`` only: training examples (the test split has as many; fixed data seeds 0 and 1).

  Returns:
    The :class:`Splits`. Digits, which has no test split, keeps a fixed 20% (359 examples) for testing.

  Raises:
    ValueError: unknown name, missing ``data_dir``/``input_shape``, bad ``validation_fraction``, malformed files.
    FileNotFoundError: missing files (the message lists the expected ones).
  """
  if name not in DATASETS:
    raise ValueError(f"unknown data set {name!r}; available: {', '.join(DATASETS)}")
  options = {"validation_fraction": validation_fraction, "seed": seed}
  if name == "digits":
    return _digits_splits(**options)
  if name == "synthetic":
    if input_shape is None:
      raise ValueError("synthetic data needs input_shape (one example's shape, e.g. (32, 32, 3))")
    train, test = synthetic(input_shape, num_classes, size, seed=0), synthetic(input_shape, num_classes, size, seed=1)
    return _make_splits("synthetic", num_classes, (train.x, train.y), (test.x, test.y), **options)
  if name == "fashion-mnist":
    return fashion_mnist(data_dir, **options)
  if data_dir is None:
    raise ValueError(f"data_dir is required for {name} (the folder holding its files; see docs/data.md)")
  if name == "cifar100":
    return cifar100(data_dir, labels, **options)
  readers: dict[str, Callable[..., Splits]] = {"mnist": mnist, "cifar10": cifar10, "tiny-imagenet": tiny_imagenet}
  return readers[name](data_dir, **options)


def load(name: str, data_dir: PathLike | None = None, *, input_shape: Sequence[int] | None = None,
         num_classes: int = 10, **options: Any) -> Dataset:
  """The standardised training split of a data set by name: ``load_splits(name, ...).train``.

  Args:
    name: one of :data:`DATASETS`.
    data_dir: where the files are (see :func:`load_splits`).
    input_shape: ``synthetic`` only (required).
    num_classes: ``synthetic`` only.
    **options: further :func:`load_splits` options (``validation_fraction``, ``seed``, ``labels``, ``size``).

  Returns:
    The training :class:`Dataset` (for digits the 1438 training examples; :func:`digits` gives all 1797).
  """
  return load_splits(name, data_dir, input_shape=input_shape, num_classes=num_classes, **options).train
