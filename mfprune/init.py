"""Initialisations of dense and convolution weights, as pure functions ``(params, key, ...) -> params``.

Weights are the leaves chosen by ``prunable`` (the predicate of :mod:`mfprune.masks`; default: leaves named
``kernel`` with ndim >= 2, flax's layout ``(in, out)`` or ``(*window, in, out)``); their fan-in is ``prod(shape[:-1])``, the ``v_l`` of [R] §2.1
(``N_{l−1}`` for dense layers, ``n_{l−1}(2k+1)`` for convolutions; THEORY.md §1). Biases are the ``bias`` leaves
next to a weight; normalisation parameters are left alone.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import theory
from mfprune._keys import KeyLike, as_key
from mfprune.masks import Prunable, is_kernel, path_name
from theory._validation import check_nonnegative

Array = jax.Array
Params = Any
VARIANCE_SCALING_MODES = {"lecun": ("fan_in", 1.0), "glorot": ("fan_avg", 1.0), "he": ("fan_in", 2.0)}
SCHEMES = ("eoc", "gaussian", "lecun", "glorot", "he", "orthogonal", "delta_orthogonal")


def fan_in(shape: tuple[int, ...]) -> int:
  """``prod(shape[:-1])``: inputs feeding one output unit (the ``v_l`` of [R] eq. 1-3)."""
  return int(np.prod(shape[:-1]))


def _map_layers(params: Params, key: KeyLike, weight_fn, bias_fn, prunable: Prunable) -> Params:
  """Applies ``weight_fn(key, leaf)`` to weights and ``bias_fn(key, leaf)`` to their biases; the rest is copied."""
  key = as_key(key)
  flat, treedef = jax.tree_util.tree_flatten_with_path(params)
  names = [path_name(p) for p, _ in flat]
  weight_dirs = {name.rpartition("/")[0] for (p, x), name in zip(flat, names) if prunable(p, x)}
  if not weight_dirs:
    raise ValueError("params hold no weight to initialise (default: leaves named 'kernel' with ndim >= 2)")
  keys = jax.random.split(key, len(flat))
  leaves = []
  for k, (p, x), name in zip(keys, flat, names):
    parent, _, leaf_name = name.rpartition("/")
    if prunable(p, x):
      leaves.append(weight_fn(k, x).astype(x.dtype))
    elif leaf_name == "bias" and parent in weight_dirs:
      leaves.append(bias_fn(k, x).astype(x.dtype))
    else:
      leaves.append(x)
  return jax.tree_util.tree_unflatten(treedef, leaves)


def _scale(name: str, value: float) -> float:
  """A validated non-negative scale (σw, σb, gain) as a Python float."""
  check_nonnegative(name, value)
  return float(value)


def _gaussian_bias(sigma_b: float):
  if sigma_b == 0:
    return lambda k, x: jnp.zeros_like(x)
  return lambda k, x: sigma_b * jax.random.normal(k, x.shape, x.dtype)


def gaussian(params: Params, key: KeyLike, *, sigma_w: float, sigma_b: float = 0.0,
             prunable: Prunable = is_kernel) -> Params:
  """``W ~ N(0, σw²/v_l)``, ``B ~ N(0, σb²)``: the Gaussian initialisation of [R] §2.1 (eq. 1-3).

  Args:
    params: parameters (any pytree; weights found by ``prunable``).
    key: PRNG key or integer seed.
    sigma_w: weight scale ``σw >= 0``.
    sigma_b: bias scale ``σb >= 0``.
    prunable: predicate on ``(path, leaf)`` selecting the weights (:data:`mfprune.masks.Prunable`).

  Returns:
    New parameters with the same structure.
  """
  sigma_w = _scale("sigma_w", sigma_w)
  sigma_b = _scale("sigma_b", sigma_b)
  return _map_layers(
      params, key, lambda k, x: sigma_w / np.sqrt(fan_in(x.shape)) * jax.random.normal(k, x.shape, x.dtype),
      _gaussian_bias(sigma_b), prunable)


def eoc(params: Params, key: KeyLike, *, activation: theory.activations.ActivationLike, sigma_b: float,
        prunable: Prunable = is_kernel, **eoc_options: Any) -> Params:
  """Gaussian initialisation on the edge of chaos: ``σw`` from :func:`theory.eoc_sigma_w` for ``(φ, σb)``.

  ([R] §2.1 and App. B.1; THEORY.md §2.) The model must use the same ``activation``.

  Raises:
    theory.NoEOCError: this activation has no EOC point at ``sigma_b`` (the message says why).
  """
  sigma_w = theory.eoc_sigma_w(activation, sigma_b, **eoc_options)
  return gaussian(params, key, sigma_w=sigma_w, sigma_b=sigma_b, prunable=prunable)


def variance_scaling(params: Params, key: KeyLike, *, mode: str = "lecun", prunable: Prunable = is_kernel) -> Params:
  """LeCun (``1/fan_in``), Glorot (``2/(fan_in + fan_out)``) or He (``2/fan_in``) normal weights; zero biases.

  These are the VS-L, VS-G and VS-H initialisations compared in [S] Table 2-3.
  """
  if mode not in VARIANCE_SCALING_MODES:
    raise ValueError(f"mode must be one of {tuple(VARIANCE_SCALING_MODES)}; got {mode!r}")
  fan, scale = VARIANCE_SCALING_MODES[mode]
  init = jax.nn.initializers.variance_scaling(scale, fan, "normal", in_axis=-2, out_axis=-1)
  return _map_layers(params, key, lambda k, x: init(k, x.shape, x.dtype), _gaussian_bias(0.0), prunable)


def orthogonal(params: Params, key: KeyLike, *, gain: float = 1.0, sigma_b: float = 0.0,
               prunable: Prunable = is_kernel) -> Params:
  """Scaled orthogonal weights: the ``(fan_in, out)`` matrix of each layer is ``gain`` times a semi-orthogonal one.

  With ``fan_in >= out`` the columns are orthonormal, so entries have variance ``gain²/fan_in``, the Gaussian
  ``σw²/v_l`` with ``σw = gain``, and every singular value of the layer's weight equals ``gain``. Choosing ``gain``
  as the mean-field ``σw`` (e.g. the EOC value) gives layerwise dynamical isometry (LDI, [S] §3-4). Convolution
  kernels are orthogonal over the flattened window; see :func:`delta_orthogonal` for the isometric version.
  """
  gain = _scale("gain", gain)
  init = jax.nn.initializers.orthogonal(gain)

  def weight(k, x):
    return init(k, (fan_in(x.shape), x.shape[-1]), x.dtype).reshape(x.shape)

  return _map_layers(params, key, weight, _gaussian_bias(_scale("sigma_b", sigma_b)), prunable)


def delta_orthogonal(params: Params, key: KeyLike, *, gain: float = 1.0, sigma_b: float = 0.0,
                     prunable: Prunable = is_kernel) -> Params:
  """Delta-orthogonal convolutions (Xiao et al. 2018): zero except the window centre, an orthogonal ``(in, out)``.

  The convolution is then an isometry (times ``gain``) at every position: LDI for CNNs ([S] §4). Dense weights get
  :func:`orthogonal`. Needs ``in <= out`` channels and odd windows.

  Raises:
    ValueError: a convolution with more input than output channels, or an even window.
  """
  gain = _scale("gain", gain)
  flat = jax.tree_util.tree_flatten_with_path(params)[0]
  for p, x in flat:
    if prunable(p, x) and x.ndim > 2:
      if x.shape[-2] > x.shape[-1]:
        raise ValueError(f"delta_orthogonal needs in_channels <= out_channels; {path_name(p)} has shape {x.shape}")
      if any(n % 2 == 0 for n in x.shape[:-2]):
        raise ValueError(f"delta_orthogonal needs odd windows; {path_name(p)} has shape {x.shape}")
  dense = jax.nn.initializers.orthogonal(gain)

  def weight(k, x):
    if x.ndim == 2:
      return dense(k, x.shape, x.dtype)
    centre = tuple(n // 2 for n in x.shape[:-2])
    return jnp.zeros(x.shape, x.dtype).at[centre].set(dense(k, x.shape[-2:], x.dtype))

  return _map_layers(params, key, weight, _gaussian_bias(_scale("sigma_b", sigma_b)), prunable)


def initialise(scheme: str, params: Params, key: KeyLike, **options: Any) -> Params:
  """Dispatches by name: ``eoc`` (activation, sigma_b), ``gaussian`` (sigma_w, sigma_b), ``lecun``, ``glorot``,
  ``he``, ``orthogonal`` and ``delta_orthogonal`` (gain, sigma_b).

  Raises:
    ValueError: unknown scheme.
  """
  if scheme == "eoc":
    return eoc(params, key, **options)
  if scheme == "gaussian":
    return gaussian(params, key, **options)
  if scheme in VARIANCE_SCALING_MODES:
    return variance_scaling(params, key, mode=scheme, **options)
  if scheme == "orthogonal":
    return orthogonal(params, key, **options)
  if scheme == "delta_orthogonal":
    return delta_orthogonal(params, key, **options)
  raise ValueError(f"unknown initialisation {scheme!r}; available: {', '.join(SCHEMES)}")


GAUSSIAN_SIGMA_W = {None: 1.0, "lecun": 1.0, "he": math.sqrt(2.0)}
"""Schemes that are the Gaussian ``N(0, σw²/fan_in)`` with zero biases, and their ``σw`` (``None``: the models'
default, LeCun normal)."""


def gaussian_scales(scheme: str | None, options: dict[str, Any]) -> tuple[float, float] | None:
  """``(σw, σb)`` when ``initialise(scheme, ..., **options)`` draws ``W ~ N(0, σw²/fan_in)``, ``B ~ N(0, σb²)``
  (the initialisation [R] eq. 1-3 and the mean-field theory assume), else ``None`` (Glorot, orthogonal, ...).

  Args:
    scheme: an initialisation scheme of :data:`SCHEMES`, or ``None`` for the models' default (LeCun normal).
    options: its options, as :func:`initialise` takes them (``sigma_w``, ``sigma_b``, ``activation``).
  """
  if scheme == "gaussian":
    return float(options["sigma_w"]), float(options.get("sigma_b", 0.0))
  if scheme == "eoc":
    return float(theory.eoc_sigma_w(options["activation"], options["sigma_b"])), float(options["sigma_b"])
  if scheme in GAUSSIAN_SIGMA_W:
    return GAUSSIAN_SIGMA_W[scheme], 0.0
  return None
