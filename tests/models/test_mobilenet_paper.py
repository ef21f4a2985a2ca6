"""The paper-table experiment: records, rendering, and which published figures match."""

import json

from sepconv.experiments import mobilenet_paper
from sepconv.ablation import run
from sepconv.records import read_records
from sepconv.report import render_experiment


def test_run_writes_records_and_tables(tmp_path):
  run(mobilenet_paper.EXPERIMENT, tmp_path, progress=False)
  written = render_experiment(tmp_path)
  assert (tmp_path / "records.jsonl").exists() and (tmp_path / "README.md") in written
  records = read_records(tmp_path / "records.jsonl")
  assert len(records) == 8 + 2 * len(mobilenet_paper.ROWS)
  assert all(r["provenance"]["git_revision"] is None or r["provenance"]["git_revision"] for r in records)
  mismatched = {(r["table"], r["row"], r["quantity"]) for r in records if not r["matches"]}
  # Each has a note: a misprint (Table 2), a convention (FC counted, rho^2 scaling), or the
  # 1.4 row that the reference implementation's own table contradicts.
  assert mismatched == {("v1_table2", "Conv 3x3", "mult_adds_share"),
                        ("v1_table4", "Conv MobileNet", "mult_adds"),
                        ("v1_table7", "1.0 MobileNet-160", "mult_adds"),
                        ("v2_table4", "MobileNetV2 (1.4)", "mult_adds"),
                        ("v2_table4", "MobileNetV2 (1.4)", "params")}
  assert all(r["note"] for r in records if not r["matches"])
  exact = {(r["row"], r["quantity"]): r["ours_exact"] for r in records if r["table"] == "v1_table6"}
  assert exact[("1.0 MobileNet-224", "params")] == 4_210_088
  assert exact[("1.0 MobileNet-224", "mult_adds")] == 568_740_352
  for slug in (s.slug for s in mobilenet_paper.SOURCES):
    tex = (tmp_path / "tables" / f"{slug}.tex").read_text()
    assert "\\toprule" in tex and "\\bottomrule" in tex
    assert (tmp_path / "tables" / f"{slug}.md").read_text().count("|") > 10
  readme = (tmp_path / "README.md").read_text()
  assert "published figures matched: 75 of 80" in readme
  # re-rendering from the records alone gives the same README
  render_experiment(tmp_path)
  assert (tmp_path / "README.md").read_text() == readme
  json.dumps(records)


def test_written_as():
  assert mobilenet_paper.written_as(290.6752, "290", "nearest") == "291"
  assert mobilenet_paper.written_as(300.774272, "300", "truncate") == "300"
  assert mobilenet_paper.written_as(3.470760, "3.4", "truncate") == "3.4"
  assert mobilenet_paper.written_as(2.6098, "2.61", "nearest") == "2.61"
