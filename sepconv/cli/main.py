"""`sepconv` command line: one sub-command module per job, each a thin shell.

Every sub-command module exposes ``register(subparsers)``, which adds its parser and
sets ``func`` to a callable taking the parsed namespace and returning an exit code.
Errors from bad input (``ValueError``, ``FileNotFoundError``) end the program with
one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from sepconv import hostmem

COMMANDS = ("cost", "bench", "train", "ablate", "report", "env")


class _Parser(argparse.ArgumentParser):
  """ArgumentParser whose errors are one line, not usage plus message."""

  def error(self, message):
    self.exit(2, f"sepconv: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
  parser = _Parser(prog="sepconv", description=__doc__.splitlines()[0])
  subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
  for name in COMMANDS:
    importlib.import_module(f"sepconv.cli.{name}").register(subparsers)
  return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> str:
  return f"sepconv: warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
  warnings.formatwarning = _one_line_warning  # a warning is one line, as errors are
  parser = build_parser()
  args = parser.parse_args(argv)
  if getattr(args, "keep_freed_host_memory", True):
    hostmem.keep_if_wanted()  # before any sub-command starts JAX
  try:
    code = args.func(args)
  except (ValueError, FileNotFoundError, NotADirectoryError) as e:
    print(f"sepconv {args.command}: error: {e}", file=sys.stderr)
    return 2
  except (OSError, FloatingPointError) as e:  # a full disk; a run that diverged
    print(f"sepconv {args.command}: error: {e}", file=sys.stderr)
    return 1
  except KeyboardInterrupt as e:  # SIGINT, or SIGTERM once training handles it: 128 + signal
    print(f"sepconv {args.command}: interrupted" + (f" ({e})" if str(e) else ""), file=sys.stderr)
    return getattr(e, "exit_status", 130)
  return int(code or 0)


if __name__ == "__main__":
  sys.exit(main())
