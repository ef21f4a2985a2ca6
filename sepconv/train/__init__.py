"""Training: optax optimisers, a pure jitted step, data parallelism, orbax resume.

Usage (a Colab cell or a script)::

  from sepconv.train import default_config, train
  result = train(default_config("digits", conv="dws", seed=0), "runs/digits-dws-0")
  print(result["test_accuracy"], result["train_seconds"])
"""

from sepconv.train.config import default_config, PRESETS, TrainConfig
from sepconv.train.loop import epoch_order, read_result, restore_variables, train
from sepconv.train.optim import decay_mask, make_optimizer, make_schedule
from sepconv.train.parallel import make_mesh, maybe_initialize_distributed
from sepconv.train.step import TrainState

__all__ = [
    "decay_mask", "default_config", "epoch_order", "make_mesh", "make_optimizer",
    "make_schedule", "maybe_initialize_distributed", "PRESETS", "read_result", "restore_variables",
    "train",
    "TrainConfig", "TrainState",
]
