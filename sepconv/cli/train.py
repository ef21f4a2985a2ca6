"""`sepconv train`: train a MobileNet at one point of the convolution spectrum.

Example: ``sepconv train --model mobilenet_v1 --conv dws --dataset digits --seed 0
--out runs/digits-dws-0 --json``. Started again with the same ``--out`` after an
interruption (Ctrl-C, a kill, a lost machine), it resumes from the latest checkpoint.
"""

from __future__ import annotations

import argparse
import json

# Flags whose value, when given, overrides the data set's preset (flag dest -> field).
_OVERRIDES = {
    "model": "model", "conv": "conv", "width_multiplier": "width_multiplier",
    "data_dir": "data_dir", "epochs": "epochs", "batch_size": "batch_size",
    "optimizer": "optimizer", "lr": "base_lr", "momentum": "momentum",
    "weight_decay": "weight_decay", "schedule": "schedule", "warmup_epochs": "warmup_epochs",
    "label_smoothing": "label_smoothing", "seed": "seed", "dtype": "dtype", "impl": "impl",
    "checkpoint_every": "checkpoint_every_steps",
}


def register(subparsers) -> None:
  from sepconv.data import DATASETS
  from sepconv.train.config import DTYPES, OPTIMIZERS, SCHEDULES

  p = subparsers.add_parser("train", help=__doc__.splitlines()[0].split(": ", 1)[1],
                            description=__doc__.splitlines()[0])
  p.add_argument("--model", help="mobilenet_v1 (default) or mobilenet_v2")
  p.add_argument("--conv", help="spectrum point, e.g. dws (default), standard, grouped:g=4, "
                 "dws:g=4,m=2 (grammar: sepconv.spectrum.points)")
  p.add_argument("--width-multiplier", type=float, help="MobileNet alpha (default 1.0)")
  p.add_argument("--dataset", choices=DATASETS, default="digits", help="default: digits")
  p.add_argument("--data-dir", help="CIFAR archive, extracted folder, or a folder holding either")
  p.add_argument("--download", action="store_true",
                 help="fetch the official CIFAR archive into --data-dir if missing (MD5-checked)")
  p.add_argument("--epochs", type=int)
  p.add_argument("--batch-size", type=int, help="global batch over all devices")
  p.add_argument("--optimizer", choices=OPTIMIZERS)
  p.add_argument("--lr", type=float, help="base learning rate per 256 images (scaled linearly)")
  p.add_argument("--momentum", type=float)
  p.add_argument("--weight-decay", type=float)
  p.add_argument("--schedule", choices=SCHEDULES)
  p.add_argument("--warmup-epochs", type=float)
  p.add_argument("--label-smoothing", type=float)
  p.add_argument("--no-augment", action="store_true", help="turn training augmentation off")
  p.add_argument("--seed", type=int)
  p.add_argument("--dtype", choices=DTYPES, help="compute dtype (default float32)")
  p.add_argument("--impl", help="convolution implementation (default auto)")
  p.add_argument("--checkpoint-every", type=int, help="also checkpoint every N steps")
  p.add_argument("--out", required=True, help="run directory; an existing run there resumes")
  p.add_argument("--json", action="store_true", help="print the final result as one JSON object")
  p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
  p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):
  """The ``TrainConfig`` the flags describe: the data set's preset plus given flags."""
  from sepconv.train import default_config
  overrides = {field: getattr(args, dest) for dest, field in _OVERRIDES.items()
               if getattr(args, dest) is not None}
  if args.download:
    overrides["download"] = True
  if args.no_augment:
    overrides["augment"] = False
  return default_config(args.dataset, **overrides)


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
