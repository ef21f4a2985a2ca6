"""Faults in a sweep: diverged jobs recorded and left out; a driver killed again and again."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fault_sweep import DivergingRunner, METRICS, SWEEP, TinyTrainRunner

from sepconv.ablation import engine
from sepconv.ablation.executor import RunnerSpec, Sequential
from sepconv.ablation.jobs import RunOptions, Status
from sepconv.records import read_records
from sepconv.report import compare, render_experiment

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parents[1]


def _spec(tmp_path, make, out="out", work="work") -> RunnerSpec:
  return RunnerSpec(make, SWEEP, tmp_path / out, RunOptions(work_dir=tmp_path / work,
                                                            progress=False))


def _by_id(out: Path) -> dict[str, dict]:
  records = read_records(out / engine.RECORDS)
  ids = [r["run_id"] for r in records]
  assert len(ids) == len(set(ids)), ids  # every record exactly once
  return {r["run_id"]: r for r in records}


def test_diverged_jobs_are_recorded_not_retried_and_left_out_of_tables(tmp_path):
  counts = engine.execute(_spec(tmp_path, DivergingRunner), executor=Sequential())
  # standard seed 0, then standard seed 1 diverges: the sweep stops there by default.
  assert counts == {"done": 1, "skipped": 0, "deferred": 0, "failed": 0, "diverged": 1}
  records = _by_id(tmp_path / "out")
  diverged = records["faults/digits/standard/seed=1"]
  assert diverged["status"] == Status.DIVERGED and diverged["seed"] == 1
  assert re.match(r"Diverged: training diverged at epoch \d, step \d+: ", diverged["error"])
  assert diverged["config"]["label"] == "standard" and "metrics" not in diverged

  counts = engine.execute(_spec(tmp_path, DivergingRunner), executor=Sequential(),
                          keep_going=True)
  assert counts == {"done": 1, "skipped": 2, "deferred": 0, "failed": 0, "diverged": 1}
  records = _by_id(tmp_path / "out")
  assert [r["status"] for r in records.values() if "status" in r] == ["diverged"] * 2

  render_experiment(tmp_path / "out")
  readme = (tmp_path / "out" / "README.md").read_text()
  assert "diverged: standard (seed 1), g=1 +pw (seed 1) (left out of every table)" in readme
  table = (tmp_path / "out" / "tables" / "train.csv").read_text().splitlines()
  assert len(table) == 3  # header, standard and g=1 +pw from seed 0 alone
  engine.execute(_spec(tmp_path, TinyTrainRunner, out="clean", work="clean_work"))
  comparison = compare.compare_dirs(tmp_path / "clean", tmp_path / "out")
  assert comparison.summary().endswith(
      "Diverged, left out: standard (seed 1) in the run, g=1 +pw (seed 1) in the run.")
  by_label = {x.label: x for x in comparison.lines}
  assert by_label["standard"].run.n == 1 and by_label["standard"].reference.n == 2


DRIVER = """
import sys
from pathlib import Path
from fault_sweep import SWEEP, TinyTrainRunner
from sepconv.ablation import engine
from sepconv.ablation.executor import RunnerSpec
from sepconv.ablation.jobs import RunOptions
tmp = Path(sys.argv[1])
print("started", flush=True)
try:
  engine.execute(RunnerSpec(TinyTrainRunner, SWEEP, tmp / "out",
                            RunOptions(work_dir=tmp / "work", progress=False)))
except KeyboardInterrupt as e:  # as the command line does: 128 + the signal
  sys.exit(getattr(e, "exit_status", 130))
"""

# What a driver killed by each signal may exit with: SIGKILL ends it at once; SIGTERM and
# SIGINT inside a training run checkpoint and exit 143 and 130; SIGTERM between runs ends
# the driver (-15), SIGINT there is an ordinary interrupt (130).
STATUSES = {signal.SIGKILL: {-9}, signal.SIGTERM: {143, -15}, signal.SIGINT: {130}}


@pytest.mark.slow
def test_a_sweep_killed_at_random_points_ends_with_every_record_once_and_the_same_metrics(
    tmp_path):
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "", "SEPCONV_AUTOTUNE": "0",
         "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), str(ROOT),
                                                     os.environ.get("PYTHONPATH")]))}
  # Reference: the same sweep, uninterrupted, in a driver process like the killed ones (XLA's
  # CPU numerics depend on the process's device count).
  clean = tmp_path / "reference"
  clean.mkdir()
  subprocess.run([sys.executable, "-c", DRIVER, str(clean)], env=env, check=True,
                 capture_output=True, timeout=300)
  reference = _by_id(clean / "out")
  rng = random.Random(25)
  kills = [signal.SIGKILL, signal.SIGTERM, signal.SIGINT]
  kills.append(rng.choice(kills))
  rng.shuffle(kills)
  records = tmp_path / "out" / engine.RECORDS
  outcomes = []
  for signum in [*kills, None]:  # None: the last run, left to finish
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert driver.stdout.readline() == "started\n"  # imports done: compiling, then training
    if signum is not None:
      time.sleep(rng.uniform(0.5, 4.0))  # a random point of the sweep
      if driver.poll() is None:
        driver.send_signal(signum)
    _, err = driver.communicate(timeout=300)
    outcomes.append((signum, driver.returncode))
    if signum is not None and driver.returncode != 0:
      assert driver.returncode in STATUSES[signum], (signum, driver.returncode, err)
    if signum is None:
      assert driver.returncode == 0, err
    if records.exists():  # whole lines only, each job at most once
      lines = records.read_text().splitlines()
      assert all(json.loads(line) for line in lines)
      _by_id(tmp_path / "out")

  final = _by_id(tmp_path / "out")
  assert set(final) == set(reference) and len(final) == 4
  for run_id, r in final.items():
    assert {k: r["metrics"][k] for k in METRICS} == {k: reference[run_id]["metrics"][k]
                                                   for k in METRICS}, run_id
  assert not list((tmp_path / "work").rglob("*.orbax-checkpoint-tmp*"))  # none left half-written
  interrupted = sum(code != 0 for signum, code in outcomes if signum is not None)
  assert interrupted >= 3, outcomes  # the kills landed mid-sweep
