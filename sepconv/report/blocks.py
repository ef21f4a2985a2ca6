"""Tables of the blocks benchmark (``sepconv bench blocks`` records): Flax blocks with and without sepconv.

``render_blocks(records_path, out_dir)`` writes ``blocks.{md,tex,csv}`` and a ``README.md``
that says how they are made and shows the Markdown tables: per block, shape,
dtype and device, the median time of each variant ('flax', 'flax + sepconv', 'torch') in
each mode, and the speed-up of the drop-in over plain Flax. Output depends only on the
records (sorted rows, fixed number formats, no clock read), so a rerun is byte-identical,
as ``sepconv.report.lowering``'s tables are. Where a (block, shape, mode, variant) was
measured more than once, the last record in the file is shown.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from sepconv.records import RECORDS_FILE, read_records
from sepconv.report.lowering import _latest, section
from sepconv.report.writer import rows_csv, sections_latex, sections_markdown, sig, write_text

RECORD_KINDS = ("flax_block",)
VARIANTS = ("flax", "flax + sepconv", "torch")
MODES = {"forward": "forward", "train_step": "training step"}
_CSV_COLUMNS = ("device_kind", "platform", "block", "batch", "height", "width", "channels",
                "dtype", "mode", "variant", "status", "median_ms", "p25_ms", "p75_ms", "repeats",
                "compile_ms", "speedup_vs_flax", "max_rel_diff_vs_flax", "git_revision", "run_id")
LEGEND = (
    "Median wall time (ms) of warm, jitted calls (compile time apart) of plain Flax blocks: "
    "'flax' as written (`nn.Conv(feature_group_count=...)` on XLA's grouped convolution), "
    "'flax + sepconv' with the one argument `conv_general_dilated=sepconv.conv_general_dilated`, "
    "'torch' PyTorch's equivalent (NCHW, float32). 'training step' is forward, backward and "
    "an SGD update with train-mode BatchNorm. 'x flax' is t_flax / t_variant: above 1, faster "
    "than plain Flax. 'diff' is the drop-in's largest relative difference from plain Flax "
    "(forward output, or updated parameters).")


def _key(record: dict) -> tuple:
  cfg, prov = record["config"], record["provenance"]
  return (prov["device_kind"], prov["platform"], record["block"], cfg["batch"], cfg["height"],
          cfg["width"], cfg["channels"], cfg["dtype"], record["mode"], record["variant"])


def _sections(records: Sequence[dict]) -> list[dict]:
  latest = _latest((r for r in records if r.get("kind") in RECORD_KINDS), _key)
  groups: dict[tuple, list[dict]] = {}
  for key, record in latest.items():
    device, platform, _, batch, height, width, _, dtype = key[:8]
    groups.setdefault((device, platform, batch, height, width, dtype), []).append(record)
  sections = []
  for (device, platform, batch, height, width, dtype), group in sorted(groups.items()):
    headers = ["block", "channels"]
    for mode in MODES:
      headers += [f"{MODES[mode]}: {v}" for v in VARIANTS] + [f"{MODES[mode]}: x flax",
                                                              f"{MODES[mode]}: diff"]
    by_block: dict[tuple, dict] = {}
    for r in group:
      by_block.setdefault((r["block"], r["config"]["channels"]), {})[(r["mode"], r["variant"])] = r
    rows, csv_rows = [], []
    for (block, channels), cells in sorted(by_block.items()):
      row = [block, str(channels)]
      for mode in MODES:
        flax = cells.get((mode, "flax"))
        flax_ms = flax["median_ms"] if flax and flax["status"] == "ok" else None
        for variant in VARIANTS:
          r = cells.get((mode, variant))
          ok = r is not None and r["status"] == "ok"
          row.append(sig(r["median_ms"]) if ok else ("" if r is None else r["status"]))
          if r is not None:
            speedup = flax_ms / r["median_ms"] if ok and flax_ms else None
            csv_rows.append({"device_kind": device, "platform": platform, "block": block,
                             "batch": batch, "height": height, "width": width,
                             "channels": channels, "dtype": dtype, "mode": mode,
                             "variant": variant, "status": r["status"],
                             "speedup_vs_flax": speedup,
                             "git_revision": r["provenance"].get("git_revision"),
                             **{c: r.get(c) for c in ("median_ms", "p25_ms", "p75_ms", "repeats",
                                                      "compile_ms", "max_rel_diff_vs_flax",
                                                      "run_id")}})
        plugged = cells.get((mode, "flax + sepconv"))
        ok = plugged is not None and plugged["status"] == "ok"
        row.append(f"{flax_ms / plugged['median_ms']:.2f}" if ok and flax_ms else "")
        diff = plugged.get("max_rel_diff_vs_flax") if plugged else None
        row.append("" if diff is None else f"{diff:.1e}")
      rows.append(row)
    title = f"{device} ({platform}), batch {batch}, {height}x{width}, {dtype}"
    sections.append({"title": title, "records": group, "headers": headers, "rows": rows,
                     "csv_rows": csv_rows})
  return sections


README_HEAD = f"""# Flax blocks with and without sepconv

Generated by `sepconv report flax_blocks` from `{RECORDS_FILE}`; do not edit.

Plain Flax blocks written the usual way (`sepconv/bench/flax_blocks.py`): a ConvNeXt block
(7x7 depthwise, 56x56x96), a ResNeXt-50 32x4d bottleneck (32 groups x 4 channels, 56x56)
and a MobileNet v2 inverted residual (56x56x24, expansion 6), each timed as written and
with the one-argument change

    nn.Conv(..., feature_group_count=G, conv_general_dilated=sepconv.conv_general_dilated)

beside PyTorch's equivalents (`sepconv/bench/torch_blocks.py`) where installed.

- `{RECORDS_FILE}`: one record per (block, mode, variant), with timing statistics and provenance.
- `blocks.{{md,tex,csv}}`: the tables below, as Markdown, LaTeX (booktabs) and CSV.

Regenerate (CPU, batch 32, 56x56):

    sepconv bench blocks          # appends to results/flax_blocks/{RECORDS_FILE}
    sepconv report flax_blocks    # rewrites the tables and this file from the records
"""


def render_blocks(records_path: str | os.PathLike | Sequence[str | os.PathLike],
                  out_dir: str | os.PathLike) -> list[Path]:
  """Renders ``blocks.md``, ``blocks.tex`` (booktabs), ``blocks.csv`` and ``README.md``.

  Raises:
    FileNotFoundError: a records file is missing.
    ValueError: the files hold no blocks-benchmark records.
  """
  sections = _sections(read_records(records_path))
  if not sections:
    raise ValueError(f"records (={records_path}) hold no {RECORD_KINDS[0]} records")
  out_dir = Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  parts = [section(s, [(s["headers"], s["rows"])]) for s in sections]
  title = "Flax blocks with and without sepconv.conv_general_dilated"
  markdown = sections_markdown(title, parts, LEGEND)
  body = markdown.split("\n", 3)[3]  # the tables without their title and "generated" line
  outputs = {"blocks.md": markdown, "blocks.tex": sections_latex(title, parts),
             "blocks.csv": rows_csv(_CSV_COLUMNS, (r for s in sections for r in s["csv_rows"])),
             "README.md": README_HEAD + "\n" + body}
  return [write_text(out_dir / name, text) for name, text in outputs.items()]
