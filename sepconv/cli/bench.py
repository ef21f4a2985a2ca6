"""`sepconv bench`: time conv layers, group-size sweeps and training steps (records for `sepconv report`).

  sepconv bench layer --group-size 1               # one layer, every impl side by side
  sepconv bench sweep --mode both                  # group size 1, 2, 4, ..., C
  sepconv report lowering                          # tables from results/lowering/records.jsonl
  sepconv bench train-step --impl auto,xla         # MobileNet v1 training step
  sepconv bench blocks                             # Flax blocks with and without sepconv
  sepconv bench device                             # a lent TPU or GPU, 8 minutes
"""

from __future__ import annotations

import argparse
import json
import sys

from sepconv.bench.config import DTYPES, LAYERS, LayerConfig
from sepconv.cli import args as cli_args
from sepconv.cli.args import nonnegative_int, positive_float, positive_int
from sepconv.records import RECORDS_FILE

DEFAULT_RECORDS = f"results/lowering/{RECORDS_FILE}"
# The defaults every flag states are the configurations' own.
LAYER = LayerConfig()
# Read by ``sepconv.cli.main`` before JAX starts (``sepconv.hostmem``).
KEEP_HELP = ("keep freed host memory for reuse, so XLA's buffers do not page-fault on every "
             "call (default; process-wide; also off with SEPCONV_KEEP_FREED_HOST_MEMORY=0; "
             "recorded in each record)")


def _int_list(text: str) -> tuple[int, ...]:
  values = tuple(positive_int(t.strip()) for t in text.split(","))
  return values


def _modes(mode: str) -> tuple[str, ...]:
  return ("fwd", "fwdbwd") if mode == "both" else (mode,)


def _add_layer_args(p: argparse.ArgumentParser, *, sweep: bool) -> None:
  c = LAYER
  g = p.add_argument_group(f"layer (default: the reference {c.kernel}x{c.kernel}, "
                           f"{c.height}x{c.width}x{c.in_channels} -> {c.out_channels}, "
                           f"batch {c.batch})")
  for name in ("batch", "height", "width", "in_channels", "out_channels", "kernel", "stride",
               "dilation"):
    g.add_argument("--" + name.replace("_", "-"), type=positive_int, default=getattr(c, name))
  g.add_argument("--padding", default=str(c.padding), help="SAME, VALID or an int")
  g.add_argument("--dtype", choices=DTYPES, default=c.dtype)
  g.add_argument("--layer", choices=LAYERS, default=c.layer,
                 help="a grouped conv, or a grouped spatial conv followed by a dense 1x1 (spatial_pointwise)")
  if sweep:
    g.add_argument("--group-sizes", type=_int_list, default=None,
                   help="comma list of channels per group (default 1, 2, 4, ..., in_channels)")
  else:
    g.add_argument("--group-size", type=positive_int, default=c.group_size,
                   help="channels per group: 1 = depthwise, in_channels = dense")


def _add_timing_args(p: argparse.ArgumentParser, *, default_out: str | None) -> None:
  from sepconv.bench.layer import BenchOptions
  o = BenchOptions()
  g = p.add_argument_group("timing and output")
  g.add_argument("--mode", choices=("fwd", "fwdbwd", "both"), default="both")
  g.add_argument("--impls", default="all", help="comma list of sepconv.conv.IMPLS (default all)")
  g.add_argument("--repeats", type=positive_int, default=o.repeats)
  g.add_argument("--warmup", type=nonnegative_int, default=o.warmup)
  g.add_argument("--budget-s", type=positive_float, default=o.budget_s,
                 help="per case: stop repeating after this many seconds...")
  g.add_argument("--min-repeats", type=positive_int, default=o.min_repeats,
                 help="...once this many timed calls are done")
  g.add_argument("--torch", action=argparse.BooleanOptionalAction, default=o.torch,
                 help="also time torch.nn.functional.conv2d (NCHW and channels-last) if installed")
  g.add_argument("--check", action=argparse.BooleanOptionalAction, default=o.check,
                 help="record each impl's largest relative error against 'xla'")
  g.add_argument("--copy-mib", type=positive_int, default=None,
                 help="array size of the bandwidth measurements (MiB; default 4x the "
                      "last-level cache, at least 1024)")
  g.add_argument("--matmul-n", type=positive_int, default=None,
                 help="matmul size of the FLOP/s measurement (default 2048 CPU, 8192 else)")
  g.add_argument("--keep-freed-host-memory", action=argparse.BooleanOptionalAction,
                 default=True, help=KEEP_HELP)
  g.add_argument("--json", action="store_true", help="print one JSON record per line")
  g.add_argument("--out", default=default_out,
                 help=f"JSON-lines file to append records to (default {default_out or 'none'})")
  g.add_argument("--quiet", action="store_true", help="no progress on stderr")


def _layer_config(args, group_size: int):
  from sepconv.bench.config import LayerConfig
  return LayerConfig(batch=args.batch, height=args.height, width=args.width,
                     in_channels=args.in_channels, out_channels=args.out_channels,
                     kernel=args.kernel, stride=args.stride, dilation=args.dilation,
                     padding=cli_args.padding(args.padding), group_size=group_size, dtype=args.dtype,
                     layer=args.layer)


def _options(args):
  from sepconv.bench.layer import BenchOptions
  return BenchOptions(repeats=args.repeats, warmup=args.warmup, budget_s=args.budget_s,
                      min_repeats=args.min_repeats,
                      torch=args.torch, check=args.check, copy_mib=args.copy_mib,
                      matmul_n=args.matmul_n)


def _sink(path: str | None):
  if path is None:
    return None
  from sepconv.records import append_record
  return lambda record: append_record(path, record)


def _print(records: list[dict], as_json: bool) -> None:
  if as_json:
    for record in records:
      print(json.dumps(record, sort_keys=True))
    return
  import tabulate
  rows = []
  for r in records:
    if r["status"] != "ok":
      rows.append([r["config"].get("group_size", ""), r["mode"], r["impl"], r["status"]])
      continue
    rows.append([r["config"].get("group_size", ""), r["mode"], r["impl"], f"{r['median_ms']:.3f}",
                 f"{r['p25_ms']:.3f}-{r['p75_ms']:.3f}",
                 "" if r.get("compile_ms") is None else f"{r['compile_ms']:.0f}",
                 f"{r['achieved_bytes_per_s'] / 1e9:.2f}" if "achieved_bytes_per_s" in r else "",
                 f"{100 * r['fraction_of_peak_bandwidth']:.1f}" if "fraction_of_peak_bandwidth" in r else "",
                 "" if r.get("max_rel_err_vs_xla") is None else f"{r['max_rel_err_vs_xla']:.1e}"])
  print(tabulate.tabulate(rows, headers=["group size", "mode", "impl", "median ms", "p25-p75 ms",
                                         "compile ms", "GB/s", "% peak BW", "rel err"]))


def run_layer(args) -> int:
  from sepconv.bench.layer import bench_layer, parse_impls
  config = _layer_config(args, args.group_size)
  impls = parse_impls(args.impls, config.layer)
  records = bench_layer(config, impls=impls, modes=_modes(args.mode), options=_options(args),
                        on_record=_sink(args.out), progress=not args.quiet)
  _print(records, args.json)
  return 0


def run_sweep(args) -> int:
  from sepconv.bench.layer import bench_sweep, parse_impls
  base = _layer_config(args, 1)
  impls = parse_impls(args.impls, base.layer)
  records = bench_sweep(base, group_sizes=args.group_sizes, impls=impls, modes=_modes(args.mode),
                        options=_options(args), on_record=_sink(args.out),
                        progress=not args.quiet)
  _print(records, args.json)
  return 0


def run_train_step(args) -> int:
  from sepconv.bench.layer import parse_impls
  from sepconv.bench import torch_peer
  from sepconv.bench.train_step import (TrainStepConfig, bench_train_step, model_factory,
                                        torch_peer_factory)
  config = TrainStepConfig(model=args.model, conv=args.conv, batch=args.batch, image_size=args.image_size,
                           width_multiplier=args.width_multiplier, num_classes=args.num_classes,
                           dtype=args.dtype)
  impls = parse_impls(args.impl)
  peer = None
  if args.torch:
    import jax
    usable, reason = torch_peer.torch_status(jax.default_backend())
    if usable and jax.default_backend() == "cpu" and config.dtype == "float32":
      peer = torch_peer_factory(config)
    elif not args.quiet:
      reason = reason or "the training-step peer times float32 on CPU only"
      print(f"[bench] torch peer skipped: {reason}", file=sys.stderr)
  records = bench_train_step(model_factory(config), config, impls, warmup=args.warmup,
                             repeats=args.repeats, budget_s=args.budget_s,
                             on_record=_sink(args.out), progress=not args.quiet,
                             torch_peer=peer)
  if args.json:
    _print(records, True)
  else:
    for r in records:
      compile_s = "" if r.get("compile_ms") is None else f", compile {r['compile_ms'] / 1e3:.1f} s"
      what = (f"{r['median_ms']:.1f} ms (p25-p75 {r['p25_ms']:.1f}-{r['p75_ms']:.1f}), "
              f"{r['images_per_s']:.1f} images/s{compile_s}"
              if r["status"] == "ok" else f"{r['status']}: {r['reason']}")
      print(f"{r['impl']}: {what}")
  return 0


def run_blocks(args) -> int:
  from sepconv.bench.blocks import MODES, bench_blocks
  blocks = None if args.blocks == "all" else tuple(b.strip() for b in args.blocks.split(","))
  modes = MODES if args.mode == "both" else (args.mode,)
  records = bench_blocks(blocks, batch=args.batch, size=args.size, dtype=args.dtype, modes=modes,
                         torch=args.torch, warmup=args.warmup, repeats=args.repeats,
                         budget_s=args.budget_s, on_record=_sink(args.out), progress=not args.quiet)
  if args.json:
    _print(records, True)
  else:
    for r in records:
      what = f"{r['median_ms']:.2f} ms" if r["status"] == "ok" else f"{r['status']}: {r['reason']}"
      print(f"{r['block']} {r['mode']} {r['variant']}: {what}")
  return 0


def run_device(args) -> int:
  from sepconv.bench.device import run
  for path in run(args.out, quick=args.quick, budget_s=args.budget_s):
    print(path)
  return 0


def register(subparsers) -> None:
  """Adds `sepconv bench {layer,sweep,train-step,blocks}`."""
  bench = subparsers.add_parser("bench", help="benchmark conv implementations and training steps",
                                description=__doc__.splitlines()[0])
  sub = bench.add_subparsers(dest="bench_command", required=True)

  p = sub.add_parser("layer", help="one layer, every implementation side by side")
  _add_layer_args(p, sweep=False)
  _add_timing_args(p, default_out=None)
  p.set_defaults(func=run_layer)

  p = sub.add_parser("sweep", help="one layer shape over group sizes 1, 2, 4, ..., C")
  _add_layer_args(p, sweep=True)
  _add_timing_args(p, default_out=DEFAULT_RECORDS)
  p.set_defaults(func=run_sweep)

  p = sub.add_parser("train-step", help="time a MobileNet training step per conv impl")
  p.add_argument("--impl", "--impls", dest="impl", default="all",
                 help="comma list of sepconv.conv.IMPLS (default all)")
  from sepconv.bench.train_step import TrainStepConfig
  step = TrainStepConfig()
  p.add_argument("--model", default=step.model, help="a name in sepconv.models.MODELS")
  p.add_argument("--conv", default=step.conv,
                 help="spectrum point of every block, e.g. dws, standard, grouped:g=8")
  p.add_argument("--batch", type=positive_int, default=step.batch)
  p.add_argument("--image-size", type=positive_int, default=step.image_size)
  p.add_argument("--width-multiplier", type=positive_float, default=step.width_multiplier)
  p.add_argument("--num-classes", type=positive_int, default=step.num_classes)
  p.add_argument("--dtype", choices=DTYPES, default=step.dtype)
  p.add_argument("--repeats", type=positive_int, default=10)
  p.add_argument("--warmup", type=nonnegative_int, default=2)
  p.add_argument("--budget-s", type=positive_float, default=60.0)
  p.add_argument("--keep-freed-host-memory", action=argparse.BooleanOptionalAction,
                 default=True, help=KEEP_HELP)
  p.add_argument("--torch", action=argparse.BooleanOptionalAction, default=True,
                 help="also time the model's PyTorch twin (NCHW and channels-last) if torch "
                      "is installed (CPU, float32)")
  p.add_argument("--json", action="store_true", help="print one JSON record per line")
  p.add_argument("--out", default=DEFAULT_RECORDS, help="JSON-lines file to append records to")
  p.add_argument("--quiet", action="store_true", help="no progress on stderr")
  p.set_defaults(func=run_train_step)

  p = sub.add_parser("blocks", help="plain Flax blocks with and without sepconv.conv_general_dilated")
  p.add_argument("--blocks", default="all",
                 help="comma list of convnext, resnext, mobilenet_v2 (default all)")
  p.add_argument("--batch", type=positive_int, default=32)
  p.add_argument("--size", type=positive_int, default=56, help="input height and width")
  p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
  p.add_argument("--mode", choices=("forward", "train_step", "both"), default="both")
  p.add_argument("--torch", action=argparse.BooleanOptionalAction, default=True,
                 help="also time PyTorch's equivalent blocks if installed (CPU, float32)")
  p.add_argument("--repeats", type=positive_int, default=10)
  p.add_argument("--warmup", type=nonnegative_int, default=2)
  p.add_argument("--budget-s", type=positive_float, default=30.0)
  p.add_argument("--json", action="store_true", help="print one JSON record per line")
  p.add_argument("--out", default=f"results/flax_blocks/{RECORDS_FILE}",
                 help="JSON-lines file to append records to")
  p.add_argument("--quiet", action="store_true", help="no progress on stderr")
  p.set_defaults(func=run_blocks)

  p = sub.add_parser("device", help="a lent TPU or GPU: every implementation against native, "
                                    "training steps, bandwidth against the HBM peak (8 min)")
  p.add_argument("--out", default=None,
                 help="records and tables folder (default results/accelerator/<device kind>)")
  p.add_argument("--quick", action="store_true", help="tiny shapes on any backend: a smoke test")
  p.add_argument("--budget-s", type=positive_float, default=None,
                 help="time budget in seconds (default 420; --quick runs everything)")
  p.set_defaults(func=run_device)
