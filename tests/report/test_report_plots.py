"""Plots: short family names and fixed colours, labels that never overlap, the anchor drawn."""

from __future__ import annotations

from sepconv.report import aggregate, plots


def test_family_names_are_short_and_colours_fixed():
  assert plots.family_of({"conv": "standard", "family": "standard"}) == "standard"
  assert plots.family_of({"family": "grouped + pointwise", "pointwise": True,
                          "depth_multiplier": 1}) == "grouped + pw"
  assert plots.family_of({"family": "grouped + pointwise", "pointwise": True,
                          "depth_multiplier": 4}) == "multiplier + pw"
  assert plots.family_of({"family": "grouped", "pointwise": False}) == "grouped"
  assert plots.family_of({"pointwise": False}) == "grouped" and plots.family_of({}) == ""
  assert plots.colour_of("grouped + pw") == plots.FAMILY_COLOURS["grouped + pw"]


def _records():
  out = []
  for conv, family, pw, m, g, mult_adds in (
      ("standard", "standard", False, 1, None, 3000), ("dws:g=1", "grouped + pointwise", True, 1, 1, 400),
      ("dws:g=2", "grouped + pointwise", True, 1, 2, 410), ("grouped:g=1", "grouped", False, 1, 1, 80),
      ("dws:g=1,m=2", "grouped + pointwise", True, 2, 1, 420)):
    for seed in (0, 1, 2):
      out.append({"kind": "train", "run_id": f"x/{conv}/seed={seed}", "seed": seed,
                  "config": {"conv": conv, "label": conv, "family": family, "pointwise": pw,
                             "depth_multiplier": m, "group_size": g},
                  "metrics": {"test_accuracy": 0.9 + 0.001 * seed},
                  "cost": {"mult_adds": mult_adds}})
  return out


def test_point_labels_do_not_overlap(tmp_path):
  rows = aggregate.train_rows(_records())
  with plots._style():
    fig = plots._figure(1)
    ax = fig.add_subplot()
    pts = [(r.stats["mult_adds"].mean, r.stats["test_accuracy"].mean, r.label, "black") for r in rows]
    ax.plot([p[0] for p in pts], [p[1] for p in pts], "o")
    ax.set_xscale("log")
    plots._freeze_layout(fig)
    dropped = plots.place_labels(ax, pts)
  renderer = fig.canvas.get_renderer()
  boxes = [t.get_window_extent(renderer) for t in ax.texts]
  assert len(boxes) + dropped == len(pts) and len(boxes) >= 3
  assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_accuracy_plot_is_png_and_a_reproducible_pdf(tmp_path):
  rows = aggregate.train_rows(_records())
  paths = plots.accuracy_vs_mult_adds(rows, tmp_path / "acc")
  assert [p.suffix for p in paths] == [".png", ".pdf"]
  assert paths[1].read_bytes()[:5] == b"%PDF-" and b"CreationDate" not in paths[1].read_bytes()
  again = plots.accuracy_vs_mult_adds(rows, tmp_path / "acc2")
  assert again[1].read_bytes() == paths[1].read_bytes()
