"""The README's generated block: rewritten from rendered tables, idempotent, marker-bound."""

from sepconv.report.embed import embed


def _results(root):
  results = root / "results" / "exp"
  (results / "tables").mkdir(parents=True)
  (results / "plots").mkdir()
  (results / "tables" / "train.md").write_text("<!--\n  versions and revisions\n-->\n| a |\n|---|\n| 1 |\n")
  (results / "plots" / "accuracy_vs_mult_adds.png").write_bytes(b"png")
  return results


def test_embed_replaces_only_the_marked_block(tmp_path):
  results = _results(tmp_path)
  readme = tmp_path / "README.md"
  readme.write_text("intro\n<!-- sepconv:results/exp:begin -->\nold\n<!-- sepconv:results/exp:end -->\nend\n")
  assert embed(readme, results)
  text = readme.read_text()
  assert text.startswith("intro\n") and text.endswith("end\n") and "old" not in text
  assert "| a |" in text and "versions and revisions" not in text
  assert "![accuracy vs mult adds](results/exp/plots/accuracy_vs_mult_adds.png)" in text
  assert embed(readme, results) and readme.read_text() == text


def test_embed_without_markers_changes_nothing(tmp_path):
  results = _results(tmp_path)
  readme = tmp_path / "README.md"
  readme.write_text("no markers\n")
  assert not embed(readme, results) and readme.read_text() == "no markers\n"
  assert not embed(tmp_path / "missing.md", results)
