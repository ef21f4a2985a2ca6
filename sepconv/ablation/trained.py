"""A finished training run, read back: its model, variables and named features."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from sepconv.data import Dataset
from sepconv.train import TrainConfig, make_optimizer
from sepconv.train.checkpoint import Checkpoints
from sepconv.train.loop import COMPUTE_DTYPES
from sepconv.train.step import init_state


def build(config: TrainConfig, dataset: Dataset, impl: str | None = None):
  """The model of ``config`` for ``dataset`` (``impl`` overrides the run's)."""
  from sepconv.models import build_model
  return build_model(config.model, num_classes=dataset.num_classes, conv=config.conv,
                     width_multiplier=config.width_multiplier, input_size=dataset.input_shape[0],
                     impl=impl or config.impl, dtype=COMPUTE_DTYPES[config.dtype])


def restore(config: TrainConfig, run_dir: str | Path, dataset: Dataset):
  """(model, variables) of the latest checkpoint in ``run_dir``."""
  model = build(config, dataset)
  tx = make_optimizer(config, dataset.num_train // config.batch_size)
  like = jax.jit(lambda: init_state(model, tx, dataset.input_shape, config.seed))()
  checkpoints = Checkpoints(Path(run_dir) / "checkpoints")
  try:
    step = checkpoints.latest_step()
    if step is None:
      raise ValueError(f"{run_dir} holds no checkpoint")
    state = checkpoints.restore(step, like)
  finally:
    checkpoints.close()
  return model, {"params": state.params, "batch_stats": state.batch_stats}


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
