"""Rendering benchmark tables from records: deterministic, and every number from a record."""

from __future__ import annotations

import dataclasses
import re

import pytest

from sepconv.bench.config import LayerConfig
from sepconv.bench.layer import BenchOptions, bench_sweep
from sepconv.report.lowering import render_lowering
from sepconv.records import append_record

PROV = {"device_kind": "TestChip", "platform": "cpu", "jax": "0.0.1", "jaxlib": "0.0.1",
        "git_revision": "abc123", "time": "2030-01-01T00:00:00+00:00"}
ROOF = {"peak_bandwidth_Bps": 16e9, "peak_flops_per_s": 20e9, "peak_source": "measured"}
# (group size, impl) -> median ms; torch's best is channels-last at g=1, NCHW at g=4.
MEDIANS = {(1, "xla"): 40.0, (1, "fast"): 10.0, (1, "torch_nchw"): 30.0,
           (1, "torch_channels_last"): 20.0, (4, "xla"): 80.0, (4, "fast"): 16.0,
           (4, "torch_nchw"): 24.0, (4, "torch_channels_last"): 48.0}


def _record(g: int, impl: str, median: float, **over) -> dict:
  cfg = LayerConfig(batch=2, height=8, width=8, in_channels=8, out_channels=8, group_size=g)
  return {"kind": "conv_layer", "run_id": "r1", "impl": impl, "mode": "fwd", "status": "ok",
          "config": cfg.to_dict(), "flops": 0, "bytes_min": 0, "median_ms": median,
          "p25_ms": median - 1, "p75_ms": median + 1, "min_ms": median - 2,
          "max_ms": median + 2, "repeats": 5, "compile_ms": None if impl.startswith("t") else 700.0,
          "achieved_bytes_per_s": 2e9, "achieved_flops_per_s": 5e9,
          "fraction_of_peak_bandwidth": 0.125, "fraction_of_peak_flops": 0.25,
          "max_rel_err_vs_xla": 1e-7, "roofline": ROOF, "provenance": PROV, **over}


def _write_synthetic(path) -> None:
  append_record(path, _record(1, "xla", 999.0))  # Superseded by the later record below.
  for (g, impl), ms in MEDIANS.items():
    append_record(path, _record(g, impl, ms))
  append_record(path, {**_record(4, "never", 0.0), "status": "unsupported", "reason": "no"})


def _table_rows(text: str) -> list[list[str]]:
  rows = []
  for line in text.splitlines():
    if line.startswith("|") and not line.startswith("|--"):
      rows.append([c.strip() for c in line.strip("|").split("|")])
  return rows


def test_summary_table_is_closed_form(tmp_path):
  _write_synthetic(tmp_path / "r.jsonl")
  render_lowering(tmp_path / "r.jsonl", tmp_path)
  rows = _table_rows((tmp_path / "lowering.md").read_text())
  header = ["group size", "groups", "xla ms", "fast ms", "never ms", "torch_channels_last ms",
            "torch_nchw ms", "fastest jax", "vs xla", "vs torch best"]
  assert rows[0] == header
  assert rows[1] == ["1", "8", "40.0", "10.0", "", "20.0", "30.0", "fast", "4.00", "2.00"]
  assert rows[2] == ["4", "2", "80.0", "16.0", "unsupported", "48.0", "24.0", "fast", "5.00",
                     "1.50"]


def test_tables_hold_only_numbers_from_records(tmp_path):
  _write_synthetic(tmp_path / "r.jsonl")
  render_lowering(tmp_path / "r.jsonl", tmp_path)
  allowed = {"1", "2", "4", "8", "5", "0", "0.0"}  # Group sizes and counts, repeats, unsupported.
  for (g, impl), ms in MEDIANS.items():
    xla, torch_best = MEDIANS[(g, "xla")], min(MEDIANS[(g, "torch_nchw")],
                                               MEDIANS[(g, "torch_channels_last")])
    allowed |= {f"{ms:.1f}", f"{ms + 1:.1f}", f"{xla / ms:.2f}", f"{torch_best / ms:.2f}"}
    allowed.add(f"{ms - 1:.2f}" if ms - 1 < 10 else f"{ms - 1:.1f}")  # Three significant figures.
  allowed |= {"700", "2.00", "12.5", "5.00", "25.0", "1.0e-07"}  # compile ms, GB/s, %, err.
  lines = (tmp_path / "lowering.md").read_text().splitlines() + [""]
  body = [line for i, line in enumerate(lines)  # Table rows, not their headers.
          if line.startswith("|") and not line.startswith("|--")
          and not lines[i + 1].startswith("|--")]
  tokens = set(re.findall(r"\d+(?:\.\d+)?(?:e[-+]\d+)?", "\n".join(body)))
  assert tokens <= allowed, tokens - allowed
  header = (tmp_path / "lowering.md").read_text()
  for text in ("TestChip", "abc123", "jax 0.0.1", "16.0 GB/s", "20.0 GFLOP/s"):
    assert text in header
  tex = (tmp_path / "lowering.tex").read_text()
  assert "\\toprule" in tex and "torch\\_nchw" in tex
  csv = (tmp_path / "lowering.csv").read_text().splitlines()
  assert csv[0].startswith("device_kind,platform,layer") and len(csv) == 1 + 9


def test_render_is_byte_identical_and_needs_records(tmp_path):
  records = tmp_path / "r.jsonl"
  config = LayerConfig(batch=1, height=6, width=6, in_channels=4, out_channels=4)
  bench_sweep(config, group_sizes=(1, 4), impls=["xla"], options=BenchOptions(
      repeats=2, warmup=0, torch=False, copy_mib=2, matmul_n=32),
      on_record=lambda r: append_record(records, r))
  first = {p.name: p.read_bytes() for p in render_lowering(records, tmp_path / "a")}
  second = {p.name: p.read_bytes() for p in render_lowering(records, tmp_path / "a")}
  assert first == second and set(first) == {"lowering.md", "lowering.tex", "lowering.csv"}
  (tmp_path / "empty.jsonl").write_text("")
  with pytest.raises(ValueError, match="empty.jsonl"):
    render_lowering(tmp_path / "empty.jsonl", tmp_path / "b")
  with pytest.raises(FileNotFoundError):
    render_lowering(tmp_path / "missing.jsonl", tmp_path / "b")


def test_header_lists_the_streaming_rates_beside_the_peak(tmp_path):
  roof = {**ROOF, "measured_copy_existing_Bps": 16e9, "measured_copy_fresh_Bps": 6e9,
          "measured_jax_fresh_Bps": 3e9, "measured_jax_donated_Bps": 24e9}
  append_record(tmp_path / "r.jsonl", _record(1, "xla", 40.0, roofline=roof))
  render_lowering(tmp_path / "r.jsonl", tmp_path)
  text = (tmp_path / "lowering.md").read_text()
  assert ("streaming, GB/s read + written: numpy copy into an existing buffer 16.0; numpy copy "
          "into a fresh buffer 6.00; jitted x * a + b into a fresh output 3.00; jitted donated "
          "x + 1 in place 24.0") in text


def test_records_without_streaming_rates_render_no_streaming_line(tmp_path):
  _write_synthetic(tmp_path / "r.jsonl")
  render_lowering(tmp_path / "r.jsonl", tmp_path)
  assert "streaming, GB/s" not in (tmp_path / "lowering.md").read_text()


def test_train_step_table_sets_each_impl_against_xla_and_the_faster_torch_layout(tmp_path):
  from sepconv.bench.train_step import TrainStepConfig
  from sepconv.records.schema import layer_bench_record
  from sepconv.timing import Timing
  config = dataclasses.asdict(TrainStepConfig())
  medians = {"auto": 20.0, "xla": 80.0, "torch_nchw": 50.0, "torch_channels_last": 40.0}
  for impl, ms in medians.items():
    compile_ms = None if impl.startswith("torch") else 700.0
    timing = Timing((ms - 1, ms, ms + 1), compile_ms, False).summary()
    append_record(tmp_path / "r.jsonl", layer_bench_record(
        "train_step", run_id="r1", mode="train_step", status="ok", config=config,
        provenance=PROV, timing=timing, impl=impl, images_per_s=32 / (ms / 1e3)))
  render_lowering(tmp_path / "r.jsonl", tmp_path)
  rows = _table_rows((tmp_path / "train_step.md").read_text())
  assert rows[0] == ["impl", "median ms", "p25-p75 ms", "images/s", "compile ms", "vs xla",
                     "vs torch best"]
  by_impl = {row[0]: row for row in rows[1:]}
  assert by_impl["auto"][1:] == ["20.0", "19.5-20.5", "1600", "700", "4.00", "2.00"]
  assert by_impl["torch_channels_last"][4:] == ["", "2.00", "1.00"]
  assert by_impl["torch_nchw"][5:] == ["1.60", "0.80"]
