"""`sepconv bench device`: the accelerator run's whole path, on tiny shapes on CPU."""

from __future__ import annotations

import jax
import pytest

from sepconv.bench import device
from sepconv.cli.main import main
from sepconv.records import read_records


@pytest.mark.slow
def test_quick_runs_the_whole_path_and_writes_records_and_tables(tmp_path, monkeypatch, capsys):
  monkeypatch.setenv("SEPCONV_AUTOTUNE", "0")
  out = tmp_path / "accelerator" / "cpu"
  assert main(["bench", "device", "--quick", "--out", str(out)]) == 0
  records = read_records(out / "records.jsonl")
  layer = [r for r in records if r["kind"] == "conv_layer"]
  steps = [r for r in records if r["kind"] == "train_step"]
  assert {(r["impl"], r["mode"], r["config"]["dtype"], r["config"]["group_size"]) for r in layer} \
      == {(i, m, d, g) for i in ("xla", "auto") for m in ("fwd", "fwdbwd")
          for d in ("float32", "bfloat16") for g in device.QUICK_GROUP_SIZES}
  assert all(r["status"] == "ok" for r in layer) and steps and steps[0]["status"] == "ok"
  assert all(r["provenance"]["device_kind"] == jax.devices()[0].device_kind for r in records)
  written = capsys.readouterr().out.split()
  assert str(out / "device.md") in written and str(out / "lowering.md") in written
  text = (out / "device.md").read_text()
  assert "no published HBM peak for this kind: no fraction" in text  # a CPU has none


def test_without_an_accelerator_the_full_run_refuses_in_one_line(capsys):
  assert main(["bench", "device", "--out", "unused"]) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and "is a CPU: run on a TPU or GPU, or pass --quick" in err


def test_the_sweep_measures_what_claims_the_platform_and_reads_the_published_peak():
  assert device.sweep_impls("tpu")[:2] == ("xla", "auto") and "ffi" not in device.sweep_impls("tpu")
  assert "ffi" in device.sweep_impls("cpu")
  assert sorted(device.GROUP_SIZES) == [1, 2, 4, 8, 16, 32, 64, 128]
  assert device.device_slug("TPU v5 lite") == "tpu_v5_lite"
  assert device.default_out_dir("NVIDIA H100 80GB HBM3").as_posix() == \
      "results/accelerator/nvidia_h100_80gb_hbm3"
  # 1 GB moved in 1 ms on a v5e (819 GB/s): 1e12 B/s, 1000/819 of the peak.
  record = {"status": "ok", "bytes_min": 1e9, "median_ms": 1.0}
  assert device.hbm_fraction(record, "TPU v5 lite") == pytest.approx(1e12 / 819e9)
  assert device.hbm_fraction(record, "TPU v6 lite") == pytest.approx(1e12 / 1640e9)
  assert device.hbm_fraction(record, "NVIDIA H200") == pytest.approx(1e12 / 4800e9)
  assert device.hbm_fraction(record, "Tesla T4") == pytest.approx(1e12 / 320e9)
  assert device.hbm_fraction(record, "NVIDIA L4") == pytest.approx(1e12 / 300e9)
  assert device.hbm_fraction(record, "Some new chip") is None
