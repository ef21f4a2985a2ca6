"""`sepconv train`: train a MobileNet at one point of the convolution spectrum.

Example: ``sepconv train --model mobilenet_v1 --conv dws --dataset digits --seed 0
--out runs/digits-dws-0 --json``. Started again with the same ``--out`` after an
interruption (Ctrl-C, a kill, a lost machine), it resumes from the latest checkpoint.
Every field of ``sepconv.train.TrainConfig`` is a flag, generated from the field
(``sepconv.cli.fields``); a flag not given takes the data set's preset.
"""

from __future__ import annotations

import argparse
import json


def default_text(field) -> str:
  """A field's default as ``sepconv train`` applies it: per data set where a preset sets it."""
  from sepconv.cli.fields import show
  from sepconv.train.config import PRESETS, default_config
  if field.name == "dataset":
    return show(field.default)
  values = {d: getattr(default_config(d), field.name) for d in PRESETS}
  if len(set(values.values())) == 1:
    return show(field.default)
  return "by --dataset: " + ", ".join(f"{d} {show(v)}" for d, v in values.items())


def register(subparsers) -> None:
  from sepconv.cli.fields import add_field_flags
  from sepconv.train.config import TrainConfig

  p = subparsers.add_parser("train", help=__doc__.splitlines()[0].split(": ", 1)[1],
                            description=__doc__.splitlines()[0])
  add_field_flags(p.add_argument_group("the run (sepconv.train.TrainConfig; the data set's "
                                       "preset supplies what is not given)"),
                  TrainConfig, default_text=default_text)
  p.add_argument("--out", required=True, help="run directory; an existing run there resumes")
  p.add_argument("--json", action="store_true", help="print the final result as one JSON object")
  p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
  p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):
  """The ``TrainConfig`` the flags describe: the data set's preset plus given flags."""
  from sepconv.cli.fields import given
  from sepconv.train import TrainConfig, default_config
  overrides = given(args, TrainConfig)
  return default_config(overrides.pop("dataset", TrainConfig.dataset), **overrides)


def run(args: argparse.Namespace) -> int:
  from sepconv import validate
  from sepconv.train import train
  validate.usable_dir(args.out, "--out")
  from sepconv import compile_cache
  compile_cache.enable()
  result = train(config_from_args(args), args.out, progress=not args.no_progress)
  if args.json:
    print(json.dumps(result, sort_keys=True))
  else:
    print(f"{args.out}: test accuracy {result['test_accuracy']:.4f}, train accuracy "
          f"{result['train_accuracy']:.4f}, {result['train_seconds']:.1f} s training, "
          f"{result['params']:,} params")
  return 0
