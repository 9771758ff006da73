"""Building blocks shared by every mfprune model: dense and convolution layers, batch norm, and the linearised mode.

Every layer takes ``linear``. With ``linear=False`` it is the ordinary layer. With ``linear=True`` it computes the
linear part that SynFlow's path objective needs ([P] §3-4, eq. 15; THEORY.md §7): no bias, batch norm reduced to
``x · scale / √(running_var + ε)``, and the model replaces its activation by the identity. The models also call
:func:`renormalise` after every layer (or residual block) in that mode: dividing the whole signal by a positive
scalar held constant under differentiation multiplies the path objective by one global factor, which leaves every
score ranking unchanged and keeps deep networks from overflowing.

:func:`record_outputs` lets a caller collect what every :class:`Dense` and :class:`Conv` returns (the
pre-activations ``h^l`` of [R] eq. 1-3) during one forward pass; :mod:`mfprune.signal` uses it. Outside that
context the layers record nothing. :func:`record_scales` likewise collects the log of every factor
:func:`renormalise` divides by, so that the exact path objective is the renormalised one times ``exp(Σ log
scales)`` (:mod:`mfprune.paths`).
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

import theory

Array = jax.Array
Padding = str  # "SAME", "VALID" or "CIRCULAR"
PADDINGS = ("SAME", "VALID", "CIRCULAR")


class StaticFn:
  """A callable stored as static module metadata (NNX refuses arrays in static attributes; this hides them)."""

  def __init__(self, fn: Callable[[Array], Array], name: str):
    self._fn = fn
    self.name = name

  def __call__(self, x: Array) -> Array:
    return self._fn(x)

  def __repr__(self) -> str:
    return self.name


def activation_fn(activation: theory.activations.ActivationLike) -> StaticFn:
  """Resolves ``activation`` (a registry name, an :class:`theory.Activation` or a callable) for use in a model.

  The same object is what :mod:`theory` integrates, so mean-field predictions and the model agree exactly.
  """
  act = theory.get_activation(activation)
  return StaticFn(act.__call__, act.name)


_RECORD: contextvars.ContextVar[list | None] = contextvars.ContextVar("mfprune_layer_outputs", default=None)


@contextlib.contextmanager
def record_outputs() -> Iterator[list[tuple[nnx.Module, Array]]]:
  """Collects ``(layer, output)`` for every :class:`Dense` and :class:`Conv` call made inside the ``with`` block.

  The list fills in call order (network order); ``linear=True`` calls are recorded too. Recording happens in Python
  while a forward pass runs or is traced, so it costs nothing when no block is active and works inside
  ``jax.jit``/``jax.vmap`` provided the block and the forward pass sit in the same traced function, which returns
  the recorded arrays (a forward pass jitted on its own inside the block would record its internal tracers).
  Blocks nest; each one sees only the calls made while it is the innermost.

  Yields:
    The list that receives ``(layer module, output array)`` pairs.
  """
  records: list[tuple[nnx.Module, Array]] = []
  token = _RECORD.set(records)
  try:
    yield records
  finally:
    _RECORD.reset(token)


def _record(layer: nnx.Module, y: Array) -> Array:
  records = _RECORD.get()
  if records is not None:
    records.append((layer, y))
  return y


_SCALES: contextvars.ContextVar[list | None] = contextvars.ContextVar("mfprune_renormalise_scales", default=None)


@contextlib.contextmanager
def record_scales() -> Iterator[list[Array]]:
  """Collects ``log(scale)`` for every :func:`renormalise` call made inside the ``with`` block.

  ``scale`` is the positive divisor :func:`renormalise` applies (``mean|h|``, or 1 for an all-zero signal), held
  constant under differentiation like the division itself. A linearised forward pass divides its output by the
  product of these scales, so ``sum(output) · exp(Σ log scales)`` is the exact, unrenormalised path objective
  ([P] eq. 15-16; :mod:`mfprune.paths`). Same rules as :func:`record_outputs`: nothing is recorded (and nothing
  costs) outside a block; inside ``jax.jit`` the block and the forward pass must sit in the same traced function,
  which returns the recorded values; blocks nest and each one sees only the calls made while it is the innermost.

  Yields:
    The list that receives the scalar ``log(scale)`` of each call, in call order.
  """
  records: list[Array] = []
  token = _SCALES.set(records)
  try:
    yield records
  finally:
    _SCALES.reset(token)


def renormalise(h: Array) -> Array:
  """Divides ``h`` by ``mean|h|``, a scalar treated as a constant by autodiff (used only in linearised mode).

  Inside :func:`record_scales` the log of the divisor is recorded.
  """
  scale = jax.lax.stop_gradient(jnp.mean(jnp.abs(h)))
  scale = jnp.where(scale > 0, scale, 1.0)  # an all-zero signal (a collapsed layer) stays zero, gradients finite
  records = _SCALES.get()
  if records is not None:
    records.append(jnp.log(scale))
  return h / scale


def sequential(layers, h: Array, activation: Callable[[Array], Array], *, linear: bool) -> Array:
  """``layer_n(φ(... φ(layer_1(h))))``: φ between layers, none before the first or after the last.

  In linearised mode φ is skipped and the signal is renormalised after every layer.
  """
  for i, layer in enumerate(layers):
    if i > 0 and not linear:
      h = activation(h)
    h = layer(h, linear=linear)
    if linear:
      h = renormalise(h)
  return h


def _normal_init(key, shape, dtype=None):
  """N(0, 1/fan_in) with fan_in = prod(shape[:-1]): LeCun normal; ``mfprune.init`` sets the paper's inits."""
  fan_in = 1
  for n in shape[:-1]:
    fan_in *= n
  return jax.random.normal(key, shape, dtype) / jnp.sqrt(jnp.asarray(fan_in, dtype))


class Dense(nnx.Module):
  """``y = x W + b`` with ``W`` of shape ``(in, out)`` (flax's layout, so param paths read ``.../kernel``)."""

  def __init__(self, in_features: int, out_features: int, *, use_bias: bool = True, rngs: nnx.Rngs):
    self.in_features, self.out_features = in_features, out_features
    self.kernel = nnx.Param(_normal_init(rngs.params(), (in_features, out_features)))
    self.bias = nnx.Param(jnp.zeros((out_features,))) if use_bias else None

  def __call__(self, x: Array, *, linear: bool = False) -> Array:
    y = x @ self.kernel[...]
    if self.bias is not None and not linear:
      y = y + self.bias[...]
    return _record(self, y)


class Conv(nnx.Module):
  """N-d convolution over channels-last inputs ``(batch, *spatial, channels)``, kernel ``(*window, in, out)``.

  ``padding="CIRCULAR"`` wraps the input periodically, the vanilla CNN of [R] §2.1 / App. A.1 (THEORY.md §1).
  """

  def __init__(self, in_features: int, out_features: int, kernel_size: Sequence[int], *, strides: int = 1,
               padding: Padding = "SAME", use_bias: bool = True, rngs: nnx.Rngs):
    if padding not in PADDINGS:
      raise ValueError(f"padding must be one of {PADDINGS}; got {padding!r}")
    self.kernel_size = tuple(int(k) for k in kernel_size)
    self.strides = int(strides)
    self.padding = padding
    self.kernel = nnx.Param(_normal_init(rngs.params(), (*self.kernel_size, in_features, out_features)))
    self.bias = nnx.Param(jnp.zeros((out_features,))) if use_bias else None

  def __call__(self, x: Array, *, linear: bool = False) -> Array:
    n = len(self.kernel_size)
    padding = self.padding
    if padding == "CIRCULAR":
      pads = [(0, 0)] + [((k - 1) // 2, k // 2) for k in self.kernel_size] + [(0, 0)]
      x = jnp.pad(x, pads, mode="wrap")
      padding = "VALID"
    spatial = "".join("HWD"[i] for i in range(n))
    y = jax.lax.conv_general_dilated(
        x, self.kernel[...], window_strides=(self.strides,) * n, padding=padding,
        dimension_numbers=(f"N{spatial}C", f"{spatial}IO", f"N{spatial}C"))
    if self.bias is not None and not linear:
      y = y + self.bias[...]
    return _record(self, y)


class BatchNorm(nnx.Module):
  """Batch normalisation over all axes but the last; the linearised mode keeps only ``scale / √(var + ε)``."""

  def __init__(self, num_features: int, *, rngs: nnx.Rngs):
    self.norm = nnx.BatchNorm(num_features, momentum=0.9, epsilon=1e-5, rngs=rngs)

  def __call__(self, x: Array, *, linear: bool = False) -> Array:
    if not linear:
      return self.norm(x)
    norm = self.norm
    return x * (norm.scale[...] / jnp.sqrt(norm.var[...] + norm.epsilon))


def max_pool(x: Array, window: int = 2) -> Array:
  """Non-overlapping max pooling over the spatial axes (positively homogeneous, so linearised mode keeps it)."""
  n = x.ndim - 2
  return nnx.max_pool(x, (window,) * n, strides=(window,) * n)


def avg_pool(x: Array, window: int = 2) -> Array:
  """Non-overlapping average pooling over the spatial axes."""
  n = x.ndim - 2
  return nnx.avg_pool(x, (window,) * n, strides=(window,) * n)


def global_avg_pool(x: Array) -> Array:
  """Mean over the spatial axes: ``(batch, *spatial, c) -> (batch, c)``."""
  return jnp.mean(x, axis=tuple(range(1, x.ndim - 1)))


def flatten(x: Array) -> Array:
  """``(batch, ...) -> (batch, features)``."""
  return x.reshape(x.shape[0], -1)
