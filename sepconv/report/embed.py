"""Copying an experiment's generated tables and plots into a marked block of another file.

The project README shows the main job's results between two markers::

  <!-- sepconv:results/granularity_digits:begin -->
  ...replaced on every `sepconv report`...
  <!-- sepconv:results/granularity_digits:end -->

Everything between them is rewritten from the rendered tables, never typed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from sepconv.records import RECORDS_FILE

# Tables and plots shown in the embedded block, in order, when the experiment has them.
TABLES = ("summary.md", "train.md", "bench.md", "time_budget.md")
PLOTS = ("accuracy_vs_mult_adds.png", "throughput_vs_group_size.png", "time_vs_mult_adds.png",
         "decomposition_error_vs_group_size.png", "cka_variants_at_penultimate.png")


def _strip_comment(markdown: str) -> str:
  """The table without the provenance comment at its head."""
  return re.sub(r"\A<!--.*?-->\s*", "", markdown, flags=re.S).strip()


def block(results_dir: Path, relative_to: Path) -> str:
  """The generated Markdown for ``results_dir``, with links relative to ``relative_to``."""
  rel = Path(os.path.relpath(results_dir, relative_to)).as_posix()
  parts = [f"Rendered by `sepconv report` from `{rel}/{RECORDS_FILE}`; provenance in "
           f"[{rel}/README.md]({rel}/README.md)."]
  for name in TABLES:
    path = results_dir / "tables" / name
    if path.exists():
      parts.append(_strip_comment(path.read_text(encoding="utf-8")))
  images = [f"![{Path(p).stem.replace('_', ' ')}]({rel}/plots/{p})" for p in PLOTS
            if (results_dir / "plots" / p).exists()]
  if images:
    parts.append(" ".join(images))
  return "\n\n".join(parts)


def embed(target: str | Path, results_dir: str | Path) -> bool:
  """Rewrites ``target``'s block for ``results_dir``; False where it has no such markers."""
  target, results_dir = Path(target), Path(results_dir)
  if not target.exists():
    return False
  text = target.read_text(encoding="utf-8")
  key = Path(os.path.relpath(results_dir.resolve(), target.parent.resolve())).as_posix()
  begin, end = f"<!-- sepconv:{key}:begin -->", f"<!-- sepconv:{key}:end -->"
  pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), flags=re.S)
  if not pattern.search(text):
    return False
  new = pattern.sub(lambda _: f"{begin}\n{block(results_dir, target.parent)}\n{end}", text)
  if new != text:
    target.write_text(new, encoding="utf-8")
  return True
