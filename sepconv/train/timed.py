"""A run's own compiled train step and eval step, timed on one of its batches.

The steps are exactly those ``train`` runs (same ``StepSpec``, optimiser, augmentation,
mesh and sharding), so inside one process a configuration that has been trained is
timed without compiling or autotuning again, and the time is the training loop's own.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import jax
import numpy as np

from sepconv.data import Dataset
from sepconv.timing import Timing, measure
from sepconv.train.config import TrainConfig
from sepconv.train.loop import ModelFactory, compile_steps, prepare
from sepconv.train.parallel import put_global_batch
from sepconv.train.step import TrainState, initial_state


def compiled_steps(config: TrainConfig, dataset: Dataset | None = None, *,
                   state: TrainState | None = None,
                   model_factory: ModelFactory | None = None,
                   devices: Sequence[jax.Device] | None = None):
  """(setup, state, train step, eval step, compile ms) of ``config``: what ``time_steps``
  times, from ``state`` (default: ``config``'s initial state). Called ahead, it leaves the
  compiled steps in this process and in the persistent compilation cache, so timing them
  later compiles nothing."""
  setup = prepare(config, dataset, model_factory=model_factory, devices=devices)
  if state is None:
    state = initial_state(setup.spec, setup.dataset.input_shape, config.seed)
  start = time.perf_counter()
  step_fn, eval_fn = compile_steps(setup, state)
  return setup, state, step_fn, eval_fn, (time.perf_counter() - start) * 1e3


def time_steps(config: TrainConfig, dataset: Dataset | None = None, *, warmup: int = 2,
               repeats: int = 10, budget_s: float | None = None,
               state: TrainState | None = None,
               model_factory: ModelFactory | None = None,
               devices: Sequence[jax.Device] | None = None) -> tuple[Timing, Timing]:
  """(train step Timing, eval step Timing) of ``config`` on the first training batch.

  Args:
    config: the run (its batch size is the timed batch).
    dataset: the run's data set (default: loaded from ``config``).
    warmup, repeats, budget_s: as ``sepconv.timing.measure``.
    state: the state the steps start from (donated); default: ``config``'s initial state.
      Parameters and optimiser state do not depend on the conv implementation, so the
      initial state of the same run with another ``impl`` serves, and timing several
      implementations compiles one initialisation.
    model_factory, devices: as ``sepconv.train.train``.

  Returns:
    The train step's Timing (its ``compile_ms`` covers both steps; near zero when this
    process compiled them already) and the eval step's (a forward pass in inference mode,
    loss and accuracy sums included).
  """
  setup, state, step_fn, eval_fn, compile_ms = compiled_steps(
      config, dataset, state=state, model_factory=model_factory, devices=devices)
  data, batch = setup.dataset, config.batch_size
  x, y, w = put_global_batch(setup.mesh, data.x_train[:batch], data.y_train[:batch],
                             np.ones(batch, np.float32))
  holder = [state]

  def step():
    holder[0] = step_fn(holder[0], x, y)  # the state is donated, as in the loop
    return holder[0].loss_sum
  times, _, kept = measure(step, warmup=warmup, repeats=repeats, budget_s=budget_s)
  train = Timing(tuple(times), compile_ms, kept)
  times, _, kept = measure(lambda: eval_fn(holder[0], x, y, w), warmup=warmup, repeats=repeats,
                           budget_s=budget_s)
  return train, Timing(tuple(times), None, kept)
