"""`sepconv ablate` on a fresh folder runs every job and says whether it reproduced the reference."""

from __future__ import annotations

import json

import pytest

from sepconv import experiments
from sepconv.ablation import GranularityAblation, Variant, run
from sepconv.cli.main import main
from sepconv.records import append_record, read_records

TINY = GranularityAblation(
    name="tiny", variants=(Variant("standard"), Variant("dws")),
    seeds=(0,), train={"model": "mobilenet_v1_shallow", "width_multiplier": 0.25},
    train_by_dataset={"digits": {"epochs": 1, "batch_size": 128}},
    bench_impls=("auto",), bench_repeats=1, analysis_examples=64, cka_layers=("penultimate",),
    decomposition_layers=())


@pytest.mark.slow
def test_fresh_run_beside_a_reference_runs_every_job_and_compares(tmp_path, monkeypatch, capsys):
  monkeypatch.setenv("SEPCONV_AUTOTUNE", "0")
  monkeypatch.setattr(experiments, "get", lambda name: TINY)
  monkeypatch.chdir(tmp_path)
  # The committed reference, as `--out results/tiny_digits` writes it.
  run(TINY, "results/tiny_digits", work_dir=tmp_path / "w_ref", progress=False)
  reference = read_records("results/tiny_digits/records.jsonl")

  # In this process, as the reference ran (pinned single-CPU workers sum in another order).
  assert main(["ablate", "tiny", "--quiet", "--no-report", "--executor", "sequential"]) == 0
  out = capsys.readouterr().out
  records = read_records("runs/tiny_digits/records.jsonl")
  assert sorted(r["run_id"] for r in records) == sorted(r["run_id"] for r in reference)
  assert "2 run, 0 already recorded" not in out and "0 already recorded" in out
  assert "Against the reference results/tiny_digits" in out
  assert "2 of 2 compared rows reproduced" in out  # same seeds, same process: identical
  assert (tmp_path / "runs/tiny_digits/comparison.md").is_file()
  assert (tmp_path / "runs/tiny_digits/comparison.tex").read_text().startswith("%")

  # A reference whose metric was shifted is flagged, through the same command's --json.
  shifted = tmp_path / "shifted"
  for r in reference:
    if r["kind"] == "train" and r["config"]["conv"] == "dws":
      r["metrics"]["test_accuracy"] += 0.05
    append_record(shifted / "records.jsonl", r)
  assert main(["ablate", "tiny", "--quiet", "--no-report", "--json", "--executor", "sequential",
               "--reference", str(shifted)]) == 0
  summary = json.loads(capsys.readouterr().out)
  assert summary["done"] == 0 and summary["reproduced"] is False
  text = (tmp_path / "runs/tiny_digits/comparison.md").read_text()
  assert "1 of 2 compared rows reproduced" in text


def test_a_reference_without_records_is_one_line(tmp_path, monkeypatch, capsys):
  monkeypatch.setattr(experiments, "get", lambda name: TINY)
  monkeypatch.chdir(tmp_path)
  code = main(["ablate", "tiny", "--quiet", "--reference", str(tmp_path / "nothing"),
               "--variant", "standard", "--seeds", "0", "--epochs", "1", "--no-report"])
  err = capsys.readouterr().err
  assert code != 0 and "--reference" in err and "Traceback" not in err
  assert not (tmp_path / "runs").exists()  # refused before any work
