"""`sepconv ablate NAME`: run (or resume) an experiment from `sepconv.experiments`.

A shell over ``sepconv.ablation.session.ablate``: it parses, calls, and prints.
"""

from __future__ import annotations

import json

from sepconv.ablation import engine
from sepconv.ablation.jobs import STATUSES
from sepconv.ablation.lock import FolderLocked
from sepconv.ablation.ray_executor import RayUnavailable
from sepconv.cli.args import positive_int


def run_ablate(args) -> int:
  from sepconv import compile_cache, experiments
  from sepconv.ablation.session import COMPARISON, ablate
  compile_cache.enable()
  experiment = experiments.get(args.name)
  seeds = _parse_seeds(args.seeds) if args.seeds else None
  try:
    executor = engine.make_executor(args.executor, workers=args.workers, address=args.address,
                                   cpus_per_job=args.cpus_per_job)
    result = ablate(experiment, args.out, dataset=args.dataset, reference=args.reference,
                    render=not args.no_report, data_dir=args.data_dir, work_dir=args.work_dir,
                    shard=engine.parse_shard(args.shard), progress=not args.quiet, seeds=seeds,
                    variants=args.variant, epochs=args.epochs, replay=args.replay_plans,
                    executor=executor, keep_going=args.keep_going)
  except (FolderLocked, RayUnavailable) as e:
    raise ValueError(str(e)) from None  # one line, exit 2
  counts = result.counts
  if args.json:
    print(json.dumps(result.summary()))
  else:
    print(f"{result.out_dir}: {counts['done']} run, {counts['skipped']} already recorded, "
          f"{counts['deferred']} deferred, "
          + ", ".join(f"{counts[s]} {s}" for s in STATUSES))
    if result.comparison is not None:
      from sepconv.report import compare
      print(f"\nAgainst the reference {result.reference} (also in "
            f"{result.out_dir / COMPARISON}):\n")
      print(compare.to_markdown(result.comparison), end="")
  return 1 if result.unfinished else 0


def _parse_seeds(text: str) -> tuple[int, ...]:
  parts = [p.strip() for p in text.split(",")]
  if not all(p.isdigit() for p in parts) or len(set(parts)) != len(parts):
    raise ValueError(f"--seeds (={text!r}) must be distinct comma-separated non-negative ints")
  return tuple(int(p) for p in parts)


def register(subparsers) -> None:
  from sepconv import experiments
  parser = subparsers.add_parser("ablate",
                                 help="run or resume an experiment (see sepconv/experiments/)")
  parser.add_argument("name", help=", ".join(experiments.NAMES))
  parser.add_argument("--dataset", default=None, help="digits (default) or cifar10/cifar100")
  parser.add_argument("--data-dir", default=None, help="where the CIFAR archive or folder is")
  parser.add_argument("--out", default=None,
                      help="results folder (default runs/NAME[_DATASET]; the committed reference "
                           "is results/NAME[_DATASET], refreshed only with --out results/...)")
  parser.add_argument("--work-dir", default=None, help="checkpoints and features (default runs/...)")
  parser.add_argument("--shard", default=None, help="i/n: run every n-th job starting at i")
  parser.add_argument("--executor", default="auto", choices=engine.EXECUTORS,
                      help="where jobs run: auto (default: on a CPU host with 2 or more CPUs, "
                           "one worker process per CPU, each pinned to its own; else this "
                           "process), sequential (this process), processes (a local pool, "
                           "--workers), ray (a local Ray instance, or --address)")
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
