"""The Ray executor on a local Ray instance with 2 CPUs: same records, faults survived."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ablation_fakes import DyingTrainRunner, FakeRunner, FakeSweep

from sepconv.ablation import GranularityAblation, Status, Variant, engine
from sepconv.ablation.executor import RunnerSpec, prepare_worker_environment
from sepconv.ablation.jobs import RunOptions
from sepconv.records import read_records

ray = pytest.importorskip("ray")
# Starting the local instance forks helper processes from this (JAX-importing) process. One
# local instance at a time: under pytest-xdist, the Ray tests share one worker.
pytestmark = [pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning"),
              pytest.mark.xdist_group("ray")]
from sepconv.ablation.ray_executor import RayExecutor

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parents[1]
# Workers import this tree's sepconv and the tests' fakes; autotuning stays off.
WORKER_ENV = {"PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), str(ROOT),
                                                          os.environ.get("PYTHONPATH")])),
              "SEPCONV_AUTOTUNE": "0"}


@pytest.fixture(scope="module")
def local_ray():
  saved = dict(os.environ)
  os.environ.update(WORKER_ENV)  # the local instance's workers inherit the driver's environment
  # The executor's own local instance: its node and services on 127.0.0.1, token-authenticated.
  RayExecutor(num_cpus=2).connect(quiet=True)
  yield
  ray.shutdown()
  os.environ.clear()
  os.environ.update(saved)


def _spec(tmp_path, experiment, make=FakeRunner, out="out") -> RunnerSpec:
  return RunnerSpec(make, experiment, tmp_path / out,
                    RunOptions(work_dir=tmp_path / "work", progress=False))


def _by_id(path):
  records = [r for r in read_records(path / engine.RECORDS) if r.get("status") != Status.FAILED]
  by_id = {r["run_id"]: r for r in records}
  assert len(by_id) == len(records)  # no duplicates
  return by_id


def test_failed_job_recorded_dead_worker_retried_others_complete(tmp_path, local_ray):
  sweep = FakeSweep(n=4, seconds=0.1, fail=("fake/1",), die_once=("fake/3",))
  counts = engine.execute(_spec(tmp_path, sweep), executor=RayExecutor())
  assert counts == {"done": 4, "skipped": 0, "deferred": 1, "failed": 1, "diverged": 0}
  records = read_records(tmp_path / "out" / engine.RECORDS)
  (failed,) = [r for r in records if r.get("status") == Status.FAILED]
  assert failed["run_id"] == "fake/1"
  assert failed["error"] == "ValueError: job fake/1 (=broken on purpose) must fail"
  assert (tmp_path / "work" / "died-fake-3").exists()  # its worker died, and the retry ran it
  by_id = _by_id(tmp_path / "out")
  assert set(by_id) == {"fake/0", "fake/2", "fake/3", "fake/timed"}
  assert {"jax", "device_kind"} <= set(records[0]["provenance"])  # the worker's
  timed = by_id["fake/timed"]["metrics"]
  assert all(timed["start"] >= by_id[f"fake/{i}"]["metrics"]["end"] for i in (0, 2, 3))  # alone


@pytest.mark.parametrize("resources,expected", [
    ({"CPU": 16.0}, {"num_cpus": 1.0}),
    ({"CPU": 96.0, "GPU": 8.0}, {"num_cpus": 1.0, "num_gpus": 1, "max_calls": 1}),
    ({"CPU": 224.0, "TPU": 8.0}, {"num_cpus": 1.0, "resources": {"TPU": 1}, "max_calls": 1}),
])
def test_a_task_asks_for_one_accelerator_where_there_are_any(monkeypatch, resources, expected):
  monkeypatch.setattr(ray, "cluster_resources", lambda: resources)
  options = RayExecutor().task_options()
  assert {k: options[k] for k in expected} == expected
  assert options["max_retries"] >= 1 and options["retry_exceptions"] is False
  assert options["runtime_env"]["env_vars"]["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
  assert ("resources" in options) == ("TPU" in resources)
  assert ("num_gpus" in options) == ("GPU" in resources)


@pytest.mark.parametrize("chips,bounds", [("3", "1,1,1"), ("0,1", None), (None, None)])
def test_a_worker_given_one_tpu_chip_is_bounded_to_it(monkeypatch, chips, bounds):
  for name in ("TPU_VISIBLE_CHIPS", "TPU_CHIPS_PER_PROCESS_BOUNDS", "TPU_PROCESS_BOUNDS",
               "XLA_PYTHON_CLIENT_PREALLOCATE"):
    monkeypatch.setenv(name, "")  # restored (or removed) after the test
    monkeypatch.delenv(name)
  if chips is not None:
    monkeypatch.setenv("TPU_VISIBLE_CHIPS", chips)
  prepare_worker_environment()
  assert os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
  assert os.environ.get("TPU_CHIPS_PER_PROCESS_BOUNDS") == bounds
  assert os.environ.get("TPU_PROCESS_BOUNDS") == bounds


DRIVER = """
import sys
from pathlib import Path
from ablation_fakes import FakeRunner, FakeSweep
from sepconv.ablation import engine
from sepconv.ablation.executor import RunnerSpec, prepare_worker_environment
from sepconv.ablation.jobs import RunOptions
from sepconv.ablation.ray_executor import RayExecutor
tmp = Path(sys.argv[1])
spec = RunnerSpec(FakeRunner, FakeSweep(n=6, seconds=1.5), tmp / "out",
                  RunOptions(work_dir=tmp / "work", progress=False))
engine.execute(spec, executor=RayExecutor(num_cpus=2))
"""


@pytest.mark.slow
def test_a_killed_driver_started_again_loses_and_duplicates_nothing(tmp_path, local_ray):
  env = {**os.environ, **WORKER_ENV, "RAY_ADDRESS": ""}
  driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path)], env=env,
                            start_new_session=True, stderr=subprocess.DEVNULL)
  records = tmp_path / "out" / engine.RECORDS
  try:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and driver.poll() is None:
      if records.exists() and len(read_records(records)) >= 2:
        break
      time.sleep(0.2)
    assert driver.poll() is None, "the driver finished before it could be killed"
    os.kill(driver.pid, signal.SIGKILL)  # mid-sweep
    driver.wait()
  finally:
    try:  # the local Ray instance it started goes with it
      os.killpg(driver.pid, signal.SIGKILL)
    except ProcessLookupError:
      pass
  first = len(read_records(records))
  assert 2 <= first < 8
  counts = engine.execute(_spec(tmp_path, FakeSweep(n=6, seconds=1.5)), executor=RayExecutor())
  assert counts["skipped"] == first and counts["done"] == 8 - first and counts["failed"] == 0
  assert set(_by_id(tmp_path / "out")) == {*(f"fake/{i}" for i in range(6)), "fake/timed",
                                           "fake/summary"}


TINY = GranularityAblation(
    name="tiny", variants=(Variant("standard"), Variant("dws")),
    seeds=(0,), train={"model": "mobilenet_v1_shallow", "width_multiplier": 0.25},
    train_by_dataset={"digits": {"epochs": 1, "batch_size": 128, "checkpoint_every_steps": 4}},
    bench_impls=("xla",), bench_repeats=1, analysis_examples=64)

SAME = ("test_accuracy", "train_accuracy", "test_loss", "probe_test_accuracy",
        "probe_train_accuracy", "effective_rank")


@pytest.mark.slow
def test_ray_gives_the_sequential_records_despite_a_worker_killed_mid_training(tmp_path,
                                                                              local_ray,
                                                                              monkeypatch):
  monkeypatch.setenv("SEPCONV_AUTOTUNE", "0")
  engine.run(TINY, tmp_path / "seq", work_dir=tmp_path / "work_seq", progress=False)
  spec = RunnerSpec(DyingTrainRunner, TINY, tmp_path / "ray",
                    RunOptions(work_dir=tmp_path / "work", progress=False))
  counts = engine.execute(spec, executor=RayExecutor())
  assert counts == {"done": 4, "skipped": 0, "deferred": 0, "failed": 0, "diverged": 0}
  seq, on_ray = _by_id(tmp_path / "seq"), _by_id(tmp_path / "ray")
  assert set(seq) == set(on_ray) and len(on_ray) == 4
  for run_id, r in seq.items():
    if r["kind"] == "train":
      assert {k: on_ray[run_id]["metrics"][k] for k in SAME} == {k: r["metrics"][k] for k in SAME}
  died = tmp_path / "work" / "died-dws-seed0"
  assert died.exists()  # the worker died once, and the retry resumed from its checkpoint
  epochs = [r for r in read_records(tmp_path / "work" / "runs" / "dws-seed0" / "metrics.jsonl")
            if r["kind"] == "epoch"]
  assert [r["resumed"] for r in epochs] == [True]
