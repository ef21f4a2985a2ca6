"""Argument types shared by the sub-commands: each rejects bad text with one line."""

from __future__ import annotations

import argparse


def positive_float(text: str) -> float:
  """A number > 0."""
  try:
    value = float(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
  if not value > 0:
    raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
  return value


def _int_at_least(minimum: int, what: str):
  def parse(text: str) -> int:
    try:
      value = int(text)
    except ValueError:
      raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < minimum:
      raise argparse.ArgumentTypeError(f"{text!r} must be a {what} integer")
    return value
  return parse


positive_int = _int_at_least(1, "positive")
nonnegative_int = _int_at_least(0, "non-negative")


def padding(text: str, flag: str = "--padding") -> str | int:
  """SAME, VALID (any case) or an int >= 0; ``ValueError`` naming ``flag`` otherwise."""
  if text.upper() in ("SAME", "VALID"):
    return text.upper()
  try:
    value = int(text)
  except ValueError:
    value = -1
  if value < 0:
    raise ValueError(f"{flag} (={text!r}) must be SAME, VALID or an int >= 0")
  return value
