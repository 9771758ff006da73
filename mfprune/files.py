"""Files written atomically: readers (and an interrupted run) never see a partial file ([R]/[S] results, masks,
run records). JSON is written with NaN and infinities as ``null``."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from theory._pytree import json_numbers

__all__ = ["atomic_write", "jsonable", "write_json"]


def atomic_write(path: str | os.PathLike, write) -> Path:
  """Writes via a temporary file in the target folder and ``os.replace``: readers never see a partial file."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  try:
    with os.fdopen(fd, "wb") as handle:
      write(handle)
      handle.flush()
      os.fsync(handle.fileno())
    os.replace(tmp, path)
  except BaseException:
    Path(tmp).unlink(missing_ok=True)
    raise
  return path


def jsonable(data: Any) -> Any:
  """``data`` with NumPy/JAX scalars and arrays as Python numbers and lists (float32 ones as their shortest decimal,
  :func:`theory._pytree.json_numbers`) and non-finite floats (NaN, ±inf) as ``None``."""
  if isinstance(data, Mapping):
    return {str(key): jsonable(value) for key, value in data.items()}
  if isinstance(data, (list, tuple)):
    return [jsonable(value) for value in data]
  if isinstance(data, (np.ndarray, np.generic)) or (hasattr(data, "shape") and hasattr(data, "dtype")):
    return json_numbers(np.asarray(data))  # float32 values as their shortest decimal: 0.1, not 0.10000000149…
  if isinstance(data, float):
    return data if np.isfinite(data) else None
  return data


def write_json(path: str | os.PathLike, data: Any) -> Path:
  """Writes ``data`` as indented JSON, atomically; NaN and infinities become ``null`` (:func:`jsonable`)."""
  text = json.dumps(jsonable(data), indent=2, allow_nan=False) + "\n"
  return atomic_write(path, lambda handle: handle.write(text.encode()))
