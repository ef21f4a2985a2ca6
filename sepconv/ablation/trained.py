"""A finished training run, read back: its model, variables and named features."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from sepconv.conv import policy
from sepconv.conv.table import COMPUTATIONS
from sepconv.data import Dataset
from sepconv.data.dataset import normalize
from sepconv.train import TrainConfig
from sepconv.models import model_architecture
from sepconv.models.net import conv_geometries
from sepconv.train.loop import _build_model, restore_variables
from sepconv.train.step import COMPUTE_DTYPES


def build(config: TrainConfig, dataset: Dataset, impl: str | None = None):
  """The model of ``config`` for ``dataset`` (``impl`` overrides the run's)."""
  config = dataclasses.replace(config, impl=impl or config.impl)
  return _build_model(config, dataset.num_classes, dataset.input_shape)


def plans(config: TrainConfig, dataset: Dataset) -> dict[str, dict[str, str]]:
  """The implementation each convolution of ``config``'s model runs at its batch, for each of
  forward, input gradient and kernel gradient (``sepconv.conv.policy.plan_record``)."""
  arch = model_architecture(config.model, num_classes=dataset.num_classes, conv=config.conv,
                            width_multiplier=config.width_multiplier,
                            input_size=dataset.input_shape[0])
  geoms = conv_geometries(arch, dataset.input_shape, config.batch_size,
                          COMPUTE_DTYPES[config.dtype])
  if config.impl != "auto":
    return {g.key(): {c: config.impl for c in COMPUTATIONS} for g in geoms}
  return policy.plan_record(geoms)


def restore(config: TrainConfig, run_dir: str | Path, dataset: Dataset):
  """(model, variables) of the latest checkpoint in ``run_dir``."""
  return restore_variables(config, run_dir, dataset=dataset)


@functools.partial(jax.jit, static_argnames="model")
def _apply(variables, x, stats, *, model):
  logits, feats = model.apply(variables, normalize(x, stats[0], stats[1]), train=False)
  return {**feats, "logits": logits}


def features(model, variables, dataset: Dataset, images: np.ndarray, *, batch_size: int = 256
             ) -> dict[str, np.ndarray]:
  """Every named feature of ``model`` (plus 'logits') on ``images``, in evaluation mode.

  The last batch is zero-padded to ``batch_size``, the model is the only static argument
  of one module-level jit and the normalisation statistics are an argument, so every
  split, seed and fold of a configuration share one compilation.
  """
  n = len(images)
  batch_size = min(batch_size, n)
  stats = jnp.asarray([dataset.mean, dataset.std], jnp.float32)
  parts = []
  for i in range(0, n, batch_size):
    x = images[i:i + batch_size]
    pad = batch_size - len(x)
    if pad:
      x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
    out = jax.device_get(_apply(variables, jnp.asarray(x), stats, model=model))
    parts.append({k: v[:batch_size - pad] for k, v in out.items()})
  return {name: np.concatenate([p[name] for p in parts]).astype(np.float32) for name in parts[0]}
