"""`sepconv ablate NAME`: run (or resume) an experiment from `experiments/`."""

from __future__ import annotations

import json
from pathlib import Path

from sepconv.ablation import engine
from sepconv.ablation.lock import FolderLocked
from sepconv.ablation.ray_executor import RayUnavailable
from sepconv.cli.args import positive_int


# A run's own records go under runs/; results/ holds the committed reference each run is
# compared with. Refreshing the reference is explicit: --out results/<name>.
RUNS, REFERENCES = Path("runs"), Path("results")


def default_out_dir(experiment, dataset: str | None) -> Path:
  """runs/<the experiment's results name>: <name>, or <name>_<dataset> where it trains."""
  return RUNS / experiment.results_name(dataset)


def run_ablate(args) -> int:
  import experiments

  from sepconv import compile_cache
  compile_cache.enable()
  experiment = experiments.get(args.name)
  out_dir = Path(args.out) if args.out else default_out_dir(experiment, args.dataset)
  seeds = _parse_seeds(args.seeds) if args.seeds else None
  if args.reference and not (Path(args.reference) / "records.jsonl").is_file():
    raise ValueError(f"--reference (={args.reference}) must be a results folder with a "
                     "records.jsonl")
  try:
    executor = engine.make_executor(args.executor, workers=args.workers, address=args.address,
                                   cpus_per_job=args.cpus_per_job)
    counts = engine.run(experiment, out_dir, dataset=args.dataset, data_dir=args.data_dir,
                        work_dir=args.work_dir, shard=engine.parse_shard(args.shard),
                        progress=not args.quiet, seeds=seeds, variants=args.variant,
                        epochs=args.epochs, replay=args.replay_plans, executor=executor,
                        keep_going=args.keep_going)
  except (FolderLocked, RayUnavailable) as e:
    raise ValueError(str(e)) from None  # one line, exit 2
  if not args.no_report and counts["done"]:
    from sepconv.report import render_experiment
    from sepconv.report.embed import embed
    render_experiment(out_dir)
    embed("README.md", out_dir)
  reference = Path(args.reference) if args.reference else REFERENCES / experiment.results_name(
      args.dataset)
  comparison = None
  if args.reference or _is_other_results(reference, out_dir):
    comparison = compare_with_reference(reference, out_dir)
  summary = {"out": str(out_dir), **counts}
  if comparison is not None:
    summary.update(reference=str(reference), reproduced=comparison.reproduced,
                   comparison=str(out_dir / COMPARISON))
  if args.json:
    print(json.dumps(summary))
  else:
    print(f"{out_dir}: {counts['done']} run, {counts['skipped']} already recorded, "
          f"{counts['deferred']} deferred, {counts['failed']} failed"
          + (f", {counts['diverged']} diverged" if counts.get("diverged") else ""))
    if comparison is not None:
      from sepconv.report import compare
      print(f"\nAgainst the reference {reference} (also in {out_dir / COMPARISON}):\n")
      print(compare.to_markdown(comparison), end="")
  return 1 if counts["failed"] or counts.get("diverged") else 0


COMPARISON = "comparison.md"


def _is_other_results(reference: Path, out_dir: Path) -> bool:
  """Whether ``reference`` holds records and is not the run's own folder."""
  return (reference / "records.jsonl").is_file() and reference.resolve() != out_dir.resolve()


def compare_with_reference(reference: Path, out_dir: Path):
  """Compares the run in ``out_dir`` with ``reference`` and writes comparison.{md,tex} there."""
  from sepconv.report import compare
  if not (out_dir / "records.jsonl").is_file():
    return None
  comparison = compare.compare_dirs(reference, out_dir)
  (out_dir / COMPARISON).write_text(compare.to_markdown(comparison), encoding="utf-8")
  (out_dir / COMPARISON).with_suffix(".tex").write_text(compare.to_latex(comparison),
                                                        encoding="utf-8")
  return comparison


def _parse_seeds(text: str) -> tuple[int, ...]:
  parts = [p.strip() for p in text.split(",")]
  if not all(p.isdigit() for p in parts) or len(set(parts)) != len(parts):
    raise ValueError(f"--seeds (={text!r}) must be distinct comma-separated non-negative ints")
  return tuple(int(p) for p in parts)


def register(subparsers) -> None:
  parser = subparsers.add_parser("ablate", help="run or resume an experiment (see experiments/)")
  import experiments
  parser.add_argument("name", help=", ".join(experiments.NAMES))
  parser.add_argument("--dataset", default=None, help="digits (default) or cifar10/cifar100")
  parser.add_argument("--data-dir", default=None, help="where the CIFAR archive or folder is")
  parser.add_argument("--out", default=None,
                      help="results folder (default runs/NAME[_DATASET]; the committed reference "
                           "is results/NAME[_DATASET], refreshed only with --out results/...)")
  parser.add_argument("--work-dir", default=None, help="checkpoints and features (default runs/...)")
  parser.add_argument("--shard", default=None, help="i/n: run every n-th job starting at i")
  parser.add_argument("--executor", default="sequential", choices=engine.EXECUTORS,
                      help="where jobs run: sequential (this process, default), processes (a "
                           "local pool, --workers), ray (a local Ray instance, or --address)")
  parser.add_argument("--workers", type=positive_int, default=None,
                      help="worker processes of --executor processes (default 2)")
  parser.add_argument("--address", default=None,
                      help="Ray cluster to join with --executor ray (e.g. ray://head:10001, auto)")
  parser.add_argument("--cpus-per-job", type=float, default=None,
                      help="CPUs each Ray task asks for where there are no accelerators (default 1)")
  parser.add_argument("--seeds", default=None, type=str, help="override the seeds, e.g. 0 or 0,1")
  parser.add_argument("--variant", action="append", default=None,
                      help="run only this grid point (a spectrum point such as dws:g=4 or its "
                           "label); repeat for several")
  parser.add_argument("--replay-plans", default=None, metavar="RESULTS_DIR",
                      help="run the convolution plans recorded in RESULTS_DIR's records (e.g. the "
                           "committed reference): same software and CPU -> the same numbers")
  parser.add_argument("--epochs", type=positive_int, default=None,
                      help="epochs of every training run instead of the presets (use its own --out)")
  parser.add_argument("--reference", default=None, metavar="RESULTS_DIR",
                      help="compare the run with this folder's records (default: the committed "
                           "results/NAME[_DATASET], where it exists and is not --out)")
  parser.add_argument("--keep-going", action="store_true",
                      help="run past jobs whose training diverged (default: stop at the first; "
                           "each is recorded with status diverged and left out of the tables)")
  parser.add_argument("--no-report", action="store_true", help="do not re-render tables and plots")
  parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
  parser.add_argument("--json", action="store_true", help="print a JSON summary")
  parser.set_defaults(func=run_ablate)
