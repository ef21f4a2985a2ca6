"""Timing a full training step (forward, backward, SGD-with-momentum update) per conv impl.

The model is any Flax linen module following the project's model protocol:
``model.init(rng, x, train=False)`` gives {'params', 'batch_stats'} and
``model.apply(variables, x, train=True, mutable=['batch_stats'])`` gives
``((logits, features), updates)``. ``bench_train_step`` takes a factory
``impl -> module`` so any such model can be timed; ``model_factory`` builds the
project's own models.

The step is jitted with its state donated and fed back, as in a training loop, so the
parameters, batch statistics and optimiser state are updated in their own buffers; the
activations and gradients are still fresh XLA:CPU buffers every step, whose first touches
page-fault unless the process keeps freed host memory (``sepconv.hostmem``, which the
command line does; recorded in each record). The timed calls end in ``block_until_ready``;
compile time is reported apart. The implementations' steps are timed side by side, in
interleaved rounds (``sepconv.timing.side_by_side``), so their ratios are measured under
the same load; a step more than ``APART_FACTOR`` times slower than the fastest (plain XLA's)
in rounds of its own, after.

PyTorch is timed beside it as a peer (``torch_peer_factory``): the twin of the same
architecture (``sepconv.bench.torch_models``), in both memory layouts, its records named
``torch_nchw`` and ``torch_channels_last`` in place of an impl.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sepconv import conv as conv_lib, hostmem, validate
from sepconv.timing import APART_FACTOR, Timing, compile_ahead, side_by_side, xla_cost
from sepconv.models import build_model
from sepconv.provenance import provenance
from sepconv.records.schema import layer_bench_record
from sepconv.train.step import update

RECORD_KIND = "train_step"
COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


@dataclasses.dataclass(frozen=True)
class TrainStepConfig:
  """The timed training step: model, input size and optimiser."""
  model: str = "mobilenet_v1"
  conv: str = "dws"  # Spectrum point of every block ('dws' is the paper's MobileNet).
  batch: int = 32
  image_size: int = 64
  width_multiplier: float = 0.5
  num_classes: int = 10
  dtype: str = "float32"
  learning_rate: float = 0.1  # SGD step size; any value times the same.
  momentum: float = 0.9

  def __post_init__(self):
    for name in ("batch", "image_size", "num_classes"):
      value = getattr(self, name)
      validate.positive_int(value, name)
    if not self.width_multiplier > 0:
      raise ValueError(f"width_multiplier (={self.width_multiplier}) must be positive")
    if self.dtype not in COMPUTE_DTYPES:
      raise ValueError(f"dtype (={self.dtype!r}) must be one of {tuple(COMPUTE_DTYPES)}")


def model_factory(config: TrainStepConfig) -> Callable[[str], object]:
  """impl -> the project's model for ``config`` (``sepconv.models.build_model``)."""
  return lambda impl: build_model(config.model, num_classes=config.num_classes, conv=config.conv,
                                  width_multiplier=config.width_multiplier,
                                  input_size=config.image_size, impl=impl,
                                  dtype=COMPUTE_DTYPES[config.dtype])


def torch_peer_factory(config: TrainStepConfig) -> Callable[[], object]:
  """() -> the PyTorch twin of ``model_factory(config)``'s model (torch imported on call)."""
  from sepconv.bench import torch_models
  from sepconv.models import model_architecture
  if config.dtype != "float32":
    raise ValueError(f"the torch peer times float32 only, not dtype (={config.dtype!r})")
  arch = model_architecture(config.model, num_classes=config.num_classes, conv=config.conv,
                            width_multiplier=config.width_multiplier,
                            input_size=config.image_size)
  return lambda: torch_models.torch_twin(arch, (config.image_size, config.image_size, 3))


def make_step(model, tx: optax.GradientTransformation) -> Callable:
  """(params, batch_stats, opt_state, x, y) -> (params, batch_stats, opt_state, loss).

  The training loop's own update (``sepconv.train.step.update``), without its data pipeline.
  """
  def step(params, batch_stats, opt_state, x, y):
    return update(model, tx, params, batch_stats, opt_state, x, y)[:4]
  return step


def random_batch(config: TrainStepConfig, seed: int = 0) -> tuple[jax.Array, jax.Array]:
  """Standard-normal RGB images and random labels of ``config``'s batch and size."""
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.standard_normal(
      (config.batch, config.image_size, config.image_size, 3), dtype=np.float32))
  y = jnp.asarray(rng.integers(0, config.num_classes, config.batch), jnp.int32)
  return x, y


def prepare_train_step(model, x: jax.Array, y: jax.Array, *, learning_rate: float = 0.1,
                       momentum: float = 0.9, seed: int = 0) -> tuple[Callable[[], Any], Any, float]:
  """Initialises ``model`` and compiles its training step on the batch ``(x, y)``.

  Args:
    model: a Flax module following the model protocol (module docstring).
    x, y: the batch every step sees (images NHWC, integer labels).
    learning_rate, momentum: the SGD step (any values time the same).
    seed: the parameters' initialisation.

  Returns:
    (one step: the donated state fed back, as in a loop, its loss computed, returned;
    the compiled step; compile ms). ``call.state`` holds (params, batch_stats, opt_state).
  """
  variables = jax.jit(lambda: model.init(jax.random.PRNGKey(seed), x, train=False))()
  params, batch_stats = variables["params"], variables.get("batch_stats", {})
  tx = optax.sgd(learning_rate, momentum=momentum)
  state = [params, batch_stats, tx.init(params)]
  compiled, compile_ms = compile_ahead(
      jax.jit(make_step(model, tx), donate_argnums=(0, 1, 2)), (*state, x, y))

  def call():
    *state[:], loss = compiled(*state, x, y)  # Donated state fed back, as in a loop.
    return jax.block_until_ready(loss)
  call.state = state
  return call, compiled, compile_ms


def step_fields(call, compiled, loss) -> dict:
  """A timed step's record fields: parameter count, final loss, XLA's cost."""
  return {"param_count": int(sum(np.size(p) for p in jax.tree.leaves(call.state[0]))),
          "final_loss": float(loss), **xla_cost(compiled)}


def bench_train_step(factory: Callable[[str], object], config: TrainStepConfig,
                     impls: Iterable[str], *, warmup: int = 2, repeats: int = 10,
                     budget_s: float | None = 60.0,
                     on_record: Callable[[dict], None] | None = None,
                     run_id: str | None = None, progress: bool = False,
                     torch_peer: Callable[[], object] | None = None) -> list[dict]:
  """Times the training step of ``factory(impl)`` for each impl.

  Args:
    factory: impl name -> Flax module following the model protocol (module docstring).
    config: batch, image size, model name and width (recorded), dtype, optimiser.
    impls: conv implementations, each checked against ``sepconv.conv.IMPLS``.
    warmup, repeats, budget_s: as ``sepconv.timing.measure``, per impl.
    on_record: called with each record as soon as it exists.
    run_id: shared by the records of one invocation.
    progress: one line per impl on stderr.
    torch_peer: () -> the PyTorch twin of the model (``torch_peer_factory``), timed after
      the impls in both layouts (``sepconv.bench.torch_models.LAYOUTS``); None: no peer.

  Returns:
    One record per impl ('unsupported' where the model or conv rejects the impl), then
    one per PyTorch layout.
  """
  impls = list(impls)
  for impl in impls:
    if impl not in conv_lib.IMPLS:
      raise ValueError(f"impl (={impl!r}) must be one of {tuple(conv_lib.IMPLS)}")
  run_id = run_id or f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
  prov = provenance()
  host_memory_kept = hostmem.kept()  # process-wide (``sepconv.hostmem``), recorded
  records = []

  def done(record):
    records.append(record)
    if on_record is not None:
      on_record(record)
    if progress:
      what = (f"{record['median_ms']:.1f} ms, {record['images_per_s']:.1f} images/s"
              if record["status"] == "ok" else f"unsupported: {record['reason']}")
      print(f"[bench] train step {config.model} {config.dtype} {record['impl']}: {what}",
            file=sys.stderr, flush=True)

  def common(impl):
    return dict(run_id=run_id, mode="train_step", config=dataclasses.asdict(config),
                provenance=prov, impl=impl, optimizer="sgd+momentum",
                keep_freed_host_memory=host_memory_kept)

  prepared, unsupported = {}, {}
  x, y = random_batch(config)
  for impl in impls:
    try:
      prepared[impl] = prepare_train_step(factory(impl), x, y,
                                          learning_rate=config.learning_rate,
                                          momentum=config.momentum)
    except ValueError as e:
      unsupported[impl] = str(e)
  # Side by side, in interleaved rounds: the ratios between implementations are measured
  # under the same load (those far slower than the fastest in rounds of their own).
  timed = side_by_side({impl: call for impl, (call, _, _) in prepared.items()},
                       warmup=warmup, repeats=repeats, budget_s=budget_s,
                       apart_factor=APART_FACTOR, sync=lambda o: o)
  for impl in impls:
    if impl in unsupported:
      done(layer_bench_record(RECORD_KIND, status="unsupported", reason=unsupported[impl],
                              **common(impl)))
      continue
    times, loss, kept = timed[impl]
    call, compiled, compile_ms = prepared.pop(impl)
    timing = Timing(tuple(times), compile_ms, kept)
    done(layer_bench_record(RECORD_KIND, status="ok", timing=timing.summary(),
                            **step_fields(call, compiled, loss),
                            images_per_s=config.batch / (timing.median_ms / 1e3), **common(impl)))
    del call, compiled
  if torch_peer is not None:
    from sepconv.bench import torch_models
    for layout in torch_models.LAYOUTS:
      timing, extra = torch_models.time_torch_train_step(
          torch_peer(), np.asarray(x), np.asarray(y), layout, warmup=warmup, repeats=repeats,
          budget_s=budget_s, learning_rate=config.learning_rate, momentum=config.momentum)
      done(layer_bench_record(
          RECORD_KIND, status="ok", timing=timing.summary(), **extra,
          images_per_s=config.batch / (timing.median_ms / 1e3), **common(layout)))
  return records
