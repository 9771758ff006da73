"""Backward second moments, the per-layer SBP score profile m_l, and well-/ill-conditioning (Definition 1 of [R]).

Under gradient independence (Approximation 2 of [R]) the gradient variance ``q̃^l = E[(∂L/∂y^l_i)²]`` obeys
([R] App. B.1.2, D; THEORY.md §3)::

    FFNN / CNN      q̃^l = q̃^{l+1} (N_{l+1}/N_l) χ(q^l),        χ(q) = σw² E[φ'(√q Z)²]
    ResNet          q̃^l = q̃^{l+1} (1 + σw² E[φ'(√q^l Z)²])
    Stable ResNet   q̃^l = q̃^{l+1} (1 + σw² E[φ'(√q^l Z)²] / L)

The SBP (SNIP) score of a weight is ``|W^l_ij ∂L/∂W^l_ij|`` with ``∂L/∂W^l_ij = (∂L/∂y^l_i) φ(y^{l-1}_j)`` (times
``1/√L`` in a Stable ResNet block), so its second moment is ([R] App. C, proof of Theorem 1)::

    m_l = E[|W^l ∂L/∂W^l|²] = s_l · (σw²/v_l) · q̃^l · E[φ(y^{l-1})²],   s_l = 1/L for Stable ResNet blocks, else 1

with ``E[x_j²] = ‖x‖²/d`` in place of ``E[φ(y^0)²]`` for the first layer. This is the single-input form (the
degeneracy Approximation 3 of [R], exact for a batch of one); the loss only fixes ``q̃^L``, so profiles are reported
relative to the last layer, ``m_l / m_L``, which is what Definition 1 is about.

A pruned FFNN/CNN whose layer ``l`` keeps the fraction ``α_l`` of its squared weights maps variances with
``σw² → α_l σw²`` ([R] App. C), so its layer ``l`` multiplies the gradient's second moment by
``χ_l = α_l σw² E[φ'(√q^{l-1} Z)²]`` along the pruned net's own ``q^l``: :func:`pruned_chi` gives these, their
geometric mean (the pruned net's effective χ: below 1 it has drifted into the ordered phase, [R] §2.3) and the
spread ``Σ_l log χ_l`` of the gradient over the depth.

Definition 1 ([R] §2.2): the network is well-conditioned iff ``A <= m_l/m_L <= B`` for all ``L`` and ``l``. Theorem 1:
FFNN/CNN off the EOC are ill-conditioned; Theorem 2: ReLU ResNets are well-conditioned with ``m_l = Θ((1+σw²/2)^L)``;
Proposition 2: Stable ResNets are well-conditioned with ``m_l = Θ(1/L)``. :func:`conditioning` decides the
asymptotic statement numerically (see there).
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from theory import maps
from theory._pytree import pytree_dataclass
from theory._validation import check_int, check_nonnegative, check_positive, is_concrete
from theory.activations import ActivationLike, get_activation

Array = jax.Array

CONDITIONING_TOLERANCE = 0.05
"""Default bound on the growth of ``log(max m_l/m_L / min m_l/m_L)`` from depth 2L to 4L (see :func:`conditioning`)."""


@pytree_dataclass
class GradientMoments:
  """Per-layer moments at initialization; index ``l − 1`` holds layer ``l``.

  Attributes:
    q: forward variance ``q^l``.
    q_tilde: backward gradient variance ``q̃^l``, normalised to ``q̃^L = 1``.
    m: SBP score second moment relative to the last layer, ``m_l / m_L``.
  """

  q: Array
  q_tilde: Array
  m: Array


@pytree_dataclass
class Conditioning:
  """Verdict of Definition 1 of [R] and the numbers behind it.

  Attributes:
    well_conditioned: whether ``m_l/m_L`` stays within bounds as depth grows.
    spread: ``max_l m_l/m_L ÷ min_l m_l/m_L`` at depths ``L``, ``2L`` and ``4L``.
    growth: ``log spread(4L) − log spread(2L)``; about ``2L·|log χ|`` for an FFNN off the EOC, → 0 when bounded.
  """

  well_conditioned: Array
  spread: Array
  growth: Array


def _fan_ins(depth: int, widths: Sequence[float] | None, receptive_field: int) -> tuple[np.ndarray, np.ndarray]:
  if widths is None:
    widths_array = np.ones(depth + 1)
  else:
    widths_array = np.asarray(widths, np.float64)
    if widths_array.shape != (depth + 1,):
      raise ValueError(f"widths must list N_0 (input) to N_L, {depth + 1} numbers; got shape {widths_array.shape}")
    check_positive("widths", widths_array)
  return widths_array, widths_array[:-1] * receptive_field


def gradient_moments(
    activation: ActivationLike,
    sigma_b,
    sigma_w,
    depth: int,
    *,
    q1=None,
    architecture: maps.Architecture = "ffnn",
    widths: Sequence[float] | None = None,
    receptive_field: int = 1,
    n_blocks: int | None = None,
    order: int = maps.ORDER,
) -> GradientMoments:
  """Forward variances, backward gradient variances and the relative SBP profile ``m_l/m_L`` ([R] App. B-D).

  Args:
    activation: name, callable or :class:`~theory.activations.Activation`.
    sigma_b: bias standard deviation, ``>= 0``.
    sigma_w: weight standard deviation, ``> 0``.
    depth: number of layers ``L >= 1``.
    q1: first-layer variance ``σb² + σw² ‖x‖²/d``; defaults to a unit-variance input, ``σb² + σw²``.
    architecture: ``"ffnn"``, ``"cnn"``, ``"resnet"`` or ``"stable_resnet"`` (see :func:`theory.maps.propagate`).
    widths: ``N_0`` (input dimension or channels) to ``N_L``; defaults to equal widths. Residual architectures
      need equal widths after the first layer.
    receptive_field: ``2k + 1`` for a 1-D CNN (``v_l = n_{l-1}(2k+1)``, [R] eq. 14), 1 for an FFNN.
    n_blocks: Stable ResNet's ``L``; defaults to ``depth − 1``.
    order: quadrature order.

  Returns:
    :class:`GradientMoments` with arrays of shape ``(depth,)``.
  """
  check_nonnegative("sigma_b", sigma_b)
  check_positive("sigma_w", sigma_w)
  depth = check_int("depth", depth, 1)
  maps.check_architecture(architecture)
  receptive_field = check_int("receptive_field", receptive_field, 1)
  widths_array, fan_in = _fan_ins(depth, widths, receptive_field)
  residual = architecture in ("resnet", "stable_resnet")
  if residual and not np.all(widths_array[1:] == widths_array[1]):
    raise ValueError(f"a {architecture} needs equal widths N_1..N_L; got {widths_array[1:].tolist()}")
  if q1 is None:
    q1 = jnp.asarray(sigma_b, float) ** 2 + jnp.asarray(sigma_w, float) ** 2
  forward = maps.propagate(activation, sigma_b, sigma_w, depth, q1, c1=None, architecture=architecture,
                           n_blocks=n_blocks, order=order)
  scale = maps.residual_scale(architecture, depth, n_blocks)
  if is_concrete(forward.q) and not bool(jnp.all(jnp.isfinite(forward.q))):
    raise ValueError(f"the forward variance overflows {forward.q.dtype} before depth={depth} (it grows "
                     "exponentially here); use a smaller depth or enable float64 with jax_enable_x64")
  act = get_activation(activation)
  dtype = forward.q.dtype
  return _moments(act, jnp.asarray(sigma_b, dtype), jnp.asarray(sigma_w, dtype), forward.q,
                  jnp.asarray(widths_array, dtype), jnp.asarray(fan_in, dtype), residual, scale, order)


@functools.partial(jax.jit, static_argnums=(6, 7, 8))
def _moments(act, sigma_b, sigma_w, q, widths, fan_in, residual, scale, order):
  chi = sigma_w**2 * act.derivative_second_moment(q, order)  # χ(q^l), l = 1..L
  if residual:
    factors = 1.0 + scale * chi[:-1]  # q̃^l / q̃^{l+1} for l = 1..L-1
  else:
    factors = (widths[2:] / widths[1:-1]) * chi[:-1]
  # q̃^l = Π_{k=l}^{L-1} factors_k: a reversed cumulative product, in logs to stay finite over many layers.
  log_q_tilde = jnp.concatenate([jnp.cumsum(jnp.log(factors)[::-1])[::-1], jnp.zeros((1,), q.dtype)])
  # σw² E[φ(y^{l-1})²]: V(q^{l-1}) − σb² for l >= 2, and σw²‖x‖²/d = q^1 − σb² for the first layer.
  incoming = jnp.concatenate([(q[:1] - sigma_b**2), sigma_w**2 * act.second_moment(q[:-1], order)])
  block = jnp.concatenate([jnp.ones((1,), q.dtype), jnp.full(q.shape[0] - 1, scale if residual else 1.0, q.dtype)])
  log_m = jnp.log(block * incoming / fan_in) + log_q_tilde
  return GradientMoments(q, jnp.exp(log_q_tilde), jnp.exp(log_m - log_m[-1]))


def conditioning(
    activation: ActivationLike,
    sigma_b,
    sigma_w,
    depth: int,
    *,
    architecture: maps.Architecture = "ffnn",
    tolerance: float = CONDITIONING_TOLERANCE,
    order: int = maps.ORDER,
) -> Conditioning:
  """Definition 1 of [R], decided numerically at depths L, 2L and 4L.

  Definition 1 asks whether ``m_l/m_L`` is bounded uniformly in the depth. We compute the spread
  ``S(L) = max_l (m_l/m_L) / min_l (m_l/m_L)`` of :func:`gradient_moments` at ``L``, ``2L`` and ``4L`` (equal widths,
  unit-variance input, Stable ResNet with ``L`` = depth − 1 blocks; for residual architectures over the blocks
  ``l >= 2`` only, since the stem ``y^1 = F(W^1, x)`` is no block and a Stable ResNet does not scale it) and call the network well-conditioned iff
  ``log S(4L) − log S(2L) <= tolerance``. Off the EOC an FFNN's spread grows like ``χ^{±L}`` (Theorem 1), so the
  difference is about ``2L·|log χ|``; on the EOC, for ReLU ResNets (Theorem 2) and for Stable ResNets
  (Proposition 2) it tends to 0. Near the EOC (``|log χ| ≲ tolerance/(2L)``) the verdict depends on ``L``: a network
  that close to the EOC behaves as well-conditioned at that depth.

  Args:
    activation: name, callable or Activation.
    sigma_b: bias standard deviation, ``>= 0``.
    sigma_w: weight standard deviation, ``> 0``.
    depth: the base depth ``L >= 2``.
    architecture: ``"ffnn"``, ``"cnn"``, ``"resnet"`` or ``"stable_resnet"``.
    tolerance: allowed growth of ``log S`` from ``2L`` to ``4L``.
    order: quadrature order.

  Returns:
    A :class:`Conditioning`.
  """
  depth = check_int("depth", depth, 2)
  check_positive("tolerance", tolerance)
  # Residual architectures: Theorem 2 and Proposition 2 concern the blocks l >= 2. The stem y^1 = F(W^1, x) is no
  # block; in a Stable ResNet its score is not scaled by 1/L, so m_1/m_L = Θ(L) by construction.
  first = 1 if architecture in ("resnet", "stable_resnet") else 0
  spreads = []
  for d in (depth, 2 * depth, 4 * depth):
    m = gradient_moments(activation, sigma_b, sigma_w, d, architecture=architecture, order=order).m[first:]
    spreads.append(jnp.max(m) / jnp.min(m))
  spread = jnp.stack(spreads)
  growth = jnp.log(spread[2]) - jnp.log(spread[1])
  return Conditioning(growth <= tolerance, spread, growth)


@pytree_dataclass
class PrunedChi:
  """The per-layer χ of a pruned FFNN/CNN and the gradient spread it implies ([R] §2.3, App. C; Approximation 2).

  Attributes:
    q: ``(L,)`` forward variances ``q^l`` of the pruned network (:func:`theory.maps.propagate` with ``alphas``).
    chi: ``(L − 1,)`` ``χ_l = α_l σw² E[φ'(√q^{l-1} Z)²]`` for layers ``l = 2..L``: the factor by which
      backpropagation through layer ``l`` multiplies the gradient's second moment (0 for an emptied layer).
    chi_effective: the geometric mean of ``chi``, the pruned net's effective χ (1 on the EOC; 0 when a layer is
      emptied).
    log_gradient_spread: ``Σ_l log χ_l`` (natural log), the predicted log-ratio of the gradient's second moment at
      the input end to that at the output end (``−inf`` when a layer is emptied).
  """

  q: Array
  chi: Array
  chi_effective: Array
  log_gradient_spread: Array


def pruned_chi(activation: ActivationLike, sigma_b, sigma_w, *, alphas, q1=None,
               order: int = maps.ORDER) -> PrunedChi:
  """χ of every layer of a pruned FFNN/CNN, its geometric mean and the gradient spread ([R] §2.3, App. C).

  Pruning layer ``l`` down to the fraction ``α_l`` of its squared weights multiplies its effective ``σw²`` by
  ``α_l`` (proof of [R] Proposition 1), so along the pruned net's variances ``q^l`` (:func:`theory.maps.propagate`
  with ``alphas``) layer ``l >= 2`` multiplies the backpropagated gradient's second moment by
  ``χ_l = α_l σw² E[φ'(√q^{l-1} Z)²]`` (gradient independence, [R] Approximation 2; equal widths). A net initialised
  on the EOC has every dense ``χ_l ≈ 1``; after pruning ``χ_l ≈ α_l < 1`` and the gradient shrinks by
  ``Π_l χ_l`` from the output to the input: the ordered-phase drift that the rescaling trick (``α_l → 1``, [R]
  Algorithm 1) undoes.

  Args:
    activation: name, callable or Activation.
    sigma_b: bias standard deviation, ``>= 0``.
    sigma_w: the dense initialisation's weight standard deviation, ``> 0``.
    alphas: ``(L,)`` kept-variance fractions ``α_l >= 0`` (``mfprune.repair.kept_variance_fraction``), layer 1 first;
      ``L >= 2``.
    q1: the dense first-layer variance ``σb² + σw² ‖x‖²/d``; defaults to a unit-variance input, ``σb² + σw²``.
    order: quadrature order.

  Returns:
    A :class:`PrunedChi`.

  Raises:
    ValueError: fewer than two layers, or an argument outside its range (the message names it).
  """
  check_nonnegative("sigma_b", sigma_b)
  check_positive("sigma_w", sigma_w)
  depth = int(np.size(alphas))
  if depth < 2:
    raise ValueError(f"alphas must give at least two layers (χ_l is defined for l = 2..L); got {depth}")
  if q1 is None:
    q1 = jnp.asarray(sigma_b, float) ** 2 + jnp.asarray(sigma_w, float) ** 2
  forward = maps.propagate(activation, sigma_b, sigma_w, depth, q1, c1=None, alphas=alphas, order=order)
  act = get_activation(activation)
  alphas = maps.check_alphas(alphas, depth)
  return _pruned_chi(act, jnp.asarray(sigma_w, forward.q.dtype), forward.q, alphas, order)


@functools.partial(jax.jit, static_argnums=(4,))
def _pruned_chi(act, sigma_w, q, alphas, order):
  chi = alphas[1:] * sigma_w**2 * act.derivative_second_moment(q[:-1], order)
  log_chi = jnp.log(chi)  # an emptied layer: log 0 = −inf, effective χ 0
  return PrunedChi(q, chi, jnp.exp(jnp.mean(log_chi)), jnp.sum(log_chi))
