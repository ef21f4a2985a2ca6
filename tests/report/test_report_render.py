"""End-to-end report rendering from fabricated records: contents, determinism, tolerance, CLI."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import numpy as np
import pytest

from sepconv.analysis import cka_matrix, cka_record, decomposition_errors
from sepconv.cli.main import main
from sepconv.records import RECORDS_FILE, append_record, read_records
from sepconv.report import render_all, render_experiment, stats

POINTS = ((1, 1, True), (4, 1, True), (16, 1, True), (16, None, False))
IMPLS = ("xla", "shift")


def _prov(rng):
  return {"sepconv": "0.1.0", "jax": "0.10.2", "device_kind": "cpu", "platform": "cpu",
          "git_revision": f"{rng.integers(1 << 32):08x}", "time": f"2026-01-0{rng.integers(1, 9)}T00:00:00+00:00"}


def fabricate(path: Path, seed: int = 0, seeds=(0, 1, 2)) -> None:
  """Writes records of every kind with random values: no number is typed in."""
  rng = np.random.default_rng(seed)
  for g, m, pw in POINTS:
    label = f"g={g} +pw" if pw else "dense"
    config = {"model": "mobilenet_v1", "dataset": "digits", "conv": f"spec:g={g}", "label": label,
              "group_size": g, "depth_multiplier": m, "pointwise": pw, "batch_size": 32}
    cost = {"params": int(rng.integers(1e3, 1e6)) * g, "mult_adds": int(rng.integers(1e6, 1e8)) * g}
    for s in seeds:
      append_record(path, {
          "experiment": "granularity", "run_id": f"granularity/digits/{label}/seed={s}",
          "kind": "train", "config": {**config, "seed": s}, "seed": s,
          "metrics": {"test_accuracy": float(rng.uniform(0.5, 1.0)),
                      "train_accuracy": float(rng.uniform(0.5, 1.0)),
                      "train_images_per_s": float(rng.uniform(1e2, 1e4)),
                      "infer_images_per_s": float(rng.uniform(1e3, 1e5)),
                      "probe_test_accuracy": float(rng.uniform(0.5, 1.0)),
                      "effective_rank": {"block1": float(rng.uniform(1, 30))},
                      "not_a_known_metric": float(rng.uniform())},
          "cost": cost,
          "provenance": _prov(rng), "an_extra_field": {"nested": [1, 2]}})
  for g in (1, 2, 4, 8, 16):
    batch = int(rng.integers(8, 64))
    for rep in range(2):
      append_record(path, {
          "experiment": "granularity", "run_id": f"granularity/bench/g={g}/rep={rep}", "kind": "bench",
          "config": {"label": f"g={g}", "group_size": g, "batch_size": batch,
                     "pointwise": True},
          "timings": {impl: {"fwd_ms": float(rng.uniform(1, 50)), "fwdbwd_ms": float(rng.uniform(2, 99)),
                             "train_step_ms": float(rng.uniform(3, 150))} for impl in IMPLS},
          "provenance": _prov(rng)})
  for s in seeds[:2]:
    kernel = rng.normal(size=(3, 3, 8, 8)).astype(np.float32)
    points = [(g, m, True) for m in (1, 2) for g in (1, 2, 4, 8)] + [(g, None, False) for g in (1, 2, 4, 8)]
    append_record(path, {
        "experiment": "granularity", "run_id": f"granularity/decomposition/seed={s}",
        "kind": "decomposition", "config": {"label": "standard", "model": "mobilenet_v1"}, "seed": s,
        "decomposition": {"layer": "block1", "errors": decomposition_errors(kernel, points)},
        "provenance": _prov(rng)})
  feats = {f"layer{i}": rng.normal(size=(16, 3 + i)) for i in range(3)}
  append_record(path, {
      "experiment": "granularity", "run_id": "granularity/cka/dense", "kind": "cka",
      "config": {"label": "dense layers"},
      "cka": cka_record(cka_matrix(feats), labels=["dense"], layers=list(feats)), "provenance": _prov(rng)})


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
  folder = tmp_path_factory.mktemp("results") / "granularity"
  fabricate(folder / RECORDS_FILE)
  paths = render_experiment(folder)
  return folder, paths


def _csv_rows(path: Path) -> list[dict]:
  return list(csv.DictReader(io.StringIO(path.read_text())))


def _by_label(records, kind):
  out = {}
  for r in records:
    if r.get("kind") == kind:
      out.setdefault(r["config"]["label"], []).append(r)
  return out


def test_writes_every_table_and_plot(rendered):
  folder, paths = rendered
  names = {p.relative_to(folder).as_posix() for p in paths}
  for slug in ("train", "effective_rank", "bench", "decomposition", "pairs", "cka_dense_layers"):
    assert {f"tables/{slug}.md", f"tables/{slug}.tex", f"tables/{slug}.csv"} <= names
  for stem in ("accuracy_vs_mult_adds", "throughput_vs_group_size",
               "decomposition_error_vs_group_size", "cka_dense_layers"):
    assert {f"plots/{stem}.png", f"plots/{stem}.pdf"} <= names
  assert "README.md" in names and all(p.exists() for p in paths)
  assert (folder / "plots/accuracy_vs_mult_adds.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert (folder / "plots/accuracy_vs_mult_adds.pdf").read_bytes()[:5] == b"%PDF-"


def test_train_table_is_mean_and_95_percent_interval_over_seeds(rendered):
  folder, _ = rendered
  groups = _by_label(read_records(folder / RECORDS_FILE), "train")
  rows = {r["label"]: r for r in _csv_rows(folder / "tables/train.csv")}
  md = (folder / "tables/train.md").read_text()
  assert set(rows) == set(groups)
  for label, recs in groups.items():
    acc = np.array([r["metrics"]["test_accuracy"] for r in recs])
    assert int(rows[label]["runs"]) == len(recs)
    assert float(rows[label]["test_accuracy_mean"]) == pytest.approx(acc.mean(), rel=1e-12)
    assert float(rows[label]["test_accuracy_std"]) == pytest.approx(acc.std(ddof=1), rel=1e-9)
    half = stats.t_quantile(0.975, len(acc) - 1) * acc.std(ddof=1) / np.sqrt(len(acc))
    assert float(rows[label]["test_accuracy_ci95"]) == pytest.approx(half, rel=1e-9)
    assert f"{100 * acc.mean():.2f} ± {100 * half:.2f}" in md
    ips = np.array([r["metrics"]["infer_images_per_s"] for r in recs])
    assert float(rows[label]["infer_images_per_s_mean"]) == pytest.approx(ips.mean(), rel=1e-12)
    assert rows[label]["params_mean"] == str(recs[0]["cost"]["params"])
    assert f"{recs[0]['cost']['mult_adds']:,}" in md  # a count is exact, no std
  mult_adds = [float(rows[label]["mult_adds_mean"]) for label in rows]
  assert mult_adds == sorted(mult_adds)  # rows ordered by compute
  assert "not_a_known_metric" not in md  # unknown metrics travel in the CSV only
  assert "not_a_known_metric_mean" in (folder / "tables/train.csv").read_text().splitlines()[0]


def test_bench_throughput_per_implementation(rendered):
  folder, _ = rendered
  records = [r for r in read_records(folder / RECORDS_FILE) if r["kind"] == "bench"]
  rows = _csv_rows(folder / "tables/bench.csv")
  assert {(r["label"], r["impl"]) for r in rows} == {(r["config"]["label"], i) for r in records for i in IMPLS}
  for row in rows:
    recs = [r for r in records if r["config"]["label"] == row["label"]]
    fwd = np.array([r["timings"][row["impl"]]["fwd_ms"] for r in recs])
    ips = np.array([1000.0 * r["config"]["batch_size"] / r["timings"][row["impl"]]["fwd_ms"] for r in recs])
    step = np.array([1000.0 * r["config"]["batch_size"] / r["timings"][row["impl"]]["train_step_ms"] for r in recs])
    assert float(row["fwd_ms_mean"]) == pytest.approx(fwd.mean(), rel=1e-12)
    assert float(row["infer_images_per_s_mean"]) == pytest.approx(ips.mean(), rel=1e-12)
    assert float(row["train_images_per_s_std"]) == pytest.approx(step.std(ddof=1), rel=1e-9)
  assert [int(r["label"][2:]) for r in rows] == sorted(int(r["label"][2:]) for r in rows)


def test_decomposition_and_cka_tables_come_from_records(rendered):
  folder, _ = rendered
  records = read_records(folder / RECORDS_FILE)
  dec = [r for r in records if r["kind"] == "decomposition"]
  rows = _csv_rows(folder / "tables/decomposition.csv")
  # Pivoted: one row per (layer, group size), a column per family and multiplier.
  errors = dec[0]["decomposition"]["errors"]
  sizes = sorted({e["group_size"] for e in errors})
  assert [(r["layer"], int(r["group_size"])) for r in rows] == [("block1", g) for g in sizes]
  keys = {"grouped" if not e["pointwise"] else f"pw_m{e['depth_multiplier']}" for e in errors}
  assert [k[:-5] for k in rows[0] if k.endswith("_mean")] == ["grouped", "pw_m1", "pw_m2"]
  assert len(rows) * len(keys) == len(errors)
  for row in rows:
    for key in keys:
      m = None if key == "grouped" else int(key[4:])
      errs = [e["rel_error"] for r in dec for e in r["decomposition"]["errors"]
              if e["group_size"] == int(row["group_size"]) and e["depth_multiplier"] == m
              and e["pointwise"] == (key != "grouped")]
      assert len(errs) == 2 and int(row["n"]) == 2
      assert float(row[f"{key}_mean"]) == pytest.approx(np.mean(errs), rel=1e-12)
      assert float(row[f"{key}_std"]) == pytest.approx(np.std(errs, ddof=1), rel=1e-9)
  cka = next(r for r in records if r["kind"] == "cka")["cka"]
  table = _csv_rows(folder / "tables/cka_dense_layers.csv")
  assert [r["name"] for r in table] == cka["layers"]
  got = np.array([[float(r[name]) for name in cka["layers"]] for r in table])
  np.testing.assert_array_equal(got, np.array(cka["matrix"]))


def test_latex_is_booktabs_with_provenance_header(rendered):
  folder, _ = rendered
  tex = (folder / "tables/train.tex").read_text()
  assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
  assert "$\\pm$" in tex and "test acc. (\\%)" in tex and "±" not in tex.split("\\begin")[1]
  n = len(read_records(folder / RECORDS_FILE))
  for path in ("tables/train.tex", "tables/train.md", "README.md"):
    text = (folder / path).read_text()
    assert f"records: {n} " in text and "git revision:" in text and "device kind: cpu" in text


def _snapshot(folder: Path) -> dict[str, bytes]:
  return {p.relative_to(folder).as_posix(): p.read_bytes()
          for p in sorted(folder.rglob("*")) if p.is_file()}


def test_rendering_twice_is_byte_identical(rendered, tmp_path):
  folder, _ = rendered
  first = _snapshot(folder)
  copy = tmp_path / "granularity"
  copy.mkdir()
  shutil.copy(folder / RECORDS_FILE, copy / RECORDS_FILE)
  render_experiment(copy)
  render_experiment(folder)
  assert _snapshot(folder) == first
  assert _snapshot(copy) == first  # tables, PNG and PDF alike
  pdf = first["plots/accuracy_vs_mult_adds.pdf"]
  assert b"CreationDate" not in pdf and b"matplotlib" not in pdf.lower()
  assert b"Software" not in first["plots/accuracy_vs_mult_adds.png"]


def _without_plots(records):
  """Train records lacking mult-adds and the CKA record only: one small plot."""
  out = []
  for r in records:
    if r["kind"] == "train":
      out.append({**r, "cost": {"params": r["cost"]["params"]}})
    elif r["kind"] == "cka":
      out.append(r)
  return out


def test_stale_outputs_are_removed_and_extra_files_kept(rendered, tmp_path):
  folder = tmp_path / "exp"
  for r in _without_plots(read_records(rendered[0] / RECORDS_FILE)):
    if r["kind"] == "cka" or r["seed"] == 0:
      append_record(folder / RECORDS_FILE, r)
  render_experiment(folder)
  assert (folder / "tables/cka_dense_layers.csv").exists() and (folder / "plots/cka_dense_layers.png").exists()
  (folder / "notes.txt").write_text("kept")
  kept = [r for r in read_records(folder / RECORDS_FILE) if r["kind"] == "train"]
  (folder / RECORDS_FILE).unlink()
  for r in kept:
    append_record(folder / RECORDS_FILE, r)
  paths = render_experiment(folder)
  assert not (folder / "tables/cka_dense_layers.csv").exists()
  assert not any((folder / "plots").iterdir())
  assert (folder / "notes.txt").read_text() == "kept"
  assert {p.name for p in (folder / "tables").iterdir()} == {p.name for p in paths if p.parent.name == "tables"}
  # One seed per configuration: no std is shown.
  body = [line for line in (folder / "tables/train.md").read_text().splitlines()[1:] if line.startswith("| ")]
  assert len(body) == 1 + len(POINTS) and not any("±" in line for line in body)


def test_tolerates_missing_fields_and_unknown_kinds(tmp_path):
  folder = tmp_path / "messy"
  path = folder / RECORDS_FILE
  rng = np.random.default_rng(3)
  append_record(path, {"kind": "train", "config": {"label": "bare"}, "seed": 0})
  append_record(path, {"kind": "train", "config": {"label": "acc"}, "seed": 0,
                       "metrics": {"test_accuracy": float(rng.uniform())}})
  append_record(path, {"kind": "bench", "config": {"label": "no batch"},
                       "timings": {"xla": {"fwd_ms": float(rng.uniform(1, 9))}}})
  append_record(path, {"kind": "decomposition", "config": {}, "decomposition": {"layer": "x"}})
  append_record(path, {"kind": "cka", "config": {"label": "bad"},
                       "cka": {"labels": ["a"], "layers": ["l1", "l2"], "matrix": [[1.0]]}})
  append_record(path, {"kind": "future-kind", "payload": 1})
  paths = render_experiment(folder)
  names = {p.relative_to(folder).as_posix() for p in paths}
  assert {"tables/train.md", "tables/bench.csv", "README.md"} <= names
  assert not any("decomposition" in n or "cka" in n or "throughput" in n or "accuracy" in n for n in names)
  readme = (folder / "README.md").read_text()
  assert "kind 'future-kind' 1" in readme
  train = _csv_rows(folder / "tables/train.csv")
  assert [r["label"] for r in train] == ["acc", "bare"]
  assert train[1]["test_accuracy_mean"] == ""


def test_recorded_throughput_wins_and_bench_batch_beats_training_batch(tmp_path):
  folder = tmp_path / "bench"
  rng = np.random.default_rng(5)
  timing = {"train_step_ms": float(rng.uniform(5, 9)), "infer_ms": float(rng.uniform(1, 4)),
            "train_images_per_s": float(rng.uniform(1e3, 1e4))}
  config = {"label": "g=2", "group_size": 2, "batch_size": int(rng.integers(64, 256)),
            "bench_batch": int(rng.integers(4, 32))}
  append_record(folder / RECORDS_FILE, {"kind": "bench", "config": config, "timings": {"xla": timing}})
  feats = {"a": rng.normal(size=(8, 3)), "b": rng.normal(size=(8, 3))}
  append_record(folder / RECORDS_FILE, {"kind": "cka", "config": {"layer": "block1"},
                                           "cka": cka_record(cka_matrix(feats), labels=list(feats), layers=["block1"])})
  render_experiment(folder)
  (row,) = _csv_rows(folder / "tables/bench.csv")
  assert float(row["train_images_per_s_mean"]) == timing["train_images_per_s"]
  assert float(row["infer_images_per_s_mean"]) == pytest.approx(1000.0 * config["bench_batch"] / timing["infer_ms"])
  assert float(row["infer_ms_mean"]) == timing["infer_ms"] and "fwd_ms_mean" not in row
  assert (folder / "tables/cka_variants_at_block1.csv").exists()


def test_same_label_different_config_is_disambiguated(tmp_path):
  folder = tmp_path / "dup"
  rng = np.random.default_rng(4)
  for epochs in (3, 9):
    append_record(folder / RECORDS_FILE, {
        "kind": "train", "config": {"label": "g=1", "epochs": epochs}, "seed": 0,
        "metrics": {"test_accuracy": float(rng.uniform())}})
  render_experiment(folder)
  labels = [r["label"] for r in _csv_rows(folder / "tables/train.csv")]
  assert sorted(labels) == ["g=1 (epochs=3)", "g=1 (epochs=9)"]


def test_empty_records_render_a_readme_only(tmp_path):
  folder = tmp_path / "empty"
  folder.mkdir()
  (folder / RECORDS_FILE).write_text("")
  paths = render_experiment(folder)
  assert [p.name for p in paths] == ["README.md"]
  assert "records: 0" in paths[0].read_text()


def test_render_all_and_cli(rendered, tmp_path, capsys):
  root = tmp_path / "results"
  records = [r for r in _without_plots(read_records(rendered[0] / RECORDS_FILE)) if r["kind"] == "train"]
  for name in ("b", "a"):
    for r in records:
      append_record(root / name / RECORDS_FILE, r)
  (root / "not_an_experiment").mkdir()
  paths = render_all(root)
  assert [p for p in paths if p.name == "README.md"] == [root / "a/README.md", root / "b/README.md"]
  assert main(["report", "a", "--results-dir", str(root)]) == 0
  out = capsys.readouterr().out.strip().splitlines()
  assert len(out) == 1 and out[0].startswith(str(root / "a"))
  assert main(["report", "--results-dir", str(root)]) == 0
  assert len(capsys.readouterr().out.strip().splitlines()) == 2


@pytest.mark.parametrize("argv", [["report", "missing"], ["report"], ["report", "../a"]])
def test_cli_bad_input_exits_non_zero_with_one_line(tmp_path, capsys, argv):
  code = main(argv + ["--results-dir", str(tmp_path / "nowhere")])
  err = capsys.readouterr().err
  assert code != 0 and len(err.strip().splitlines()) == 1 and err.startswith("sepconv report: error:")


def test_render_all_on_a_folder_without_experiments_raises(tmp_path):
  with pytest.raises(FileNotFoundError, match="no experiment under"):
    render_all(tmp_path)
