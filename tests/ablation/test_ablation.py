"""The experiment runner: a tiny sweep end to end, interrupted, resumed, re-rendered."""


import pytest

from sepconv import experiments
from sepconv.ablation import (GranularityAblation, LayerSweep, RunOptions, Variant, engine,
                              parse_shard, run)
from sepconv.ablation.granularity import GranularityRunner
from sepconv.cli.main import main
from sepconv.records import read_records

TINY = GranularityAblation(
    name="tiny", variants=(Variant("standard"), Variant("dws")),
    seeds=(0,), train={"model": "mobilenet_v1_shallow", "width_multiplier": 0.25},
    train_by_dataset={"digits": {"epochs": 1, "batch_size": 128}}, bench_repeats=2,
    analysis_examples=64, cka_layers=("block4", "penultimate"),
    decomposition_layers=("block3/spatial",))


class _Interrupt(BaseException):
  """The process dying (a job's own exception would be recorded as a failure instead)."""


def test_tiny_sweep_interrupted_resumed_and_rendered(tmp_path, monkeypatch):
  # 'auto' from the documented heuristic: measuring every shape would dominate the test.
  monkeypatch.setenv("SEPCONV_AUTOTUNE", "0")
  monkeypatch.setenv("SEPCONV_CACHE_DIR", str(tmp_path / "cache"))
  out, work = tmp_path / "out", tmp_path / "work"
  calls = []
  original = GranularityRunner.run_job

  def flaky(self, job):
    calls.append(job.run_id)
    if len(calls) == 3:
      raise _Interrupt  # the process dies in the middle of the third job
    return original(self, job)

  monkeypatch.setattr(GranularityRunner, "run_job", flaky)
  with pytest.raises(_Interrupt):
    run(TINY, out, work_dir=work, progress=False)
  assert len(read_records(out / "records.jsonl")) == 2
  monkeypatch.setattr(GranularityRunner, "run_job", original)

  counts = run(TINY, out, work_dir=work, progress=False)
  assert counts == {"done": 5, "skipped": 2, "deferred": 0, "failed": 0, "diverged": 0}
  records = read_records(out / "records.jsonl")
  ids = [r["run_id"] for r in records]
  assert len(ids) == len(set(ids)) == 7  # nothing lost, nothing duplicated
  kinds = sorted(r["kind"] for r in records)
  assert kinds == ["bench"] * 2 + ["cka"] * 2 + ["decomposition"] + ["train"] * 2
  for r in records:
    assert {"experiment", "run_id", "kind", "provenance"} <= set(r)
    assert {"jax", "device_kind", "git_revision"} <= set(r["provenance"])
  train = [r for r in records if r["kind"] == "train"]
  for r in train:
    assert r["seed"] == 0 and 0 <= r["metrics"]["test_accuracy"] <= 1
    assert r["cost"]["params"] > 0 and r["cost"]["mult_adds"] > 0
    assert set(r["metrics"]["effective_rank"]) >= {"stem", "block1", "penultimate"}
  by_label = {r["config"]["label"]: r for r in train}
  assert by_label["standard"]["cost"]["params"] > by_label["g=1 +pw"]["cost"]["params"]
  bench = [r for r in records if r["kind"] == "bench"]
  assert all(set(r["timings"]) == {"auto", "xla"} for r in bench)
  (decomp,) = [r for r in records if r["kind"] == "decomposition"]
  errors = {(e["group_size"], e["depth_multiplier"], e["pointwise"]): e["rel_error"]
            for e in decomp["decomposition"]["errors"]}
  assert errors[(8, None, False)] < 1e-6 + errors[(1, None, False)]  # 8 = C_in of block3: dense

  # A third run has nothing to do; the report regenerates byte-identical tables.
  assert run(TINY, out, work_dir=work, progress=False)["done"] == 0
  from sepconv.report import render_experiment
  first = {p: p.read_bytes() for p in render_experiment(out) if p.suffix in (".md", ".csv", ".tex")}
  second = {p: p.read_bytes() for p in render_experiment(out) if p.suffix in (".md", ".csv", ".tex")}
  assert first == second and any(p.name == "README.md" for p in first)


def test_shards_partition_the_grid_and_analyses_stay_on_shard_zero(tmp_path):
  grid_runner = GranularityRunner(TINY, tmp_path, RunOptions(work_dir=tmp_path, progress=False))
  jobs = grid_runner.jobs()
  shards = [engine.select(jobs, (i, 3), grid_runner.analysis_kinds) for i in range(3)]
  ids = [j.run_id for shard in shards for j in shard]
  assert sorted(ids) == sorted(j.run_id for j in jobs) and len(ids) == len(set(ids))
  assert all(j.kind not in ("cka", "decomposition") for shard in shards[1:] for j in shard)


def test_analyses_are_deferred_without_their_runs(tmp_path):
  grid_runner = GranularityRunner(TINY, tmp_path, RunOptions(work_dir=tmp_path / "empty",
                                                              progress=False))
  analyses = [j for j in grid_runner.jobs() if j.kind in grid_runner.analysis_kinds]
  assert analyses and all(grid_runner.run_job(j) is None for j in analyses)


@pytest.mark.parametrize("text,expected", [(None, (0, 1)), ("0/1", (0, 1)), ("2/4", (2, 4))])
def test_parse_shard(text, expected):
  assert parse_shard(text) == expected


@pytest.mark.parametrize("argv,message", [
    (["ablate", "nope"], "experiment (='nope') must be one of"),
    (["ablate", "granularity", "--shard", "4/4"], "--shard (='4/4') must satisfy 0 <= i < n"),
    (["ablate", "granularity", "--shard", "x"], "--shard (='x') must be i/n"),
    (["ablate", "granularity", "--seeds", "0,a"], "--seeds (='0,a')"),
    (["ablate", "granularity", "--dataset", "mnist"], "--dataset (='mnist') must be one of"),
])
def test_bad_arguments_are_one_line(capsys, tmp_path, argv, message):
  code = main(argv + ["--out", str(tmp_path / "o"), "--work-dir", str(tmp_path / "w")])
  err = capsys.readouterr().err
  assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_experiment_definitions_are_valid():
  for name in experiments.NAMES:
    experiment = experiments.get(name)
    assert experiment.__class__.__doc__
  granularity = experiments.get("granularity")
  assert granularity.anchor is not None and granularity.cka_layers
  assert {v.point.pointwise for v in granularity.variants} == {True, False}
  seed = experiments.get("seed_example")
  assert [v.conv for v in seed.schemes[:6]] == ["standard", "dws:m=32", "dws", "dws:m=4", "dws:g=4",
                                                "grouped:g=6"]


def test_layer_sweep_records_cost_and_speed_per_impl(tmp_path, monkeypatch):
  monkeypatch.setenv("SEPCONV_AUTOTUNE", "0")
  sweep = LayerSweep(name="tiny_layer", schemes=(Variant("standard"), Variant("dws:g=2")),
                     input_size=6, in_channels=8, out_channels=4, kernel_size=3, batch=2,
                     impls=("auto", "xla"), repeats=1)
  assert run(sweep, tmp_path, progress=False) == {"done": 2, "skipped": 0, "deferred": 0, "failed": 0, "diverged": 0}
  records = read_records(tmp_path / "records.jsonl")
  by_conv = {r["config"]["conv"]: r for r in records}
  assert by_conv["standard"]["cost"]["params"] == 3 * 3 * 8 * 4
  assert by_conv["dws:g=2"]["cost"]["params"] == 3 * 3 * 2 * 8 + 8 * 4
  for r in records:
    assert set(r["timings"]) == {"auto", "xla"}
    assert all(t["fwd_ms"] > 0 and t["fwdbwd_ms"] > 0 for t in r["timings"].values())
  assert run(sweep, tmp_path, progress=False)["skipped"] == 2
