"""`sepconv bench`'s flags default to the configurations' own defaults, written once."""

from __future__ import annotations

import argparse

import pytest

from sepconv.bench.config import LayerConfig
from sepconv.bench.layer import BenchOptions
from sepconv.bench.train_step import TrainStepConfig
from sepconv.cli import bench
from sepconv.cli.main import build_parser


def _parse(*argv: str) -> argparse.Namespace:
  return build_parser().parse_args(["bench", *argv])


def test_layer_flags_default_to_the_reference_layer_and_bench_options():
  for command in ("layer", "sweep"):
    args = _parse(command)
    assert bench._layer_config(args, LayerConfig().group_size) == LayerConfig()
    assert bench._options(args) == BenchOptions()


def test_train_step_flags_default_to_train_step_config():
  args = _parse("train-step")
  for name in ("model", "conv", "batch", "image_size", "width_multiplier", "num_classes", "dtype"):
    assert getattr(args, name) == getattr(TrainStepConfig(), name), name


def test_the_layer_group_title_states_the_reference_layer(capsys):
  with pytest.raises(SystemExit):
    build_parser().parse_args(["bench", "layer", "--help"])
  assert "layer (default: the reference 3x3, 56x56x128 -> 128, batch 32)" in capsys.readouterr().out
