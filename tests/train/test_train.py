"""The training loop: learning, determinism, 1 vs 8 devices, resume after a kill, the CLI."""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sepconv.cli.main import main
from sepconv.data import Augmentation, load_digits, load_synthetic
from sepconv.records import read_records
from sepconv.train import default_config, epoch_order, restore_variables, train, TrainConfig
from sepconv.train import loop
from sepconv.train.parallel import make_mesh
from sepconv.train.step import Executables
from test_train_support import tiny_factory

ONE = jax.devices()[:1]
TIMING = {"images_per_second", "train_seconds", "eval_seconds", "compile_seconds", "wall_seconds",
          "provenance", "run", "train_images", "resumed"}


@pytest.fixture(scope="module")
def digits():
  return load_digits()


def _records(out_dir, kind="epoch"):
  return [r for r in read_records(out_dir / "metrics.jsonl") if r["kind"] == kind]


def _untimed(record):
  return {k: v for k, v in record.items() if k not in TIMING}


def _params(out_dir, config, dataset, devices=ONE):
  """The parameters in the run's latest checkpoint."""
  _, variables = restore_variables(config, out_dir, dataset=dataset, model_factory=tiny_factory,
                                   devices=devices)
  return variables["params"]


def test_short_digits_run_learns_and_records(tmp_path, digits):
  config = default_config("digits", model="tiny", epochs=6, batch_size=64)
  result = train(config, tmp_path, dataset=digits, model_factory=tiny_factory, devices=ONE,
                 progress=False)
  assert result["test_accuracy"] > 0.6 and result["train_accuracy"] > 0.6  # chance: 0.1
  for key in ("test_accuracy", "train_seconds", "params", "mult_adds", "images_per_second"):
    assert key in result
  variables = tiny_factory(config, 10, (8, 8, 1)).init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  assert result["params"] == sum(np.size(x) for x in jax.tree.leaves(variables["params"]))
  assert result["mult_adds"] is None  # a custom model has no analytic cost
  epochs = _records(tmp_path)
  assert [r["epoch"] for r in epochs] == [1, 2, 3, 4, 5, 6]
  assert epochs[-1]["train_accuracy"] > epochs[0]["train_accuracy"]
  assert all(r["train_images"] == 22 * 64 and r["images_per_second"] > 0 for r in epochs)
  assert _records(tmp_path, "train_result")[-1]["test_accuracy"] == result["test_accuracy"]
  # A finished run started again returns its result without training again.
  again = train(config, tmp_path, dataset=digits, model_factory=tiny_factory, devices=ONE,
                progress=False)
  assert again == json.loads(json.dumps(result)) and len(_records(tmp_path)) == 6


def test_same_seed_same_metrics(tmp_path, digits):
  shifted = dataclasses.replace(digits, augmentation=Augmentation(pad=1))  # exercise the RNG
  config = default_config("digits", model="tiny", epochs=2, batch_size=64, seed=7)
  runs = [train(config, tmp_path / name, dataset=shifted, model_factory=tiny_factory,
                devices=ONE, progress=False) for name in ("a", "b")]
  assert _untimed(runs[0]) == _untimed(runs[1])
  assert [_untimed(r) for r in _records(tmp_path / "a")] == [
      _untimed(r) for r in _records(tmp_path / "b")]
  other = train(dataclasses.replace(config, seed=8), tmp_path / "c", dataset=shifted,
                model_factory=tiny_factory, devices=ONE, progress=False)
  assert other["train_loss"] != runs[0]["train_loss"]


def test_one_and_eight_devices_follow_the_same_trajectory(tmp_path):
  data = load_synthetic(num_train=64, num_test=24, image_shape=(8, 8, 3), num_classes=4,
                        augmentation=Augmentation(pad=1, flip=True), seed=1)
  config = TrainConfig(model="tiny", dataset="synthetic", epochs=4, batch_size=32, base_lr=0.4,
                       warmup_epochs=1)
  assert len(jax.devices()) == 8
  for name, devices in (("one", ONE), ("eight", jax.devices())):
    train(config, tmp_path / name, dataset=data, model_factory=tiny_factory, devices=devices,
          progress=False)
  one, eight = _records(tmp_path / "one"), _records(tmp_path / "eight")
  for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy"):
    np.testing.assert_allclose([r[key] for r in one], [r[key] for r in eight], rtol=1e-5,
                               atol=1e-6, err_msg=key)
  assert one[-1]["train_loss"] < one[0]["train_loss"]
  params_one = _params(tmp_path / "one", config, data)
  params_eight = _params(tmp_path / "eight", config, data, jax.devices())
  for a, b in zip(jax.tree.leaves(params_one), jax.tree.leaves(params_eight)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_killed_run_resumes_to_identical_parameters(tmp_path, digits):
  shifted = dataclasses.replace(digits, augmentation=Augmentation(pad=1))
  config = default_config("digits", model="tiny", epochs=3, batch_size=64,
                          checkpoint_every_steps=5)
  kwargs = dict(dataset=shifted, model_factory=tiny_factory, devices=ONE, progress=False)
  whole = train(config, tmp_path / "whole", **kwargs)
  # Killed at step 31 (mid epoch 2): checkpoints exist at 22 (epoch end) and 30; the
  # resumed run replays step 31 onwards with the same batches and augmentation keys.
  stopped = train(config, tmp_path / "killed", stop_after_steps=31, **kwargs)
  assert stopped == {"completed": False, "step": 31}
  assert [r["epoch"] for r in _records(tmp_path / "killed")] == [1]
  resumed = train(config, tmp_path / "killed", **kwargs)
  for a, b in zip(jax.tree.leaves(_params(tmp_path / "whole", config, digits)),
                  jax.tree.leaves(_params(tmp_path / "killed", config, digits))):
    np.testing.assert_array_equal(a, b)
  assert _untimed(resumed) == _untimed(whole)
  killed = _records(tmp_path / "killed")
  assert [r["resumed"] for r in killed] == [False, True, False]
  assert [_untimed(r) for r in killed] == [
      _untimed(r) for r in _records(tmp_path / "whole")]


def test_epoch_order_is_a_pure_function_of_seed_and_epoch():
  np.testing.assert_array_equal(epoch_order(3, 5, 100), epoch_order(3, 5, 100))
  assert not np.array_equal(epoch_order(3, 5, 100), epoch_order(3, 6, 100))
  assert sorted(epoch_order(0, 0, 10)) == list(range(10))


def test_padded_evaluation_weights_out_the_padding():
  mesh = make_mesh(jax.devices())
  labels = np.arange(19, dtype=np.int32)

  def eval_fn(state, x, y, w):  # "loss" = label, "correct" = 1 per real row
    del state, x
    return jnp.stack([jnp.sum(y * w), jnp.sum(w)])

  loss, accuracy = loop._evaluate(eval_fn, None, mesh, np.zeros((19, 2, 2, 1)), labels, 8)
  assert loss == pytest.approx(9.0) and accuracy == 1.0


def test_bad_batches_refused_before_anything_is_written(tmp_path, digits):
  config = default_config("digits", model="tiny", batch_size=12)
  with pytest.raises(ValueError,
                     match=r"batch_size \(=12\) must be divisible by the device count \(=8\)"):
    train(config, tmp_path / "a", dataset=digits, model_factory=tiny_factory)
  with pytest.raises(ValueError, match=r"batch_size \(=2048\) must not exceed the training split"):
    train(dataclasses.replace(config, batch_size=2048), tmp_path / "b", dataset=digits,
          model_factory=tiny_factory, devices=ONE)
  assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_bfloat16_adamw_step_schedule(tmp_path):
  data = load_synthetic(num_train=64, num_test=16, image_shape=(8, 8, 3), num_classes=4)
  config = TrainConfig(model="tiny", dataset="synthetic", epochs=2, batch_size=32, dtype="bfloat16",
                       optimizer="adamw", base_lr=0.01, weight_decay=0.05, schedule="step")
  result = train(config, tmp_path, dataset=data, model_factory=tiny_factory, devices=ONE,
                 progress=False)
  assert np.isfinite(result["train_loss"]) and result["completed"]
  params = _params(tmp_path, config, data)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))


def test_mobilenet_v1_on_digits_learns_and_costs_match_its_variables(tmp_path, digits):
  from sepconv.models import model_summary
  config = default_config("digits", conv="dws", epochs=3, impl="xla")  # 132 steps of 32
  result = train(config, tmp_path, dataset=digits, devices=ONE, progress=False)
  assert result["test_accuracy"] > 0.5  # chance: 0.1
  summary = model_summary("mobilenet_v1", num_classes=10, conv="dws", width_multiplier=0.25,
                          input_size=8, in_channels=1)
  assert result["params"] == summary.params and result["mult_adds"] == summary.mult_adds
  assert result["trainable_params"] == summary.params_with_bn


def test_cli_trains_resumes_and_reports_json(tmp_path, monkeypatch, capsys):
  monkeypatch.setattr(loop, "_build_model", tiny_factory)
  argv = ["train", "--model", "mobilenet_v1", "--conv", "dws", "--dataset", "digits",
          "--epochs", "1", "--batch-size", "64", "--seed", "1", "--out", str(tmp_path / "run"),
          "--json", "--no-progress"]
  assert main(argv) == 0
  result = json.loads(capsys.readouterr().out)
  for key in ("test_accuracy", "train_seconds", "params", "mult_adds"):
    assert key in result
  assert result["config"]["conv"] == "dws" and result["config"]["seed"] == 1
  assert main(argv) == 0  # same --out: the finished run is found, not redone
  assert json.loads(capsys.readouterr().out) == result


@pytest.mark.parametrize("args, message", [
    (["--batch-size", "12"], "batch_size (=12) must be divisible by the device count (=8)"),
    (["--dataset", "cifar10", "--data-dir", "/no/such/dir"], "no CIFAR-10 data at /no/such/dir"),
    (["--epochs", "0"], "epochs (=0) must be >= 1"),
    (["--folds", "5", "--fold", "5"], "fold (=5) must be in [0, folds) (folds = 5)"),
])
def test_cli_bad_input_is_one_line(tmp_path, monkeypatch, capsys, args, message):
  monkeypatch.setattr(loop, "_build_model", tiny_factory)
  assert main(["train", "--out", str(tmp_path / "run"), "--no-progress", *args]) == 2
  err = capsys.readouterr().err
  assert message in err and err.count("\n") == 1


def test_a_damaged_latest_checkpoint_resumes_from_the_one_before(tmp_path, digits, capfd):
  config = default_config("digits", model="tiny", epochs=3, batch_size=64,
                          checkpoint_every_seconds=0)  # every epoch's end
  kwargs = dict(dataset=digits, model_factory=tiny_factory, devices=ONE, progress=False)
  whole = train(config, tmp_path / "run", **kwargs)
  latest = tmp_path / "run" / "checkpoints" / str(whole["steps"])
  for data in latest.rglob("*"):  # the array data files, as a partial copy would lack them
    if data.is_file() and data.parent.name == "d":
      data.unlink()
  capfd.readouterr()
  with pytest.warns(UserWarning, match=rf"{latest}: damaged checkpoint.*set aside as damaged-"):
    again = train(config, tmp_path / "run", **kwargs)
  assert _untimed(again) == _untimed(whole)  # the last epoch was trained again, identically
  assert (tmp_path / "run" / "checkpoints" / f"damaged-{whole['steps']}").is_dir()
  assert latest.is_dir() and [r["epoch"] for r in _records(tmp_path / "run")] == [1, 2, 3, 3]
  train(config, tmp_path / "twin", **kwargs)  # never damaged
  for a, b in zip(jax.tree.leaves(_params(tmp_path / "run", config, digits)),
                  jax.tree.leaves(_params(tmp_path / "twin", config, digits))):
    np.testing.assert_array_equal(a, b)
  assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("x"), "is a file; it must be a directory"),
    (lambda p: (p.parent / "f").write_text("x"), "lies under a file"),
])
def test_an_unusable_out_is_one_line_before_any_work(tmp_path, capsys, make, message):
  out = tmp_path / "run"
  make(out)
  target = out if out.exists() else tmp_path / "f" / "run"
  assert main(["train", "--out", str(target), "--no-progress", "--epochs", "1"]) == 2
  err = capsys.readouterr().err
  assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_the_folds_of_a_run_share_one_compiled_step_and_train_on_their_own_split(
    tmp_path, digits, monkeypatch):
  """Each fold's data and statistics are its own; the step is traced once for all folds."""
  from sepconv.data import fold_split
  from sepconv.train import step as step_lib
  traced = []
  update = step_lib.update

  def counting(*args, **kwargs):
    traced.append(1)
    return update(*args, **kwargs)

  monkeypatch.setattr(step_lib, "update", counting)
  results = []
  for fold in (0, 1):
    config = default_config("digits", model="tiny", epochs=1, batch_size=64, folds=5, fold=fold,
                            seed=11, weight_decay=1.25e-4)  # a step no other test traced
    setup = loop.prepare(config, model_factory=tiny_factory, devices=ONE)
    split = fold_split(digits, 5, fold, 11)
    np.testing.assert_array_equal(setup.dataset.x_test, split.x_test)
    assert setup.dataset.mean == split.mean
    results.append(train(config, tmp_path / f"fold{fold}", model_factory=tiny_factory,
                         devices=ONE, progress=False))
  assert len(traced) == 1  # one trace of the training step, shared by both folds
  assert [r["config"]["fold"] for r in results] == [0, 1]
  assert all(r["config"]["folds"] == 5 and 0 <= r["test_accuracy"] <= 1 for r in results)


def test_runs_differing_only_in_seed_and_fold_share_one_compilation(tmp_path, digits, monkeypatch):
  lowered = []
  real = loop.train_step

  class Counting:
    def lower(self, *args, **kwargs):
      lowered.append(1)
      return real.lower(*args, **kwargs)

  monkeypatch.setattr(loop, "train_step", Counting())
  monkeypatch.setattr(loop, "_COMPILED", Executables())
  base = default_config("digits", model="tiny", epochs=1, batch_size=64, folds=3)
  for seed, fold in ((0, 0), (1, 2)):
    config = dataclasses.replace(base, seed=seed, fold=fold)
    train(config, tmp_path / f"{seed}-{fold}", dataset=digits, model_factory=tiny_factory,
          devices=ONE, progress=False)
  assert len(lowered) == 1
  train(dataclasses.replace(base, batch_size=32), tmp_path / "other", dataset=digits,
        model_factory=tiny_factory, devices=ONE, progress=False)
  assert len(lowered) == 2  # another batch size is another compilation


def test_the_initial_state_does_not_depend_on_the_conv_implementation(digits):
  from sepconv.train.step import initial_state
  states = []
  for impl in ("xla", "auto", "dense"):
    config = default_config("digits", model="mobilenet_v1_shallow", width_multiplier=0.25,
                            conv="dws:g=2", impl=impl)
    setup = loop.prepare(config, digits, devices=ONE)
    states.append(initial_state(setup.spec, digits.input_shape, seed=3))
  for other in states[1:]:
    assert jax.tree.structure(other) == jax.tree.structure(states[0])
    for a, b in zip(jax.tree.leaves(states[0]), jax.tree.leaves(other)):
      np.testing.assert_array_equal(a, b)


def test_timed_steps_start_from_a_given_state_without_initialising(digits, monkeypatch):
  from sepconv.train import timed
  from sepconv.train.step import initial_state
  config = default_config("digits", model="tiny", batch_size=64)
  setup = loop.prepare(config, digits, model_factory=tiny_factory, devices=ONE)
  state = initial_state(setup.spec, digits.input_shape, config.seed)

  def refuse(*args, **kwargs):
    raise AssertionError("initialised again")
  monkeypatch.setattr(timed, "initial_state", refuse)
  train_timing, eval_timing = timed.time_steps(config, digits, warmup=1, repeats=2, state=state,
                                               model_factory=tiny_factory, devices=ONE)
  assert len(train_timing.times_ms) >= 2 and len(eval_timing.times_ms) >= 2
