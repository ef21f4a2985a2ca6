"""`sepconv train`'s flags are generated from TrainConfig's fields: help and defaults cannot drift."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from sepconv.cli import fields as cli_fields
from sepconv.cli.main import build_parser, main
from sepconv.cli.train import config_from_args
from sepconv.data import DATASETS
from sepconv.models import MODELS
from sepconv.train import PRESETS, TrainConfig, default_config

FIELDS = dataclasses.fields(TrainConfig)


def _train_parser() -> argparse.ArgumentParser:
  (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
  return sub.choices["train"]


def _actions() -> dict[str, argparse.Action]:
  return {a.dest: a for a in _train_parser()._actions}


def _parse(*argv: str) -> TrainConfig:
  return config_from_args(_train_parser().parse_args(["--out", "run", *argv]))


def test_every_field_has_a_flag_whose_help_and_default_are_the_fields():
  actions = _actions()
  for field in FIELDS:
    action = actions[field.name]
    assert cli_fields.flag(field) in action.option_strings
    assert action.help.startswith(field.metadata["help"].replace("%", "%%") + " (default ")
    per_dataset = {d: getattr(default_config(d), field.name) for d in PRESETS}
    if field.name == "dataset" or len(set(per_dataset.values())) == 1:
      assert action.help.endswith(f"(default {cli_fields.show(field.default)})")
    else:  # a preset departs from the field's default: the help names each data set's value
      assert "(default by --dataset: " + ", ".join(
          f"{d} {cli_fields.show(v)}" for d, v in per_dataset.items()) + ")" in action.help
    assert action.choices == cli_fields.choices(field)
  assert set(actions) >= {f.name for f in FIELDS}


def test_model_and_dataset_choices_are_the_registries():
  actions = _actions()
  assert tuple(actions["model"].choices) == tuple(MODELS)
  assert "mobilenet_v1_shallow" in actions["model"].choices
  assert tuple(actions["dataset"].choices) == DATASETS


@pytest.mark.parametrize("dataset", tuple(PRESETS))
def test_no_flag_gives_the_data_sets_preset(dataset):
  assert _parse("--dataset", dataset) == default_config(dataset)
  assert _parse() == default_config("digits")


def test_each_flag_sets_its_field_and_only_that():
  other = {"model": "mobilenet_v2", "conv": "grouped:g=4", "width_multiplier": 0.75,
           "dataset": "cifar10", "data_dir": "/data", "download": True, "epochs": 3,
           "batch_size": 64, "optimizer": "adamw", "base_lr": 0.05, "momentum": 0.8,
           "nesterov": False, "weight_decay": 1e-3, "decay_depthwise": True,
           "decay_norm_and_bias": True, "schedule": "step", "warmup_epochs": 0.5,
           "step_milestones": (0.3, 0.6, 0.9), "step_factor": 0.2, "label_smoothing": 0.1,
           "augment": False, "seed": 7, "dtype": "bfloat16", "impl": "xla",
           "checkpoint_every_steps": 5, "checkpoint_every_seconds": 2.5, "folds": 5, "fold": 3}
  assert set(other) == {f.name for f in FIELDS}
  base = default_config("digits")
  for name, value in other.items():
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool):
      argv = [flag if value else "--no-" + flag[2:]]
    else:
      argv = [flag, cli_fields.show(value)]
    changes = {name: value, **({"folds": 5} if name == "fold" else {})}  # a fold needs folds
    argv = ["--folds", "5", *argv] if name == "fold" else argv
    expected = (default_config(value) if name == "dataset"
                else dataclasses.replace(base, **changes))
    assert _parse(*argv) == expected, name


def test_the_earlier_flag_names_still_work():
  config = _parse("--lr", "0.3", "--checkpoint-every", "9", "--no-augment", "--download")
  assert (config.base_lr, config.checkpoint_every_steps, config.augment, config.download) == (
      0.3, 9, False, True)


def test_help_lists_every_model_and_the_presets_width(capsys):
  with pytest.raises(SystemExit):
    main(["train", "--help"])
  text = " ".join(capsys.readouterr().out.split())
  assert all(name in text for name in MODELS)
  assert "width multiplier alpha (default by --dataset: digits 0.25, cifar10 1.0" in text


@pytest.mark.parametrize("argv, message", [
    (["--model", "resnet"], "argument --model: invalid choice: 'resnet'"),
    (["--step-milestones", "0.5,x"], "'0.5,x' must be a comma list of float values"),
])
def test_a_bad_flag_value_is_one_line(capsys, tmp_path, argv, message):
  with pytest.raises(SystemExit) as exit:
    main(["train", "--out", str(tmp_path), *argv])
  err = capsys.readouterr().err
  assert exit.value.code == 2 and message in err and err.count("\n") == 1
