"""A finished training run, read back: its model, variables and named features."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from sepconv.data import Dataset
from sepconv.train import TrainConfig
from sepconv.train.loop import _build_model, restore_variables


def build(config: TrainConfig, dataset: Dataset, impl: str | None = None):
  """The model of ``config`` for ``dataset`` (``impl`` overrides the run's)."""
  config = dataclasses.replace(config, impl=impl or config.impl)
  return _build_model(config, dataset.num_classes, dataset.input_shape)


def restore(config: TrainConfig, run_dir: str | Path, dataset: Dataset):
  """(model, variables) of the latest checkpoint in ``run_dir``."""
  return restore_variables(config, run_dir, dataset=dataset)


def features(model, variables, dataset: Dataset, images: np.ndarray, *, batch_size: int = 256
             ) -> dict[str, np.ndarray]:
  """Every named feature of ``model`` (plus 'logits') on ``images``, in evaluation mode."""
  @jax.jit
  def apply(x):
    logits, feats = model.apply(variables, dataset.normalize(x), train=False)
    return {**feats, "logits": logits}

  parts = [jax.device_get(apply(jnp.asarray(images[i:i + batch_size])))
           for i in range(0, len(images), batch_size)]
  return {name: np.concatenate([p[name] for p in parts]).astype(np.float32) for name in parts[0]}
