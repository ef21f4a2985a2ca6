"""Cross-validated ablations: one job per (variant, seed, fold), ids and paths naming the fold."""

from __future__ import annotations

import dataclasses

import pytest

from sepconv import experiments
from sepconv.ablation import GranularityAblation, RunOptions, Variant, run
from sepconv.ablation.granularity import GranularityRunner
from sepconv.ablation.jobs import TrainJob
from sepconv.records import read_records

TINY = GranularityAblation(
    name="tiny", variants=(Variant("standard"), Variant("dws")), seeds=(0, 1),
    datasets=("digits", "cifar10"),
    train={"model": "mobilenet_v1_shallow", "width_multiplier": 0.25, "epochs": 1,
           "batch_size": 128, "folds": 3},
    train_by_dataset={"cifar10": {"folds": 0}}, bench_repeats=2, analysis_examples=64,
    cka_layers=("penultimate",), decomposition_layers=("block3/spatial",))


def _runner(tmp_path, experiment=TINY, **options):
  return GranularityRunner(experiment, tmp_path / "out",
                           RunOptions(work_dir=tmp_path / "work", progress=False, **options))


def test_every_variant_runs_every_fold_of_every_seed_under_its_own_id_and_paths(tmp_path):
  runner = _runner(tmp_path)
  train = [j for j in runner.jobs() if isinstance(j, TrainJob)]
  assert [(j.variant.conv, j.seed, j.fold) for j in train] == [
      (v, s, f) for v in ("standard", "dws") for s in (0, 1) for f in range(3)]
  ids = [j.run_id for j in train]
  assert len(set(ids)) == len(ids) == 12
  assert ids[:3] == [f"tiny/digits/standard/seed=0/fold={f}" for f in range(3)]
  dirs = {runner.run_dir(j.variant, j.seed, j.fold) for j in train}
  feats = {runner.features_path(j.variant, j.seed, j.fold) for j in train}
  assert len(dirs) == len(feats) == 12
  assert runner.run_dir(Variant("dws"), 1, 2).name == "dws-seed1-fold2"
  job = train[5]  # standard, seed 1, fold 2
  assert runner.config(job.variant, job.seed, job.fold) == TINY.train_config(
      "digits", job.variant, 1, fold=2)
  assert job.identity()["config"] | {"folds": 3, "fold": 2} == job.identity()["config"]
  assert job.labels() == {"seed": 1}
  # The analyses read one training run: the first seed's fold 0.
  analyses = [j for j in runner.jobs() if j.kind in ("cka", "decomposition")]
  assert [j.run_id for j in analyses] == ["tiny/digits/decomposition/block3/spatial/seed=0",
                                          "tiny/digits/cka/penultimate/seed=0"]


def test_a_runs_data_is_its_fold_and_the_same_fold_for_every_variant(tmp_path):
  runner = _runner(tmp_path)
  a, b = runner.data(1, 2), runner.data(1, 2)
  assert a is b and a.num_test in (599, 600) and a.num_train + a.num_test == 1797
  assert runner.data(1, 1).x_test.tobytes() != a.x_test.tobytes()


def test_cifar_keeps_its_official_split_and_pairs_by_seed(tmp_path):
  runner = _runner(tmp_path, dataset="cifar10")
  train = [j for j in runner.jobs() if isinstance(j, TrainJob)]
  assert runner.folds == 0 and [j.fold for j in train] == [0] * 4
  assert train[1].run_id == "tiny/cifar10/standard/seed=1"
  assert runner.run_dir(Variant("dws"), 1).name == "dws-seed1"
  granularity = experiments.get("granularity")
  assert {d: granularity.folds(d) for d in granularity.datasets} == {
      "digits": 5, "cifar10": 0, "cifar100": 0}


def test_a_data_set_may_run_its_own_seeds_and_the_command_line_overrides_them(tmp_path):
  experiment = dataclasses.replace(TINY, seeds_by_dataset={"digits": (4,)})

  def seeds(**options):
    return {j.seed for j in _runner(tmp_path, experiment, **options).jobs()
            if isinstance(j, TrainJob)}
  assert (seeds(), seeds(dataset="cifar10"), seeds(seeds=(7, 8))) == ({4}, {0, 1}, {7, 8})
  with pytest.raises(ValueError, match=r"seeds_by_dataset's data sets \['svhn'\]"):
    dataclasses.replace(TINY, seeds_by_dataset={"svhn": (0,)})
  with pytest.raises(ValueError, match=r"seeds_by_dataset\['digits'\] \(=\(\)\) must be"):
    dataclasses.replace(TINY, seeds_by_dataset={"digits": ()})


def test_folds_that_do_not_validate_refuse_the_experiment():
  bad = dataclasses.replace(TINY, train={**TINY.train, "folds": 1})
  with pytest.raises(ValueError, match=r"folds \(=1\) must be 0"):
    bad.folds("digits")
  with pytest.raises(ValueError, match=r"train's keys \['fold'\] must be TrainConfig fields "
                                       r"other than"):
    dataclasses.replace(TINY, train={**TINY.train, "fold": 1})


def test_resume_skips_the_recorded_folds_and_runs_the_rest(tmp_path, monkeypatch):
  calls = []

  def fake(self, job):
    calls.append(job.run_id)
    if len(calls) == 4:
      raise KeyboardInterrupt  # the process dies during the fourth job
    return {"config": {"folds": getattr(job, "folds", None), "fold": getattr(job, "fold", None)}}

  monkeypatch.setattr(GranularityRunner, "run_job", fake)
  kwargs = dict(work_dir=tmp_path / "work", progress=False, variants=("standard",))
  with pytest.raises(KeyboardInterrupt):
    run(TINY, tmp_path / "out", **kwargs)
  done = [r["run_id"] for r in read_records(tmp_path / "out" / "records.jsonl")]
  assert done == [f"tiny/digits/standard/seed=0/fold={f}" for f in range(3)]
  counts = run(TINY, tmp_path / "out", **kwargs)
  assert counts["skipped"] == 3 and counts["done"] == 3 + 1 + 2  # folds, bench, analyses
  assert calls[4:7] == [f"tiny/digits/standard/seed={s}/fold={f}"
                        for s, f in ((1, 0), (1, 1), (1, 2))]
  records = read_records(tmp_path / "out" / "records.jsonl")
  assert [r["config"]["fold"] for r in records if r["kind"] == "train"] == [0, 1, 2, 0, 1, 2]
  assert run(TINY, tmp_path / "out", **kwargs)["done"] == 0


@pytest.mark.slow
def test_a_cross_validated_sweep_records_each_fold_and_analyses_fold_zero(tmp_path, monkeypatch):
  monkeypatch.setenv("SEPCONV_AUTOTUNE", "0")
  monkeypatch.setenv("SEPCONV_CACHE_DIR", str(tmp_path / "cache"))
  experiment = dataclasses.replace(TINY, seeds=(0,), train={**TINY.train, "folds": 2})
  counts = run(experiment, tmp_path / "out", work_dir=tmp_path / "work", progress=False)
  assert counts == {"done": 8, "skipped": 0, "deferred": 0, "failed": 0, "diverged": 0}
  records = read_records(tmp_path / "out" / "records.jsonl")
  train = [r for r in records if r["kind"] == "train"]
  assert [(r["config"]["conv"], r["config"]["folds"], r["config"]["fold"], r["seed"])
          for r in train] == [("standard", 2, 0, 0), ("standard", 2, 1, 0), ("dws", 2, 0, 0),
                              ("dws", 2, 1, 0)]
  assert all(0 <= r["metrics"]["test_accuracy"] <= 1 for r in train)
  (cka,) = [r for r in records if r["kind"] == "cka"]
  assert cka["config"]["examples"] == 64
