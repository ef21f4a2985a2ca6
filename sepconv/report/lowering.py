"""Tables of conv-lowering and training-step benchmarks (``sepconv bench`` records).

``render_lowering(records_path, out_dir)`` writes ``lowering.{md,tex,csv}`` (and
``train_step.{md,tex,csv}`` when there are training-step records). Output depends only
on the records file: sections, rows and columns are sorted, numbers are formatted with
fixed rules, and no clock or environment is read, so a rerun is byte-identical.

"XLA FLOPs / needed" is XLA's own FLOP count of the compiled call over the FLOPs the
layer needs (taps on padding skipped, as XLA counts): above 1, the lowering does
redundant work, as XLA:CPU's weight gradient of a depthwise conv does.

Where a (layer, group size, impl, mode) was measured more than once, the last record
in the file (the most recent run) is shown. Speed-ups are ``t_other / t_impl``, so a
value above 1 means the implementation is faster than 'xla' (or than the faster of
the two PyTorch layouts).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from sepconv.records import read_records
from sepconv.report import provenance
from sepconv.report.writer import Section, rows_csv, sections_latex, sections_markdown, sig, write_text

RECORD_KINDS = ("conv_layer", "train_step")
_SHAPE_KEYS = ("layer", "batch", "height", "width", "in_channels", "out_channels", "kernel",
               "stride", "dilation", "padding", "dtype")
_MODE_NAMES = {"fwd": "forward", "fwdbwd": "forward + backward"}
_CSV_COLUMNS = (
    "device_kind", "platform", *_SHAPE_KEYS, "mode", "group_size", "groups", "impl", "status",
    "median_ms", "p25_ms", "p75_ms", "min_ms", "max_ms", "repeats", "compile_ms",
    "speedup_vs_xla", "speedup_vs_torch_best", "achieved_GBps", "fraction_of_peak_bandwidth",
    "achieved_GFLOPps", "fraction_of_peak_flops", "work_ratio", "max_rel_err_vs_xla", "auto_plan", "git_revision", "run_id")


def _ratio(value: float | None) -> str:
  return "" if value is None else f"{value:.2f}"


def _pct(value: float | None) -> str:
  return "" if value is None else f"{100 * value:.1f}"


def _err(value: float | None) -> str:
  return "" if value is None else f"{value:.1e}"


def _plan_text(plan: dict | None) -> str:
  """'shift/shift/xla' for a forward/input-gradient/kernel-gradient plan."""
  if not plan:
    return ""
  keys = ("forward", "input_grad", "kernel_grad")
  if all(k in plan for k in keys):
    return "/".join("-" if plan[k] is None else str(plan[k]) for k in keys)
  return "; ".join(f"{k}={plan[k]}" for k in sorted(plan))


def _impl_order(impl: str) -> tuple:
  return (impl.startswith("torch_"), impl != "xla", impl)


def _mixed_key(value) -> tuple:
  """Sorts ints numerically before strings (padding may be either)."""
  return (0, value, "") if isinstance(value, int) else (1, 0, str(value))


def _latest(records: Iterable[dict], key) -> dict:
  """The last record for each key (file order is time order: records are appended)."""
  out = {}
  for record in records:
    out[key(record)] = record
  return out


# Records from before the two-stage bench layer was named 'spatial_pointwise' say 'separable'.
_LAYER_TITLES = {"conv": "conv",
                 "spatial_pointwise": "spatial + pointwise block (grouped spatial + dense 1x1)",
                 "separable": "spatial + pointwise block (grouped spatial + dense 1x1)"}


def _layer_title(cfg: dict, mode: str) -> str:
  what = _LAYER_TITLES[cfg["layer"]]
  return (f"{what} {cfg['kernel']}x{cfg['kernel']}, {cfg['height']}x{cfg['width']}x"
          f"{cfg['in_channels']} -> {cfg['out_channels']}, stride {cfg['stride']}, "
          f"dilation {cfg['dilation']}, padding {cfg['padding']}, batch {cfg['batch']}, "
          f"{cfg['dtype']}, {_MODE_NAMES[mode]}")


def _conv_sections(records: Sequence[dict]) -> list[dict]:
  """Records grouped by device, layer shape, dtype and mode, each with derived rows."""
  conv = [r for r in records if r.get("kind") == "conv_layer"]
  latest = _latest(conv, lambda r: (r["provenance"]["device_kind"],
                                    *(r["config"][k] for k in _SHAPE_KEYS), r["mode"],
                                    r["config"]["group_size"], r["impl"]))
  sections = {}
  for key, record in latest.items():
    sections.setdefault(key[:-2], []).append(record)
  out = []
  for key in sorted(sections, key=lambda k: tuple(map(_mixed_key, k))):
    recs = sections[key]
    impls = sorted({r["impl"] for r in recs}, key=_impl_order)
    by_g = {}
    for r in recs:
      by_g.setdefault(r["config"]["group_size"], {})[r["impl"]] = r
    rows = []
    for g in sorted(by_g):
      cells = by_g[g]
      ok = {i: r["median_ms"] for i, r in cells.items() if r["status"] == "ok"}
      xla = ok.get("xla")
      torch_ms = [ms for i, ms in ok.items() if i.startswith("torch_")]
      torch_best = min(torch_ms) if torch_ms else None
      for impl in sorted(cells, key=_impl_order):
        r = cells[impl]
        ms = ok.get(impl)
        rows.append({
            "device_kind": r["provenance"]["device_kind"], "platform": r["provenance"]["platform"],
            **{k: r["config"][k] for k in _SHAPE_KEYS}, "mode": r["mode"], "group_size": g,
            "groups": r["config"]["groups"], "impl": impl, "status": r["status"],
            **{k: r.get(k) for k in ("median_ms", "p25_ms", "p75_ms", "min_ms", "max_ms",
                                     "repeats", "compile_ms", "fraction_of_peak_bandwidth",
                                     "fraction_of_peak_flops", "max_rel_err_vs_xla", "run_id")},
            "speedup_vs_xla": xla / ms if ms and xla else None,
            "speedup_vs_torch_best": torch_best / ms if ms and torch_best else None,
            "achieved_GBps": r["achieved_bytes_per_s"] / 1e9 if ms else None,
            "achieved_GFLOPps": r["achieved_flops_per_s"] / 1e9 if ms else None,
            "work_ratio": (r["xla_flops"] / r["flops_valid_taps"]
                           if r.get("xla_flops") and r.get("flops_valid_taps") else None),
            "auto_plan": _plan_text(r.get("auto_plan")),
            "git_revision": r["provenance"].get("git_revision"),
        })
    out.append({"title": _layer_title(recs[0]["config"], recs[0]["mode"]), "records": recs,
                "impls": impls, "rows": rows, "by_g": by_g})
  return out


def _summary_table(section: dict) -> tuple[list[str], list[list[str]]]:
  """Group size x impl medians, with the fastest JAX impl and its speed-ups."""
  impls = section["impls"]
  headers = ["group size", "groups", *(f"{i} ms" for i in impls), "fastest jax", "vs xla",
             "vs torch best"]
  rows = []
  for g, cells in sorted(section["by_g"].items()):
    row_data = {r["impl"]: r for r in section["rows"] if r["group_size"] == g}
    line = [str(g), str(next(iter(cells.values()))["config"]["groups"])]
    for impl in impls:
      r = cells.get(impl)
      line.append("" if r is None else (sig(r["median_ms"]) if r["status"] == "ok" else r["status"]))
    jax_ok = [(r["median_ms"], i) for i, r in cells.items()
              if r["status"] == "ok" and not i.startswith("torch_")]
    if jax_ok:
      best = min(jax_ok)[1]
      line += [best, _ratio(row_data[best]["speedup_vs_xla"]),
               _ratio(row_data[best]["speedup_vs_torch_best"])]
    else:
      line += ["", "", ""]
    rows.append(line)
  return headers, rows


def _detail_table(section: dict) -> tuple[list[str], list[list[str]]]:
  headers = ["group size", "impl", "median ms", "p25-p75 ms", "n", "compile ms", "vs xla",
             "vs torch best", "GB/s", "% peak BW", "GFLOP/s", "% peak FLOP/s",
             "XLA FLOPs / needed", "rel err vs xla", "auto plan (fwd/dx/dk)"]
  rows = []
  for r in section["rows"]:
    if r["status"] != "ok":
      rows.append([str(r["group_size"]), r["impl"], r["status"]] + [""] * (len(headers) - 3))
      continue
    rows.append([
        str(r["group_size"]), r["impl"], sig(r["median_ms"]),
        f"{sig(r['p25_ms'])}-{sig(r['p75_ms'])}", str(r["repeats"]), sig(r["compile_ms"]),
        _ratio(r["speedup_vs_xla"]), _ratio(r["speedup_vs_torch_best"]),
        sig(r["achieved_GBps"]), _pct(r["fraction_of_peak_bandwidth"]),
        sig(r["achieved_GFLOPps"]), _pct(r["fraction_of_peak_flops"]),
        _ratio(r["work_ratio"]), _err(r["max_rel_err_vs_xla"]), r["auto_plan"]])
  return headers, rows


def _train_sections(records: Sequence[dict]) -> list[dict]:
  train = [r for r in records if r.get("kind") == "train_step"]
  keys = ("model", "conv", "batch", "image_size", "width_multiplier", "num_classes", "dtype")
  latest = _latest(train, lambda r: (r["provenance"]["device_kind"],
                                     *(str(r["config"].get(k)) for k in keys), r["impl"]))
  sections = {}
  for key, record in latest.items():
    sections.setdefault(key[:-1], []).append(record)
  out = []
  for key in sorted(sections):
    recs = sorted(sections[key], key=lambda r: _impl_order(r["impl"]))
    cfg = recs[0]["config"]
    ok = {r["impl"]: r["median_ms"] for r in recs if r["status"] == "ok"}
    xla = ok.get("xla")
    torch_best = min((t for i, t in ok.items() if i.startswith("torch_")), default=None)
    rows = []
    for r in recs:
      if r["status"] != "ok":
        rows.append([r["impl"], r["status"], "", "", "", "", ""])
        continue
      rows.append([r["impl"], sig(r["median_ms"]), f"{sig(r['p25_ms'])}-{sig(r['p75_ms'])}",
                   sig(r["images_per_s"]), sig(r["compile_ms"]),
                   _ratio(xla / r["median_ms"] if xla else None),
                   _ratio(torch_best / r["median_ms"] if torch_best else None)])
    title = (f"training step (forward, backward, SGD+momentum update): {cfg['model']} "
             f"({cfg.get('conv', 'dws')}) width {cfg['width_multiplier']}, {cfg['image_size']}x{cfg['image_size']}, "
             f"batch {cfg['batch']}, {cfg['num_classes']} classes, {cfg['dtype']}")
    out.append({"title": title, "records": recs,
                "headers": ["impl", "median ms", "p25-p75 ms", "images/s", "compile ms", "vs xla",
                            "vs torch best"],
                "rows": rows})
  return out


LEGEND = (
    "Median wall time of warm, jitted calls (compile time apart). 'vs xla' and 'vs torch "
    "best' are t_other / t_impl: above 1, faster than 'xla' or than the faster PyTorch "
    "layout. GB/s and GFLOP/s use the analytic minimum traffic and FLOPs (padded taps "
    "counted; forward + backward = 3x FLOPs and 3 input- + 2 output-sized tensors), as "
    "fractions of the roofline peaks in each section header. 'XLA FLOPs / needed' is XLA's "
    "cost analysis of the compiled call over the FLOPs on valid taps: well above 1, the lowering does "
    "redundant work (lowerings that are not one convolution count their multiply-adds "
    "differently, so values near 1 mean equal work). 'n' is the number of timed calls; "
    "'auto plan' names what 'auto' ran for the forward, input and kernel gradients.")


def section(part: dict, grids: list[tuple[list, list]]) -> Section:
  """A document section of ``part`` (its title and records) with its provenance lines."""
  return Section(part["title"], tuple(provenance.section_lines(part["records"], sig)),
                 tuple(grids))


def render_lowering(records_path: str | os.PathLike | Sequence[str | os.PathLike],
                    out_dir: str | os.PathLike) -> list[Path]:
  """Renders Markdown, LaTeX (booktabs) and CSV tables from benchmark records.

  Args:
    records_path: a JSON-lines records file (or several) written by ``sepconv bench``.
    out_dir: where ``lowering.*`` and ``train_step.*`` go (created if missing).

  Returns:
    The paths written.

  Raises:
    FileNotFoundError: a records file is missing.
    ValueError: the files hold no benchmark records.
  """
  records = read_records(records_path)
  conv = _conv_sections(records)
  train = _train_sections(records)
  if not conv and not train:
    raise ValueError(f"records (={records_path}) hold no conv_layer or train_step records")
  out_dir = Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  written = []
  if conv:
    sections = [section(s, [_summary_table(s), _detail_table(s)]) for s in conv]
    title = "Convolution lowering: time per call by implementation and group size"
    outputs = {"lowering.md": sections_markdown(title, sections, LEGEND),
               "lowering.tex": sections_latex(title, sections),
               "lowering.csv": rows_csv(_CSV_COLUMNS, (r for s in conv for r in s["rows"]))}
    written += [write_text(out_dir / name, text) for name, text in outputs.items()]
  if train:
    sections = [section(s, [(s["headers"], s["rows"])]) for s in train]
    title = "Training step time by convolution implementation"
    csv_rows = [{"title": s["title"], **dict(zip(s["headers"], row))} for s in train for row in s["rows"]]
    outputs = {"train_step.md": sections_markdown(title, sections),
               "train_step.tex": sections_latex(title, sections),
               "train_step.csv": rows_csv(("title", *train[0]["headers"]), csv_rows)}
    written += [write_text(out_dir / name, text) for name, text in outputs.items()]
  return written
