"""The IDX format (:func:`read_idx`) and its data sets: MNIST and Fashion-MNIST."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mfprune.data.dataset import INPUT_SHAPES, PathLike, Splits, _check_labels, _make_splits, read_file

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where Debian's ``dataset-fashion-mnist`` package puts the four IDX files (the default of :func:`fashion_mnist`)."""

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_MNIST_FILES = (("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))


def read_idx(path: PathLike) -> np.ndarray:
  """Reads an IDX file (the MNIST format), gzip-compressed or plain.

  Layout: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64),
  the number of dimensions, each dimension as a big-endian uint32, then the values in C order, big-endian.

  Args:
    path: the file; gzip data is recognised by its magic bytes, so the name need not end in ``.gz``.

  Returns:
    The array in native byte order, with the header's shape and type.

  Raises:
    FileNotFoundError: no such file.
    ValueError: naming the file, if the magic is wrong or the size disagrees with the header (truncated or
      trailing data), or the gzip stream is corrupt.
  """
  path = Path(path)
  content = read_file(path)
  if len(content) < 4:
    raise ValueError(f"{path}: not an IDX file: {len(content)} bytes, shorter than the 4-byte magic")
  if content[0] != 0 or content[1] != 0 or content[2] not in _IDX_DTYPES:
    raise ValueError(f"{path}: not an IDX file: magic {content[:4].hex()} should be 0000TTDD with type code TT in "
                     f"{', '.join(f'{code:02x}' for code in _IDX_DTYPES)} and DD dimensions")
  dtype, ndim = np.dtype(_IDX_DTYPES[content[2]]), content[3]
  header = 4 + 4 * ndim
  if len(content) < header:
    raise ValueError(f"{path}: truncated IDX header: {ndim} dimensions need {header} bytes, the file has "
                     f"{len(content)}")
  shape = tuple(int(d) for d in np.frombuffer(content, ">u4", count=ndim, offset=4))
  expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
  if len(content) != expected:
    problem = "truncated" if len(content) < expected else "has trailing bytes"
    raise ValueError(f"{path}: IDX file {problem}: header shape {shape} of {dtype.name} needs {expected} bytes, the "
                     f"(decompressed) file has {len(content)}")
  array = np.frombuffer(content, dtype, offset=header).reshape(shape)
  return array.astype(dtype.newbyteorder("="))  # a writable copy in native order


def _find_file(directory: Path, stem: str) -> Path | None:
  for name in (stem + ".gz", stem):
    if (directory / name).is_file():
      return directory / name
  return None


def _idx_splits(name: str, data_dir: PathLike, hint: str, validation_fraction: float, seed: int) -> Splits:
  directory = Path(data_dir)
  stems = [stem for pair in _MNIST_FILES for stem in pair]
  found = {stem: _find_file(directory, stem) for stem in stems}
  missing = [stem for stem, path in found.items() if path is None]
  if missing:
    state = "does not exist" if not directory.is_dir() else f"lacks {', '.join(missing)} (with or without .gz)"
    raise FileNotFoundError(f"{name}: directory {directory} {state}; expected the IDX files "
                            f"{', '.join(s + '[.gz]' for s in stems)} there{hint}")
  (height, width, _), num_classes = INPUT_SHAPES[name]
  parts = []
  for image_stem, label_stem in _MNIST_FILES:
    images = read_idx(found[image_stem])
    if images.ndim != 3 or images.shape[1:] != (height, width) or images.dtype != np.uint8:
      raise ValueError(f"{found[image_stem]}: expected uint8 images (n, {height}, {width}); got {images.dtype} "
                       f"{images.shape}")
    labels = _check_labels(read_idx(found[label_stem]), len(images), num_classes, str(found[label_stem]))
    parts.append((images[..., None], labels))
  return _make_splits(name, num_classes, parts[0], parts[1], validation_fraction, seed)


def mnist(data_dir: PathLike, *, validation_fraction: float = 0.0, seed: int = 0) -> Splits:
  """MNIST from its four IDX files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
  ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each optionally ``.gz``) in ``data_dir``.

  Args:
    data_dir: the folder holding the files.
    validation_fraction: fraction of the 60000 training examples held out (see :func:`load_splits`).
    seed: chooses the validation examples.

  Returns:
    :class:`Splits` of 28×28×1 images, 10 classes, standardised with the training statistics.

  Raises:
    FileNotFoundError: the folder or a file is missing (the message lists the expected names).
    ValueError: a malformed file.
  """
  return _idx_splits("mnist", data_dir, "", validation_fraction, seed)


def fashion_mnist(data_dir: PathLike | None = None, *, validation_fraction: float = 0.0, seed: int = 0) -> Splits:
  """Fashion-MNIST: the same four IDX files as :func:`mnist`, by default in ``/usr/share/datasets/fashion-mnist``.

  Args:
    data_dir: the folder holding the files; default :data:`FASHION_MNIST_DIR` (Debian/Ubuntu:
      ``apt-get install dataset-fashion-mnist``).
    validation_fraction: fraction of the 60000 training examples held out (see :func:`load_splits`).
    seed: chooses the validation examples.

  Returns:
    :class:`Splits` of 28×28×1 images, 10 classes, standardised with the training statistics.

  Raises:
    FileNotFoundError: the folder or a file is missing (the message lists the expected names).
    ValueError: a malformed file.
  """
  hint = (f" (on Debian/Ubuntu `apt-get install dataset-fashion-mnist` puts them in {FASHION_MNIST_DIR}, the "
          "default data_dir)")
  return _idx_splits("fashion-mnist", FASHION_MNIST_DIR if data_dir is None else data_dir, hint,
                     validation_fraction, seed)
