"""Infinite-width NNGP and NTK kernels of MLPs, circular CNNs and residual MLPs, and linearised MSE dynamics.

Kernels (THEORY.md §8; Jacot et al. 2018; Lee et al. 2019; Arora et al. 2019 for the CNN). Write ``Σ`` for the
NNGP (the covariance of a pre-activation over the random initialization) and ``Θ`` for the NTK. In the NTK
parameterisation (``y = σw W φ(x)/√fan_in + σb b`` with ``W, b ~ N(0, 1)``) one dense layer maps them as::

    Σ^1     = σb² + σw² xᵀx'/d,                  Θ^1 = Σ^1
    Σ^{l+1} = σb² + σw² E[φ(u)φ(v)],             Θ^{l+1} = Σ^{l+1} + Σ̇^{l+1} Θ^l
    Σ̇^{l+1} = σw² E[φ'(u)φ'(v)],                 (u, v) ~ N(0, Σ^l restricted to the two inputs)

which is what neural-tangents' ``stax.Dense(W_std=σw, b_std=σb)`` computes (``parameterization='ntk'``). The
Gaussian expectations come from :class:`theory.activations.Activation` (closed forms for relu, leaky_relu, linear and
erf; the quadrature of :mod:`theory.gaussian` otherwise), in the same ``(q1, q2, c)`` form as :mod:`theory.maps`;
the first layer is :func:`theory.maps.input_kernel` in matrix form. So the NNGP diagonal is the variance ``q^l`` of
:func:`theory.maps.propagate`.

**Standard parameterisation** (``parameterization="standard"``): the weights are stored as ``W ~ N(0, σw²/fan_in)``
and the layer is ``y = W φ(x) + b``, ``b ~ N(0, σb²)``, as in mfprune's models (``mfprune/models/layers.py``). The
forward pass, hence the NNGP, is the same; the NTK is not, because ``∂y/∂W = φ(x)`` is not scaled by
``σw/√fan_in``: the weights of a layer contribute ``fan_in · E[φ(u)φ(v)]`` (``xᵀx'`` for the first layer) and its
biases ``1`` (whatever σb, as long as the layer has trainable biases)::

    Θ^1 = xᵀx' + 1,        Θ^{l+1} = n_l E[φ(u)φ(v)] + 1 + Σ̇^{l+1} Θ^l,        n_l = width of layer l.

Divided by the widths, this is the large-width limit of the empirical NTK of the finite standard-parameterised net
(one net scatters around it by ``O(1/√n)`` relative); it grows like the widths, so it needs them (``widths``).
neural-tangents' ``Dense(out_dim=n, W_std, b_std, parameterization='standard')`` with its default ``s=(1, 1)``
computes exactly this (its kernel reads the width from ``out_dim``; its docstring calls the normaliser
``N = out_dim`` but its code divides by ``fan_in``, as we do). The one difference is the residual branch:
``y + s·(W φ(y) + b)`` (mfprune's ResNet scales the branch this way) multiplies the branch's gradient contributions
by ``s²`` too, while NT's ``Dense(W_std·s, b_std·s, parameterization='standard')`` folds ``s`` into the
initialization and leaves them unscaled. The tests build our convention in NT as ``ABRelu(0, s)`` (``s·relu``)
followed by a bias-free standard Dense (NT cannot express a scaled bias inside a residual sum), and check the bias
term against wide finite nets.

Self-correlations. Without ``x2`` the kernel of a set of inputs with itself is computed: the correlation of a
pre-activation with itself is then set to exactly 1 (round-off would leave ``1 − O(ε)``, which ``arcsin`` turns into
``O(√ε)``, ~1e-3 relative in a depth-20 ReLU NTK in float32; neural-tangents has that error), and quadrature
integrates only the upper triangle of pairs.

Cost: the MLP and residual kernels cost ``O(n1·n2)`` per layer (times the quadrature's ``6·order²`` nodes without a
closed form; quadrature kernels are evaluated in chunks to bound memory). The CNN kernel is position-by-position,
``O(n1·n2·P²·(2k+1)^dims)`` per layer for ``P`` positions: keep images small.

Linearised dynamics ([P] eq. 7-8; Lee et al. 2019, eq. 9-11) under the MSE loss ``L = ‖f − y‖²/(2N)``, ``N`` the
number of output entries (``y_train.size``), the normalisation of neural-tangents' ``predict.gradient_descent_mse``:
gradient flow ``dθ/dt = −η ∇L`` gives ``f_t − y = exp(−η Θ t/N)(f_0 − y)`` on the training set, and full-batch
gradient descent ``θ ← θ − η ∇L`` on the linearised net gives ``f_{t+1} − y = (I − η Θ/N)(f_t − y)`` exactly
(:func:`linearised_mse`).
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from theory import dual, gaussian, maps
from theory._pytree import pytree_dataclass
from theory._validation import check_finite, check_int, check_nonnegative, check_positive, is_concrete
from theory.activations import Activation, ActivationLike, get_activation

__all__ = [
    "Kernels", "LinearisedPrediction", "PARAMETERIZATIONS", "ORDER", "mlp_kernels", "cnn_kernels",
    "resnet_kernels", "linearised_mse",
]

Array = jax.Array
ORDER = maps.ORDER
PARAMETERIZATIONS: tuple[str, ...] = ("ntk", "standard")

@pytree_dataclass
class Kernels:
  """Infinite-width kernels of a network's output (per output unit) on two sets of inputs.

  Attributes:
    nngp: ``Σ(x1_i, x2_j)``, shape ``(n1, n2)``: the output covariance over random initializations.
    ntk: ``Θ(x1_i, x2_j)``, shape ``(n1, n2)``: the neural tangent kernel.
  """

  nngp: Array
  ntk: Array


@pytree_dataclass
class LinearisedPrediction:
  """Outputs and MSE loss of the linearised network over training time (:func:`linearised_mse`).

  Attributes:
    times: the times (continuous) or step counts (discrete), shape ``(T,)``.
    train_outputs: ``f_t(X_train)``, shape ``(T,) + y_train.shape``.
    train_loss: ``‖f_t(X_train) − y_train‖² / (2 y_train.size)``, shape ``(T,)``.
    test_outputs: ``f_t(X_test)``, shape ``(T,) + f0_test.shape``; ``None`` without test inputs.
    test_loss: the same loss on the test set, shape ``(T,)``; ``None`` without ``y_test``.
  """

  times: Array
  train_outputs: Array
  train_loss: Array
  test_outputs: Array | None = None
  test_loss: Array | None = None


# ---------------------------------------------------------------------------------------------------------------
# Validation.
# ---------------------------------------------------------------------------------------------------------------


def _float(x) -> Array:
  return jnp.asarray(x, gaussian.float_dtype())


def _check_parameterization(parameterization: str) -> bool:
  """Returns True for ``"standard"``; raises ``ValueError`` unless ``parameterization`` is a known name."""
  if parameterization not in PARAMETERIZATIONS:
    raise ValueError(f"parameterization must be one of {PARAMETERIZATIONS}; got {parameterization!r}")
  return parameterization == "standard"


def _inputs(x1, x2, min_ndim: int = 2) -> tuple[Array, Array, bool]:
  """Converts the inputs to float arrays with a batch axis, checks that they are finite and of one example shape.

  Returns ``(x1, x2, same)`` with ``same`` True when ``x2`` was omitted.
  """
  x1 = _float(x1)
  if x1.ndim < min_ndim or x1.shape[0] < 1:
    raise ValueError(f"x1 must have a batch axis and at least {min_ndim} dimensions; got shape {x1.shape}")
  check_finite("x1", x1)
  if x2 is None:
    return x1, x1, True
  x2 = _float(x2)
  if x2.ndim < 1 or x2.shape[0] < 1 or x2.shape[1:] != x1.shape[1:]:
    raise ValueError(f"x2 must have a batch axis and the example shape of x1 {x1.shape[1:]}; got {x2.shape}")
  check_finite("x2", x2)
  return x1, x2, False


def _common(activation, depth, sigma_w, sigma_b, order, min_depth=1) -> tuple[Activation, int, int]:
  act = get_activation(activation)
  depth = check_int("depth", depth, min_depth)
  check_positive("sigma_w", sigma_w)
  check_nonnegative("sigma_b", sigma_b)
  order = check_int("order", order, 1)
  return act, depth, order


def _check_bias(use_bias: bool, sigma_b) -> None:
  if not isinstance(use_bias, (bool, np.bool_)):
    raise ValueError(f"use_bias must be True or False; got {use_bias!r}")
  if not use_bias and is_concrete(sigma_b) and np.any(np.asarray(sigma_b) != 0):
    raise ValueError(f"sigma_b must be 0 when use_bias=False (a net without biases); got {sigma_b}")


def _widths(name: str, widths, count: int, standard: bool) -> Array:
  """Hidden widths as a float array of length ``count`` (``widths`` an int or a sequence of ``count`` ints).

  Only the standard parameterisation uses them; with ``"ntk"`` they must be ``None`` or valid and are ignored.
  """
  if widths is None:
    if standard and count > 0:
      raise ValueError(f"{name} is required with parameterization='standard' (the NTK grows with the widths): an "
                       f"int or a sequence of {count} ints >= 1")
    return jnp.ones((count,), gaussian.float_dtype())
  if isinstance(widths, (int, np.integer)) and not isinstance(widths, bool):
    values = [check_int(name, widths, 1)] * count
  else:
    try:
      values = [check_int(f"{name}[{i}]", w, 1) for i, w in enumerate(widths)]
    except TypeError:
      raise ValueError(f"{name} must be an int or a sequence of {count} ints >= 1; got {widths!r}") from None
    if len(values) != count:
      raise ValueError(f"{name} must be an int or a sequence of {count} ints >= 1 (one per hidden layer); got "
                       f"{len(values)} values")
  return jnp.asarray(values, gaussian.float_dtype())


# ---------------------------------------------------------------------------------------------------------------
# Layer maps on kernel states. A state holds the pair kernel (nngp, ntk) with shape (n1, n2, *S, *S) for positions S
# (S empty for dense nets), and the variances var1 (n1, *S), var2 (n2, *S) of each input at each position.
# ---------------------------------------------------------------------------------------------------------------


def _pair_variances(var1: Array, var2: Array, spatial: int) -> tuple[Array, Array]:
  """Broadcasts per-input variances (n, *S) to the pair kernel's shape (n1, n2, *S, *S)."""
  q1 = var1.reshape(var1.shape[:1] + (1,) + var1.shape[1:] + (1,) * spatial)
  q2 = var2.reshape((1,) + var2.shape[:1] + (1,) * spatial + var2.shape[1:])
  return q1, q2


def _self_pairs(shape: tuple[int, ...], spatial: int) -> np.ndarray:
  """Mask of the entries ``(i, i, p, p)`` of a kernel of a set of inputs with itself: one input at one position."""
  n = shape[0]
  mask = np.eye(n, dtype=bool).reshape((n, n) + (1,) * (2 * spatial))
  for axis in range(spatial):
    size = shape[2 + axis]
    eye_shape = [1] * (2 + 2 * spatial)
    eye_shape[2 + axis], eye_shape[2 + spatial + axis] = size, size
    mask = mask & np.eye(size, dtype=bool).reshape(eye_shape)
  return mask


def _moments(act: Activation, q1: Array, q2: Array, cov: Array, order: int, spatial: int = 0,
             same: bool = False) -> tuple[Array, Array]:
  """``E[φ(u)φ(v)]`` and ``E[φ'(u)φ'(v)]`` for ``Var u = q1``, ``Var v = q2``, ``Cov(u, v) = cov`` (broadcast).

  The correlation is :func:`theory.maps._correlation` (1 where a variance is 0). ``same=True`` (a set of inputs
  with itself) sets it to exactly 1 where a pre-activation meets itself: round-off would leave ``c = 1 − O(ε)``
  there, and the moments' ``arcsin``/``arccos`` turn that into ``O(√ε)`` errors (3e-4 per layer in float32, 1e-3 in
  the NTK of a depth-20 ReLU net). Without a closed form the moments are :func:`theory.dual.dual_moments` (Mehler
  sums, quadrature where their bound is too large; the self pairs take the 1-D moments), and with ``same`` and no
  positions only the upper triangle's pairs are integrated and mirrored.
  """
  shape = jnp.broadcast_shapes(q1.shape, q2.shape, cov.shape)
  c = maps._correlation(cov, q1, q2)
  self_pairs = _self_pairs(shape, spatial) if same else None
  if self_pairs is not None:
    c = jnp.where(self_pairs, jnp.ones_like(c), c)
  if act.closed_form is not None:
    return act.cross_moment(q1, q2, c, order), act.derivative_cross_moment(q1, q2, c, order)
  mirror = same and spatial == 0
  lower = np.tril(np.ones(shape[:2], bool), -1) if mirror else None
  moments = dual._dual_moments(act, q1, q2, c, order, dual.default_degree(), jnp.asarray(dual.default_tolerance(),
                               c.dtype), exact=self_pairs, skip=lower, shared=same)
  if not mirror:
    return moments.value, moments.slope
  upper = lambda v: jnp.where(lower, v.T, v)
  return upper(moments.value), upper(moments.slope)


def _nonlinearity(act, state, spatial, order, same=False):
  """``(Σ, Θ, q) ↦ (E[φφ], E[φ'φ'] Θ, E[φ²])``: the kernels of ``φ(h)`` and of its tangent."""
  nngp, ntk, var1, var2 = state
  q1, q2 = _pair_variances(var1, var2, spatial)
  value, slope = _moments(act, q1, q2, nngp, order, spatial, same)
  return value, slope * ntk, act.second_moment(var1, order), act.second_moment(var2, order)


def _affine(hat, window, diag_window, fan_in, sigma_w, sigma_b, standard, bias):
  """One dense or convolution layer on the kernels of its input ``φ(h)`` (``hat``).

  ``window`` averages a pair kernel over the layer's receptive field (identity for a dense layer) and
  ``diag_window`` does the same to per-input variances. NTK parameterisation: ``Θ' = Σ' + σw² A(Θ̂)``; standard:
  ``Θ' = fan_in·A(Σ̂) + σw² A(Θ̂) + 1`` (the ``1`` only with biases).
  """
  value, tangent, var1, var2 = hat
  mean_value = window(value)
  nngp = sigma_b**2 + sigma_w**2 * mean_value
  if standard:
    ntk = fan_in * mean_value + sigma_w**2 * window(tangent) + (1.0 if bias else 0.0)
  else:
    ntk = nngp + sigma_w**2 * window(tangent)
  return (nngp, ntk, sigma_b**2 + sigma_w**2 * diag_window(var1), sigma_b**2 + sigma_w**2 * diag_window(var2))


def _input_hat(x1: Array, x2: Array) -> tuple[Array, Array, Array, Array]:
  """Kernels of the raw input, ``x_p·x'_{p'}/C`` for channels-last ``(n, *S, C)`` (``xᵀx'/d`` for ``(n, d)``).

  This is :func:`theory.maps.input_kernel` in matrix form (before the affine map), with no tangent.
  """
  spatial = x1.ndim - 2
  channels = x1.shape[-1]
  letters = "abcdefgh"[:spatial]
  other = "ijklmnop"[:spatial]
  gram = jnp.einsum(f"x{letters}z,y{other}z->xy{letters}{other}", x1, x2, precision=jax.lax.Precision.HIGHEST)
  var1 = jnp.sum(x1 * x1, axis=-1) / channels
  var2 = jnp.sum(x2 * x2, axis=-1) / channels
  return gram / channels, jnp.zeros_like(gram), var1, var2


def _identity(a):
  return a


# ---------------------------------------------------------------------------------------------------------------
# MLP.
# ---------------------------------------------------------------------------------------------------------------


def mlp_kernels(
    x1,
    x2=None,
    *,
    activation: ActivationLike,
    depth: int,
    sigma_w,
    sigma_b,
    parameterization: str = "ntk",
    widths: int | Sequence[int] | None = None,
    use_bias: bool = True,
    order: int = ORDER,
) -> Kernels:
  """NNGP and NTK of the output of a ``depth``-layer MLP in the infinite-width limit (THEORY.md §8).

  The network is mfprune's :class:`~mfprune.models.MLP`: ``depth`` dense layers (``depth − 1`` hidden layers and a
  linear read-out), ``y^1 = W^1 x + b^1``, ``y^l = W^l φ(y^{l-1}) + b^l`` ([R] eq. 1), as counted by
  :func:`theory.maps.propagate`. Equal to neural-tangents' ``stax.serial(Dense, φ, Dense, ..., φ, Dense)``.

  Args:
    x1: inputs, shape ``(n1, ...)``; every example is flattened to ``d`` features.
    x2: second inputs with the example shape of ``x1``; ``None`` for ``x1`` against itself.
    activation: registry name, callable or :class:`~theory.activations.Activation`.
    depth: number of dense layers ``L >= 1``.
    sigma_w: weight standard deviation (times ``√fan_in``), ``> 0``.
    sigma_b: bias standard deviation, ``>= 0``.
    parameterization: ``"ntk"`` (neural-tangents' default) or ``"standard"`` (``W ~ N(0, σw²/fan_in)``,
      mfprune's models; see the module docstring).
    widths: hidden widths ``n_1..n_{L−1}`` (an int for all, or a sequence of ``depth − 1`` ints); required with
      ``"standard"``, ignored with ``"ntk"``.
    use_bias: whether the layers have trainable biases (``False`` requires ``sigma_b = 0``; it only changes the
      standard-parameterised NTK, whose bias terms ``+1`` it drops).
    order: quadrature order for activations without closed-form moments.

  Returns:
    :class:`Kernels` with ``nngp`` and ``ntk`` of shape ``(n1, n2)``.

  Raises:
    ValueError: bad shapes, ``depth < 1``, ``σw <= 0``, ``σb < 0``, an unknown parameterisation, or missing or
      invalid widths with ``"standard"``.
  """
  act, depth, order = _common(activation, depth, sigma_w, sigma_b, order)
  standard = _check_parameterization(parameterization)
  _check_bias(use_bias, sigma_b)
  x1, x2, same = _inputs(x1, x2, min_ndim=1)
  x1, x2 = x1.reshape(x1.shape[0], -1), x2.reshape(x2.shape[0], -1)
  fan_ins = _widths("widths", widths, depth - 1, standard)
  return _mlp(act, x1, x2, _float(sigma_w), _float(sigma_b), fan_ins, standard, bool(use_bias), order, same)


@functools.partial(jax.jit, static_argnums=(6, 7, 8, 9))
def _mlp(act, x1, x2, sigma_w, sigma_b, fan_ins, standard, bias, order, same) -> Kernels:
  dense = functools.partial(_affine, window=_identity, diag_window=_identity, sigma_w=sigma_w, sigma_b=sigma_b,
                            standard=standard, bias=bias)
  state = dense(_input_hat(x1, x2), fan_in=x1.shape[1])

  def layer(state, fan_in):
    return dense(_nonlinearity(act, state, 0, order, same), fan_in=fan_in), None

  state, _ = jax.lax.scan(layer, state, fan_ins)
  return Kernels(nngp=state[0], ntk=state[1])


# ---------------------------------------------------------------------------------------------------------------
# Residual MLP.
# ---------------------------------------------------------------------------------------------------------------


def resnet_kernels(
    x1,
    x2=None,
    *,
    activation: ActivationLike,
    depth: int,
    sigma_w,
    sigma_b,
    stable: bool = False,
    parameterization: str = "ntk",
    widths: int | Sequence[int] | None = None,
    use_bias: bool = True,
    order: int = ORDER,
) -> Kernels:
  """NNGP and NTK of a fully connected residual net ([R] eq. 8-9) in the infinite-width limit.

  Layer 1 is dense, ``y^1 = W^1 x + b^1``, then ``depth − 1`` residual blocks ``y ← y + s·(W φ(y) + b)`` with
  ``s = 1`` (ResNet, [R] eq. 8) or ``s = 1/√(depth − 1)`` (Stable ResNet, [R] eq. 9, bias included in the scaled
  branch), the convention of :func:`theory.maps.propagate` with ``architecture="resnet"``/``"stable_resnet"``, whose
  ``q^l`` is the NNGP diagonal here. There is no read-out: the kernels are those of ``y^depth``. Per block::

    Σ ← Σ + s²(σb² + σw² E[φφ]),        Θ ← Θ + s²(σb² + σw² E[φφ] + σw² E[φ'φ'] Θ)          (ntk)
                                         Θ ← Θ + s²(n E[φφ] + 1 + σw² E[φ'φ'] Θ)               (standard)

  neural-tangents equivalent (ntk): ``Dense(σw, σb)`` then per block ``FanOut(2), parallel(Identity(),
  serial(φ, Dense(σw·s, σb·s))), FanInSum()``. In the standard parameterisation ``s`` multiplies the branch's
  output, so its gradient contributions too (not NT's ``Dense(σw·s, σb·s, parameterization='standard')``; see the
  module docstring).

  Args:
    x1: inputs ``(n1, ...)``, flattened per example.
    x2: second inputs or ``None``.
    activation: registry name, callable or Activation.
    depth: ``L >= 1``: one dense layer and ``L − 1`` residual blocks.
    sigma_w: weight standard deviation, ``> 0``.
    sigma_b: bias standard deviation, ``>= 0``.
    stable: scale the blocks by ``1/√(L − 1)`` (Stable ResNet).
    parameterization: ``"ntk"`` or ``"standard"`` (see the module docstring).
    widths: the width ``n`` of the residual stream (an int, or a sequence of ``depth − 1`` equal ints, one per
      block); required with ``"standard"`` when ``depth > 1``.
    use_bias: trainable biases (``False`` requires ``sigma_b = 0``).
    order: quadrature order.

  Returns:
    :class:`Kernels` of shape ``(n1, n2)``.

  Raises:
    ValueError: as :func:`mlp_kernels`, or unequal widths.
  """
  act, depth, order = _common(activation, depth, sigma_w, sigma_b, order)
  standard = _check_parameterization(parameterization)
  _check_bias(use_bias, sigma_b)
  if not isinstance(stable, (bool, np.bool_)):
    raise ValueError(f"stable must be True or False; got {stable!r}")
  x1, x2, same = _inputs(x1, x2, min_ndim=1)
  x1, x2 = x1.reshape(x1.shape[0], -1), x2.reshape(x2.shape[0], -1)
  fan_ins = _widths("widths", widths, depth - 1, standard)
  if widths is not None and depth > 1 and bool(jnp.any(fan_ins != fan_ins[0])):
    raise ValueError(f"widths must all be equal in a residual net (the stream keeps its width); got {widths!r}")
  scale = maps.residual_scale("stable_resnet" if stable else "resnet", depth, None)
  return _resnet(act, x1, x2, _float(sigma_w), _float(sigma_b), fan_ins, _float(scale), standard, bool(use_bias),
                 order, same)


@functools.partial(jax.jit, static_argnums=(7, 8, 9, 10))
def _resnet(act, x1, x2, sigma_w, sigma_b, fan_ins, scale, standard, bias, order, same) -> Kernels:
  dense = functools.partial(_affine, window=_identity, diag_window=_identity, sigma_w=sigma_w, sigma_b=sigma_b,
                            standard=standard, bias=bias)
  state = dense(_input_hat(x1, x2), fan_in=x1.shape[1])

  def block(state, fan_in):
    branch = dense(_nonlinearity(act, state, 0, order, same), fan_in=fan_in)
    return tuple(a + scale * b for a, b in zip(state, branch)), None

  state, _ = jax.lax.scan(block, state, fan_ins)
  return Kernels(nngp=state[0], ntk=state[1])


# ---------------------------------------------------------------------------------------------------------------
# Vanilla CNN with circular padding.
# ---------------------------------------------------------------------------------------------------------------


def _offsets(kernel_size: int, spatial: int) -> list[tuple[int, ...]]:
  half = kernel_size // 2
  return list(itertools.product(range(-half, half + 1), repeat=spatial))


def _conv_window(kernel_size: int, spatial: int):
  """``K'_{p,p'} = mean_j K_{p+j, p'+j}`` over the window offsets ``j`` (circular), for pair kernels and variances."""
  offsets = _offsets(kernel_size, spatial)

  def pair(k):
    axes = tuple(range(2, 2 + 2 * spatial))
    return sum(jnp.roll(k, tuple(-j for j in offset) * 2, axis=axes) for offset in offsets) / len(offsets)

  def diag(v):
    axes = tuple(range(1, 1 + spatial))
    return sum(jnp.roll(v, tuple(-j for j in offset), axis=axes) for offset in offsets) / len(offsets)

  return pair, diag


def _readout_window(spatial: int):
  """Flatten then dense: the mean over positions of the diagonal ``p = p'`` (and of the variances)."""

  def pair(k):
    n1, n2 = k.shape[:2]
    size = math.prod(k.shape[2:2 + spatial])
    return jnp.mean(jnp.diagonal(k.reshape(n1, n2, size, size), axis1=2, axis2=3), axis=-1)

  def diag(v):
    return jnp.mean(v.reshape(v.shape[0], -1), axis=-1)

  return pair, diag


def cnn_kernels(
    x1,
    x2=None,
    *,
    activation: ActivationLike,
    depth: int,
    sigma_w,
    sigma_b,
    kernel_size: int = 3,
    parameterization: str = "ntk",
    channels: int | Sequence[int] | None = None,
    use_bias: bool = True,
    order: int = ORDER,
) -> Kernels:
  """NNGP and NTK of the vanilla CNN of [R] (circular padding, no pooling) in the infinite-channel limit.

  The network is mfprune's :class:`~mfprune.models.VanillaCNN`: ``depth − 1`` convolutions with a
  ``kernel_size``-wide window (``2k+1``) and circular padding, ``y^l = W^l * φ(y^{l−1}) + b^l``, then ``φ``, flatten
  and a dense read-out. Equal to neural-tangents' ``stax.serial(Conv(padding='CIRCULAR'), φ, ..., Conv, φ,
  Flatten(), Dense)`` (Arora et al. 2019; Novak et al. 2019). The kernel is tracked position by position: a
  convolution averages ``K_{p+j, p'+j}`` over the window offsets ``j``, the read-out averages the diagonal ``p = p'``.
  Cost and memory grow like ``n1·n2·P²`` for ``P`` positions (``(H·W)²`` for images): keep images small.

  Args:
    x1: inputs, ``(n1, T, C)`` (1-D) or ``(n1, H, W, C)`` (2-D), channels last. For mfprune's ``dims=1`` on images,
      pass ``x.reshape(n, H·W, C)``.
    x2: second inputs with the example shape of ``x1``, or ``None``.
    activation: registry name, callable or Activation.
    depth: number of weight layers ``L >= 2`` (``L − 1`` convolutions + read-out).
    sigma_w: weight standard deviation (times ``√fan_in``, ``fan_in = C·(2k+1)^dims``), ``> 0``.
    sigma_b: bias standard deviation, ``>= 0``.
    kernel_size: odd window width ``2k+1``.
    parameterization: ``"ntk"`` or ``"standard"`` (see the module docstring: fan-ins are ``C_in·(2k+1)^dims`` for
      the convolutions and ``channels·P`` for the read-out).
    channels: channels of the convolutions (an int, or ``depth − 1`` ints); required with ``"standard"``.
    use_bias: trainable biases (``False`` requires ``sigma_b = 0``).
    order: quadrature order.

  Returns:
    :class:`Kernels` of shape ``(n1, n2)``.

  Raises:
    ValueError: bad shapes, ``depth < 2``, an even or non-positive ``kernel_size``, and the checks of
      :func:`mlp_kernels`.
  """
  act, depth, order = _common(activation, depth, sigma_w, sigma_b, order, min_depth=2)
  standard = _check_parameterization(parameterization)
  _check_bias(use_bias, sigma_b)
  kernel_size = check_int("kernel_size", kernel_size, 1)
  if kernel_size % 2 == 0:
    raise ValueError(f"kernel_size must be odd (2k+1); got {kernel_size}")
  x1, x2, same = _inputs(x1, x2, min_ndim=3)
  if x1.ndim not in (3, 4):
    raise ValueError(f"x1 must be (n, T, C) or (n, H, W, C); got shape {x1.shape}")
  counts = _widths("channels", channels, depth - 1, standard)
  in_channels = jnp.concatenate([jnp.asarray([x1.shape[-1]], counts.dtype), counts])
  spatial = x1.ndim - 2
  window = kernel_size**spatial
  conv_fan_ins = in_channels[:-1] * window
  readout_fan_in = in_channels[-1] * math.prod(x1.shape[1:-1])
  return _cnn(act, x1, x2, _float(sigma_w), _float(sigma_b), conv_fan_ins, readout_fan_in, kernel_size, standard,
              bool(use_bias), order, same)


@functools.partial(jax.jit, static_argnums=(7, 8, 9, 10, 11))
def _cnn(act, x1, x2, sigma_w, sigma_b, conv_fan_ins, readout_fan_in, kernel_size, standard, bias, order, same):
  spatial = x1.ndim - 2
  pair, diag = _conv_window(kernel_size, spatial)
  conv = functools.partial(_affine, window=pair, diag_window=diag, sigma_w=sigma_w, sigma_b=sigma_b,
                           standard=standard, bias=bias)
  state = conv(_input_hat(x1, x2), fan_in=conv_fan_ins[0])

  def layer(state, fan_in):
    return conv(_nonlinearity(act, state, spatial, order, same), fan_in=fan_in), None

  state, _ = jax.lax.scan(layer, state, conv_fan_ins[1:])
  read_pair, read_diag = _readout_window(spatial)
  out = _affine(_nonlinearity(act, state, spatial, order, same), read_pair, read_diag, readout_fan_in, sigma_w,
                sigma_b, standard, bias)
  return Kernels(nngp=out[0], ntk=out[1])


# ---------------------------------------------------------------------------------------------------------------
# Linearised dynamics under MSE.
# ---------------------------------------------------------------------------------------------------------------


def _as_matrix(name: str, kernel, rows: int, cols: int, k: int) -> tuple[Array, bool]:
  """``kernel`` as a 2-D matrix and whether it is the full ``(rows·k, cols·k)`` one (else ``(rows, cols)``, shared
  by every output unit). Also accepts the full kernel in neural-tangents' layout ``(rows, cols, k, k)`` (what
  ``empirical_ntk_fn(..., trace_axes=())`` returns)."""
  kernel = _float(kernel)
  if kernel.shape == (rows, cols):
    return kernel, False
  if kernel.shape == (rows * k, cols * k):
    return kernel, True
  if kernel.shape == (rows, cols, k, k):
    return jnp.transpose(kernel, (0, 2, 1, 3)).reshape(rows * k, cols * k), True
  raise ValueError(f"{name} must have shape {(rows, cols)} (one kernel for every output unit) or "
                   f"{(rows * k, cols * k)} / {(rows, cols, k, k)} (full); got {kernel.shape}")


def linearised_mse(
    ntk_train,
    y_train,
    f0_train,
    *,
    learning_rate,
    times,
    ntk_test_train=None,
    f0_test=None,
    y_test=None,
    discrete: bool = False,
) -> LinearisedPrediction:
  """Outputs of the linearised network trained on MSE by gradient flow or gradient descent ([P] eq. 7-8).

  The loss is ``L = ‖f(X) − Y‖² / (2N)`` with ``N = y_train.size`` (number of train examples times outputs), the
  normalisation of neural-tangents' ``predict.gradient_descent_mse``. With ``τ = η t/N`` and the eigendecomposition
  ``Θ = V diag(λ) Vᵀ`` (eigenvalues clipped at 0, as NT does)::

    continuous (gradient flow, t >= 0 real):  f_t − Y = V e^{−λτ} Vᵀ (f_0 − Y)
                                              f_t(x) = f_0(x) + Θ(x, X) V diag((e^{−λτ} − 1)/λ) Vᵀ (f_0 − Y)
    discrete (t full-batch GD steps of size η): e^{−λτ} becomes (1 − ηλ/N)^t, which is exact for the linearised
                                              net (``f_{t+1} − Y = (I − ηΘ/N)(f_t − Y)``)

  At ``λ = 0`` the ratios take their limits ``−τ`` and ``−ηt/N``. For small ``η`` the discrete steps approach the
  continuous solution at the same ``t``; with ``ηλ_max/N > 2`` they diverge, as real gradient descent would.

  Args:
    ntk_train: ``Θ(X, X)``: ``(n, n)`` shared by every output unit (``Θ ⊗ I``), or the full kernel ``(n·K, n·K)``
      (rows ``i·K + k``) or ``(n, n, K, K)`` (neural-tangents' layout).
    y_train: targets, ``(n,)`` or ``(n, K)``.
    f0_train: outputs at initialization on ``X``, shaped like ``y_train``.
    learning_rate: ``η > 0``.
    times: times (continuous) or non-negative integer step counts (discrete), any shape (flattened to ``(T,)``).
    ntk_test_train: ``Θ(X_test, X)``: ``(m, n)`` or full ``(m·K, n·K)`` / ``(m, n, K, K)``, matching
      ``ntk_train``; needed for test outputs.
    f0_test: outputs at initialization on ``X_test``, ``(m,)`` or ``(m, K)``.
    y_test: test targets shaped like ``f0_test``, for the test loss.
    discrete: gradient-descent steps instead of gradient flow.

  Returns:
    :class:`LinearisedPrediction`.

  Raises:
    ValueError: mismatched shapes, ``η <= 0``, negative or non-finite times, non-integer steps with
      ``discrete=True``, or test arguments without ``ntk_test_train``/``f0_test``.
  """
  y = _float(y_train)
  if y.ndim not in (1, 2) or y.shape[0] < 1:
    raise ValueError(f"y_train must have shape (n,) or (n, K); got {jnp.shape(y_train)}")
  f0 = _float(f0_train)
  if f0.shape != y.shape:
    raise ValueError(f"f0_train must have the shape of y_train {y.shape}; got {f0.shape}")
  check_finite("y_train", y)
  check_finite("f0_train", f0)
  check_positive("learning_rate", learning_rate)
  if not isinstance(discrete, (bool, np.bool_)):
    raise ValueError(f"discrete must be True or False; got {discrete!r}")
  t = _float(times).reshape(-1)
  check_nonnegative("times", t)
  if discrete and is_concrete(t) and not bool(jnp.all(t == jnp.round(t))):
    raise ValueError(f"times must be integer step counts with discrete=True; got {np.asarray(times)}")
  n = y.shape[0]
  k = y.shape[1] if y.ndim == 2 else 1
  kernel, full = _as_matrix("ntk_train", ntk_train, n, n, k)
  check_finite("ntk_train", kernel)
  cross = f0t = yt = None
  if ntk_test_train is not None or f0_test is not None or y_test is not None:
    if ntk_test_train is None or f0_test is None:
      raise ValueError("test outputs need both ntk_test_train and f0_test")
    f0t = _float(f0_test)
    if f0t.ndim != y.ndim or f0t.shape[1:] != y.shape[1:] or f0t.shape[0] < 1:
      raise ValueError(f"f0_test must have shape (m,) + {y.shape[1:]}; got {f0t.shape}")
    check_finite("f0_test", f0t)
    cross, cross_full = _as_matrix("ntk_test_train", ntk_test_train, f0t.shape[0], n, k)
    if cross_full != full:
      raise ValueError("ntk_test_train must be full (n·K columns) exactly when ntk_train is")
    check_finite("ntk_test_train", cross)
    if y_test is not None:
      yt = _float(y_test)
      if yt.shape != f0t.shape:
        raise ValueError(f"y_test must have the shape of f0_test {f0t.shape}; got {yt.shape}")
      check_finite("y_test", yt)
  return _linearised(kernel, y, f0, _float(learning_rate), t, cross, f0t, yt, full, bool(discrete))


@functools.partial(jax.jit, static_argnums=(8, 9))
def _linearised(kernel, y, f0, learning_rate, t, cross, f0t, yt, full, discrete) -> LinearisedPrediction:
  size = y.size
  residual0 = (f0 - y).reshape(-1, 1) if full else (f0 - y).reshape(y.shape[0], -1)
  evals, evecs = jnp.linalg.eigh(kernel)
  evals = jnp.maximum(evals, 0.0)
  rate = learning_rate / size
  tt = t[:, None]
  if discrete:
    x = rate * evals[None, :]
    # (1 − x)^t, through log1p where the base is positive (accurate for small x), as a power otherwise.
    positive = x < 1.0
    decay = jnp.where(positive, jnp.exp(tt * jnp.log1p(-jnp.where(positive, x, 0.0))), jnp.power(1.0 - x, tt))
    decay_m1 = jnp.where(positive, jnp.expm1(tt * jnp.log1p(-jnp.where(positive, x, 0.0))), decay - 1.0)
    limit = -rate * tt
  else:
    decay_m1 = jnp.expm1(-rate * evals[None, :] * tt)
    decay = decay_m1 + 1.0
    limit = -rate * tt
  nonzero = evals[None, :] > 0
  ratio = jnp.where(nonzero, decay_m1 / jnp.where(nonzero, evals[None, :], 1.0), limit)  # (T, n)
  hi = jax.lax.Precision.HIGHEST
  coef = jnp.matmul(evecs.T, residual0, precision=hi)  # (n', K')
  train_res = jnp.einsum("ij,tj,jk->tik", evecs, decay, coef, precision=hi)
  train = y[None] + train_res.reshape((-1,) + y.shape)
  train_loss = 0.5 * jnp.mean(train_res.reshape(t.shape[0], -1) ** 2, axis=-1)
  test = test_loss = None
  if cross is not None:
    delta = jnp.einsum("mi,ij,tj,jk->tmk", cross, evecs, ratio, coef, precision=hi)
    test = f0t[None] + delta.reshape((-1,) + f0t.shape)
    if yt is not None:
      test_loss = 0.5 * jnp.mean((test - yt[None]).reshape(t.shape[0], -1) ** 2, axis=-1)
  return LinearisedPrediction(times=t, train_outputs=train, train_loss=train_loss, test_outputs=test,
                              test_loss=test_loss)
