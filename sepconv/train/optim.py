"""Optimisers, learning-rate schedules and the weight-decay mask."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax

from sepconv.train.config import TrainConfig


def _names(path) -> list[str]:
  return [str(getattr(k, "key", getattr(k, "name", k))) for k in path]


def is_depthwise_kernel(path, leaf) -> bool:
  """A 4-D HWIO kernel with one input channel per group (shape[2] == 1).

  A standard conv on a one-channel input (a grey-scale stem) has the same shape and
  is, in that degenerate case, also depthwise; it is matched too.
  """
  return _names(path)[-1:] == ["kernel"] and getattr(leaf, "ndim", 0) == 4 and leaf.shape[2] == 1


def is_norm_or_bias(path, leaf) -> bool:
  """BatchNorm/LayerNorm scale and bias (a path part containing 'norm'), or any 'bias'."""
  del leaf
  names = _names(path)
  in_norm = any("norm" in n.lower() for n in names[:-1])
  return names[-1:] == ["bias"] or (in_norm and names[-1:] == ["scale"])


def decay_mask(params, *, exclude_depthwise: bool = True, exclude_norm_and_bias: bool = True):
  """A pytree of bools over ``params``: True where weight decay applies."""
  def decay(path, leaf):
    if exclude_depthwise and is_depthwise_kernel(path, leaf):
      return False
    if exclude_norm_and_bias and is_norm_or_bias(path, leaf):
      return False
    return True
  return jax.tree_util.tree_map_with_path(decay, params)


def make_schedule(config: TrainConfig, steps_per_epoch: int) -> optax.Schedule:
  """Linear warm-up to ``config.lr`` then cosine / step / constant, per optimiser step."""
  total = config.epochs * steps_per_epoch
  warmup = round(config.warmup_epochs * steps_per_epoch)
  peak = config.lr
  milestones = jnp.asarray([round(m * total) for m in config.step_milestones], jnp.int32)

  def schedule(step):
    step = jnp.asarray(step, jnp.int32)
    # (step + 1): the first update already moves, a warm-up of w steps reaches peak at step w-1.
    warm = jnp.minimum(1.0, (step + 1).astype(jnp.float32) / warmup) if warmup else 1.0
    if config.schedule == "cosine":
      progress = jnp.clip((step - warmup).astype(jnp.float32) / max(total - warmup, 1), 0.0, 1.0)
      decay = 0.5 * (1.0 + jnp.cos(math.pi * progress))
    elif config.schedule == "step":
      decay = config.step_factor ** jnp.sum(step >= milestones).astype(jnp.float32)
    else:
      decay = 1.0
    return peak * warm * decay

  return schedule


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> optax.GradientTransformation:
  """SGD with (Nesterov) momentum and coupled L2, or AdamW; decay masked as configured."""
  schedule = make_schedule(config, steps_per_epoch)

  def mask(params):
    return decay_mask(params, exclude_depthwise=not config.decay_depthwise,
                      exclude_norm_and_bias=not config.decay_norm_and_bias)

  if config.optimizer == "sgd":
    return optax.chain(
        optax.add_decayed_weights(config.weight_decay, mask),
        optax.sgd(schedule, momentum=config.momentum, nesterov=config.nesterov))
  return optax.adamw(schedule, weight_decay=config.weight_decay, mask=mask)
