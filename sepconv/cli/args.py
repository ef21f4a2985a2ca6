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
