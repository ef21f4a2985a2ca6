"""One ablation, as ``sepconv ablate`` runs it: run (or resume), render, compare with the reference.

``ablate(experiment, ...)`` runs the experiment's jobs into its results folder
(``engine.run``), re-renders that folder's tables and plots (and the README block that
shows them), and compares its records with the committed reference: ``results/<name>``
(``--reference`` chooses another), where that holds records and is not the run's own
folder. The comparison is written beside the run's records (``comparison.md``/``.tex``).
Usable from a notebook cell as from the command line, which only parses and prints.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from sepconv.ablation import engine
from sepconv.ablation.jobs import STATUSES

# A run's own records go under runs/; results/ holds the committed reference each run is
# compared with. Refreshing the reference is explicit: out_dir='results/<name>'.
RUNS, REFERENCES = Path("runs"), Path("results")
COMPARISON = "comparison.md"


@dataclasses.dataclass(frozen=True)
class Ablated:
  """What one ``ablate`` call did."""
  out_dir: Path
  counts: dict[str, int]  # done, skipped, deferred, and one per ``jobs.Status``
  reference: Path | None = None  # the folder compared with, if any
  comparison: Any = None  # its ``sepconv.report.compare`` comparison

  @property
  def unfinished(self) -> int:
    """Jobs that did not finish (failed, ...): the command then exits 1."""
    return sum(self.counts[s] for s in STATUSES)

  def summary(self) -> dict:
    """The command's ``--json`` summary."""
    out = {"out": str(self.out_dir), **self.counts}
    if self.comparison is not None:
      out.update(reference=str(self.reference), reproduced=self.comparison.reproduced,
                 comparison=str(self.out_dir / COMPARISON))
    return out


def default_out_dir(experiment, dataset: str | None) -> Path:
  """runs/<the experiment's results name>: <name>, or <name>_<dataset> where it trains."""
  return RUNS / experiment.results_name(dataset)


def ablate(experiment, out_dir: str | Path | None = None, *, dataset: str | None = None,
           reference: str | Path | None = None, render: bool = True,
           readme: str | Path = "README.md", **run_options) -> Ablated:
  """Runs ``experiment`` and compares it with its reference (see the module docstring).

  Args:
    experiment: a definition (``sepconv.experiments.get(name)``).
    out_dir: the run's results folder (default ``runs/<results name>``).
    dataset: which of the experiment's data sets (default its first).
    reference: a results folder to compare with (default ``results/<results name>``,
      where it holds records and is not ``out_dir``); one without records is refused
      before any work.
    render: re-render the folder's tables and plots and ``readme``'s block when jobs ran.
    readme: the file whose ``sepconv:`` block shows the rendered tables.
    **run_options: ``engine.run``'s keyword arguments (work_dir, shard, executor, ...).
  """
  out_dir = Path(out_dir) if out_dir else default_out_dir(experiment, dataset)
  if reference and not (Path(reference) / engine.RECORDS).is_file():
    raise ValueError(f"--reference (={reference}) must be a results folder with a "
                     f"{engine.RECORDS}")
  counts = engine.run(experiment, out_dir, dataset=dataset, **run_options)
  if render and counts["done"]:
    from sepconv.report import render_experiment
    from sepconv.report.embed import embed
    render_experiment(out_dir)
    embed(readme, out_dir)
  explicit = bool(reference)
  reference = Path(reference) if reference else REFERENCES / experiment.results_name(dataset)
  if not (explicit or _is_other_results(reference, out_dir)):
    return Ablated(out_dir, counts)
  return Ablated(out_dir, counts, reference, compare_with_reference(reference, out_dir))


def _is_other_results(reference: Path, out_dir: Path) -> bool:
  """Whether ``reference`` holds records and is not the run's own folder."""
  return (reference / engine.RECORDS).is_file() and reference.resolve() != out_dir.resolve()


def compare_with_reference(reference: Path, out_dir: Path):
  """Compares the run in ``out_dir`` with ``reference`` and writes comparison.{md,tex} there."""
  from sepconv.report import compare
  if not (out_dir / engine.RECORDS).is_file():
    return None
  comparison = compare.compare_dirs(reference, out_dir)
  (out_dir / COMPARISON).write_text(compare.to_markdown(comparison), encoding="utf-8")
  (out_dir / COMPARISON).with_suffix(".tex").write_text(compare.to_latex(comparison),
                                                        encoding="utf-8")
  return comparison


__all__ = ["Ablated", "COMPARISON", "REFERENCES", "RUNS", "ablate", "compare_with_reference",
           "default_out_dir"]
