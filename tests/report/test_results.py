"""The committed results are what ``sepconv report`` renders from their committed records."""

from __future__ import annotations

import shutil
from pathlib import Path

from sepconv.records import RECORDS_FILE
from sepconv.report import render_all
from sepconv.report.embed import embed

ROOT = Path(__file__).resolve().parents[2]
TEXT = (".md", ".tex", ".csv")


def test_every_committed_table_rerenders_byte_identically(tmp_path):
  copy = tmp_path / "results"
  shutil.copytree(ROOT / "results", copy)
  written = render_all(copy)
  tables = [p for p in written if p.suffix in TEXT]
  assert tables
  for path in tables:
    committed = ROOT / "results" / path.relative_to(copy)
    assert committed.exists(), f"{committed} is rendered but not committed"
    assert path.read_bytes() == committed.read_bytes(), f"{committed} differs from its render"


def test_the_readme_results_block_is_the_rendered_one(tmp_path):
  shutil.copytree(ROOT / "results", tmp_path / "results")
  readme = tmp_path / "README.md"
  shutil.copy(ROOT / "README.md", readme)
  for folder in sorted(p.parent for p in (tmp_path / "results").glob(f"*/{RECORDS_FILE}")):
    embed(readme, folder)
  assert readme.read_text(encoding="utf-8") == (ROOT / "README.md").read_text(encoding="utf-8")
