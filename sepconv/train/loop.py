"""``train``: the epoch loop tying data, model, optimiser, mesh, checkpoints and records.

Everything a run produces lives in its ``out_dir``: ``config.json`` (the run's
identity), ``checkpoints/`` (orbax, the latest two), and ``metrics.jsonl`` (one
record per epoch, then one ``train_result`` record). Calling ``train`` again with the
same ``out_dir`` resumes from the latest checkpoint and, because the data order of
epoch e is a pure function of (seed, e) and each step's augmentation key is
``fold_in(rng, step)``, ends with exactly the parameters of an uninterrupted run
(on the same devices with the same convolution implementations; ``impl='auto'``
keeps its choices in an on-disk cache, so a resumed process makes the same ones).
An epoch interrupted after its record was written but before its checkpoint is
recomputed and recorded again; readers keep the last record per epoch.

What ends a run early (``sepconv.train.faults``): a non-finite loss or parameter raises
``Diverged`` naming the first non-finite step (found by replaying, from the last
checkpoint, the steps since it; no checkpoint of a diverged state is written); SIGINT or
SIGTERM checkpoints the step in progress and raises ``Interrupted`` (the run resumes
there); a checkpoint the disk cannot take raises ``StorageError``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from sepconv import validate
from sepconv.conv import policy
from sepconv.data import Dataset, fold_split, load_dataset
from sepconv.provenance import provenance
from sepconv.records import append_record, read_records
from sepconv.train.checkpoint import Checkpoints
from sepconv.train.config import check_resumable, TrainConfig
from sepconv.train.faults import (check_finite, Diverged, Interrupted, likely_cause, NonFinite,
                                  params_finite, StopSignals)
from sepconv.train.parallel import (batch_sharded, check_batch, make_mesh,
                                    maybe_initialize_distributed, put_global_batch)
from sepconv.train.progress import Progress
from sepconv.train.step import (COMPUTE_DTYPES, eval_step, Executables, initial_state,
                                normalization, reset_metrics, StepSpec, train_step, TrainState)

METRICS_FILE = "metrics.jsonl"

ModelFactory = Callable[[TrainConfig, int, tuple[int, int, int]], nn.Module]


def _build_model(config: TrainConfig, num_classes: int, input_shape: tuple[int, int, int]
                 ) -> nn.Module:
  """The model ``config`` names, from ``sepconv.models`` (imported only when needed)."""
  from sepconv.models import build_model
  return build_model(config.model, num_classes=num_classes, conv=config.conv,
                     width_multiplier=config.width_multiplier, input_size=input_shape[0],
                     impl=config.impl, dtype=COMPUTE_DTYPES[config.dtype])


def _model_costs(config: TrainConfig, num_classes: int, input_shape: tuple[int, int, int],
                 params, *, from_cost_model: bool = True) -> dict:
  """Parameter counts and mult-adds of the trained model.

  ``params`` and ``mult_adds`` follow the papers (``sepconv.models.model_summary``:
  conv and dense weights plus biases, no BatchNorm; every tap counted, padding
  included). ``trainable_params`` counts the 'params' tree itself (BatchNorm scale and
  bias included, statistics not). A model from a custom factory has no analytic cost:
  its ``params`` is the tree count and ``mult_adds`` is None.
  """
  trainable = int(sum(np.size(x) for x in jax.tree.leaves(params)))
  if not from_cost_model:
    return {"params": trainable, "trainable_params": trainable, "mult_adds": None}
  from sepconv.models import model_summary
  summary = model_summary(config.model, num_classes=num_classes, conv=config.conv,
                          width_multiplier=config.width_multiplier, input_size=input_shape[0],
                          in_channels=input_shape[2])
  return {"params": summary.params, "trainable_params": trainable,
          "mult_adds": summary.mult_adds}


@dataclasses.dataclass(frozen=True)
class Setup:
  """The static pieces of a run: its data, mesh, model and compiled-step spec."""
  config: TrainConfig
  dataset: Dataset
  mesh: Mesh
  model: nn.Module
  spec: StepSpec
  steps_per_epoch: int


def prepare(config: TrainConfig, dataset: Dataset | None = None, *,
            model_factory: ModelFactory | None = None,
            devices: Sequence[jax.Device] | None = None) -> Setup:
  """Loads the data set (unless given), checks the batch, and builds mesh, model and spec."""
  if dataset is None:  # a given data set is the run's own (its fold already taken)
    dataset = fold_split(load_dataset(config.dataset, config.data_dir, download=config.download),
                         config.folds, config.fold, config.seed)
  mesh = make_mesh(devices)
  batch = config.batch_size
  check_batch(batch, mesh)
  if batch > dataset.num_train:
    raise ValueError(f"batch_size (={batch}) must not exceed the training split "
                     f"(={dataset.num_train} images of {dataset.name})")
  steps_per_epoch = dataset.num_train // batch  # the last partial batch is dropped
  model = (model_factory or _build_model)(config, dataset.num_classes, dataset.input_shape)
  spec = StepSpec.create(model, config, steps_per_epoch, dataset, mesh)
  return Setup(config, dataset, mesh, model, spec, steps_per_epoch)


# Compiled (train, eval) steps of this process, by everything the compilation depends on:
# the runs of a sweep that differ only in seed and fold share one. A sweep's worker trains
# several variants, each with the steps its benchmark times compiled beside its own, before
# the benchmarks run: the last 16 are kept (a digits model's pair holds well under 1 MB).
_COMPILED = Executables(keep=16)


def _compile_key(setup: Setup, state: TrainState) -> tuple:
  leaves = tuple((leaf.shape, leaf.dtype, getattr(leaf, "sharding", None))
                 for leaf in jax.tree.leaves(state))
  return (setup.spec, setup.config.batch_size, tuple(setup.dataset.input_shape),
          np.dtype(setup.dataset.x_train.dtype).name, jax.tree.structure(state), leaves,
          policy.trace_key())  # impl='auto' resolves at trace time


def compile_steps(setup: Setup, state: TrainState):
  """The run's train step (state, images, labels) and eval step (..., weights), compiled
  once per process for equal specs (seeds and folds of one variant share them), the data
  set's normalisation bound."""
  batch, dataset = setup.config.batch_size, setup.dataset
  key = _compile_key(setup, state)
  stats = normalization(dataset, setup.mesh)

  def build():
    data = batch_sharded(setup.mesh)
    x_spec = jax.ShapeDtypeStruct((batch, *dataset.input_shape), dataset.x_train.dtype,
                                  sharding=data)
    y_spec = jax.ShapeDtypeStruct((batch,), jnp.int32, sharding=data)
    w_spec = jax.ShapeDtypeStruct((batch,), jnp.float32, sharding=data)
    return (train_step.lower(state, x_spec, y_spec, stats, spec=setup.spec).compile(),
            eval_step.lower(state, x_spec, y_spec, w_spec, stats, spec=setup.spec).compile())
  step_fn, eval_fn = _COMPILED.get(key, build)
  return (lambda state, x, y: step_fn(state, x, y, stats),
          lambda state, x, y, w: eval_fn(state, x, y, w, stats))


def epoch_order(seed: int, epoch: int, num_examples: int) -> np.ndarray:
  """The training permutation of ``epoch``: a pure function of (seed, epoch)."""
  return np.random.default_rng([seed, epoch]).permutation(num_examples)


def _fetch(x: jax.Array) -> np.ndarray:
  """A replicated array's value on this host (works when other hosts hold shards too)."""
  return np.asarray(x.addressable_data(0))


def _evaluate(eval_fn, state: TrainState, mesh, images: np.ndarray, labels: np.ndarray,
              batch_size: int) -> tuple[float, float]:
  """(mean loss, accuracy) over all rows; the last batch is zero-padded and weighted out."""
  sums = []
  for start in range(0, len(images), batch_size):
    x, y = images[start:start + batch_size], labels[start:start + batch_size]
    weights = np.ones(len(x), np.float32)
    if len(x) < batch_size:
      pad = batch_size - len(x)
      x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
      y = np.concatenate([y, np.zeros(pad, y.dtype)])
      weights = np.concatenate([weights, np.zeros(pad, np.float32)])
    sums.append(eval_fn(state, *put_global_batch(mesh, x, y, weights)))
  loss_sum, correct = np.sum([_fetch(s) for s in sums], axis=0, dtype=np.float64)
  return float(loss_sum) / len(images), float(correct) / len(images)


def _epoch_records(path: Path) -> dict[int, dict]:
  """The last epoch record per epoch already in ``path``."""
  if not path.exists():
    return {}
  return {r["epoch"]: r for r in read_records(path) if r.get("kind") == "epoch"}


def train(config: TrainConfig, out_dir, *, dataset: Dataset | None = None,
          model_factory: ModelFactory | None = None,
          devices: Sequence[jax.Device] | None = None,
          stop_after_steps: int | None = None, progress: bool = True) -> dict:
  """Trains (or resumes) the run ``config`` in ``out_dir``; returns its final metrics.

  Args:
    config: the run.
    out_dir: directory for config.json, checkpoints/ and metrics.jsonl; an existing run
      there with the same config is resumed, a different one is refused.
    dataset: use this data set instead of loading ``config.dataset``.
    model_factory: ``(config, num_classes, input_shape) -> flax Module`` following the
      ``sepconv.models.build_model`` protocol; defaults to ``sepconv.models``.
    devices: devices of the data-parallel mesh; default all devices of all hosts.
    stop_after_steps: stop abruptly after this many global steps, without saving, as a
      killed process would (for testing resumption); returns ``{'completed': False, ...}``.
    progress: draw the progress bar on stderr (process 0 only).

  Returns:
    A dict with test_accuracy, test_loss, train_accuracy, train_loss (clean, full
    training split), train_seconds (time in training steps over all sessions of the
    run, compilation excluded), images_per_second, compile_seconds, wall_seconds (this
    call, start to end), params, trainable_params, mult_adds (see ``_model_costs``),
    steps, epochs, config, provenance; it is also appended to metrics.jsonl as the
    'train_result' record.
  """
  wall_start = time.perf_counter()
  maybe_initialize_distributed()
  out_dir = validate.usable_dir(out_dir, "out_dir")
  metrics_path = out_dir / METRICS_FILE
  lead = jax.process_index() == 0

  setup = prepare(config, dataset, model_factory=model_factory, devices=devices)
  dataset, mesh, spec, steps_per_epoch = setup.dataset, setup.mesh, setup.spec, setup.steps_per_epoch
  batch = config.batch_size
  total_steps = config.epochs * steps_per_epoch

  check_resumable(config, out_dir, write=lead)  # after validation: a refusal leaves no trace
  checkpoints = Checkpoints(out_dir / "checkpoints")
  bar = Progress(config.epochs, steps_per_epoch, enabled=progress and lead)
  finished_cleanly = False
  try:
    with StopSignals() as stop:
      state = initial_state(spec, dataset.input_shape, config.seed)
      start, state = checkpoints.restore_newest_readable(state)
      records = _epoch_records(metrics_path)
      if start >= total_steps and metrics_path.exists():
        finished = [r for r in read_records(metrics_path) if r.get("kind") == "train_result"]
        if finished:
          finished_cleanly = True
          return finished[-1]

      compile_start = time.perf_counter()
      step_fn, eval_fn = compile_steps(setup, state)
      compile_seconds = time.perf_counter() - compile_start

      def evaluate(state, images, labels):
        return _evaluate(eval_fn, state, mesh, images, labels, batch)

      for epoch in range(start // steps_per_epoch, config.epochs):
        if stop.requested is not None:  # arrived before a step: the checkpoint is on disk
          raise Interrupted(stop.requested, max(start, epoch * steps_per_epoch) or None)
        first = max(start - epoch * steps_per_epoch, 0)  # > 0 only when resuming mid-epoch
        try:
          done = _train_epoch(step_fn, state, dataset, mesh, config, epoch, first,
                              steps_per_epoch, bar, checkpoints, stop_after_steps, stop)
        except NonFinite as e:
          raise _diverged(e, setup, step_fn, checkpoints, out_dir, lead) from None
        if done is None:
          finished_cleanly = True
          return {"completed": False, "step": stop_after_steps}
        state, seconds = done
        record = _epoch_record(state, config, epoch, first, steps_per_epoch, seconds, bar,
                               evaluate(state, dataset.x_test, dataset.y_test))
        record["run"] = out_dir.name
        if lead:
          append_record(metrics_path, record)
        records[epoch + 1] = record
        since = time.monotonic() - checkpoints.last_save
        if epoch + 1 == config.epochs or since >= config.checkpoint_every_seconds:
          checkpoints.save((epoch + 1) * steps_per_epoch, state)

      train_loss, train_acc = evaluate(state, dataset.x_train, dataset.y_train)
      test_loss, test_acc = evaluate(state, dataset.x_test, dataset.y_test)
      train_seconds = sum(r["train_seconds"] for r in records.values())
      train_images = sum(r["train_images"] for r in records.values())
      result = {
          "kind": "train_result", "run": out_dir.name, "dataset": dataset.name,
          "test_accuracy": test_acc, "test_loss": test_loss,
          "train_accuracy": train_acc, "train_loss": train_loss,
          "train_seconds": train_seconds,
          "images_per_second": train_images / train_seconds if train_seconds else None,
          "compile_seconds": compile_seconds, "epochs": config.epochs, "steps": total_steps,
          "wall_seconds": time.perf_counter() - wall_start,
          **_model_costs(config, dataset.num_classes, dataset.input_shape, state.params,
                         from_cost_model=model_factory is None),
          "config": config.to_json(), "provenance": provenance(), "completed": True,
      }
      if lead:
        append_record(metrics_path, result)
      finished_cleanly = True
      return result
  finally:
    bar.close()
    checkpoints.close(quiet=not finished_cleanly)


def _first_nonfinite_step(setup: Setup, step_fn, checkpoints: Checkpoints, like: TrainState,
                          detected: int) -> tuple[int, int]:
  """(first step with a non-finite loss or parameter, last checkpoint's step), found by
  replaying the steps since the last checkpoint (failure path only)."""
  config, dataset, mesh, spe = setup.config, setup.dataset, setup.mesh, setup.steps_per_epoch
  checkpoints.wait()
  start = checkpoints.latest_step() or 0
  state = (checkpoints.restore(start, like) if start
           else initial_state(setup.spec, dataset.input_shape, config.seed))
  batch = config.batch_size
  for step in range(start, detected):
    epoch, i = divmod(step, spe)
    if i == 0:
      state = reset_metrics(state, mesh)
    idx = epoch_order(config.seed, epoch, dataset.num_train)[i * batch:(i + 1) * batch]
    state = step_fn(state, *put_global_batch(mesh, dataset.x_train[idx], dataset.y_train[idx]))
    if not (np.isfinite(_fetch(state.loss_sum)) and params_finite(state.params)):
      return step + 1, start
  return detected, start


def _diverged(error: NonFinite, setup: Setup, step_fn, checkpoints: Checkpoints, out_dir: Path,
              lead: bool) -> Diverged:
  """The ``Diverged`` error of a run, with its first non-finite step (also recorded)."""
  step, last = _first_nonfinite_step(setup, step_fn, checkpoints, error.state, error.step)
  epoch = (step - 1) // setup.steps_per_epoch + 1
  cause = likely_cause(setup.config, error.loss, error.params_ok)
  if lead:
    append_record(out_dir / METRICS_FILE, {"kind": "diverged", "run": out_dir.name, "epoch": epoch,
                                           "step": step, "cause": cause, "last_checkpoint": last})
  return Diverged(epoch, step, cause, last)


def _train_epoch(step_fn, state: TrainState, dataset: Dataset, mesh, config: TrainConfig,
                 epoch: int, first: int, steps_per_epoch: int, bar: Progress,
                 checkpoints: Checkpoints, stop_after_steps: int | None, stop: StopSignals
                 ) -> tuple[TrainState, float] | None:
  """Steps ``first`` to the end of ``epoch``: (state, seconds), or None if stopped.

  Raises ``NonFinite`` when the loss or parameters stop being finite, ``Interrupted``
  (after checkpointing the step) when a stop signal arrived mid-epoch; a signal during
  the epoch's last step is acted on once its record and checkpoint are written.
  """
  batch = config.batch_size
  if first == 0:
    state = reset_metrics(state, mesh)
  order = epoch_order(config.seed, epoch, dataset.num_train)
  epoch_start = time.perf_counter()
  for i in range(first, steps_per_epoch):
    idx = order[i * batch:(i + 1) * batch]
    state = step_fn(state, *put_global_batch(mesh, dataset.x_train[idx], dataset.y_train[idx]))
    step = epoch * steps_per_epoch + i + 1
    if bar.due():  # fetching metrics waits for the device: only when a redraw is due
      loss_sum, correct, seen = (_fetch(v) for v in (state.loss_sum, state.correct_sum,
                                                     state.seen))
      check_finite(state, step, float(loss_sum / seen))
      rate = (i + 1 - first) * batch / (time.perf_counter() - epoch_start)
      bar.draw(epoch, i + 1, loss_sum / seen, correct / seen, rate)
    if stop_after_steps is not None and step >= stop_after_steps:
      return None
    every = config.checkpoint_every_steps
    mid_epoch = i + 1 < steps_per_epoch  # epoch ends save anyway, after their record
    periodic = bool(every) and step % every == 0 and mid_epoch
    stopping = stop.requested is not None and mid_epoch
    if periodic or stopping:
      check_finite(state, step)  # never checkpoint a diverged state
      checkpoints.save(step, state)
    if stopping:
      raise Interrupted(stop.requested, step)
  jax.block_until_ready(state)
  check_finite(state, (epoch + 1) * steps_per_epoch)
  return state, time.perf_counter() - epoch_start


def _epoch_record(state: TrainState, config: TrainConfig, epoch: int, first: int,
                  steps_per_epoch: int, seconds: float, bar: Progress,
                  test: tuple[float, float]) -> dict:
  """The JSON record of a finished epoch (and its final progress line)."""
  loss_sum, correct, seen = (float(_fetch(v)) for v in (state.loss_sum, state.correct_sum,
                                                       state.seen))
  images = (steps_per_epoch - first) * config.batch_size
  record = {
      "kind": "epoch", "epoch": epoch + 1, "step": (epoch + 1) * steps_per_epoch,
      "train_loss": loss_sum / seen, "train_accuracy": correct / seen,
      "test_loss": test[0], "test_accuracy": test[1],
      "images_per_second": images / seconds, "train_seconds": seconds, "train_images": images,
      "resumed": bool(first), "config": config.to_json(),
  }
  bar.draw(epoch, steps_per_epoch, record["train_loss"], record["train_accuracy"],
           record["images_per_second"], final=True,
           extra=f" | test loss {test[0]:.4f} acc {test[1]:.4f}")
  return record


def restore_variables(config: TrainConfig, out_dir, *, dataset: Dataset | None = None,
                      model_factory: ModelFactory | None = None,
                      devices: Sequence[jax.Device] | None = None) -> tuple[nn.Module, dict]:
  """The model of ``config`` and its variables from the latest checkpoint in ``out_dir``.

  Args:
    config: the run's config (as in ``out_dir/config.json``).
    out_dir: the run directory.
    dataset: the run's data set (default: loaded from ``config``).
    model_factory: as in ``train``.
    devices: mesh devices for the restored arrays (default: all).

  Returns:
    ``(model, {'params': ..., 'batch_stats': ...})``, ready for ``model.apply``.
  """
  setup = prepare(config, dataset, model_factory=model_factory, devices=devices)
  dataset, model, spec = setup.dataset, setup.model, setup.spec
  checkpoints = Checkpoints(Path(out_dir) / "checkpoints")
  try:
    step = checkpoints.latest_step()
    if step is None:
      raise FileNotFoundError(f"no checkpoint under {checkpoints.directory}")
    state = checkpoints.restore(step, initial_state(spec, dataset.input_shape, config.seed))
  finally:
    checkpoints.close()
  return model, {"params": state.params, "batch_stats": state.batch_stats}


def read_result(out_dir) -> dict:
  """The final record of the finished run in ``out_dir``."""
  path = Path(out_dir) / METRICS_FILE
  finished = [r for r in read_records(path) if r.get("kind") == "train_result"]
  if not finished:
    raise ValueError(f"{path} has no train_result record: the run has not finished")
  return finished[-1]


__all__ = ["COMPUTE_DTYPES", "epoch_order", "ModelFactory", "read_result", "restore_variables",
           "train"]
