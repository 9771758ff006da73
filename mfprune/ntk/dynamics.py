"""Training under full-batch gradient descent on the mean squared error: the loss the linearised network predicts
from a kernel against real gradient descent on the (pruned) model ([P] eq. 4-8, in discrete steps; THEORY.md §7).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mfprune.masks import Mask, apply_mask
from mfprune._checks import batch_array as _batch
from mfprune.functional import ApplyFn, Params
from mfprune.ntk._common import _forward, _masked_params, _output_size
from mfprune.ntk.empirical import _square, empirical_ntk
from theory import kernels
from theory._pytree import pytree_dataclass
from theory._validation import check_int, positive_float

Array = jax.Array


LOOPS: tuple[str, ...] = ("auto", "scan", "host")
"""How :func:`gradient_descent_losses` iterates: one ``lax.scan`` over all steps, a host loop over one jitted step,
or ``"auto"``: the host loop for models with convolutions (XLA:CPU runs convolutions inside loops 10-50× slower)."""

def mse_loss(outputs: Array, targets: Array) -> Array:
  """``L = (1/2N) Σ (f − y)²`` with ``N = y.size`` (examples × outputs): the loss of :func:`predicted_losses` and
  :func:`gradient_descent_losses`."""
  return 0.5 * jnp.mean((outputs - targets) ** 2)


def _check_targets(y: Any, outputs_shape: tuple[int, ...]) -> Array:
  y = jnp.asarray(y)
  if y.shape != tuple(outputs_shape):
    raise ValueError(f"y must have the shape of the model's outputs {tuple(outputs_shape)}; got {y.shape}")
  return y


def predicted_losses(kernel: Array, f0: Array, y: Array, *, learning_rate: float, steps: int) -> Array:
  """Loss of the linearised network under full-batch gradient descent on :func:`mse_loss` ([P] eq. 4-8).

  Gradient descent on ``L = ‖f − y‖²/(2N)`` (``N = y.size``) moves the linearised outputs by
  ``f_{t+1} − y = (I − ηΘ/N)(f_t − y)``: the discrete-time form of [P] eq. 8, in which ``e^{−ηΘt}`` becomes
  ``(I − ηΘ/N)^t``. Computed by :func:`theory.kernels.linearised_mse` with ``discrete=True`` (same loss convention,
  neural-tangents' ``predict.gradient_descent_mse``; eigenvalues clipped at 0).

  Args:
    kernel: ``Θ0`` on the training inputs: the full kernel ``(n, n, K, K)`` (or ``(n·K, n·K)``), or ``(n, n)``
      applied to every output alike (``Θ ⊗ I_K``: the infinite-width structure, or the output-averaged kernel).
    f0: the initial outputs ``(n, K)``.
    y: targets ``(n, K)``.
    learning_rate: ``η > 0``.
    steps: number of steps ``T >= 1``.

  Returns:
    ``(T + 1,)``: the losses at steps ``0, …, T``.

  Raises:
    ValueError: shapes that do not fit, ``learning_rate <= 0`` or ``steps < 1``.
  """
  learning_rate = positive_float("learning_rate", learning_rate, "the gradient-descent step size")
  steps = check_int("steps", steps, 1)
  f0 = jnp.asarray(f0)
  if f0.ndim != 2:
    raise ValueError(f"f0 must be the initial outputs (n, K); got shape {f0.shape}")
  y = _check_targets(y, f0.shape)
  size = _square("kernel", kernel)
  if size not in (f0.shape[0], f0.size):
    raise ValueError(f"kernel must be (n, n) or (n, n, K, K) for outputs (n, K) = {f0.shape}; got "
                     f"{jnp.shape(kernel)}")
  prediction = kernels.linearised_mse(kernel, y, f0, learning_rate=learning_rate, times=np.arange(steps + 1),
                                      discrete=True)
  return prediction.train_loss


def _has_convolution(apply_fn: ApplyFn, params: Params, x: Array) -> bool:
  return "conv_general_dilated" in str(jax.make_jaxpr(apply_fn)(params, x[:1]))


@functools.partial(jax.jit, static_argnums=0)
def _gd_step(apply_fn: ApplyFn, params: Params, mask: Mask | None, x: Array, y: Array,
             learning_rate: Array) -> tuple[Params, Array]:
  def loss_fn(p):
    return mse_loss(apply_fn(p if mask is None else apply_mask(p, mask), x).reshape(y.shape), y)

  loss, grads = jax.value_and_grad(loss_fn)(params)
  return jax.tree.map(lambda p, g: p - learning_rate * g, params, grads), loss


@functools.partial(jax.jit, static_argnums=(0, 6))
def _gd_scan(apply_fn: ApplyFn, params: Params, mask: Mask | None, x: Array, y: Array, learning_rate: Array,
             steps: int) -> Array:
  def body(p, _):
    p, loss = _gd_step(apply_fn, p, mask, x, y, learning_rate)
    return p, loss

  params, losses = jax.lax.scan(body, params, None, length=steps)
  final = mse_loss(apply_fn(params if mask is None else apply_mask(params, mask), x).reshape(y.shape), y)
  return jnp.concatenate([losses, final[None]])


def gradient_descent_losses(apply_fn: ApplyFn, params: Params, x: Array, y: Array, *, mask: Mask | None = None,
                            learning_rate: float, steps: int, loop: str = "auto") -> Array:
  """Real full-batch gradient descent ``θ ← θ − η ∇L`` on :func:`mse_loss`, pruned weights held at zero.

  The network is ``f(θ ⊙ m)``, so the gradient of a pruned weight is ``m_j ∂L/∂θ'_j = 0`` and, starting from
  ``θ ⊙ m``, it stays at zero: the training whose linearisation :func:`predicted_losses` describes.

  Args:
    apply_fn: ``apply_fn(params, x)``.
    params: initial parameters (masked here).
    x: training inputs ``(n, ...)``.
    y: targets shaped like the outputs ``f(x)`` flattened past the batch axis, ``(n, K)``.
    mask: optional mask.
    learning_rate: ``η > 0``.
    steps: number of steps ``T >= 1``.
    loop: one of :data:`LOOPS`.

  Returns:
    ``(T + 1,)``: the losses at steps ``0, …, T`` (before each step, and after the last).

  Raises:
    ValueError: ``mask``, ``x`` or ``y`` that do not fit the model, ``learning_rate <= 0``, ``steps < 1``, unknown
      ``loop``.
  """
  learning_rate = positive_float("learning_rate", learning_rate, "the gradient-descent step size")
  steps = check_int("steps", steps, 1)
  if loop not in LOOPS:
    raise ValueError(f"loop must be one of {LOOPS}; got {loop!r}")
  params = _masked_params(params, mask)
  x = _batch("x", x)
  k = _output_size(apply_fn, params, x, "x")
  y = _check_targets(y, (x.shape[0], k))
  dtype = jnp.result_type(*jax.tree_util.tree_leaves(params))
  eta = jnp.asarray(learning_rate, dtype)
  if loop == "auto":
    loop = "host" if _has_convolution(apply_fn, params, x) else "scan"
  if loop == "scan":
    return _gd_scan(apply_fn, params, mask, x, y, eta, steps)
  losses = []
  for _ in range(steps):
    params, loss = _gd_step(apply_fn, params, mask, x, y, eta)
    losses.append(loss)
  losses.append(_gd_step(apply_fn, params, mask, x, y, eta)[1])  # the loss after the last step
  return jnp.asarray(np.stack(jax.device_get(losses)))


@pytree_dataclass
class TrainingComparison:
  """Loss curves of full-batch gradient descent on the MSE: predicted by the linearised network vs measured.

  Attributes:
    steps: ``(T + 1,)`` step numbers ``0, …, T``.
    predicted: the loss predicted from the empirical ``Θ0`` (:func:`predicted_losses`).
    actual: the loss of real gradient descent (:func:`gradient_descent_losses`).
    analytic: the loss predicted from the analytic kernel, or ``None``.
    max_relative_gap: ``max_t |predicted_t − actual_t| / actual_t``.
  """

  steps: Array
  predicted: Array
  actual: Array
  analytic: Array | None
  max_relative_gap: Array

  def to_dict(self) -> dict[str, Any]:
    out = {"steps": np.asarray(self.steps).tolist(), "predicted": np.asarray(self.predicted).tolist(),
           "actual": np.asarray(self.actual).tolist(), "max_relative_gap": float(self.max_relative_gap)}
    if self.analytic is not None:
      out["analytic"] = np.asarray(self.analytic).tolist()
    return out


def predict_training(apply_fn: ApplyFn, params: Params, x: Array, y: Array, *, mask: Mask | None = None,
                     learning_rate: float, steps: int, ntk: Array | None = None, analytic: Array | None = None,
                     implementation: str = "jax", batch_size: int | None = None,
                     loop: str = "auto") -> TrainingComparison:
  """The loss curve the empirical NTK predicts ([P] eq. 7-8) against real gradient descent on the pruned model.

  Args:
    apply_fn: ``apply_fn(params, x)``.
    params: initial parameters.
    x: training inputs ``(n, ...)``.
    y: targets ``(n, K)``.
    mask: optional mask (pruned weights stay at zero in training and drop out of ``Θ0``).
    learning_rate: ``η > 0``.
    steps: ``T >= 1``.
    ntk: the empirical kernel on ``x``, ``(n, n, K, K)`` (or ``(n, n)``); computed with ``implementation`` and
      ``batch_size`` (:func:`empirical_ntk`, full kernel) when ``None``.
    analytic: an analytic kernel on ``x``, ``(n, n)`` (:func:`analytic_kernels`' ``ntk``), for a third curve from
      the same initial outputs; ``None`` for none.
    implementation: see :func:`empirical_ntk`.
    batch_size: see :func:`empirical_ntk`.
    loop: see :func:`gradient_descent_losses`.

  Returns:
    :class:`TrainingComparison`.

  Raises:
    ValueError: as :func:`empirical_ntk`, :func:`predicted_losses` and :func:`gradient_descent_losses`.
  """
  learning_rate = positive_float("learning_rate", learning_rate, "the gradient-descent step size")
  steps = check_int("steps", steps, 1)
  masked = _masked_params(params, mask)
  x = _batch("x", x)
  k = _output_size(apply_fn, masked, x, "x")
  y = _check_targets(y, (x.shape[0], k))
  if ntk is None:
    ntk = empirical_ntk(apply_fn, params, x, mask=mask, implementation=implementation, batch_size=batch_size)
  f0 = _forward(apply_fn, masked, x)
  predicted = predicted_losses(ntk, f0, y, learning_rate=learning_rate, steps=steps)
  actual = gradient_descent_losses(apply_fn, params, x, y, mask=mask, learning_rate=learning_rate, steps=steps,
                                   loop=loop)
  curve = None if analytic is None else predicted_losses(analytic, f0, y, learning_rate=learning_rate, steps=steps)
  p, a = np.asarray(predicted, np.float64), np.asarray(actual, np.float64)
  return TrainingComparison(steps=jnp.asarray(np.arange(steps + 1)), predicted=predicted, actual=actual,
                            analytic=curve, max_relative_gap=jnp.asarray(np.max(np.abs(p - a) / a)))
