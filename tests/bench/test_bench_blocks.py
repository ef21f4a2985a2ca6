"""The blocks benchmark runs end to end at a tiny size and renders (no timing assertions)."""

from __future__ import annotations

import csv
import json

from sepconv.cli.main import main
from sepconv.records import RECORDS_FILE
from sepconv.report.render import render_experiment


def test_blocks_benchmark_records_and_renders(tmp_path, capsys):
  out = tmp_path / "flax_blocks" / RECORDS_FILE
  code = main(["bench", "blocks", "--batch", "1", "--size", "8", "--repeats", "1", "--warmup", "0",
               "--budget-s", "1", "--quiet", "--out", str(out)])
  assert code == 0
  records = [json.loads(line) for line in out.read_text().splitlines()]
  jax_records = [r for r in records if r["variant"] != "torch"]
  assert {(r["block"], r["mode"], r["variant"]) for r in jax_records} == {
      (b, m, v) for b in ("convnext", "resnext", "mobilenet_v2") for m in ("forward", "train_step")
      for v in ("flax", "flax + sepconv")}
  for r in jax_records:
    assert r["status"] == "ok" and r["median_ms"] > 0
    if r["variant"] == "flax + sepconv":  # the drop-in computes what plain Flax computes
      assert r["max_rel_diff_vs_flax"] < 1e-4
  assert {r["status"] for r in records if r["variant"] == "torch"} <= {"ok", "skipped"}

  written = render_experiment(tmp_path / "flax_blocks")
  assert sorted(p.name for p in written) == ["README.md", "blocks.csv", "blocks.md", "blocks.tex"]
  table = (tmp_path / "flax_blocks" / "blocks.md").read_text()
  assert "flax + sepconv" in table and "resnext" in table and "batch 1, 8x8, float32" in table
  readme = (tmp_path / "flax_blocks" / "README.md").read_text()
  assert "conv_general_dilated=sepconv.conv_general_dilated" in readme and "resnext" in readme
  rows = list(csv.DictReader((tmp_path / "flax_blocks" / "blocks.csv").open()))
  assert len(rows) == len(records)
  before = {p.name: p.read_bytes() for p in written}
  render_experiment(tmp_path / "flax_blocks")
  assert {p.name: p.read_bytes() for p in written} == before


def test_unknown_block_is_one_line_error(tmp_path, capsys):
  assert main(["bench", "blocks", "--blocks", "vgg", "--out", str(tmp_path / "r.jsonl")]) != 0
  err = capsys.readouterr().err.strip()
  assert "block (='vgg') must be one of" in err and len(err.splitlines()) == 1
