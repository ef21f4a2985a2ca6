"""Runs that diverge, are stopped by a signal or fill the disk: real processes, a real tmpfs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import jax
import numpy as np
import pytest

from sepconv.cli.main import main
from sepconv.data import load_digits
from sepconv.records import append_record, read_records
from sepconv.train import default_config, restore_variables, train
from sepconv.train import loop
from sepconv.train.checkpoint import Checkpoints
from sepconv.train.faults import Diverged
from test_train_support import tiny_factory

ONE = jax.devices()[:1]
TESTS = Path(__file__).resolve().parent
# The CLI in a fresh process, training the tiny model (one CPU device, as ``ONE``).
CLI = """
import sys
from sepconv.cli.main import main
from sepconv.train import loop
from test_train_support import tiny_factory
loop._build_model = tiny_factory
sys.exit(main(sys.argv[1:]))
"""
# The run every interrupted one must end up identical to (22 steps of 64 per epoch).
EPOCHS, SEED = 16, 3
UNTIMED = {"images_per_second", "train_seconds", "compile_seconds", "wall_seconds", "provenance",
           "run", "train_images", "resumed"}


@pytest.fixture(scope="module")
def digits():
  return load_digits()


def _config(**overrides):
  return default_config("digits", epochs=EPOCHS, batch_size=64, seed=SEED, **overrides)


def _argv(out: Path) -> list[str]:
  return ["train", "--out", str(out), "--epochs", str(EPOCHS), "--batch-size", "64", "--seed",
          str(SEED), "--no-progress",
          "--checkpoint-every-seconds", "0"]  # every epoch's end: a full disk stops mid-run


def _start(argv: list[str]) -> subprocess.Popen:
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "", "SEPCONV_AUTOTUNE": "0",
         "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), str(TESTS.parents[1]),
                                                     os.environ.get("PYTHONPATH")]))}
  return subprocess.Popen([sys.executable, "-c", CLI, *argv], env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 180) -> None:
  deadline = time.monotonic() + timeout
  while not condition():
    assert proc.poll() is None, f"the run ended before {what}: {proc.communicate()}"
    assert time.monotonic() < deadline, f"timed out waiting for {what}"
    time.sleep(0.02)


def _epochs(out: Path) -> list[int]:
  path = out / "metrics.jsonl"
  if not path.exists():
    return []
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # a line being written right now
    return [r["epoch"] for r in read_records(path) if r.get("kind") == "epoch"]


def _last_per_epoch(out: Path) -> dict[int, dict]:
  return {r["epoch"]: {k: v for k, v in r.items() if k not in UNTIMED}
          for r in read_records(out / "metrics.jsonl") if r["kind"] == "epoch"}


def _params(out: Path, digits):
  _, variables = restore_variables(_config(), out, dataset=digits, model_factory=tiny_factory,
                                   devices=ONE)
  return jax.tree.leaves(variables["params"])


def _finish(out: Path) -> None:
  """Runs (or resumes) the CLI's run in ``out`` to its end, in a fresh process."""
  proc = _start(_argv(out))
  _, err = proc.communicate(timeout=300)
  assert proc.returncode == 0, err


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
  """The uninterrupted run, in a process like the interrupted ones' (XLA's CPU numerics depend
  on the process's device count, so every run compared bit for bit starts the same way)."""
  out = tmp_path_factory.mktemp("whole") / "run"
  _finish(out)
  return out


def _assert_same_run(out: Path, whole: Path, digits) -> None:
  assert _last_per_epoch(out) == _last_per_epoch(whole)
  for a, b in zip(_params(out, digits), _params(whole, digits)):
    np.testing.assert_array_equal(a, b)
  assert not [p.name for p in (out / "checkpoints").iterdir() if "tmp" in p.name]


# Divergence.

def test_divergence_names_its_first_step_and_keeps_the_last_finite_checkpoint(tmp_path, digits):
  # base_lr 1e4 over a 2-epoch warm-up: the run overflows within a few steps of passing lr ~400
  # (step 7 or 8, depending on the jax version), after the first step checkpoints.
  found = []
  for every in (2, 3):  # detected at another step, the replay names the same one
    config = default_config("digits", model="tiny", epochs=3, batch_size=64, base_lr=1e4,
                            warmup_epochs=2, checkpoint_every_steps=every)
    out = tmp_path / f"every{every}"
    with pytest.raises(Diverged, match=r"training diverged at epoch 1, step \d+: .*learning rate"
                                       r".* is likely too high.*last finite checkpoint"):
      train(config, out, dataset=digits, model_factory=tiny_factory, devices=ONE, progress=False)
    (record,) = [r for r in read_records(out / "metrics.jsonl") if r["kind"] == "diverged"]
    checkpoints = Checkpoints(out / "checkpoints")
    steps = sorted(int(p.name) for p in (out / "checkpoints").iterdir() if p.name.isdigit())
    checkpoints.close()
    assert steps[-1] == record["last_checkpoint"] < record["step"]
    _, variables = restore_variables(config, out, dataset=digits, model_factory=tiny_factory,
                                     devices=ONE)
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(variables))
    found.append((record["epoch"], record["step"]))
    assert not [r for r in read_records(out / "metrics.jsonl") if r["kind"] == "train_result"]
  assert found[0] == found[1]


def test_cli_lr_1e6_stops_with_one_line_and_exit_1(tmp_path, monkeypatch, capsys):
  monkeypatch.setattr(loop, "_build_model", tiny_factory)
  code = main(["train", "--out", str(tmp_path / "run"), "--lr", "1e6", "--epochs", "2",
               "--batch-size", "64", "--no-progress"])
  err = capsys.readouterr().err
  assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
  assert err.startswith("sepconv train: error: training diverged at epoch 1, step ")
  assert "no checkpoint was written" in err


@pytest.mark.parametrize("flag, value, message", [
    ("--lr", "nan", "base_lr (=nan) must be a positive number"),
    ("--lr", "inf", "base_lr (=inf) must be a positive number"),
    ("--lr", "0", "base_lr (=0.0) must be a positive number"),
    ("--momentum", "2", "momentum (=2.0) must be in [0, 1)"),
    ("--momentum", "1", "momentum (=1.0) must be in [0, 1)"),
    ("--label-smoothing", "1", "label_smoothing (=1.0) must be in [0, 1)"),
    ("--weight-decay", "-1e-4", "weight_decay (=-0.0001) must be a finite number >= 0"),
    ("--weight-decay", "nan", "weight_decay (=nan) must be a finite number >= 0"),
    ("--warmup-epochs", "-1", "warmup_epochs (=-1.0) must be a finite number >= 0"),
    ("--width-multiplier", "inf", "width_multiplier (=inf) must be a positive number"),
])
def test_meaningless_numbers_are_one_line_exit_2(tmp_path, capsys, flag, value, message):
  assert main(["train", "--out", str(tmp_path / "run"), "--no-progress", f"{flag}={value}"]) == 2
  err = capsys.readouterr().err
  assert message in err and err.count("\n") == 1
  assert not (tmp_path / "run").exists()


# Signals.

@pytest.mark.slow
@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_checkpoints_the_step_in_progress_and_the_run_resumes_there(
    tmp_path, digits, whole, signum, status):
  out = tmp_path / "run"
  proc = _start(_argv(out))
  _wait_for(lambda: len(_epochs(out)) >= 2, proc, "two epochs")
  proc.send_signal(signum)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == status, err
  name = signal.Signals(signum).name
  assert err.count("\n") == 1 and f"interrupted (stopped by {name} after checkpointing step" in err
  step = int(err.rsplit("step ", 1)[1].split(")")[0])
  names = sorted(p.name for p in (out / "checkpoints").iterdir())
  assert str(step) in names and not [n for n in names if "tmp" in n]  # complete, nothing partial
  assert step >= 22 * max(_epochs(out))  # nothing trained before the signal is lost
  _finish(out)
  _assert_same_run(out, whole, digits)


# A full disk.

@pytest.fixture
def small_disk(tmp_path):
  """A 2 MiB tmpfs (mounting needs root; skipped without)."""
  mount = tmp_path / "disk"
  mount.mkdir()
  made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                        capture_output=True, text=True)
  if made.returncode:
    pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
  try:
    yield mount
  finally:
    subprocess.run(["umount", str(mount)], check=True)


def _fill(path: Path) -> Path:
  """Writes ``path`` until the disk is full."""
  block = b"\0" * 4096
  fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
  try:
    while True:
      os.write(fd, block)
  except OSError as e:
    assert e.errno == 28  # ENOSPC
  finally:
    os.close(fd)
  return path


def test_an_append_the_disk_cannot_take_leaves_the_records_file_as_it_was(small_disk):
  records = small_disk / "records.jsonl"
  append_record(records, {"kind": "test", "run_id": "a"})
  before = records.read_bytes()
  _fill(small_disk / "filler")
  # The line's first bytes fit into the file's last page, the rest find no free page: a
  # partial write, cut back.
  with pytest.raises(OSError, match="No space left"):
    append_record(records, {"kind": "test", "run_id": "b", "pad": "x" * 10_000})
  assert records.read_bytes() == before
  (small_disk / "filler").unlink()
  append_record(records, {"kind": "test", "run_id": "b"})
  assert [r["run_id"] for r in read_records(records)] == ["a", "b"]


@pytest.mark.slow
def test_a_full_disk_mid_run_is_one_line_and_the_run_resumes_once_freed(small_disk, digits, whole):
  out = small_disk / "run"
  proc = _start(_argv(out))
  _wait_for(lambda: len(_epochs(out)) >= 1, proc, "the first epoch")
  filler = _fill(small_disk / "filler")
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 1, err
  assert err.count("\n") == 1 and "Traceback" not in err and "No space left on device" in err
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # no torn line to drop
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert all(json.loads(line) for line in lines)
  filler.unlink()
  _finish(out)
  _assert_same_run(out, whole, digits)


def test_params_finite_reads_cpu_parameters_in_place_and_reduces_elsewhere(monkeypatch):
  import jax.numpy as jnp
  from sepconv.train import faults
  good = {"a": jnp.ones((3, 2)), "b": {"c": jnp.zeros(4)}}
  bad = {"a": jnp.ones((3, 2)), "b": {"c": jnp.asarray([0.0, jnp.inf, 0.0, 0.0])}}
  nan = {"a": jnp.full((2,), jnp.nan)}
  for on_host in (True, False):  # numpy in place; the jitted reduction (another backend)
    monkeypatch.setattr(faults, "_on_this_host", lambda x, on_host=on_host: on_host)
    assert faults.params_finite(good)
    assert not faults.params_finite(bad) and not faults.params_finite(nan)
