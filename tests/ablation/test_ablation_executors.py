"""Executors, failure records, the results-folder lock and the sweep's progress line."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ablation_fakes import FakeRunner, FakeSweep, GroupedWorkJob

from sepconv.ablation import engine
from sepconv.ablation.executor import RunnerSpec, Sequential
from sepconv.ablation.jobs import RunOptions, Status
from sepconv.ablation.lock import FolderLocked, folder_lock
from sepconv.ablation import processes
from sepconv.ablation.processes import Processes
from sepconv.ablation.progress import SweepProgress
from sepconv.cli.main import main
from sepconv.records import read_records


def _spec(tmp_path, sweep: FakeSweep, out: str = "out") -> RunnerSpec:
  return RunnerSpec(FakeRunner, sweep, tmp_path / out,
                    RunOptions(work_dir=tmp_path / "work", progress=False))


def _ok(records):
  return [r for r in records if r.get("status") != Status.FAILED]


def test_a_failed_job_is_recorded_and_retried_by_a_later_run(tmp_path):
  broken = FakeSweep(n=3, seconds=0, fail=("fake/1",))
  counts = engine.execute(_spec(tmp_path, broken), executor=Sequential())
  # The summary reads every 'work' output: it waits for the failed one.
  assert counts == {"done": 3, "skipped": 0, "deferred": 1, "failed": 1, "diverged": 0}
  records = read_records(tmp_path / "out" / engine.RECORDS)
  (failed,) = [r for r in records if r.get("status") == Status.FAILED]
  assert failed["run_id"] == "fake/1" and failed["kind"] == "work"
  assert failed["error"] == "ValueError: job fake/1 (=broken on purpose) must fail"
  assert "Traceback" in failed["traceback"]
  assert "fake/1" not in engine.recorded_ids(tmp_path / "out")

  fixed = FakeSweep(n=3, seconds=0)
  counts = engine.execute(_spec(tmp_path, fixed), executor=Sequential())
  assert counts == {"done": 2, "skipped": 3, "deferred": 0, "failed": 0, "diverged": 0}  # fake/1 and summary
  ids = [r["run_id"] for r in _ok(read_records(tmp_path / "out" / engine.RECORDS))]
  assert sorted(ids) == ["fake/0", "fake/1", "fake/2", "fake/summary", "fake/timed"]


def test_processes_match_sequential_retry_a_dead_worker_and_run_exclusive_jobs_alone(tmp_path):
  sweep = FakeSweep(n=4, seconds=0.3)
  engine.execute(_spec(tmp_path, sweep, "seq"), executor=Sequential())
  (tmp_path / "work").rename(tmp_path / "work_seq")
  dying = FakeSweep(n=4, seconds=0.3, die_once=("fake/2",), fail=())
  counts = engine.execute(_spec(tmp_path, dying, "pool"), executor=Processes(2))
  assert counts == {"done": 6, "skipped": 0, "deferred": 0, "failed": 0, "diverged": 0}
  seq = {r["run_id"]: r for r in read_records(tmp_path / "seq" / engine.RECORDS)}
  records = read_records(tmp_path / "pool" / engine.RECORDS)
  pool = {r["run_id"]: r for r in records}
  assert len(records) == len(pool) == 6 and set(pool) == set(seq)  # no duplicates, none lost
  for run_id, r in pool.items():
    for key in ("value", "total"):
      assert r["metrics"].get(key) == seq[run_id]["metrics"].get(key)
  assert (tmp_path / "work" / "died-fake-2").exists()  # it did die once
  work = [pool[f"fake/{i}"]["metrics"] for i in range(4)]
  assert len({m["pid"] for m in work}) >= 2  # two workers at once
  timed = pool["fake/timed"]["metrics"]
  assert all(timed["start"] >= m["end"] for m in work)  # alone, after the others


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs to pin 2 workers")
def test_pinned_workers_own_a_cpu_each_and_time_where_the_affinity_is(tmp_path, monkeypatch):
  monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
  sweep = FakeSweep(n=6, seconds=0.2, groups=2)
  counts = engine.execute(_spec(tmp_path, sweep), executor=Processes(2, pin=True))
  assert counts == {"done": 8, "skipped": 0, "deferred": 0, "failed": 0, "diverged": 0}
  pool = {r["run_id"]: r["metrics"] for r in read_records(tmp_path / "out" / engine.RECORDS)}
  work = [pool[f"fake/{i}"] for i in range(6)]
  assert all(len(m["cpus"]) == 1 and m["blas_threads"] == "1" for m in work)
  workers = {(m["pid"], tuple(m["cpus"])) for m in work}
  assert len({cpus for _, cpus in workers}) == 2  # two workers, a CPU each (which job ran
  # where depends on timing: a free worker takes another group's job rather than idle)
  timed = pool["fake/timed"]  # alone, on the worker that started a job of its group (1) last
  assert all(timed["start"] >= m["end"] for m in work)
  group = [pool[f"fake/{i}"] for i in (1, 3, 5)]  # i % 2 == 1
  holder = max(group, key=lambda m: m["start"])["pid"]
  assert timed["pid"] == holder and len(timed["cpus"]) == 1 and timed["blas_threads"] == "1"
  assert "OPENBLAS_NUM_THREADS" not in os.environ  # the driver's environment is as it was


def test_cpu_shares_split_this_process_cpus():
  cpus = sorted(os.sched_getaffinity(0))
  shares = processes.cpu_shares(len(cpus))
  assert [c for share in shares for c in share] == cpus
  assert processes.cpu_shares(len(cpus) + 1) == [None] * (len(cpus) + 1)  # too few: no pinning


def test_a_free_worker_keeps_its_affinity_then_takes_one_nobody_holds():
  jobs = [GroupedWorkJob(f"j/{i}", seed=i, group=g) for i, g in enumerate((0, 0, 1, 1, 2))]
  me, other = processes._Worker(None), processes._Worker(None)
  me.affinity, other.affinity, other.future = 1, 0, object()
  pending = list(jobs)
  assert processes._next_job(pending, me, [me, other]).run_id == "j/2"  # its own group
  me.affinity = 5
  assert processes._next_job(pending, me, [me, other]).run_id == "j/3"  # group 0 is held
  assert processes._next_job(pending, me, [me, other]).run_id == "j/4"
  assert processes._next_job(pending, me, [me, other]).run_id == "j/0"  # only held ones left


def test_auto_executor_is_pinned_processes_on_a_multi_cpu_host():
  executor = engine.make_executor("auto")
  if len(os.sched_getaffinity(0)) >= 2:
    assert isinstance(executor, Processes) and executor.pin
    assert executor.workers == min(len(os.sched_getaffinity(0)), processes.MAX_PER_CPU_WORKERS)
  else:
    assert isinstance(executor, Sequential)


def test_a_runner_that_cannot_be_built_on_a_worker_fails_its_jobs_not_the_sweep(tmp_path):
  sweep = FakeSweep(n=2, seconds=0, only_in_pid=os.getpid())
  counts = engine.execute(_spec(tmp_path, sweep), executor=Processes(1))
  assert counts == {"done": 0, "skipped": 0, "deferred": 0, "failed": 4, "diverged": 0}
  errors = {r["error"] for r in read_records(tmp_path / "out" / engine.RECORDS)}
  assert errors == {f"FileNotFoundError: no data set at {tmp_path / 'work'} on this worker"}


def test_a_second_runner_on_the_same_folder_is_refused_and_changes_nothing(tmp_path):
  sweep = FakeSweep(n=2, seconds=0)
  out = tmp_path / "out"
  engine.execute(_spec(tmp_path, FakeSweep(n=2, seconds=0, fail=("fake/0",))))
  before = (out / engine.RECORDS).read_bytes()
  with folder_lock(out):  # the first runner, still running
    with pytest.raises(FolderLocked, match=r"held by another runner, pid \d+ on host"):
      engine.execute(_spec(tmp_path, sweep))
    assert (out / engine.RECORDS).read_bytes() == before
  # Once the holder is gone the next runner takes over and completes the sweep.
  assert engine.execute(_spec(tmp_path, sweep))["done"] == 2  # fake/0 and the summary
  ids = [r["run_id"] for r in _ok(read_records(out / engine.RECORDS))]
  assert len(ids) == len(set(ids)) == 4


FIRST_RUNNER = """
import sys
from pathlib import Path
from ablation_fakes import FakeRunner, FakeSweep, GroupedWorkJob
from sepconv.ablation import engine
from sepconv.ablation.executor import RunnerSpec
from sepconv.ablation.jobs import RunOptions
tmp = Path(sys.argv[1])
engine.execute(RunnerSpec(FakeRunner, FakeSweep(n=4, seconds=0.5), tmp / "out",
                          RunOptions(work_dir=tmp / "work", progress=False)))
"""


def test_two_runners_started_on_one_folder_neither_duplicate_nor_lose_records(tmp_path):
  tests = Path(__file__).resolve().parent
  env = {**os.environ, "PYTHONPATH": os.pathsep.join(
      filter(None, [str(tests), str(tests.parents[1]), os.environ.get("PYTHONPATH")]))}
  first = subprocess.Popen([sys.executable, "-c", FIRST_RUNNER, str(tmp_path)], env=env)
  try:
    lock = tmp_path / "out" / ".lock"
    deadline = time.monotonic() + 60
    while not (lock.exists() and lock.read_text()) and time.monotonic() < deadline:
      time.sleep(0.05)
    with pytest.raises(FolderLocked, match=rf"pid {first.pid} on host"):
      engine.execute(_spec(tmp_path, FakeSweep(n=4, seconds=0.5)))
  finally:
    assert first.wait(timeout=60) == 0
  assert engine.execute(_spec(tmp_path, FakeSweep(n=4, seconds=0.5)))["skipped"] == 6
  ids = [r["run_id"] for r in read_records(tmp_path / "out" / engine.RECORDS)]
  assert sorted(ids) == sorted({*(f"fake/{i}" for i in range(4)), "fake/timed", "fake/summary"})


def test_a_locked_folder_is_one_line_from_the_command_line(tmp_path, capsys):
  out = tmp_path / "o"
  with folder_lock(out):
    code = main(["ablate", "mobilenet_paper", "--out", str(out), "--no-report"])
  err = capsys.readouterr().err
  assert code == 2 and "held by another runner" in err and len(err.strip().splitlines()) == 1


def test_sweep_progress_line():
  progress = SweepProgress(4)
  assert progress.line(now=progress.start + 5) == "0/4 jobs done, 0:00:05 elapsed"
  progress.finished, progress.failed = 1, 1
  assert progress.line(now=progress.start + 30) == (
      "1/4 jobs done (1 failed), 0:00:30 elapsed, about 0:01:30 left")


def test_quiet_sweeps_write_nothing_to_stderr(tmp_path, capfd):
  engine.execute(_spec(tmp_path, FakeSweep(n=2, seconds=0)))
  assert capfd.readouterr().err == ""


@pytest.mark.parametrize("kwargs,message", [
    ({"name": "threads"}, "--executor (='threads') must be one of auto, sequential, processes, ray"),
    ({"name": "sequential", "workers": 2}, "--workers (=2) only applies to --executor processes"),
    ({"name": "processes", "address": "auto"}, "--address and --cpus-per-job only apply"),
    ({"name": "processes", "workers": 0}, "--workers (=0) must be >= 1"),
])
def test_bad_executor_arguments(kwargs, message):
  with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
    engine.make_executor(**kwargs)


def test_a_bucket_work_dir_is_refused(tmp_path):
  spec = RunnerSpec(FakeRunner, FakeSweep(), tmp_path / "out",
                    RunOptions(work_dir=Path("gs://bucket/runs"), progress=False))
  with pytest.raises(ValueError, match=r"--work-dir \(=gs:/bucket/runs\) must be a filesystem"):
    engine.execute(spec)
  assert not (tmp_path / "out").exists()


def test_ray_missing_is_one_line(monkeypatch, capsys, tmp_path):
  monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
  code = main(["ablate", "mobilenet_paper", "--executor", "ray", "--out", str(tmp_path / "o")])
  err = capsys.readouterr().err
  assert code == 2 and "--executor ray needs Ray: pip install 'sepconv[ray]'" in err
  assert len(err.strip().splitlines()) == 1
