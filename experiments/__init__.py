"""Experiment definitions: declarative, one module each, run by ``sepconv ablate NAME``.

Each module defines ``EXPERIMENT``: a frozen dataclass from ``sepconv.ablation``
(or, for experiments that only compute, an object with ``run(out_dir)``). Its
docstring says how to run it, on what hardware, how long it takes and what it shows.
"""

from __future__ import annotations

import importlib

NAMES = ("granularity", "seed_example", "mobilenet_paper")


def get(name: str):
  """The ``EXPERIMENT`` of ``experiments.<name>``."""
  if name not in NAMES:
    raise ValueError(f"experiment (={name!r}) must be one of {NAMES}")
  return importlib.import_module(f"experiments.{name}").EXPERIMENT
