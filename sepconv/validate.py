"""Argument checks at the library's boundary: each returns the value or raises ``ValueError``.

Every message names the argument and the value it got, and says what was expected
("kernel_size (=0) must be a positive int or a pair of positive ints"), so a typo in a
config or on the command line reads as one line. Bools are never accepted as ints.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

Pads = tuple[tuple[int, int], tuple[int, int]]
PADDING_FORMS = "'SAME', 'VALID', an int or two (low, high) pairs ((top, bottom), (left, right))"


def is_int(value) -> bool:
  """True for Python and numpy integers, False for bools."""
  return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def positive_int(value, name: str) -> int:
  """``value`` as an int >= 1."""
  if not is_int(value) or value < 1:
    raise ValueError(f"{name} (={value!r}) must be a positive int")
  return int(value)


def nonnegative_int(value, name: str) -> int:
  """``value`` as an int >= 0."""
  if not is_int(value) or value < 0:
    raise ValueError(f"{name} (={value!r}) must be a non-negative int")
  return int(value)


def positive_number(value, name: str) -> float:
  """``value`` as a float > 0 (a finite real number, not a bool)."""
  if (isinstance(value, bool) or not isinstance(value, numbers.Real)
      or not np.isfinite(value) or value <= 0):
    raise ValueError(f"{name} (={value!r}) must be a positive number (finite, > 0)")
  return float(value)


def number_in(value, name: str, low: float, high: float, *, low_open: bool = False,
              high_open: bool = True) -> float:
  """``value`` as a finite float in the interval from ``low`` to ``high`` (inf: unbounded).

  ``low_open``/``high_open`` exclude the ends: the defaults give [low, high).
  """
  left, right = "(" if low_open else "[", ")" if high_open else "]"
  if (isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real)
      or not np.isfinite(value)):
    raise ValueError(f"{name} (={value!r}) must be a finite number in "
                     f"{left}{low:g}, {high:g}{right}")
  below = value <= low if low_open else value < low
  above = value >= high if high_open else value > high
  if below or above:
    raise ValueError(f"{name} (={value!r}) must be in {left}{low:g}, {high:g}{right}")
  return float(value)


def nonnegative_number(value, name: str) -> float:
  """``value`` as a finite float >= 0 (not a bool)."""
  if (isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real)
      or not np.isfinite(value) or value < 0):
    raise ValueError(f"{name} (={value!r}) must be a finite number >= 0")
  return float(value)


def boolean(value, name: str) -> bool:
  """``value`` itself, which must be a bool."""
  if not isinstance(value, (bool, np.bool_)):
    raise ValueError(f"{name} (={value!r}) must be a bool")
  return bool(value)


def one_of(value, name: str, choices: Iterable):
  """``value`` itself, which must be one of ``choices``."""
  choices = tuple(choices)
  if value not in choices:
    raise ValueError(f"{name} (={value!r}) must be one of {choices}")
  return value


def pair(value, name: str, minimum: int = 1) -> tuple[int, int]:
  """An int or a pair of ints, each >= ``minimum``, as a pair."""
  message = (f"{name} (={value!r}) must be a positive int or a pair of positive ints"
             if minimum == 1 else f"{name} (={value!r}) must be an int or a pair of ints >= {minimum}")
  if is_int(value):
    value = (value, value)
  elif isinstance(value, (bool, np.bool_, str)):
    raise ValueError(message)
  try:
    items = tuple(value)
  except TypeError:
    raise ValueError(message) from None
  if len(items) != 2 or not all(is_int(v) and v >= minimum for v in items):
    raise ValueError(message)
  return int(items[0]), int(items[1])


def padding(value, *, allow_negative: bool = False) -> str | Pads:
  """'SAME' or 'VALID' (any case), or explicit ((top, bottom), (left, right)) pairs.

  An int pads all four sides by it. Negative pads crop, which only a convolution call
  accepts (``allow_negative``); a layer's padding is never negative.
  """
  if isinstance(value, str):
    if value.upper() not in ("SAME", "VALID"):
      raise ValueError(f"padding (={value!r}) must be {PADDING_FORMS}")
    return value.upper()
  lowest = None if allow_negative else 0
  if is_int(value):
    if lowest is not None and value < lowest:
      raise ValueError(f"padding (={value!r}) must be >= 0")
    return ((int(value),) * 2, (int(value),) * 2)
  try:
    pads = tuple(tuple(lo_hi) for lo_hi in value)
  except TypeError:
    pads = ()
  if (len(pads) != 2 or any(len(p) != 2 or not all(is_int(v) for v in p) for p in pads)
      or (lowest is not None and any(min(p) < lowest for p in pads))):
    raise ValueError(f"padding (={value!r}) must be {PADDING_FORMS}"
                     + ("" if allow_negative else " with pads >= 0"))
  return tuple((int(lo), int(hi)) for lo, hi in pads)


def usable_dir(path, name: str):
  """``path`` as a ``Path`` if it is, or can become, a writable directory (nothing is created).

  Raises ValueError naming ``name`` when it is a file, or when it or the nearest folder
  that exists above it cannot be written.
  """
  path = Path(path)
  if path.exists() and not path.is_dir():
    raise ValueError(f"{name} (={str(path)!r}) is a file; it must be a directory")
  existing = path
  while not existing.exists():
    existing = existing.parent
  if not existing.is_dir():
    raise ValueError(f"{name} (={str(path)!r}) lies under a file ({existing}), not a directory")
  if not os.access(existing, os.W_OK | os.X_OK):
    raise ValueError(f"{name} (={str(path)!r}) cannot be written ({existing} is not writable)")
  return path
