"""The record schema: validation that names file, line and field; round trips; the metric registry."""

from __future__ import annotations

import csv
import io
import json

import pytest

from sepconv.records import (KINDS, RECORDS_FILE, SCHEMA_VERSION, append_record, metrics,
                             read_records, validate_record)
from sepconv.records.schema import layer_bench_record
from sepconv.report import aggregate, compare, tables

PROV = {"sepconv": "0.1", "jax": "0.7.2", "device_kind": "cpu", "platform": "cpu",
        "git_revision": "abc", "time": "2026-01-01T00:00:00+00:00"}


def _train(label: str, seed: int, accuracy: float, **metrics_) -> dict:
  return {"kind": "train", "run_id": f"x/{label}/seed={seed}", "config": {"label": label},
          "seed": seed, "metrics": {"test_accuracy": accuracy, **metrics_},
          "cost": {"params": 10, "mult_adds": 100}, "provenance": PROV}


def test_a_record_round_trips_and_its_line_carries_the_version(tmp_path):
  path = tmp_path / RECORDS_FILE
  records = [_train("g=1", 0, 0.5, effective_rank={"block1": 3.5}),
             layer_bench_record("flax_block", run_id="r", mode="forward", status="ok",
                                config={"batch": 1}, provenance=PROV,
                                timing={"median_ms": 1.5, "p25_ms": 1.0, "p75_ms": 2.0,
                                        "repeats": 3, "compile_ms": None},
                                block="convnext", variant="flax", reason=None)]
  for r in records:
    append_record(path, r)
  lines = path.read_text().splitlines()
  assert len(lines) == 2 and all(json.loads(line)["schema_version"] == SCHEMA_VERSION for line in lines)
  assert read_records(path) == records
  # Appending what was read writes the same lines again (one flushed line each).
  for r in read_records(path):
    append_record(path, r)
  assert path.read_text().splitlines() == lines + lines


def test_records_without_a_version_still_read(tmp_path):
  path = tmp_path / RECORDS_FILE
  old = _train("g=2", 1, 0.25)
  path.write_text(json.dumps(old) + "\n")
  assert read_records(path) == [old]


def test_a_wrong_field_is_named_with_file_and_line(tmp_path):
  path = tmp_path / RECORDS_FILE
  good, bad = _train("a", 0, 0.5), _train("b", 0, 0.5)
  bad["metrics"]["test_accuracy"] = "high"
  path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n" + json.dumps(good) + "\n")
  with pytest.raises(ValueError, match=rf"{RECORDS_FILE}:2: field 'metrics\.test_accuracy' "
                                       r"\(='high'\) must be a number"):
    read_records(path)


@pytest.mark.parametrize("change, message", [
    (lambda r: r.update(config=[1]), "field 'config' (=[1]) must be an object"),
    (lambda r: r.update(seed="0"), "field 'seed' (='0') must be an integer"),
    (lambda r: r.pop("kind"), "field 'kind' is missing"),
    (lambda r: r.update(schema_version=SCHEMA_VERSION + 1), "field 'schema_version'"),
    (lambda r: r["metrics"].update(effective_rank=2.0), "field 'metrics.effective_rank'"),
    (lambda r: r.update(timings={"xla": 3}), "field 'timings.xla' (=3) must be an object"),
    (lambda r: r.update(timings={"xla": {"fwd_ms": True}}), "field 'timings.xla.fwd_ms'"),
])
def test_validation_names_the_field(change, message):
  record = _train("a", 0, 0.5)
  change(record)
  with pytest.raises(ValueError) as e:
    validate_record(record)
  assert message in str(e.value)


def test_a_layer_benchmark_record_needs_its_kinds_fields(tmp_path):
  line = {"kind": "conv_layer", "run_id": "r", "mode": "fwd", "status": "ok", "config": {},
          "provenance": PROV, "median_ms": 1.0, "p25_ms": 1.0, "p75_ms": 1.0, "repeats": 1}
  path = tmp_path / RECORDS_FILE
  path.write_text(json.dumps(line) + "\n")
  with pytest.raises(ValueError, match=rf"{RECORDS_FILE}:1: field 'impl' is missing"):
    read_records(path)
  with pytest.raises(ValueError, match="field 'median_ms' is missing"):
    layer_bench_record("train_step", run_id="r", mode="train_step", status="ok", config={},
                       provenance=PROV, impl="xla")
  with pytest.raises(ValueError, match=r"kind \(='bench'\) must be one of"):
    layer_bench_record("bench", run_id="r", mode="x", status="ok", config={}, provenance=PROV)
  assert {"conv_layer", "flax_block", "train_step"} <= set(KINDS)


def test_append_refuses_a_wrong_record_and_writes_nothing(tmp_path):
  path = tmp_path / RECORDS_FILE
  with pytest.raises(ValueError, match="field 'cost.params' .* must be a number"):
    append_record(path, {**_train("a", 0, 0.5), "cost": {"params": "ten"}})
  assert not path.exists()


def test_unknown_kinds_and_missing_fields_pass():
  assert validate_record({"kind": "future-kind", "payload": 1})
  assert validate_record({"kind": "train", "config": {"label": "bare"}})


def _csv(text: str) -> list[dict]:
  return list(csv.DictReader(io.StringIO(text)))


def test_the_registry_drives_aggregation_tables_and_comparison(monkeypatch):
  """A metric added to the registry alone is aggregated, shown and compared."""
  new = metrics.Metric("val_accuracy", "val acc. (%)", "percent", "%", True, ("metrics",),
                       "validation accuracy")
  monkeypatch.setattr(metrics, "METRICS", metrics.METRICS + (new,))
  monkeypatch.setattr(metrics, "BY_NAME", {**metrics.BY_NAME, new.name: new})
  monkeypatch.setattr(metrics, "TRAIN_TABLE", metrics.TRAIN_TABLE + (new.name,))
  monkeypatch.setattr(metrics, "PRIMARY", new.name)
  records = [_train(label, seed, 0.5, val_accuracy=v)
             for label, seed, v in (("a", 0, 0.25), ("a", 1, 0.75), ("b", 0, 0.5), ("b", 1, 0.5))]
  rows = aggregate.train_rows(records)
  assert [r.stats["val_accuracy"].mean for r in rows] == [0.5, 0.5]
  assert all("val_accuracy" not in r.extra for r in rows)  # registered, so not an "other" metric
  table = tables.train_table(rows)
  assert "val acc. (%)" in [c.header for c in table.columns]
  assert [row["val_accuracy_mean"] for row in _csv(tables.to_csv(table))] == ["0.5", "0.5"]
  shifted = [dict(r, metrics={**r["metrics"], "val_accuracy": r["metrics"]["val_accuracy"] + 0.5})
             for r in records]
  c = compare.compare(records, shifted)
  assert {x.metric for x in c.lines} == {"val_accuracy"}
  assert "reference (%)" in compare.to_markdown(c)
  with pytest.raises(ValueError, match="field 'metrics.val_accuracy'"):
    validate_record(_train("a", 0, 0.5, val_accuracy="n/a"))


def test_registry_entries_are_consistent():
  for name in (*metrics.TRAIN_TABLE, *metrics.BENCH_TABLE, metrics.PRIMARY):
    assert metrics.metric(name).name == name
  for m in metrics.METRICS:
    assert ("throughput" in m.sources) == bool(m.derived_from)
  with pytest.raises(ValueError, match=r"metric \(='nosuch'\) must be one of"):
    metrics.metric("nosuch")
  with pytest.raises(ValueError, match=r"fmt \(='pct'\)"):
    metrics.Metric("x", "x", "pct", "%", True, ("metrics",), "x")
