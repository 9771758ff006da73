"""Saliency scorers: a registry of functions ``(apply_fn, params, mask, batch, key) -> scores``.

Convention: **a higher score means more worth keeping**; :func:`mfprune.pruning.prune` keeps the top scores. Every
scorer evaluates the pruned network ``θ ⊙ mask`` and returns a tree like ``mask`` (float arrays on prunable
leaves, ``None`` elsewhere). Scorers are pure and run under ``jit`` and ``vmap`` (over keys, parameters or masks).

``batch`` is ``(inputs, labels)`` with integer labels, or :class:`Stacked` batches (a leading batch-index axis)
whose losses are averaged, which is how SNIP and GraSP accumulate over several batches (the gradient of the mean
loss is the mean of the batch gradients). Data-free scorers still read the input shape from ``batch``.

References: [R] Hayou et al. 2021 §2.2; [S] Lee et al. 2020 eq. 1, Table 4; [P] §3-4, eq. 14-15;
SNIP: Lee et al. 2019; GraSP: Wang et al. 2020; SynFlow: Tanaka et al. 2020.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import optax

from mfprune._keys import KeyLike, as_key
from mfprune import functional
from mfprune.masks import Mask, Scores, apply_mask

Array = jax.Array
Params = Any
ScoreFn = Callable[..., Scores]


class Stacked(NamedTuple):
  """Several batches stacked on a leading axis: ``inputs (n, B, ...)``, ``labels (n, B)``; losses are averaged."""

  inputs: Array
  labels: Array


Batch = tuple[Array, Array] | Stacked


def _inputs(batch: Batch) -> Array:
  if batch is None:
    raise ValueError("this scorer needs batch=(inputs, labels) (data-free scorers read the input shape from it)")
  x = batch[0]
  return x.reshape((-1,) + x.shape[2:]) if isinstance(batch, Stacked) else x


def cross_entropy(logits: Array, targets: Array) -> Array:
  """Mean softmax cross-entropy; ``targets`` are integer labels ``(B,)`` or distributions ``(B, K)``."""
  if targets.ndim == logits.ndim:
    return jnp.mean(optax.softmax_cross_entropy(logits, targets))
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, targets))


def mean_loss(loss_fn: Callable[[Array, Array], Array], batch: Batch) -> Array:
  """``loss_fn(inputs, labels)`` on one batch, or its mean over :class:`Stacked` batches (``lax.map``)."""
  if isinstance(batch, Stacked):
    return jnp.mean(jax.lax.map(lambda b: loss_fn(*b), (batch.inputs, batch.labels)))
  inputs, labels = batch
  return loss_fn(inputs, labels)


def _on_mask(mask: Mask, tree: Any) -> Scores:
  """Keeps the entries of ``tree`` at the mask's prunable leaves (``None`` elsewhere)."""
  return jax.tree.map(lambda m, x: None if m is None else x, mask, tree, is_leaf=lambda v: v is None)


def _times_weights(mask: Mask, params: Params, grads: Params) -> Scores:
  return jax.tree.map(lambda m, p, g: None if m is None else p * g, mask, params, grads,
                      is_leaf=lambda v: v is None)


# ---------------------------------------------------------------------------------------------------------------
# Data-free baselines.


def random(apply_fn, params, mask, batch, key) -> Scores:
  """Uniform random scores: random pruning, the baseline of every paper (i.i.d. U(0, 1) per weight)."""
  del apply_fn, batch
  leaves, treedef = jax.tree_util.tree_flatten(mask)
  keys = jax.random.split(key, len(leaves))
  # One flat draw per layer, reshaped: compiles several times faster on CPU than a multi-dimensional shape.
  return jax.tree_util.tree_unflatten(
      treedef, [jax.random.uniform(k, (m.size,)).reshape(m.shape) for k, m in zip(keys, leaves)])


def magnitude(apply_fn, params, mask, batch, key) -> Scores:
  """``|θ|``: magnitude-based pruning (MBP), [R] App. E (Propositions 4-5)."""
  del apply_fn, batch, key
  return _on_mask(mask, jax.tree.map(jnp.abs, apply_mask(params, mask)))


# ---------------------------------------------------------------------------------------------------------------
# Sensitivity (SNIP / SBP) and GraSP.


def _loss(apply_fn, batch, targets_fn=None, temperature: float = 1.0):
  """Mean cross-entropy of ``apply_fn`` on ``batch`` as a function of the parameters."""
  def loss(p):
    def one(x, y):
      logits = apply_fn(p, x) / temperature
      return cross_entropy(logits, y if targets_fn is None else targets_fn(logits))
    return mean_loss(one, batch)
  return loss


def snip(apply_fn, params, mask, batch, key) -> Scores:
  """Connection sensitivity ``|θ ⊙ ∂L/∂θ|`` ([R] §2.2 SBP; [S] eq. 1, 3; Lee et al. 2019).

  ``L`` is the mean cross-entropy on ``batch`` at the pruned weights ``θ ⊙ mask``. SNIP divides by the sum of all
  scores; that constant does not change which weights are kept, so the raw SBP score is returned.
  """
  del key
  theta = apply_mask(params, mask)
  grads = jax.grad(_loss(apply_fn, batch))(theta)
  return jax.tree.map(jnp.abs, _times_weights(mask, theta, grads))


UNSUPERVISED_TARGETS = ("uniform", "softmax", "raw")


def _unsupervised_targets(target: str) -> Callable[[Array], Array]:
  if target == "uniform":
    return lambda logits: jnp.full_like(logits, 1.0 / logits.shape[-1])
  if target == "softmax":
    return lambda logits: jnp.broadcast_to(
        jnp.mean(jax.nn.softmax(jax.lax.stop_gradient(logits)), axis=0), logits.shape)
  if target == "raw":
    return lambda logits: jnp.broadcast_to(
        jax.nn.softmax(jnp.mean(jax.lax.stop_gradient(logits), axis=0)), logits.shape)
  raise ValueError(f"target must be one of {UNSUPERVISED_TARGETS}; got {target!r}")


def snip_unsupervised(apply_fn, params, mask, batch, key, *, target: str = "uniform") -> Scores:
  """SNIP with the labels replaced by an unsupervised target distribution ([S] §5.2, Table 4).

  Args:
    target: ``"uniform"`` (1/K for every class; the best in [S] Table 4), ``"softmax"`` (the batch average of the
      network's softmax prediction: "Pred. (softmax)") or ``"raw"`` (softmax of the batch-averaged raw outputs:
      our reading of "Pred. (raw)", docs/pruning.md). Targets are constants under differentiation. The labels in
      ``batch`` are ignored.
  """
  del key
  targets = _unsupervised_targets(target)
  theta = apply_mask(params, mask)
  grads = jax.grad(_loss(apply_fn, batch, targets_fn=targets))(theta)
  return jax.tree.map(jnp.abs, _times_weights(mask, theta, grads))


GRASP_TEMPERATURE = 200.0
"""Softmax temperature of the GraSP reference implementation (logits divided by it)."""


def grasp(apply_fn, params, mask, batch, key, *, temperature: float = GRASP_TEMPERATURE) -> Scores:
  """GraSP (Wang et al. 2020, eq. 8): ``θ ⊙ H g``, the negative of ``S(−θ) = −θ ⊙ H g``, by a Hessian-vector product.

  GraSP removes the weights whose removal reduces the gradient norm least, i.e. those with the largest
  ``S(−θ) = −θ ⊙ Hg``; with our keep-the-highest convention the returned score is ``θ ⊙ Hg = −S(−θ)``. ``g`` is the
  gradient of the loss (held constant), ``H`` its Hessian, both at ``θ ⊙ mask``; ``Hg`` is computed by
  forward-over-reverse differentiation without forming ``H``.

  Args:
    temperature: logits are divided by it before the softmax (the GraSP code uses 200; 1 gives the plain loss).
  """
  del key
  theta = apply_mask(params, mask)
  loss = _loss(apply_fn, batch, temperature=temperature)
  g = jax.lax.stop_gradient(jax.grad(loss)(theta))
  _, hg = jax.jvp(jax.grad(loss), (theta,), (g,))
  return _times_weights(mask, theta, hg)


# ---------------------------------------------------------------------------------------------------------------
# SynFlow and its path-kernel variants ([P] §4.2).


def _synflow_input(batch: Batch, use_data_mean: bool) -> Array:
  x = _inputs(batch)
  if use_data_mean:
    return jnp.abs(jnp.mean(x, axis=0, keepdims=True))
  return jnp.ones((1,) + x.shape[1:], x.dtype)


def path_objective(apply_fn, params: Params, x: Array, *, power: int = 1) -> Array:
  """``R(x, θ) = 1ᵀ f_lin(x; |θ|^power)``, the output sum of the linearised network on ``|θ|^power``.

  ``power=1`` with ``x = 1`` is SynFlow's ``R_sf = 1ᵀ(Π_l |θ^l|)1``; ``power=2`` is the path-kernel objective
  ``R_pk(x, θ) = 1ᵀ(Π_l (θ^l)²) x`` of [P] eq. 15, whose gradient with respect to ``θ²`` gives the diagonal of
  the Path Kernel (THEORY.md §7). With mfprune's models the linearised network is renormalised layer by layer, so
  ``R`` is known up to one positive factor; scores built from it rank weights exactly like the unscaled ones.
  """
  lin = functional.linearised(apply_fn)
  positive = jax.tree.map(lambda p: jnp.abs(p) ** power, params)
  return jnp.sum(lin(positive, x))


def _synflow_family(apply_fn, params, mask, batch, *, power: int, use_data_mean: bool) -> Scores:
  theta = apply_mask(params, mask)
  x = _synflow_input(batch, use_data_mean)
  grads = jax.grad(lambda p: path_objective(apply_fn, p, x, power=power))(theta)
  return _times_weights(mask, theta, grads)


def synflow(apply_fn, params, mask, batch, key) -> Scores:
  """SynFlow (Tanaka et al. 2020; [P] §4.1): ``θ ⊙ ∂R_sf/∂θ`` with ``R_sf = 1ᵀ(Π_l |θ^l|)1``.

  Equals ``|θ| ⊙ ∂R_sf/∂|θ| >= 0``; on a bias-free network the scores of each layer sum to ``R_sf``
  (conservation). Data-free: ``batch`` only gives the input shape. Usually run iteratively (100 rounds, see
  :func:`mfprune.pruning.prune`). Numerically safe at any depth through the renormalised linearised model.
  """
  del key
  return _synflow_family(apply_fn, params, mask, batch, power=1, use_data_mean=False)


def synflow_dist(apply_fn, params, mask, batch, key) -> Scores:
  """SynFlow-Dist ([P] §4.2): SynFlow with the input ``1`` replaced by the per-feature data mean's magnitude ``|μ|``.

  [P] weights input dimensions by ``μ`` as a proxy for "high-magnitude input dimensions". Centred data give ``μ``
  of both signs, which makes path values negative and turns the keep-the-largest rule upside down (the read-out
  layer is pruned first); we therefore use ``|μ|``, which equals ``μ`` for non-negative data such as raw pixels
  (docs/pruning.md, "Choices we made").
  """
  del key
  return _synflow_family(apply_fn, params, mask, batch, power=1, use_data_mean=True)


SYNFLOW_L2_VARIANTS = ("paper", "authors")


def synflow_l2(apply_fn, params, mask, batch, key, *, variant: str = "paper") -> Scores:
  """SynFlow-L2 ([P] §4.2, eq. 15): ``θ ⊙ ∂R_pk(1, θ)/∂θ`` with ``R_pk(x, θ) = 1ᵀ(Π_l (θ^l)²) x``.

  Equals ``2 θ² ⊙ ∂R_pk/∂(θ²)``, twice the diagonal of the Path Kernel weighted by ``θ²``; on a bias-free network
  each layer's scores sum to ``2 R_pk``.

  Args:
    variant: ``"paper"`` (above) or ``"authors"``: ``|θ² ⊙ ∂R_sf/∂θ|`` on the ``|θ|``-linearised network, which is
      what the authors' public code computes (THEORY.md §7, ambiguity note).
  """
  del key
  if variant == "paper":
    return _synflow_family(apply_fn, params, mask, batch, power=2, use_data_mean=False)
  if variant == "authors":
    theta = apply_mask(params, mask)
    x = _synflow_input(batch, False)
    grads = jax.grad(lambda p: path_objective(apply_fn, p, x, power=1))(theta)
    return jax.tree.map(lambda m, p, g: None if m is None else jnp.abs(p * p * g), mask, theta, grads,
                        is_leaf=lambda v: v is None)
  raise ValueError(f"variant must be one of {SYNFLOW_L2_VARIANTS}; got {variant!r}")


def synflow_l2_dist(apply_fn, params, mask, batch, key) -> Scores:
  """SynFlow-L2-Dist ([P] §4.2): ``θ ⊙ ∂R_pk(|μ|, θ)/∂θ`` with the data mean's magnitude as input (see
  :func:`synflow_dist`)."""
  del key
  return _synflow_family(apply_fn, params, mask, batch, power=2, use_data_mean=True)


# ---------------------------------------------------------------------------------------------------------------
# Registry.


@dataclasses.dataclass(frozen=True)
class Scorer:
  """A registered scorer.

  Attributes:
    name: registry key.
    fn: ``(apply_fn, params, mask, batch, key, **options) -> scores``.
    rounds: default number of pruning rounds (1 = one-shot; SynFlow's family uses 100).
    uses_labels: whether the labels in ``batch`` matter.
    description: one line for ``--help`` and docs.
  """

  name: str
  fn: ScoreFn
  rounds: int
  uses_labels: bool
  description: str

  @property
  def options(self) -> tuple[str, ...]:
    """The keyword options ``fn`` takes beyond ``(apply_fn, params, mask, batch, key)`` (e.g. GraSP's
    ``temperature``)."""
    parameters = list(inspect.signature(self.fn).parameters.values())[5:]
    return tuple(p.name for p in parameters if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))

  def check_options(self, options: Mapping[str, Any]) -> None:
    """Raises ValueError naming any option ``fn`` does not take, and the ones it does."""
    parameters = inspect.signature(self.fn).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
      return
    unknown = sorted(set(options) - set(self.options))
    if unknown:
      takes = ", ".join(self.options) or "none"
      raise ValueError(f"method {self.name!r} takes no option {', '.join(map(repr, unknown))} (its options: "
                       f"{takes})")


_REGISTRY: dict[str, Scorer] = {}


def register_scorer(name: str, fn: ScoreFn, *, rounds: int = 1, uses_labels: bool = False,
                    description: str = "") -> Scorer:
  """Adds a scorer to the registry (overwriting one of the same name)."""
  if rounds < 1:
    raise ValueError(f"rounds must be >= 1; got {rounds}")
  scorer = Scorer(name, fn, rounds, uses_labels, description or (fn.__doc__ or "").strip().split("\n")[0])
  _REGISTRY[name] = scorer
  return scorer


SYNFLOW_ROUNDS = 100
"""Default rounds of SynFlow and its variants (Tanaka et al. 2020)."""

register_scorer("random", random, description="uniform random scores")
register_scorer("magnitude", magnitude, description="|θ| (MBP)")
register_scorer("snip", snip, uses_labels=True, description="|θ ⊙ ∂L/∂θ| (SNIP, SBP)")
register_scorer("snip_unsupervised", snip_unsupervised,
                description="SNIP with a uniform (or own-prediction) target instead of labels")
register_scorer("grasp", grasp, uses_labels=True, description="θ ⊙ Hg (GraSP; keeps the highest)")
register_scorer("synflow", synflow, rounds=SYNFLOW_ROUNDS, description="θ ⊙ ∂R_sf/∂θ, iterative")
register_scorer("synflow_l2", synflow_l2, rounds=SYNFLOW_ROUNDS, description="θ ⊙ ∂R_pk/∂θ (path kernel), iterative")
register_scorer("synflow_dist", synflow_dist, rounds=SYNFLOW_ROUNDS, description="SynFlow with the data mean as input")
register_scorer("synflow_l2_dist", synflow_l2_dist, rounds=SYNFLOW_ROUNDS,
                description="SynFlow-L2 with the data mean as input")


def available_scorers() -> dict[str, str]:
  """Registry name -> one-line description."""
  return {name: s.description for name, s in _REGISTRY.items()}


def get_scorer(name: str) -> Scorer:
  """The registered :class:`Scorer` called ``name``.

  Raises:
    ValueError: unknown name (the message lists the registered ones).
  """
  if name not in _REGISTRY:
    raise ValueError(f"unknown pruning method {name!r}; available: {', '.join(_REGISTRY)}")
  return _REGISTRY[name]


def score(method: str, apply_fn, params: Params, mask: Mask, batch: Batch | None, key: KeyLike | None = None,
          **options: Any) -> Scores:
  """Scores with a registered method: ``get_scorer(method).fn(apply_fn, params, mask, batch, key, **options)``."""
  scorer = get_scorer(method)
  scorer.check_options(options)
  fn = scorer.fn
  key = as_key(0 if key is None else key)
  return functools.partial(fn, **options)(apply_fn, params, mask, batch, key)
