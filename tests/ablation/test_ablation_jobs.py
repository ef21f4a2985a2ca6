"""Typed jobs, the one failure path, record statuses, ablations' TrainConfig fields, ``ablate``."""

from __future__ import annotations

import dataclasses

import pytest

from sepconv.ablation import GranularityAblation, PaperTables, RunOptions, Status, Variant
from sepconv.ablation.executor import Sequential, failure
from sepconv.ablation.granularity import GranularityRunner
from sepconv.ablation.jobs import (STATUSES, BenchJob, CkaJob, DecompositionJob, FigureJob, Job,
                                   TrainJob)
from sepconv.ablation.session import ablate
from sepconv.records import read_records
from sepconv.train import default_config

TINY = GranularityAblation(
    name="tiny", variants=(Variant("standard"), Variant("dws")), seeds=(0, 1),
    datasets=("digits", "cifar10"),
    train={"model": "mobilenet_v1_shallow", "width_multiplier": 0.5, "epochs": 3},
    train_by_dataset={"cifar10": {"epochs": 7, "batch_size": 64}},
    cka_layers=("penultimate",), decomposition_layers=("block3/spatial",))


def test_each_kind_is_its_own_type_and_names_its_seed_in_the_record():
  jobs = GranularityRunner(TINY, "out", RunOptions(progress=False)).jobs()
  by_kind = {}
  for job in jobs:
    by_kind.setdefault(type(job), []).append(job)
  assert {t: len(js) for t, js in by_kind.items()} == {
      TrainJob: 4, BenchJob: 2, DecompositionJob: 1, CkaJob: 1}
  assert [j.kind for j in jobs] == ["train"] * 4 + ["bench"] * 2 + ["decomposition", "cka"]
  train, bench = by_kind[TrainJob][1], by_kind[BenchJob][0]
  assert (train.variant.conv, train.seed, train.labels()) == ("standard", 1, {"seed": 1})
  assert bench.labels() == {} and by_kind[CkaJob][0].layer == "penultimate"
  assert FigureJob("a/b", record={"kind": "paper_cost"}).kind == "paper_cost"


def test_a_job_of_another_kind_is_refused_by_type():
  runner = GranularityRunner(TINY, "out", RunOptions(progress=False))
  with pytest.raises(TypeError, match="must be a TrainJob, BenchJob"):
    runner.run_job(Job("x"))


def test_failure_is_the_one_record_of_a_job_that_did_not_finish():
  try:
    raise ValueError("size (=3) must be even\nsecond line")
  except ValueError as e:
    raised = failure(e, 1.5)
  assert raised.failed and raised.status == Status.FAILED and raised.fields is None
  assert raised.error == "ValueError: size (=3) must be even" and raised.seconds == 1.5
  assert raised.traceback.startswith("Traceback") and "second line" in raised.traceback
  died = failure("worker process died 3 times", provenance={})
  assert (died.error, died.traceback, died.status, died.provenance) == (
      "worker process died 3 times", None, Status.FAILED, {})
  assert STATUSES == tuple(s.value for s in Status) and "failed" in STATUSES


def test_an_ablation_sets_trainconfig_fields_in_one_order():
  variant = Variant("dws")
  assert TINY.train_config("digits", variant, 1) == default_config(
      "digits", model="mobilenet_v1_shallow", width_multiplier=0.5, epochs=3, conv="dws", seed=1)
  assert TINY.train_config("cifar10", variant, 0, "/data") == default_config(
      "cifar10", model="mobilenet_v1_shallow", width_multiplier=0.5, epochs=7, batch_size=64,
      conv="dws", seed=0, data_dir="/data")
  assert TINY.narrowed(epochs=2).train_config("cifar10", variant, 0).epochs == 2


@pytest.mark.parametrize("change, message", [
    (dict(train={"colour": 1}), r"train's keys \['colour'\] must be TrainConfig fields"),
    (dict(train={"seed": 1}), r"train's keys \['seed'\] must be TrainConfig fields other than"),
    (dict(train_by_dataset={"cifar10": {"lr": 1}}), r"train_by_dataset\['cifar10'\]'s keys"),
    (dict(train_by_dataset={"svhn": {}}), r"data sets \['svhn'\] must be among datasets"),
])
def test_an_ablation_refuses_what_is_not_a_trainconfig_field(change, message):
  with pytest.raises(ValueError, match=message):
    dataclasses.replace(TINY, **change)


def _figures():
  return [{"run_id": f"fig/{i}", "kind": "figure", "experiment": "figs", "ours": i}
          for i in range(3)]


def test_ablate_is_a_library_call(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  figures = PaperTables(name="figs", compute=_figures)
  with pytest.raises(ValueError, match="--reference"):
    ablate(figures, reference=tmp_path / "nothing", render=False, progress=False)
  assert not (tmp_path / "runs").exists()  # refused before any work
  result = ablate(figures, render=False, progress=False, executor=Sequential())
  assert result.out_dir == tmp_path.joinpath("runs", "figs").relative_to(tmp_path)
  assert result.counts == {"done": 3, "skipped": 0, "deferred": 0, "failed": 0, "diverged": 0}
  assert result.unfinished == 0 and result.comparison is None
  assert result.summary() == {"out": "runs/figs", **result.counts}
  assert [r["ours"] for r in read_records(result.out_dir / "records.jsonl")] == [0, 1, 2]
