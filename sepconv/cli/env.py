"""`sepconv env`: what a bug report needs, in one command."""

from __future__ import annotations

import json
import platform


def environment() -> dict:
  """Versions, backend and devices, and the autotune cache of this machine."""
  from sepconv import provenance
  from sepconv.conv import policy
  return {"versions": provenance.versions(), "python": platform.python_version(),
          **provenance.device_info(), "autotune_cache": policy.cache_summary()}


def run(args) -> int:
  env = environment()
  if args.json:
    print(json.dumps(env, indent=2, sort_keys=True))
    return 0
  lines = [f"{name} {version or 'not installed'}" for name, version in env["versions"].items()]
  lines.append(f"python {env['python']}")
  lines.append(f"backend {env['platform']}, device kind {env['device_kind']}, "
               f"{env['device_count']} device(s), {env['process_count']} process(es)")
  cache = env["autotune_cache"]
  lines.append(f"autotune cache {cache['path']}: {cache['entries_for_this_device']} choices for "
               f"this device ({cache['device_key']}), {cache['entries']} in all"
               + ("" if cache["exists"] else " (no file yet)")
               + ("" if cache["measuring"] else "; measuring off (SEPCONV_AUTOTUNE=0)"))
  print("\n".join(lines))
  return 0


def register(subparsers) -> None:
  parser = subparsers.add_parser("env", help="versions, devices and the autotune cache, for bug reports")
  parser.add_argument("--json", action="store_true", help="one JSON object")
  parser.set_defaults(func=run)
