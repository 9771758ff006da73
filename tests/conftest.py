"""Shared test helpers: the suite runs in float32 (default) and float64 (JAX_ENABLE_X64=1)."""

import jax
import pytest

X64 = bool(jax.config.jax_enable_x64)


def tol(float32: float, float64: float) -> float:
  """The tolerance for the precision in force."""
  return float64 if X64 else float32


@pytest.fixture
def x64() -> bool:
  return X64
