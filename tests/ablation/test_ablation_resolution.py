"""The cross-validated ablation resolves a planted difference and not identical variants.

Real training on the digits data set, 5 folds of one seed: the standard anchor and the
depthwise-separable (dws) variant for a few epochs; the same dws run again under another
label (same seed, same folds, same epochs: the same numbers); and dws trained for one
epoch under a third label, a variant made worse on purpose. Each is its own experiment
(variants of one conv share run ids within one), their training records pooled into one
records file, as a lead merges the records of separate runs, and reported from there.
"""

from __future__ import annotations

import csv
import dataclasses
import re

import pytest

from sepconv.ablation import GranularityAblation, Variant, run
from sepconv.records import append_record, read_records
from sepconv.report import aggregate, render_experiment
from sepconv.report.anchor import versus_anchor
from sepconv.report.pairs import all_pairs

EPOCHS = 4  # the anchor and the dws variant; the planted variant trains for one
TWIN, PLANTED = "dws again", "dws 1 epoch"
BASE = GranularityAblation(
    name="resolution", variants=(Variant("standard"), Variant("dws")), seeds=(0,),
    train={"model": "mobilenet_v1_shallow", "width_multiplier": 0.25, "epochs": EPOCHS,
           "batch_size": 64, "folds": 5},
    bench_impls=(), analysis_examples=64)  # no timings, no analyses: training alone


def _train_records(tmp_path, name, variant, epochs):
  experiment = dataclasses.replace(BASE, name=name, variants=(variant,) if variant else
                                   BASE.variants, train={**BASE.train, "epochs": epochs})
  out = tmp_path / name
  counts = run(experiment, out, work_dir=tmp_path / "work" / name, progress=False)
  assert counts["failed"] == counts["diverged"] == 0
  return [r for r in read_records(out / "records.jsonl") if r["kind"] == "train"]


def _csv(path):
  with open(path, newline="", encoding="utf-8") as f:
    return list(csv.DictReader(f))


@pytest.mark.slow
def test_a_planted_difference_is_resolved_and_identical_variants_are_not(tmp_path, monkeypatch):
  monkeypatch.setenv("SEPCONV_AUTOTUNE", "0")  # the documented heuristic: the same plans each run
  records = (_train_records(tmp_path, "resolution", None, EPOCHS)
             + _train_records(tmp_path, "twin", Variant("dws", label=TWIN), EPOCHS)
             + _train_records(tmp_path, "planted", Variant("dws", label=PLANTED), 1))
  assert len(records) == 4 * 5
  pooled = tmp_path / "pooled"
  for r in records:
    append_record(pooled / "records.jsonl", r)

  rows = {r.label: r for r in aggregate.train_rows(read_records(pooled / "records.jsonl"))}
  assert sorted(rows) == sorted(["standard", "g=1 +pw", TWIN, PLANTED])
  dws, twin = rows["g=1 +pw"], rows[TWIN]
  replicates = {(0, f) for f in range(5)}
  assert all(set(r.by_replicate["test_accuracy"]) == replicates for r in rows.values())
  # Same seed, same folds, same recipe: the twin's runs reproduce the dws runs exactly
  # (the timings aside); the planted runs are far below them, fold by fold.
  for name in ("test_accuracy", "train_accuracy", "probe_test_accuracy", "probe_train_accuracy"):
    assert twin.by_replicate[name] == dws.by_replicate[name], name
  accuracy = {label: r.by_replicate["test_accuracy"] for label, r in rows.items()}
  assert all(accuracy[PLANTED][k] < accuracy[TWIN][k] - 0.2 for k in replicates), accuracy

  versus = {v.row.label: v for v in versus_anchor(list(rows.values()))}
  assert versus["standard"].test is None
  v = versus[PLANTED]
  assert v.family == 3 and v.test.n == 5 and v.test.ratio == 1 / 4
  assert v.difference.mean < 0 and v.resolved and v.p_adjusted < 0.05
  assert versus[TWIN].p_adjusted == versus["g=1 +pw"].p_adjusted

  pairs = {frozenset((p.first.label, p.second.label)): p for p in all_pairs(list(rows.values()))}
  assert len(pairs) == 6 and {p.family for p in pairs.values()} == {6}
  same = pairs[frozenset(("g=1 +pw", TWIN))]
  assert same.test.mean == 0.0 and same.test.p == 1.0 and same.p_adjusted == 1.0
  assert not same.resolved
  for label in ("g=1 +pw", TWIN, "standard"):
    p = pairs[frozenset((label, PLANTED))]
    sign = 1 if p.first.label == PLANTED else -1
    assert sign * p.test.mean < 0 and p.resolved, (label, p)

  written = render_experiment(pooled)
  tables = pooled / "tables"
  train = {r["label"]: r for r in _csv(tables / "train.csv")}
  assert train["standard"]["resolved"] == "anchor" and train[PLANTED]["resolved"] == "yes"
  assert float(train[PLANTED]["p_holm"]) < 0.05
  resolved_pairs = {frozenset((r["first"], r["second"])): r["resolved"]
                    for r in _csv(tables / "pairs.csv")}
  assert resolved_pairs[frozenset(("g=1 +pw", TWIN))] == "no"
  assert resolved_pairs[frozenset((TWIN, PLANTED))] == "yes"
  reading = (tables / "summary.md").read_text(encoding="utf-8")
  assert tables / "summary.md" in written
  resolved = reading.split(" resolved from it (Holm-adjusted p < 0.05): ")[1]
  resolved = resolved.split(" not resolved")[0]
  assert re.search(rf"{PLANTED} \(\d+\.\d\d points below, 95% CI ", resolved), reading
  assert "5-fold cross-validation" in reading and "Holm's adjustment over 3 comparisons" in reading
