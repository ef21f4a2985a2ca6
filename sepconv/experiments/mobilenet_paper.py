"""The MobileNet v1 and v2 papers' cost tables, recomputed from sepconv's architecture data.

Run:      sepconv ablate mobilenet_paper
          writes results/mobilenet_paper/: records.jsonl (raw records with provenance),
          and ``sepconv report`` renders README.md and tables/<table>.md / .tex (booktabs)
          / .csv from them (``sepconv.report.paper``).
Hardware: any CPU; pure-integer cost walks (``sepconv.models.model_cost``), a few seconds,
          most of it JAX start-up for the provenance's device field.
Shows:    every published cost figure next to ours and the difference: MobileNet v1
          Tables 2, 4, 5, 6 and 7 (Howard et al. 2017) and MobileNet v2's Table 4 rows
          (Sandler et al. 2018), plus the v2 reference implementation's 22-checkpoint table.
          Accuracies are the papers' numbers, cited, not reproduced here.

Paper numbers are literature constants (table and page cited below, arXiv versions
named); ours are computed. A figure "matches" when ours, written the way the source
writes its numbers (rounded to the printed digits; the v2 sources truncate), is the
printed figure. Each run recomputes every record and replaces the file.
"""

from __future__ import annotations

import dataclasses
import math

from sepconv import models
from sepconv.ablation import PaperTables

V1 = "Howard et al. 2017, MobileNets, arXiv:1704.04861v1"
V2 = "Sandler et al. 2018, MobileNetV2, arXiv:1801.04381v4"
SLIM = "TF-slim research/slim/nets/mobilenet/README.md (v2 reference checkpoints)"


@dataclasses.dataclass(frozen=True)
class Source:
  """One published table: where it is printed and how it writes numbers."""
  slug: str
  title: str
  cite: str
  mult_adds_rounding: str = "nearest"  # how the source writes numbers: "nearest" or "truncate"
  params_rounding: str = "nearest"

  def rounding(self, quantity: str) -> str:
    return self.params_rounding if quantity.startswith("params") else self.mult_adds_rounding


SOURCES = (
    Source("v1_table2", "MobileNet v1, resource per layer type (1.0 MobileNet-224)",
           f"{V1}, Table 2, p. 4"),
    Source("v1_table4", "MobileNet v1, depthwise separable vs full convolution MobileNet",
           f"{V1}, Table 4, p. 5"),
    Source("v1_table5", "MobileNet v1, narrow vs shallow MobileNet", f"{V1}, Table 5, p. 5"),
    Source("v1_table6", "MobileNet v1, width multiplier", f"{V1}, Table 6, p. 5"),
    Source("v1_table7", "MobileNet v1, resolution", f"{V1}, Table 7, p. 5"),
    # The v2 sources truncate mult-adds (300.77M is "300"); the paper truncates params too.
    Source("v2_table4", "MobileNet v2 on ImageNet", f"{V2}, Table 4, p. 7", "truncate", "truncate"),
    Source("v2_reference", "MobileNet v2 reference checkpoints (width x resolution)", SLIM, "truncate"),
)


@dataclasses.dataclass(frozen=True)
class Row:
  """One printed row: the model it describes and its printed figures (strings, as printed)."""
  source: str
  label: str
  model: str = "mobilenet_v1"
  conv: str = "dws"
  width_multiplier: float = 1.0
  input_size: int = 224
  mult_adds: str | None = None  # millions
  params: str | None = None  # millions
  top1: str | None = None  # ImageNet top-1 %, cited only


ROWS = (
    Row("v1_table4", "Conv MobileNet", conv="standard", mult_adds="4866", params="29.3", top1="71.7"),
    Row("v1_table4", "MobileNet", mult_adds="569", params="4.2", top1="70.6"),
    Row("v1_table5", "0.75 MobileNet", width_multiplier=0.75, mult_adds="325", params="2.6", top1="68.4"),
    Row("v1_table5", "Shallow MobileNet", model="mobilenet_v1_shallow", mult_adds="307", params="2.9",
        top1="65.3"),
    *(Row("v1_table6", f"{a} MobileNet-224", width_multiplier=float(a), mult_adds=ma, params=p, top1=t)
      for a, ma, p, t in (("1.0", "569", "4.2", "70.6"), ("0.75", "325", "2.6", "68.4"),
                          ("0.5", "149", "1.3", "63.7"), ("0.25", "41", "0.5", "50.6"))),
    *(Row("v1_table7", f"1.0 MobileNet-{r}", input_size=r, mult_adds=ma, params="4.2", top1=t)
      for r, ma, t in ((224, "569", "70.6"), (192, "418", "69.1"), (160, "290", "67.2"),
                       (128, "186", "64.4"))),
    Row("v2_table4", "MobileNetV2", model="mobilenet_v2", mult_adds="300", params="3.4", top1="72.0"),
    Row("v2_table4", "MobileNetV2 (1.4)", model="mobilenet_v2", width_multiplier=1.4, mult_adds="585",
        params="6.9", top1="74.7"),
    *(Row("v2_reference", f"mobilenet_v2_{a}_{r}", model="mobilenet_v2", width_multiplier=float(a),
          input_size=r, mult_adds=ma, params=p)
      for a, r, ma, p in (
          ("1.4", 224, "582", "6.06"), ("1.3", 224, "509", "5.34"), ("1.0", 224, "300", "3.47"),
          ("1.0", 192, "221", "3.47"), ("1.0", 160, "154", "3.47"), ("1.0", 128, "99", "3.47"),
          ("1.0", 96, "56", "3.47"), ("0.75", 224, "209", "2.61"), ("0.75", 192, "153", "2.61"),
          ("0.75", 160, "107", "2.61"), ("0.75", 128, "69", "2.61"), ("0.75", 96, "39", "2.61"),
          ("0.5", 224, "97", "1.95"), ("0.5", 192, "71", "1.95"), ("0.5", 160, "50", "1.95"),
          ("0.5", 128, "32", "1.95"), ("0.5", 96, "18", "1.95"), ("0.35", 224, "59", "1.66"),
          ("0.35", 192, "43", "1.66"), ("0.35", 160, "30", "1.66"), ("0.35", 128, "20", "1.66"),
          ("0.35", 96, "11", "1.66"))),
)

# Table 2: (layer type, % of mult-adds, % of parameters), 1.0 MobileNet-224.
TABLE2 = (("Conv 1x1", "94.86", "74.59"), ("Conv DW 3x3", "3.06", "1.06"),
          ("Conv 3x3", "1.19", "0.02"), ("Fully Connected", "0.18", "24.33"))


def written_as(value: float, printed: str, rounding: str) -> str:
  """``value`` written with the digits of ``printed``, rounded or truncated."""
  decimals = len(printed.partition(".")[2])
  if rounding == "truncate":
    value = math.floor(value * 10 ** decimals + 1e-9) / 10 ** decimals
  return f"{value:.{decimals}f}"


def _layer_type(layer) -> str | None:
  if layer.kind == "norm":
    return None
  if layer.kind == "dense":
    return "Fully Connected"
  return "Conv 3x3" if layer.name.startswith("stem") else (
      "Conv 1x1" if layer.name.endswith("pointwise") else "Conv DW 3x3")


def _figure(source: Source, label: str, quantity: str, printed: str, exact: int | float, unit: float,
            config: dict, note: str = "", top1: str | None = None) -> dict:
  ours = exact / unit
  rounding = source.rounding(quantity)
  ours_written = written_as(ours, printed, rounding)
  return {
      "experiment": "mobilenet_paper", "kind": "paper_cost",
      "run_id": f"{source.slug}/{label}/{quantity}", "table": source.slug,
      "title": source.title, "row": label,
      "source": source.cite, "rounding": rounding, "config": config,
      "quantity": quantity, "unit": unit, "paper_printed": printed, "paper": float(printed),
      "ours_exact": exact, "ours": ours, "ours_written": ours_written,
      "difference": ours - float(printed), "relative_difference": ours / float(printed) - 1,
      "matches": ours_written == printed, "note": note,
      "cited_top1_percent": float(top1) if top1 else None,
  }


def _notes(row: Row, summary, layers) -> dict[str, str]:
  """Why a figure differs or which convention it follows, from computed values."""
  m = 1e6
  if row.source == "v1_table4" and row.conv == "standard":
    conv_only = sum(l.mult_adds for l in layers if l.kind == "conv")
    return {"mult_adds": f"the conv layers alone give {conv_only / m:.2f}M, which prints as "
                         f"{conv_only / m:.0f}; the FC layer adds {(summary.mult_adds - conv_only) / m:.2f}M"}
  if row.source == "v1_table7" and row.input_size == 160:
    full = models.model_summary("mobilenet_v1").mult_adds
    scaled = full * (160 / 224) ** 2
    return {"mult_adds": f"the exact count rounds to {summary.mult_adds / m:.0f}; the paper's "
                         f"resolution rule rho^2 x {full / m:.2f}M = {scaled / m:.2f}M prints as "
                         f"{scaled / m:.0f}"}
  if row.source == "v2_table4" and row.width_multiplier == 1.0:
    return {q: f"printed truncated: {v / m:.2f}M would round to {v / m:.{d}f}"
            for q, v, d in (("params", summary.params, 1), ("mult_adds", summary.mult_adds, 0))}
  if row.source == "v2_table4":
    return {q: "the reference implementation's table (below) lists this model at "
               f"{ref} and we match it" for q, ref in (("params", "6.06M"), ("mult_adds", "582M"))}
  return {}


def compute_records() -> list[dict]:
  """Every published figure with ours beside it, one record each (the engine adds provenance)."""
  by_slug = {s.slug: s for s in SOURCES}
  records = []
  table2 = by_slug["v1_table2"]
  layers = models.model_cost("mobilenet_v1")
  totals = {"mult_adds": {}, "params": {}}
  for l in layers:
    kind = _layer_type(l)
    if kind:
      totals["mult_adds"][kind] = totals["mult_adds"].get(kind, 0) + l.mult_adds
      totals["params"][kind] = totals["params"].get(kind, 0) + l.weights  # Table 2: no FC bias
  sums = {q: sum(v.values()) for q, v in totals.items()}
  printed_sum = sum(float(ma) for _, ma, _ in TABLE2)
  for kind, ma, p in TABLE2:
    for quantity, printed in (("mult_adds_share", ma), ("params_share", p)):
      q = quantity.removesuffix("_share")
      note = ""
      if kind == "Conv 3x3" and quantity == "mult_adds_share":
        note = (f"the printed column sums to {printed_sum:.2f}%; ours ({100 * totals[q][kind] / sums[q]:.2f}%, "
                "the printed digits swapped) makes it "
                f"{printed_sum - float(printed) + round(100 * totals[q][kind] / sums[q], 2):.2f}%")
      records.append(_figure(table2, kind, quantity, printed, 100 * totals[q][kind] / sums[q], 1.0,
                             {"model": "mobilenet_v1", "conv": "dws", "width_multiplier": 1.0,
                              "input_size": 224, "counts": "weights without the FC bias"}, note))
  for row in ROWS:
    source = by_slug[row.source]
    kwargs = {"conv": row.conv, "width_multiplier": row.width_multiplier,
              "input_size": row.input_size, "num_classes": 1000}
    config = {"model": row.model, **kwargs}
    layers = models.model_cost(row.model, **kwargs)
    summary = models.model_summary(row.model, **kwargs)
    notes = _notes(row, summary, layers)
    for quantity, printed, exact in (("mult_adds", row.mult_adds, summary.mult_adds),
                                     ("params", row.params, summary.params)):
      records.append(_figure(source, row.label, quantity, printed, exact, 1e6, config,
                             notes.get(quantity, ""), row.top1))
  return records


EXPERIMENT = PaperTables(name="mobilenet_paper", compute=compute_records)
