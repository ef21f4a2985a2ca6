"""The training state and the pure, jitted train and eval steps.

The steps are module-level ``jax.jit`` functions whose only static argument is a
hashable ``StepSpec``; two runs with equal specs (same model, optimiser, data shapes
and mesh) share one compilation within a process. The normalisation statistics are an
argument, not part of the spec, so the folds of a cross-validation (whose training
parts differ in mean and std) share it too.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from sepconv.conv import policy
from sepconv.data.augment import Augmentation
from sepconv.data.dataset import normalize
from sepconv.train.config import TrainConfig
from sepconv.train.optim import make_optimizer
from sepconv.train.parallel import replicated

COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


@flax.struct.dataclass
class TrainState:
  """Everything a resumed run needs, all arrays (checkpointed as one pytree).

  ``rng`` is raw key data; each step's key is ``fold_in(rng, step)``, so the
  augmentation stream depends on the step, never on how often the run was resumed.
  The three sums accumulate the current epoch's training loss and accuracy.
  """

  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  rng: jax.Array
  loss_sum: jax.Array
  correct_sum: jax.Array
  seen: jax.Array


class _ByIdentity:
  """Makes an unhashable model usable as a static argument (no cache sharing)."""

  def __init__(self, value):
    self.value = value


@dataclasses.dataclass(frozen=True)
class StepSpec:
  """Everything static about a step: the model, optimiser, data shape and mesh."""

  model: Any
  config: TrainConfig
  steps_per_epoch: int
  num_classes: int
  augmentation: Augmentation | None
  mesh: Mesh

  @classmethod
  def create(cls, model: nn.Module, config: TrainConfig, steps_per_epoch: int, dataset,
             mesh: Mesh) -> StepSpec:
    try:
      hash(model)
    except TypeError:
      model = _ByIdentity(model)
    # Fields that cannot change the compiled step are blanked, so runs differing only in
    # them (seeds and folds of a sweep, paths) share a compilation.
    config = dataclasses.replace(config, seed=0, folds=0, fold=0, data_dir=None,
                                 download=False, checkpoint_every_steps=0)
    augmentation = dataset.augmentation if config.augment and dataset.augmentation.enabled else None
    return cls(model, config, steps_per_epoch, dataset.num_classes, augmentation, mesh)

  @property
  def module(self) -> nn.Module:
    return self.model.value if isinstance(self.model, _ByIdentity) else self.model

  @property
  def tx(self) -> optax.GradientTransformation:
    return make_optimizer(self.config, self.steps_per_epoch)

  @property
  def dtype(self):
    return COMPUTE_DTYPES[self.config.dtype]

  def replicate(self, tree):
    return jax.lax.with_sharding_constraint(tree, replicated(self.mesh))


def init_state(model: nn.Module, tx: optax.GradientTransformation, input_shape, seed
               ) -> TrainState:
  """The state at step 0: parameters from ``seed`` (an int, or a traced int32 under jit)."""
  init_key, data_key = jax.random.split(jax.random.key(seed))
  variables = model.init(init_key, jnp.zeros((1, *input_shape), jnp.float32), train=False)
  params = variables["params"]
  return TrainState(
      step=jnp.zeros((), jnp.int32), params=params,
      batch_stats=variables.get("batch_stats", {}), opt_state=tx.init(params),
      rng=jax.random.key_data(data_key), loss_sum=jnp.zeros((), jnp.float32),
      correct_sum=jnp.zeros((), jnp.float32), seen=jnp.zeros((), jnp.float32))


# Initialisation runs once: on CPU, compiling it without LLVM optimisation cuts a
# MobileNet's init compile from ~13 s to ~2 s (2-core host) and costs ~0.1 s to run.
_RUN_ONCE_CPU_OPTIONS = {"xla_backend_optimization_level": 0,
                         "xla_llvm_disable_expensive_passes": True}


class Executables:
  """A process's compiled executables by what their compilation depends on; the last
  ``keep`` are kept (a sweep's runs of one variant reuse them, then it moves on)."""

  def __init__(self, keep: int = 4):
    self.keep = keep
    self._entries: dict[Any, Any] = {}

  def get(self, key, build: Callable[[], Any]) -> Any:
    """The executable(s) under ``key``, built by ``build()`` if not kept."""
    if key not in self._entries:
      self._entries[key] = build()
      while len(self._entries) > self.keep:
        del self._entries[next(iter(self._entries))]
    return self._entries[key]


# Compiled initialisations of this process by (spec, input shape, traced plans); kept as
# long as the steps (``loop._COMPILED``), whose benchmarks start from them.
_INIT_COMPILED = Executables(keep=16)


def initial_state(spec: StepSpec, input_shape: tuple[int, ...], seed: int) -> TrainState:
  """``init_state`` compiled once per spec and process (the seed is traced), replicated
  over the mesh."""
  def build():
    lowered = _initial_state.lower(np.int32(0), spec=spec, input_shape=tuple(input_shape))
    on_cpu = spec.mesh.devices.flat[0].platform == "cpu"
    return lowered.compile(_RUN_ONCE_CPU_OPTIONS if on_cpu else None)
  key = (spec, tuple(input_shape), policy.trace_key())
  return _INIT_COMPILED.get(key, build)(np.int32(seed))


@functools.partial(jax.jit, static_argnames=("spec", "input_shape"))
def _initial_state(seed: jax.Array, *, spec: StepSpec, input_shape: tuple[int, ...]) -> TrainState:
  return spec.replicate(init_state(spec.module, spec.tx, input_shape, seed))


def normalization(dataset, mesh: Mesh) -> jax.Array:
  """The steps' ``stats`` argument: [mean, std] of ``dataset``'s training images, (2, C)
  float32, replicated over ``mesh``."""
  stats = np.asarray([dataset.mean, dataset.std], np.float32)
  return jax.make_array_from_callback(stats.shape, replicated(mesh), lambda i: stats[i])


def reset_metrics(state: TrainState, mesh: Mesh) -> TrainState:
  """Zeroes the epoch's running sums (host-built, no compilation)."""
  def zero():  # three distinct buffers: the step donates each
    return jax.make_array_from_callback((), replicated(mesh), lambda _: np.zeros((), np.float32))
  return state.replace(loss_sum=zero(), correct_sum=zero(), seen=zero())


def _cross_entropy(logits, labels, num_classes: int, label_smoothing: float):
  if label_smoothing:
    targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes), label_smoothing)
    return optax.softmax_cross_entropy(logits, targets)
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def update(module: nn.Module, tx: optax.GradientTransformation, params, batch_stats, opt_state,
           x: jax.Array, labels: jax.Array, *, num_classes: int | None = None,
           label_smoothing: float = 0.0, rngs: dict | None = None):
  """One optimiser update: forward in training mode, cross-entropy, backward, ``tx``'s step.

  The step every training path takes (``train_step`` here, the training-step benchmark in
  ``sepconv.bench.train_step``). ``module`` follows the model protocol
  (``apply(variables, x, train=True, mutable=['batch_stats'])`` gives
  ``((logits, features), updates)``); the loss is taken in float32.

  Returns:
    (params, batch_stats, opt_state, mean loss, float32 logits) after the update.
  """
  def loss_fn(p):
    (logits, _), updates = module.apply({"params": p, "batch_stats": batch_stats}, x,
                                        train=True, mutable=["batch_stats"], rngs=rngs)
    logits = logits.astype(jnp.float32)
    loss = _cross_entropy(logits, labels, num_classes, label_smoothing).mean()
    return loss, (logits, updates.get("batch_stats", {}))

  (loss, (logits, new_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
  changes, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, changes), new_stats, opt_state, loss, logits


@functools.partial(jax.jit, static_argnames="spec", donate_argnums=0)
def train_step(state: TrainState, images: jax.Array, labels: jax.Array, stats: jax.Array, *,
               spec: StepSpec) -> TrainState:
  """One optimiser step on a global batch: normalise (``stats``: ``normalization``), augment,
  forward, backward, update."""
  key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
  aug_key, dropout_key = jax.random.split(key)
  x = normalize(images, stats[0], stats[1])
  if spec.augmentation is not None:
    x = spec.augmentation(aug_key, x)
  x = x.astype(spec.dtype)
  params, batch_stats, opt_state, loss, logits = update(
      spec.module, spec.tx, state.params, state.batch_stats, state.opt_state, x, labels,
      num_classes=spec.num_classes, label_smoothing=spec.config.label_smoothing,
      rngs={"dropout": dropout_key})
  correct = jnp.sum(jnp.argmax(logits, -1) == labels).astype(jnp.float32)
  n = jnp.float32(labels.shape[0])
  return spec.replicate(state.replace(
      step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state,
      loss_sum=state.loss_sum + loss * n, correct_sum=state.correct_sum + correct,
      seen=state.seen + n))


@functools.partial(jax.jit, static_argnames="spec")
def eval_step(state: TrainState, images: jax.Array, labels: jax.Array, weights: jax.Array,
              stats: jax.Array, *, spec: StepSpec) -> jax.Array:
  """[sum of weighted losses, sum of weighted correct predictions] over a batch."""
  x = normalize(images, stats[0], stats[1]).astype(spec.dtype)
  logits, _ = spec.module.apply({"params": state.params, "batch_stats": state.batch_stats}, x,
                                train=False)
  logits = logits.astype(jnp.float32)
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
  return spec.replicate(jnp.stack([jnp.sum(loss * weights), jnp.sum(correct * weights)]))
