"""The Colab notebook, executed headless in a real Jupyter kernel on CPU (papermill)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

papermill = pytest.importorskip("papermill", reason="the notebook runs through papermill")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "experiments" / "granularity_colab.ipynb"


def _outputs(cell, kind):
  return [o for o in cell.get("outputs", []) if o.get("output_type") == kind]


@pytest.mark.slow
def test_notebook_runs_every_cell_and_shows_every_table_and_plot(tmp_path, monkeypatch):
  monkeypatch.setenv("SEPCONV_AUTOTUNE", "0")  # the heuristic: measuring would dominate
  monkeypatch.setenv("SEPCONV_CACHE_DIR", str(tmp_path / "cache"))
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")
  monkeypatch.setenv("XLA_FLAGS", "")  # one CPU device, as a user has
  executed = tmp_path / "executed.ipynb"
  notebook = papermill.execute_notebook(
      str(NOTEBOOK), str(executed), cwd=str(ROOT), kernel_name="python3", progress_bar=False,
      parameters={"SEPCONV_SOURCE": "", "DATASET": "digits", "SEEDS": "0", "EPOCHS": 1,
                  "VARIANTS": ["standard", "dws"], "RESULTS": str(tmp_path / "sepconv"),
                  "MOUNT_DRIVE": False})
  code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
  assert all(c.get("execution_count") for c in code), "every code cell ran"
  assert not any(_outputs(c, "error") for c in code)
  out_dir = tmp_path / "sepconv" / "results" / "granularity_digits"
  records = (out_dir / "records.jsonl").read_text().splitlines()
  assert len(records) == 2 + 2 + 5 + 3  # train, bench, cka layers, decomposition layers
  text = "".join(o.get("text", "") for c in code for o in _outputs(c, "stream"))
  assert "backend cpu" in text and "versions pip kept" in text and "WARNING" not in text
  shown = [o for c in code for o in _outputs(c, "display_data")]
  markdown = [o["data"]["text/markdown"] for o in shown if "text/markdown" in o["data"]]
  tables = sorted((out_dir / "tables").glob("*.md"))
  assert sorted(markdown) == sorted(t.read_text() for t in tables)  # every table, as rendered
  images = [o for o in shown if "image/png" in o["data"]]
  pngs = sorted((out_dir / "plots").glob("*.png"))
  assert pngs and len(images) == len(pngs)
  for png in pngs:
    assert png.name in text  # each plot is named before it is shown
