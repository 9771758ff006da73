"""Tiny ImageNet from the standard ``tiny-imagenet-200/`` folder of JPEGs (Pillow is imported when it is read)."""

from __future__ import annotations

import concurrent.futures
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from mfprune.data.dataset import INPUT_SHAPES, PathLike, Splits, _make_splits


def _read_images(paths: Sequence[Path], size: tuple[int, int]) -> np.ndarray:
  """RGB uint8 ``(n, H, W, 3)`` from image files, decoded by a thread pool (Pillow releases the GIL)."""
  from PIL import Image, UnidentifiedImageError

  height, width = size
  out = np.empty((len(paths), height, width, 3), np.uint8)

  def read(i: int) -> None:
    try:
      with Image.open(paths[i]) as image:
        pixels = np.asarray(image.convert("RGB"))  # some Tiny ImageNet images are grayscale
    except FileNotFoundError:
      raise FileNotFoundError(f"{paths[i]}: no such image") from None
    except (UnidentifiedImageError, OSError) as error:
      raise ValueError(f"{paths[i]}: not a readable image ({error})") from None
    if pixels.shape != (height, width, 3):
      raise ValueError(f"{paths[i]}: expected a {width}×{height} image; got {pixels.shape[1]}×{pixels.shape[0]}")
    out[i] = pixels

  with concurrent.futures.ThreadPoolExecutor(max_workers=min(32, os.cpu_count() or 1)) as pool:
    for _ in pool.map(read, range(len(paths))):  # re-raises the first error
      pass
  return out


def _is_jpeg(path: Path) -> bool:
  return path.suffix.lower() in (".jpeg", ".jpg") and path.is_file()


def tiny_imagenet(data_dir: PathLike, *, validation_fraction: float = 0.0, seed: int = 0) -> Splits:
  """Tiny ImageNet from the standard ``tiny-imagenet-200/`` folder; its labelled val split is the test split.

  Layout: ``wnids.txt`` (one WordNet id per line; label = line index), ``train/<wnid>/images/*.JPEG``,
  ``val/images/*.JPEG`` and ``val/val_annotations.txt`` (tab separated: file name, wnid, bounding box). The
  official test images have no labels and are not read. Images are converted to RGB (some are grayscale).

  Args:
    data_dir: the ``tiny-imagenet-200`` folder or its parent.
    validation_fraction: fraction of the training examples held out (see :func:`load_splits`).
    seed: chooses the validation examples.

  Returns:
    :class:`Splits` of 64×64×3 images, one class per wnid (200), standardised per channel with the training
    statistics. Training images are ordered by class, then file name; test images as in the annotations.

  Raises:
    FileNotFoundError: missing ``wnids.txt``, class folders, annotations or images.
    ValueError: a malformed annotation line, an unknown wnid, an image that is not 64×64.
  """
  directory = Path(data_dir)
  root = directory if (directory / "wnids.txt").is_file() else directory / "tiny-imagenet-200"
  expected = "wnids.txt, train/<wnid>/images/*.JPEG, val/images/*.JPEG and val/val_annotations.txt"
  if not (root / "wnids.txt").is_file():
    raise FileNotFoundError(f"tiny-imagenet: no wnids.txt in {directory} or {directory / 'tiny-imagenet-200'}; "
                            f"expected the tiny-imagenet-200 layout: {expected}")
  wnids = [line.strip() for line in (root / "wnids.txt").read_text().splitlines() if line.strip()]
  if not wnids or len(set(wnids)) != len(wnids):
    raise ValueError(f"{root / 'wnids.txt'}: expected distinct WordNet ids, one per line; got {len(wnids)} lines, "
                     f"{len(set(wnids))} distinct")
  label_of = {wnid: label for label, wnid in enumerate(wnids)}
  train_paths, train_labels = [], []
  for wnid, label in label_of.items():
    folder = root / "train" / wnid / "images"
    if not folder.is_dir():
      raise FileNotFoundError(f"tiny-imagenet: {folder} does not exist; expected {expected}")
    files = sorted(path for path in folder.iterdir() if _is_jpeg(path))
    if not files:
      raise FileNotFoundError(f"tiny-imagenet: no .JPEG images in {folder}")
    train_paths += files
    train_labels += [label] * len(files)
  annotations = root / "val" / "val_annotations.txt"
  if not annotations.is_file():
    raise FileNotFoundError(f"tiny-imagenet: {annotations} does not exist; expected {expected}")
  test_paths, test_labels = [], []
  for number, line in enumerate(annotations.read_text().splitlines(), start=1):
    if not line.strip():
      continue
    fields = line.split("\t")
    if len(fields) < 2 or fields[1] not in label_of:
      raise ValueError(f"{annotations} line {number}: expected 'file<TAB>wnid<TAB>bbox...' with a wnid of "
                       f"wnids.txt; got {line!r}")
    test_paths.append(root / "val" / "images" / fields[0])
    test_labels.append(label_of[fields[1]])
  size = INPUT_SHAPES["tiny-imagenet"][0][:2]
  train = (_read_images(train_paths, size), np.asarray(train_labels, np.int32))
  test = (_read_images(test_paths, size), np.asarray(test_labels, np.int32))
  return _make_splits("tiny-imagenet", len(wnids), train, test, validation_fraction, seed)
