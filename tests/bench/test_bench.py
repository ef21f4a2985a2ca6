"""Conv-layer benchmark: counts, roofline helpers, records, CLI. Never asserts speed."""

from __future__ import annotations

import importlib.util
import json
import os
import time
import types

import jax
import numpy as np
import pytest

from sepconv import conv as conv_lib
from sepconv.bench import layer as layer_mod
from sepconv.bench.config import LayerConfig, counts
from sepconv.bench.layer import BenchOptions, bench_layer, bench_sweep, sweep_group_sizes
from sepconv.bench.roofline import (PUBLISHED_PEAKS, _check_pass, default_copy_mib,
                                    last_level_cache_bytes, measure_copy_bandwidth,
                                    measure_matmul_flops, published_peaks, roofline)
from sepconv.timing import measure
from sepconv.cli.main import main
from sepconv.records import RECORDS_FILE, read_records

TINY = LayerConfig(batch=1, height=6, width=6, in_channels=8, out_channels=8, group_size=2)
FAST = BenchOptions(repeats=1, warmup=0, torch=False, copy_mib=2, matmul_n=32)
REQUIRED = {"kind", "run_id", "impl", "mode", "status", "config", "flops", "bytes_min",
            "roofline", "provenance"}
TIMED = {"median_ms", "p25_ms", "p75_ms", "iqr_ms", "min_ms", "max_ms", "repeats", "times_ms",
         "compile_ms", "achieved_flops_per_s", "achieved_bytes_per_s",
         "fraction_of_peak_flops", "fraction_of_peak_bandwidth", "roofline_ms"}
TINY_FLAGS = ["--batch", "1", "--height", "6", "--width", "6", "--in-channels", "8",
              "--out-channels", "8", "--repeats", "1", "--warmup", "0", "--no-torch",
              "--copy-mib", "2", "--matmul-n", "32", "--quiet"]


def test_counts_reference_layer_closed_form():
  c = LayerConfig(group_size=1)  # Depthwise 3x3 on 56x56x128, batch 32.
  act = 32 * 56 * 56 * 128
  fwd = counts(c, "fwd")
  assert fwd["flops"] == 2 * 32 * 56 * 56 * 128 * 9
  assert fwd["bytes_min"] == 4 * (2 * act + 9 * 128)
  both = counts(c, "fwdbwd")
  assert both["flops"] == 3 * fwd["flops"]
  assert both["bytes_min"] == 4 * (5 * act + 3 * 9 * 128)
  dense = counts(LayerConfig(group_size=128, dtype="bfloat16"), "fwd")
  assert dense["flops"] == 2 * 32 * 56 * 56 * 128 * 9 * 128
  assert dense["bytes_min"] == 2 * (2 * act + 9 * 128 * 128)


def test_counts_separable_block_and_stride():
  c = LayerConfig(batch=2, height=28, width=28, in_channels=192, out_channels=32, kernel=5,
                  group_size=1, layer="spatial_pointwise")
  # The design notes' worked example: 4,800 + 6,144 weights, each used at 28 x 28 positions.
  assert counts(c, "fwd")["flops"] == 2 * 2 * 28 * 28 * (4800 + 6144)
  s2 = LayerConfig(batch=1, height=7, width=7, in_channels=4, out_channels=4, stride=2)
  assert s2.out_hw == (4, 4)
  assert counts(s2, "fwd")["flops"] == 2 * 16 * 4 * 9


@pytest.mark.parametrize("kwargs, message", [
    (dict(group_size=3), "in_channels (=128) must be divisible by group_size (=3)"),
    (dict(group_size=2, out_channels=100), "out_channels (=100)"),
    (dict(dtype="float64"), "dtype (='float64')"),
    (dict(padding="FULL"), "padding (='FULL')"),
    (dict(kernel=0), "kernel (=0)"),
    (dict(height=2, padding="VALID"), "height (=2)"),
])
def test_layer_config_rejects_bad_values(kwargs, message):
  with pytest.raises(ValueError) as e:
    LayerConfig(**kwargs)
  assert message in str(e.value)


def test_sweep_group_sizes():
  assert sweep_group_sizes(128, 128) == (1, 2, 4, 8, 16, 32, 64, 128)
  assert sweep_group_sizes(12, 12) == (1, 2, 4, 12)
  assert sweep_group_sizes(8, 4) == (2, 4, 8)  # 8 groups cannot split 4 outputs.
  assert sweep_group_sizes(8, 4, "spatial_pointwise") == (1, 2, 4, 8)


def test_measure_budget_and_slow_warmup():
  calls = []

  def slow():
    calls.append(1)
    time.sleep(0.02)
  times, _, kept = measure(slow, warmup=2, repeats=5, budget_s=0.01, min_repeats=1,
                           sync=lambda out: out)
  assert (len(times), kept, len(calls)) == (1, True, 1)  # The warm-up call was the sample.
  times, _, kept = measure(slow, warmup=1, repeats=5, budget_s=0.01, min_repeats=3,
                           sync=lambda out: out)
  assert (len(times), kept) == (3, True)
  times, _, kept = measure(slow, warmup=1, repeats=2, sync=lambda out: out)
  assert (len(times), kept) == (2, False) and min(times) >= 20
  with pytest.raises(ValueError, match="min_repeats"):
    measure(slow, warmup=0, repeats=1, min_repeats=0)


def test_published_peaks_table():
  h100 = published_peaks("NVIDIA H100 80GB HBM3")
  assert (h100.bandwidth_Bps, h100.bfloat16_flops, h100.float32_flops) == (3.35e12, 989e12, 67e12)
  assert published_peaks("NVIDIA H100 PCIe").name == "H100 PCIe"
  assert published_peaks("NVIDIA H200").bandwidth_Bps == 4.8e12
  v5e = published_peaks("TPU v5 lite")
  assert (v5e.bandwidth_Bps, v5e.bfloat16_flops) == (819e9, 197e12)
  assert published_peaks("TPU v5").name == "TPU v5p"
  assert published_peaks("cpu") is None
  for _, peaks in PUBLISHED_PEAKS:
    assert peaks.bandwidth_Bps > 0 and peaks.source
    assert all(f is None or f > 0 for f in (peaks.bfloat16_flops, peaks.float32_flops))


def test_roofline_helpers_return_positive_numbers():
  copy = measure_copy_bandwidth(mib=2, repeats=2, threads=2)
  assert set(copy) == {"copy_existing_Bps", "copy_fresh_Bps", "jax_fresh_Bps", "jax_donated_Bps",
                       "mib", "threads"}
  assert all(copy[k] > 0 for k in copy if k.endswith("_Bps"))
  assert (copy["mib"], copy["threads"]) == (2, 2)
  assert measure_matmul_flops(32, "bfloat16", repeats=1) > 0
  peaks = roofline("float32", copy_mib=2, matmul_n=32)
  assert peaks["peak_bandwidth_Bps"] > 0 and peaks["peak_flops_per_s"] > 0
  assert peaks["platform"] == "cpu" and peaks["peak_source"].startswith("measured")
  with pytest.raises(ValueError, match="float16"):
    roofline("float16")


def test_roofline_peak_is_the_copy_into_an_existing_buffer():
  peaks = roofline("float32", copy_mib=2, matmul_n=32)
  for key in ("measured_copy_existing_Bps", "measured_copy_fresh_Bps", "measured_jax_fresh_Bps",
              "measured_jax_donated_Bps"):
    assert peaks[key] > 0, key
  # STREAM's rule: the peak is the copy, whatever the donated in-place pass reads.
  assert peaks["peak_bandwidth_Bps"] == peaks["measured_copy_existing_Bps"]
  assert "existing buffer" in peaks["peak_source"]
  assert peaks["copy_mib"] == 2 and peaks["copy_threads"] >= 1
  llc = peaks["last_level_cache_bytes"]
  assert llc is None or llc > 0


def test_default_copy_size_is_several_times_the_last_level_cache():
  llc = last_level_cache_bytes()
  assert default_copy_mib() >= 1024
  if llc is not None:
    assert default_copy_mib() * 2**20 >= 4 * llc


@pytest.mark.parametrize("kwargs, match", [({"mib": 0}, "copy size"),
                                            ({"mib": 2, "repeats": 0}, "repeats"),
                                            ({"mib": 2, "threads": 0}, "threads")])
def test_copy_bandwidth_rejects_bad_arguments(kwargs, match):
  with pytest.raises(ValueError, match=match):
    measure_copy_bandwidth(**kwargs)


def test_an_elided_or_partial_pass_is_an_error():
  _check_pass("pass", np.full(3, 2.0), 2.0)
  with pytest.raises(RuntimeError, match="whole array"):
    _check_pass("pass", np.array([2.0, 0.0, 2.0]), 2.0)


@pytest.fixture(scope="module")
def sweep_records():
  return bench_sweep(TINY, group_sizes=(1, 8), options=FAST)  # Every impl: compiles dominate.


def test_tiny_sweep_records_have_required_keys(sweep_records):
  impls = set(layer_mod.available_impls())  # every implementation this host's platform runs
  assert "pallas_tpu" not in impls and {"auto", "xla", "shift"} <= impls
  seen = {(r["config"]["group_size"], r["impl"], r["mode"]) for r in sweep_records}
  assert seen == {(g, i, m) for g in (1, 8) for i in impls for m in ("fwd", "fwdbwd")}
  assert len({r["run_id"] for r in sweep_records}) == 1
  for r in sweep_records:
    assert REQUIRED <= r.keys()
    assert r["provenance"]["device_kind"] and "git_revision" in r["provenance"]
    assert r["config"]["groups"] == 8 // r["config"]["group_size"]
    json.dumps(r, allow_nan=False)  # Plain JSON, no NaN.
    if r["status"] == "ok":
      assert TIMED <= r.keys() and r["repeats"] == 1 and r["median_ms"] > 0
      assert r["fraction_of_peak_bandwidth"] > 0 and r["roofline_ms"] > 0
      assert r["max_rel_err_vs_xla"] < 1e-4  # Every impl computes the same conv.
      if r.get("auto_plan"):  # Which implementation 'auto' ran, by stage.
        assert r["auto_plan"]["forward"] in conv_lib.IMPLS
      if r["impl"] == "xla" and r["mode"] == "fwd" and "xla_flops" in r:
        assert r["xla_flops"] == r["flops_valid_taps"]  # XLA's convention, from the cost model.
    else:
      assert r["status"] == "unsupported" and r["reason"]


def test_unsupported_impl_is_recorded_and_skipped(monkeypatch):
  def grouped_conv(x, k, *, impl, **kw):
    if impl == "never":
      raise ValueError("impl (='never') supports no config")
    return conv_lib.grouped_conv(x, k, impl="xla", **kw)
  fake = types.SimpleNamespace(IMPLS=("xla", "never"), grouped_conv=grouped_conv)
  monkeypatch.setattr(layer_mod, "conv_lib", fake)
  records = bench_layer(TINY, modes=("fwd",), options=FAST)
  assert [(r["impl"], r["status"]) for r in records] == [("xla", "ok"), ("never", "unsupported")]
  assert "never" in records[1]["reason"]
  with pytest.raises(ValueError, match="separable"):
    layer_mod.parse_impls(None, "separable")  # an unknown layer kind


def test_spatial_pointwise_block(monkeypatch):
  torch_present = importlib.util.find_spec("torch") is not None
  monkeypatch.setenv("SEPCONV_AUTOTUNE", "0")
  config = LayerConfig(batch=1, height=6, width=6, in_channels=4, out_channels=6, group_size=2,
                       layer="spatial_pointwise")
  options = BenchOptions(repeats=1, warmup=0, torch=torch_present, copy_mib=2, matmul_n=32)
  records = bench_layer(config, impls=("xla", "auto"), options=options)
  assert {r["impl"] for r in records} >= {"xla"}
  for r in records:
    assert r["status"] == "ok" and r["config"]["layer"] == "spatial_pointwise"
    assert r["max_rel_err_vs_xla"] < 1e-4  # Torch's two conv2d calls agree with the block.
    if r["mode"] == "fwd":
      assert r["flops"] == 2 * 36 * (9 * 2 * 4 + 4 * 6)


def test_torch_peer_matches_xla():
  torch = pytest.importorskip("torch", reason="PyTorch is the independent reference")
  config = LayerConfig(batch=1, height=5, width=7, in_channels=4, out_channels=8, kernel=3,
                       stride=2, group_size=2)  # Stride 2 on odd sizes: asymmetric SAME pad.
  options = BenchOptions(repeats=1, warmup=0, torch=True, copy_mib=2, matmul_n=32)
  records = bench_layer(config, impls=["xla"], options=options)
  peers = [r for r in records if r["impl"].startswith("torch_")]
  assert {(r["impl"], r["mode"]) for r in peers} == {
      (i, m) for i in ("torch_nchw", "torch_channels_last") for m in ("fwd", "fwdbwd")}
  for r in peers:
    assert r["max_rel_err_vs_xla"] < 1e-4
    assert r["torch_threads"] == os.cpu_count() and r["torch_version"] == torch.__version__


@pytest.mark.parametrize("flags, needle", [
    (["--kernel", "0"], "'0'"),
    (["--dtype", "float64"], "'float64'"),
    (["--padding", "FULL"], "'FULL'"),
    (["--mode", "backward"], "'backward'"),
    (["--group-size", "3"], "group_size (=3)"),
    (["--impls", "nosuch"], "impl (='nosuch')"),
])
def test_cli_bad_values_exit_with_one_line(capsys, flags, needle):
  try:
    code = main(["bench", "layer", *flags])
  except SystemExit as e:  # argparse rejects bad flag values itself.
    code = e.code
  assert code == 2
  err = capsys.readouterr().err
  assert len(err.strip().splitlines()) == 1 and needle in err


def test_cli_layer_json_lines(capsys):
  impls = conv_lib.IMPLS[:2]
  assert main(["bench", "layer", *TINY_FLAGS, "--group-size", "4", "--json",
               "--impls", ",".join(impls)]) == 0
  lines = capsys.readouterr().out.strip().splitlines()
  records = [json.loads(line) for line in lines]
  assert len(records) == 2 * len(impls)
  assert {(r["impl"], r["mode"]) for r in records} == {
      (i, m) for i in impls for m in ("fwd", "fwdbwd")}
  for r in records:
    assert {"impl", "median_ms", "mode"} <= r.keys() or r["status"] == "unsupported"


def test_cli_sweep_appends_records(tmp_path, capsys):
  out = tmp_path / RECORDS_FILE
  assert main(["bench", "sweep", *TINY_FLAGS, "--group-sizes", "1,8", "--mode", "fwd",
               "--impls", "xla", "--out", str(out)]) == 0
  assert "median ms" in capsys.readouterr().out
  records = read_records(out)
  assert [(r["config"]["group_size"], r["impl"]) for r in records] == [(1, "xla"), (8, "xla")]
  assert jax.default_backend() == records[0]["provenance"]["platform"]
  assert np.isfinite([r["median_ms"] for r in records]).all()
