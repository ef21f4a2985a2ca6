"""Command-line flags generated from a configuration dataclass's fields, so help cannot drift.

``add_field_flags(parser, cls)`` adds one flag per field of ``cls``: ``--width-multiplier``
for ``width_multiplier``, typed from the field's annotation (``int``, ``float``, ``str``,
``X | None``, ``tuple[float, ...]`` as a comma list, ``bool`` as ``--x/--no-x``), its help
and ``choices`` and further names (``aliases``) from the field's metadata, and its default
stated in the help as ``default_text`` writes it. A flag left out of the command line is
left out of the namespace (``argparse.SUPPRESS``): ``given(args, cls)`` are the fields the
user set, to apply on top of whatever supplies the defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable


def flag(field: dataclasses.Field) -> str:
  """The field's flag: ``--`` and its name with dashes."""
  return "--" + field.name.replace("_", "-")


def choices(field: dataclasses.Field) -> tuple | None:
  """The field's ``choices`` metadata (a function of none is called), or None."""
  found = field.metadata.get("choices")
  return tuple(found()) if callable(found) else found


def show(value) -> str:
  """A default as the command line writes it."""
  if value is None:
    return "none"
  if isinstance(value, tuple):
    return ",".join(map(show, value))
  return str(value)


def _comma_list(kind: type) -> Callable[[str], tuple]:
  def parse(text: str) -> tuple:
    try:
      return tuple(kind(t.strip()) for t in text.split(","))
    except ValueError:
      raise argparse.ArgumentTypeError(
          f"{text!r} must be a comma list of {kind.__name__} values") from None
  parse.__name__ = f"comma list of {kind.__name__}"
  return parse


def _kind(annotation) -> tuple[str, type]:
  """('bool' | 'list' | 'scalar', element type) of a field annotation."""
  if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
    (annotation,) = [a for a in typing.get_args(annotation) if a is not type(None)]
  if annotation is bool:
    return "bool", bool
  if typing.get_origin(annotation) is tuple:
    return "list", typing.get_args(annotation)[0]
  if annotation in (int, float, str):
    return "scalar", annotation
  raise TypeError(f"annotation (={annotation!r}) must be bool, int, float, str, X | None or "
                  "tuple[X, ...] to become a flag")


def add_field_flags(parser, cls, *, default_text: Callable[[dataclasses.Field], str] | None = None
                    ) -> None:
  """Adds a flag for every field of the dataclass ``cls`` (see the module docstring).

  ``default_text(field)`` says what the default is (default: the field's own).
  """
  hints = typing.get_type_hints(cls)
  for field in dataclasses.fields(cls):
    kind, element = _kind(hints[field.name])
    text = default_text(field) if default_text else show(field.default)
    help = f"{field.metadata['help']} (default {text})".replace("%", "%%")
    options = dict(dest=field.name, default=argparse.SUPPRESS, help=help)
    if choices(field) is not None:
      options.update(choices=choices(field))
    if kind == "bool":
      options.update(action=argparse.BooleanOptionalAction)
    elif kind == "list":
      options.update(type=_comma_list(element), metavar=field.name.upper())
    else:
      options.update(type=element)
    parser.add_argument(flag(field), *field.metadata.get("aliases", ()), **options)


def given(args: argparse.Namespace, cls) -> dict:
  """The fields of ``cls`` set on the command line (``add_field_flags`` leaves out the rest)."""
  return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}


__all__ = ["add_field_flags", "choices", "flag", "given", "show"]
