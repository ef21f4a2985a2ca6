"""Where rendered numbers came from: the one summary of the records' provenance fields.

Every report states provenance from the records alone (``sepconv.provenance.provenance``
wrote the field into each): the values each field takes across the records, sorted and
distinct, and the span of their times. The three layouts that read it are here side by
side: an experiment's header (``header_lines``), a benchmark section's
(``section_lines``), and a reproduction's differences (``differences``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

# Provenance fields and how reports title them, in the order reports list them.
FIELDS = (("sepconv", "sepconv"), ("jax", "jax"), ("jaxlib", "jaxlib"), ("flax", "flax"),
          ("optax", "optax"), ("numpy", "numpy"), ("python", "python"),
          ("platform", "platform"), ("device_kind", "device kind"),
          ("device_count", "device count"), ("cpu", "CPU"), ("machine", "machine"),
          ("git_revision", "git revision"))
# The fields an experiment's header lists (the rest are in every record).
HEADER_FIELDS = ("sepconv", "jax", "jaxlib", "flax", "platform", "device_kind", "device_count",
                 "cpu", "git_revision")
MAX_LISTED = 6

# The streaming rates a roofline record keeps beside its peak (sepconv.bench.roofline).
_STREAMS = (("numpy copy into an existing buffer", "measured_copy_existing_Bps"),
            ("numpy copy into a fresh buffer", "measured_copy_fresh_Bps"),
            ("jitted x * a + b into a fresh output", "measured_jax_fresh_Bps"),
            ("jitted donated x + 1 in place", "measured_jax_donated_Bps"))


def of(records: Iterable[dict]) -> list[dict]:
  """The provenance fields of the records that have one."""
  return [r["provenance"] for r in records if isinstance(r.get("provenance"), dict)]


def distinct(values: Iterable, missing: str = "unknown", limit: int | None = None) -> str:
  """The distinct values (None and '' left out), sorted as text and joined by commas.

  ``missing`` stands for no value at all; past ``limit`` values, the first ``limit`` and
  the count.
  """
  vals = sorted({str(v) for v in values if v is not None and v != ""})
  if not vals:
    return missing
  if limit is not None and len(vals) > limit:
    return ", ".join(vals[:limit]) + f", ... ({len(vals)} distinct)"
  return ", ".join(vals)


def field(records: Iterable[dict], key: str, missing: str = "unknown",
          limit: int | None = None) -> str:
  """``distinct`` of one provenance field over ``records``."""
  return distinct((p.get(key) for p in of(records)), missing, limit)


def time_span(records: Iterable[dict]) -> tuple[str, str] | None:
  """The first and last recorded time (None without one)."""
  times = sorted(str(p["time"]) for p in of(records) if p.get("time"))
  return (times[0], times[-1]) if times else None


def header_lines(records: Sequence[dict]) -> list[str]:
  """An experiment's provenance: one line per ``HEADER_FIELDS`` field, then the time span."""
  titles = dict(FIELDS)
  lines = [f"{titles[key]}: {field(records, key, limit=MAX_LISTED)}" for key in HEADER_FIELDS]
  span = time_span(records)
  lines.append("recorded: " + (f"{span[0]} to {span[1]}" if span else "unknown"))
  return lines


def section_lines(records: Sequence[dict], sig) -> list[str]:
  """A benchmark section's provenance: device, versions, git revisions, time span, roofline.

  ``sig`` formats a roofline number (GB/s, GFLOP/s) as the section's tables do.
  """
  def distinct_na(values) -> str:
    return distinct(values, "n/a")
  span = time_span(records)
  lines = [
      f"device: {field(records, 'device_kind', 'n/a')} ({field(records, 'platform', 'n/a')})",
      f"jax {field(records, 'jax', 'n/a')}, jaxlib {field(records, 'jaxlib', 'n/a')}"
      + (f", torch {distinct_na(r.get('torch_version') for r in records)}"
         if any(r.get("torch_version") for r in records) else ""),
      f"git revision: {field(records, 'git_revision', 'n/a')}",
      f"measured: {span[0]} to {span[1]}, {len({r['run_id'] for r in records})} run(s)",
  ]
  kept = [r["keep_freed_host_memory"] for r in records if "keep_freed_host_memory" in r]
  if kept:  # ``sepconv.hostmem``: whether XLA:CPU's buffers page-faulted on every call
    lines.append("freed host memory kept: " + distinct_na("yes" if k else "no" for k in kept))
  roofs = [r["roofline"] for r in records if "roofline" in r]
  if roofs:
    lines.append(
        f"roofline: bandwidth {distinct_na(sig(r['peak_bandwidth_Bps'] / 1e9) for r in roofs)} GB/s, "
        f"compute {distinct_na(sig(r['peak_flops_per_s'] / 1e9) for r in roofs)} GFLOP/s "
        f"({distinct_na(r['peak_source'] for r in roofs)})")
    streams = [(label, key) for label, key in _STREAMS if any(r.get(key) for r in roofs)]
    if streams:
      lines.append("streaming, GB/s read + written: " + "; ".join(
          f"{label} {distinct_na(sig(r[key] / 1e9) for r in roofs if r.get(key))}"
          for label, key in streams))
  return lines


def differences(reference: Sequence[dict], run: Sequence[dict]) -> dict[str, tuple[str, str]]:
  """The fields whose values differ between two record sets: title -> (reference, run)."""
  out = {}
  for key, title in FIELDS:
    a, b = field(reference, key), field(run, key)
    if a != b:
      out[title] = (a, b)
  return out
