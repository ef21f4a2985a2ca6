"""The blocks benchmark: other people's Flax blocks with and without the one-argument plug-in.

For each block of ``sepconv.bench.flax_blocks.BLOCKS`` and each mode ('forward': an
inference call; 'train_step': forward, backward and an SGD update with train-mode
BatchNorm), times three variants side by side:

* 'flax': the block as written (``nn.Conv`` on ``lax.conv_general_dilated``);
* 'flax + sepconv': the same block with ``conv_general_dilated=sepconv.conv_general_dilated``;
* 'torch': PyTorch's equivalent (``sepconv.bench.torch_blocks``), where torch is installed
  and JAX runs on CPU.

Each record has the block, variant, mode, shape, timing statistics
(``sepconv.timing``), the drop-in's largest relative difference from 'flax' (forward
output, or updated parameters), and provenance. ``sepconv report flax_blocks`` renders them
(``sepconv.report.blocks``).

  sepconv bench blocks                       # appends to results/flax_blocks/records.jsonl
  sepconv report flax_blocks                 # rewrites the tables from the records
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sepconv import validate
from sepconv.bench import torch_peer
from sepconv.bench.flax_blocks import BLOCKS, block_input
from sepconv.conv import conv_general_dilated
from sepconv.provenance import provenance
from sepconv.records import RECORDS_FILE
from sepconv.records.schema import layer_bench_record
from sepconv.timing import time_jitted

RECORD_KIND = "flax_block"
MODES = ("forward", "train_step")
VARIANTS = ("flax", "flax + sepconv", "torch")
DEFAULT_RECORDS = f"results/flax_blocks/{RECORDS_FILE}"


def _rel_diff(a, b) -> float:
  leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
  worst = 0.0
  for x, y in zip(leaves_a, leaves_b):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    worst = max(worst, float(np.abs(x - y).max() / max(np.abs(y).max(), 1e-30)))
  return worst


def _jax_case(block, conv, x, mode: str):
  """(function, arguments) of one timed JAX call."""
  model = block.build(conv)
  variables = model.init(jax.random.key(0), x, train=False)
  if mode == "forward":
    return (lambda v, x: model.apply(v, x, train=False)), (variables, x)
  params = variables["params"]
  stats = {k: v for k, v in variables.items() if k != "params"}
  optimizer = optax.sgd(1e-3)

  def step(params, stats, opt_state, x):
    def loss(p):
      y, updates = model.apply({"params": p, **stats}, x, train=True, mutable=list(stats))
      return jnp.mean(jnp.square(y.astype(jnp.float32))), updates
    grads, updates = jax.grad(loss, has_aux=True)(params)
    changes, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, changes), updates, opt_state

  return step, (params, stats, optimizer.init(params), x)


def bench_blocks(blocks: Sequence[str] | None = None, *, batch: int = 32, size: int = 56,
                 dtype: str = "float32", modes: Sequence[str] = MODES, torch: bool = True,
                 warmup: int = 2, repeats: int = 10, budget_s: float | None = 30.0,
                 min_repeats: int = 3, on_record: Callable[[dict], None] | None = None,
                 run_id: str | None = None, progress: bool = True) -> list[dict]:
  """Times every (block, mode, variant); returns the records (and passes each to ``on_record``).

  Args:
    blocks: names in ``BLOCKS`` (default all).
    batch, size: input batch and square side (reference: 32 and 56).
    dtype: 'float32' or 'bfloat16' (the torch peer runs float32 only).
    modes: from ``MODES``.
    torch: also time PyTorch's equivalents where installed (CPU only).
    warmup, repeats, budget_s, min_repeats: as ``sepconv.timing.measure``.
    run_id: shared by the records of one invocation (default: from time and pid).
  """
  blocks = tuple(BLOCKS) if blocks is None else tuple(blocks)
  for name in blocks:
    validate.one_of(name, "block", BLOCKS)
  for mode in modes:
    validate.one_of(mode, "mode", MODES)
  validate.one_of(dtype, "dtype", ("float32", "bfloat16"))
  batch, size = validate.positive_int(batch, "batch"), validate.positive_int(size, "size")
  run_id = run_id or f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
  prov = provenance()
  platform = prov["platform"]
  use_torch, torch_reason = (torch_peer.torch_status(platform) if torch else (False, "not asked"))
  use_torch = use_torch and platform == "cpu" and dtype == "float32"
  records = []

  def emit(block, mode, variant, timing=None, status="ok", reason=None, **extra):
    record = layer_bench_record(
        RECORD_KIND, run_id=run_id, mode=mode, status=status,
        config={"batch": batch, "height": size, "width": size, "channels": block.channels,
                "dtype": dtype},
        provenance=prov, timing=None if timing is None else timing.summary(), block=block.name,
        description=block.description, variant=variant, reason=reason, **extra)
    records.append(record)
    if on_record is not None:
      on_record(record)
    if progress:
      what = f"{record['median_ms']:.2f} ms" if status == "ok" else f"{status}: {reason}"
      print(f"[blocks] {block.name} {mode} {variant}: {what}", file=sys.stderr)

  for name in blocks:
    block = BLOCKS[name]
    x = block_input(block, batch, size, jnp.dtype(dtype))
    for mode in modes:
      reference = None
      for variant, conv in (("flax", None), ("flax + sepconv", conv_general_dilated)):
        fn, args = _jax_case(block, conv, x, mode)
        timing, out, _ = time_jitted(fn, args, warmup=warmup, repeats=repeats, budget_s=budget_s,
                                     min_repeats=min_repeats)
        out = out if mode == "forward" else out[0]  # updated parameters
        err = None if reference is None else _rel_diff(out, reference)
        reference = out if reference is None else reference
        emit(block, mode, variant, timing, max_rel_diff_vs_flax=err)
      if use_torch:
        from sepconv.bench.torch_blocks import time_torch_block
        timing, extra = time_torch_block(name, np.asarray(x, np.float32), mode, warmup=warmup,
                                         repeats=repeats, budget_s=budget_s,
                                         min_repeats=min_repeats)
        emit(block, mode, "torch", timing, **extra)
      elif torch:
        emit(block, mode, "torch", status="skipped",
             reason=torch_reason or f"torch peer runs float32 on CPU (here {dtype}, {platform})")
  return records
