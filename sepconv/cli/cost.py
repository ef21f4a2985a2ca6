"""`sepconv cost`: the analytic cost model from the command line."""

from __future__ import annotations

import argparse
import json

from tabulate import tabulate

from sepconv import cost, models, spectrum, worked_example
from sepconv.cli import args as cli_args
from sepconv.cli.args import positive_float


def _int_pair(text: str) -> tuple[int, int]:
  parts = text.lower().split("x")
  try:
    values = tuple(int(p) for p in parts)
  except ValueError:
    raise argparse.ArgumentTypeError(f"{text!r} is not an int or HxW") from None
  if len(values) == 1:
    values = values * 2
  if len(values) != 2 or min(values) < 1:
    raise argparse.ArgumentTypeError(f"{text!r} must be a positive int or HxW")
  return values


def _dtype_bytes(name: str) -> int:
  if name not in cost.DTYPE_BYTES:
    raise ValueError(f"--dtype (={name!r}) must be one of {tuple(cost.DTYPE_BYTES)}")
  return cost.DTYPE_BYTES[name]


def run_seed(args) -> int:
  rows = worked_example.rows(_dtype_bytes(args.dtype))
  if args.json:
    print(json.dumps(rows, indent=2))
    return 0
  table = [[r["name"], " + ".join(f"{v:,}" for v in r["stage_params"].values()), f"{r['params']:,}",
            f"{r['mult_adds']:,}", f"{r['ratio_to_standard']:.4f}"] for r in rows]
  print(f"{worked_example.INPUT_SIZE}x{worked_example.INPUT_SIZE}x{worked_example.IN_CHANNELS} input, "
        f"{worked_example.OUT_CHANNELS} outputs, {worked_example.KERNEL_SIZE}x{worked_example.KERNEL_SIZE} "
        "kernel, stride 1, SAME, no bias; mult-adds count padded taps")
  print(tabulate(table, headers=["scheme", "weights per stage", "weights", "mult-adds", "vs standard"],
                 tablefmt="github", colalign=("left", "right", "right", "right", "right")))
  return 0


def spec_from_args(args) -> spectrum.ConvSpec:
  """The ConvSpec the `cost layer` flags describe."""
  return spectrum.ConvSpec(
      args.in_channels, args.out_channels, args.kernel, args.stride, args.dilation,
      cli_args.padding(args.padding),
      group_size=args.group_size, depth_multiplier=args.multiplier, pointwise=args.pointwise,
      pointwise_group_size=args.pointwise_group_size, shuffle=args.shuffle,
      order=args.order, between=args.between)


def run_layer(args) -> int:
  spec = spec_from_args(args)
  layers = cost.spec_cost(spec, args.input_size, bias=args.bias, norm=args.norm,
                          dtype_bytes=_dtype_bytes(args.dtype))
  total = cost.summarize(layers)
  if args.json:
    print(json.dumps({**total.as_dict(), "dtype": args.dtype,
                      "stages": [{"name": l.name, "in_shape": l.in_shape, "out_shape": l.out_shape,
                                  "groups": l.groups, "params": l.weights + l.biases,
                                  "mult_adds": l.mult_adds, "mult_adds_valid": l.mult_adds_valid,
                                  "bytes": l.bytes} for l in layers]}, indent=2))
    return 0
  table = [[l.name, "x".join(map(str, l.in_shape)), "x".join(map(str, l.out_shape)), l.groups,
            f"{l.weights + l.biases + l.norm_params:,}", f"{l.mult_adds:,}", f"{l.xla_flops:,}",
            f"{l.bytes:,}", f"{l.intensity:.2f}"] for l in layers]
  table.append(["total", "", "", "", f"{total.params_with_bn:,}", f"{total.mult_adds:,}",
                f"{total.xla_flops:,}", f"{total.bytes:,}", f"{total.intensity:.2f}"])
  print(tabulate(table, headers=["layer", "in", "out", "groups", "params", "mult-adds (paper)",
                                 "XLA flops", f"bytes ({args.dtype})", "FLOP/byte"],
                 tablefmt="github", disable_numparse=True))
  return 0


def model_report(args) -> dict:
  """Totals (and, with ``--layers``, per-layer rows) of the model the `cost model` flags name."""
  kwargs = dict(num_classes=args.num_classes, conv=args.conv, width_multiplier=args.alpha,
                input_size=args.resolution, small_input=args.small_input, in_channels=args.in_channels)
  layers = models.model_cost(args.model, **kwargs, dtype_bytes=_dtype_bytes(args.dtype))
  report = {"model": args.model, "alpha": args.alpha, "resolution": args.resolution,
            "conv": str(spectrum.parse_point(args.conv)), "num_classes": args.num_classes,
            "in_channels": args.in_channels,
            "small_input": models.resolve_small_input(args.resolution, args.small_input),
            **cost.summarize(layers).as_dict()}
  if args.layers:
    report["layers"] = [{"name": l.name, "kind": l.kind, "in_shape": l.in_shape,
                         "out_shape": l.out_shape, "groups": l.groups, "weights": l.weights,
                         "biases": l.biases, "norm_params": l.norm_params, "norm_stats": l.norm_stats,
                         "mult_adds": l.mult_adds, "mult_adds_valid": l.mult_adds_valid}
                        for l in layers]
  return report


def run_model(args) -> int:
  report = model_report(args)
  if args.json:
    print(json.dumps(report, indent=2))
    return 0
  if args.layers:
    table = [[l["name"], "x".join(map(str, l["in_shape"])), "x".join(map(str, l["out_shape"])),
              l["groups"] if l["kind"] == "conv" else "", f"{l['weights'] + l['biases']:,}",
              f"{l['norm_params']:,}", f"{l['mult_adds']:,}"] for l in report["layers"]]
    print(tabulate(table, headers=["layer", "in", "out", "groups", "params", "BN params",
                                   "mult-adds (paper)"], tablefmt="github", disable_numparse=True))
    print()
  print(f"{report['model']}, alpha {report['alpha']:g}, {report['resolution']}x{report['resolution']}"
        f"x{report['in_channels']}, "
        f"conv {report['conv']}, {report['num_classes']} classes"
        + (", small-input strides" if report["small_input"] else ""))
  rows = [["params (conv + FC weights, FC bias; no BN)", f"{report['params']:,}"],
          ["params with BN scale/offset (trained)", f"{report['params_with_bn']:,}"],
          ["BN statistics (not trained)", f"{report['norm_stats']:,}"],
          ["mult-adds (padded taps counted, paper)", f"{report['mult_adds']:,}"],
          ["mult-adds (valid taps only, XLA)", f"{report['mult_adds_valid']:,}"]]
  print(tabulate(rows, tablefmt="plain", colalign=("left", "right"), disable_numparse=True))
  return 0


def register(subparsers) -> None:
  parser = subparsers.add_parser("cost", help="analytic weights, mult-adds, FLOPs and bytes")
  sub = parser.add_subparsers(dest="what", required=True, parser_class=type(parser))
  seed = sub.add_parser("seed", help="the worked example: 28x28x192 -> 32, 5x5, every scheme")
  seed.add_argument("--dtype", default="float32")
  seed.add_argument("--json", action="store_true", help="a JSON list of objects")
  seed.set_defaults(func=run_seed)

  layer = sub.add_parser("layer", help="one spectrum layer's costs")
  layer.add_argument("--input-size", type=_int_pair, default=(28, 28), help="H or HxW (default 28)")
  layer.add_argument("--in-channels", type=int, required=True)
  layer.add_argument("--out-channels", type=int, required=True)
  layer.add_argument("--kernel", type=_int_pair, default=(3, 3), help="k or KHxKW")
  layer.add_argument("--stride", type=_int_pair, default=(1, 1))
  layer.add_argument("--dilation", type=_int_pair, default=(1, 1))
  layer.add_argument("--padding", default="SAME", help="SAME, VALID or an int")
  layer.add_argument("--group-size", type=int, default=None,
                     help="channels each spatial filter sees (1 = depthwise; default: all)")
  layer.add_argument("--multiplier", type=int, default=1, help="depth multiplier")
  layer.add_argument("--pointwise", action=argparse.BooleanOptionalAction, default=False)
  layer.add_argument("--pointwise-group-size", type=int, default=None)
  layer.add_argument("--shuffle", action="store_true")
  layer.add_argument("--order", choices=spectrum.ORDERS, default="spatial_first")
  layer.add_argument("--between", choices=spectrum.BETWEENS, default="none")
  layer.add_argument("--bias", action="store_true", help="a bias on each conv stage")
  layer.add_argument("--norm", action="store_true", help="a BatchNorm after the layer")
  layer.add_argument("--dtype", default="float32")
  layer.add_argument("--json", action="store_true", help="one JSON object")
  layer.set_defaults(func=run_layer)

  model = sub.add_parser("model", help="a whole model's costs (MobileNet v1/v2 on any spectrum point)")
  model.add_argument("model", help=f"one of {', '.join(models.MODELS)}")
  model.add_argument("--alpha", type=positive_float, default=1.0, help="width multiplier (default 1)")
  model.add_argument("--resolution", type=int, default=224, help="input side in pixels (default 224)")
  model.add_argument("--conv", default="dws",
                     help="spectrum point of every block, e.g. dws, standard, grouped:g=8, dws:m=2")
  model.add_argument("--num-classes", type=int, default=1000)
  model.add_argument("--in-channels", type=int, default=3, help="image channels (default 3)")
  model.add_argument("--small-input", action=argparse.BooleanOptionalAction, default=None,
                     help="fewer stride-2 layers (default: resolution <= 32)")
  model.add_argument("--dtype", default="float32")
  model.add_argument("--layers", action="store_true", help="the per-layer table too")
  model.add_argument("--json", action="store_true", help="one JSON object")
  model.set_defaults(func=run_model)
