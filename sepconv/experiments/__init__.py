"""Experiment definitions: declarative, one module each, run by ``sepconv ablate NAME``.

Each experiment module defines ``EXPERIMENT``: a frozen definition from
``sepconv.ablation`` (``GranularityAblation``, ``LayerSweep``, ``PaperTables``). Its
docstring says how to run it, on what hardware, how long it takes and what it shows.
The experiments are the modules of this package that assign ``EXPERIMENT`` at top
level, found by reading their source (nothing is imported to list them): adding one is
adding its module here.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path


def _defines_experiment(path: Path) -> bool:
  tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
  return any(isinstance(node, ast.Assign)
             and any(isinstance(t, ast.Name) and t.id == "EXPERIMENT" for t in node.targets)
             for node in tree.body)


NAMES = tuple(sorted(info.name for info in pkgutil.iter_modules([str(Path(__file__).parent)])
                     if not info.ispkg
                     and _defines_experiment(Path(__file__).parent / f"{info.name}.py")))


def get(name: str):
  """The ``EXPERIMENT`` of ``sepconv.experiments.<name>``."""
  if name not in NAMES:
    raise ValueError(f"experiment (={name!r}) must be one of {NAMES}")
  return importlib.import_module(f"{__name__}.{name}").EXPERIMENT
