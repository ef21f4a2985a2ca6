"""`sepconv report [NAME]`: re-render tables and plots from an experiment's records."""

from __future__ import annotations

import argparse
from pathlib import Path

from sepconv.records import RECORDS_FILE


def register(subparsers) -> None:
  """Adds the ``report`` sub-command."""
  parser = subparsers.add_parser(
      "report", help=f"render tables and plots from results/<NAME>/{RECORDS_FILE}",
      description="Re-render Markdown/LaTeX/CSV tables, PNG/PDF plots and README.md of one "
                  "experiment (or all) from its JSON-lines records alone.")
  parser.add_argument("name", nargs="?", default=None,
                      help="experiment folder name under the results dir; default: all")
  parser.add_argument("--results-dir", default="results", help="results root (default: results)")
  parser.add_argument("--readme", default="README.md",
                      help="a file whose '<!-- sepconv:RESULTS_DIR:begin/end -->' blocks are "
                           "refreshed with the rendered tables (default: README.md)")
  parser.add_argument("--compare", nargs=2, metavar=("REFERENCE_DIR", "RUN_DIR"), default=None,
                      help="instead of rendering, compare RUN_DIR's records with REFERENCE_DIR's: "
                           "per variant reproduced or moved, and the provenance differences")
  parser.add_argument("--latex", action="store_true", help="with --compare: print LaTeX, not Markdown")
  parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
  """Renders and prints one line per experiment (or prints the comparison of two)."""
  if args.compare is not None:
    from sepconv.report import compare
    c = compare.compare_dirs(*args.compare)
    print(compare.to_latex(c) if args.latex else compare.to_markdown(c), end="")
    return 0
  from sepconv.report import render_experiment  # matplotlib only when needed
  from sepconv.report.render import experiment_dirs
  from sepconv.report.embed import embed
  root = Path(args.results_dir)
  if args.name is not None:
    if not args.name or Path(args.name).name != args.name:
      raise ValueError(f"NAME (={args.name!r}) must be one folder name under {root}")
    folders = [root / args.name]
  else:
    folders = experiment_dirs(root)
  for folder in folders:
    written = render_experiment(folder)
    shown = f" (shown in {args.readme})" if embed(args.readme, folder) else ""
    print(f"{folder}: {len(written)} files{shown}")
  return 0
