"""Point labels on a plot that never overlap: each takes the first free place or is left out."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.transforms


def _overlaps(box, boxes) -> bool:
  return any(box.overlaps(b) for b in boxes)


# Offsets (points) tried in turn for a label: right, above, left, below, then diagonals.
_OFFSETS = ((4, -3), (-3, 5), (-4, -3), (-3, -11), (4, 5), (-4, 5), (4, -11), (-4, -11),
            (8, 9), (-8, 9), (8, -15), (-8, -15))


def place_labels(ax, points: Sequence[tuple[float, float, str, str]],
                 obstacles: Sequence[tuple[float, float]] = (), font_size: float = 5) -> int:
  """Annotates ``(x, y, text, colour)`` points where a label overlaps nothing; returns the dropped.

  ``font_size`` is in points (the plots' base size less two).

  Each label takes the first offset at which it stays inside the axes and clear
  of the other labels, the data markers (and ``obstacles``, unlabelled points) and
  the legend; a label with no such
  place is left out (the tables carry every value). Call after the layout is frozen.
  """
  fig = ax.figure
  renderer = fig.canvas.get_renderer()
  frame = ax.get_window_extent(renderer)
  to_px = ax.transData.transform
  marker = 4.0 * fig.dpi / 72.0
  taken = []
  for x, y in [*((x, y) for x, y, _, _ in points), *obstacles]:
    px, py = to_px((x, y))
    taken.append(matplotlib.transforms.Bbox([[px - marker, py - marker], [px + marker, py + marker]]))
  legend = ax.get_legend()
  if legend is not None:
    taken.append(legend.get_window_extent(renderer))
  dropped = 0
  for x, y, text, colour in points:
    for dx, dy in _OFFSETS:
      ha = "left" if dx >= 0 else "right"
      note = ax.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy), ha=ha,
                         fontsize=font_size, color=colour)
      box = note.get_window_extent(renderer)
      inside = (box.x0 >= frame.x0 and box.x1 <= frame.x1 and box.y0 >= frame.y0
                and box.y1 <= frame.y1)
      if inside and not _overlaps(box, taken):
        taken.append(box)
        break
      note.remove()
    else:
      dropped += 1
  return dropped
