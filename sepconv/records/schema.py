"""The record schema: each record kind and its fields, checked on every write and read.

A record is one JSON object. Every kind shares ``COMMON`` fields; each kind adds its
own. A field absent from a record is simply missing (only ``required`` fields must be
there); a field that is present must have its type. Records of a kind not listed here
pass with their common fields checked, so a newer writer's records still read.

``schema_version`` is written into every new record (``SCHEMA_VERSION``); records
without it are version 0, the format before the field existed, which reads the same.

The layer-benchmark kinds (``conv_layer`` from ``sepconv bench``, ``flax_block`` from
``sepconv bench blocks``, ``train_step`` from ``sepconv bench train-step``) are one
record shape, ``LAYER_BENCH``: what was timed, in which mode, its status and the timing
statistics of ``sepconv.timing.Timing.summary``; each kind adds what names its subject.
"""

from __future__ import annotations

import dataclasses

from sepconv.records import metrics as _metrics

SCHEMA_VERSION = 1
RECORDS_FILE = "records.jsonl"  # One experiment's records, in its results folder.
FAILED = "failed"  # ``status`` of a job that raised (``sepconv.ablation.jobs.Status``).
DIVERGED = "diverged"  # ``status`` of a job whose training diverged (likewise).

_TYPES = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
    "object": (dict,), "array": (list,),
}


@dataclasses.dataclass(frozen=True)
class Field:
  """A record field: its name, JSON type ('any' for any), whether it may be null or absent."""

  name: str
  type: str
  required: bool = False
  nullable: bool = False
  doc: str = ""

  def __post_init__(self):
    if self.type != "any" and self.type not in _TYPES:
      raise ValueError(f"type (={self.type!r}) of field {self.name!r} must be 'any' or one of "
                       f"{tuple(_TYPES)}")

  def error(self, value) -> str | None:
    """Why ``value`` does not fit this field (None where it does)."""
    if value is None:
      return None if self.nullable or self.type == "any" else "must not be null"
    if self.type == "any":
      return None
    fits = isinstance(value, _TYPES[self.type]) and not (
        isinstance(value, bool) and self.type in ("integer", "number"))
    return None if fits else f"(={_short(value)}) must be {'an' if self.type[0] in 'aeiou' else 'a'} {self.type}"


@dataclasses.dataclass(frozen=True)
class Kind:
  """A record kind: its fields, and those required once its ``status`` is 'ok'."""

  name: str
  doc: str
  fields: tuple[Field, ...] = ()
  required_when_ok: tuple[str, ...] = ()


def _short(value) -> str:
  text = repr(value)
  return text if len(text) <= 40 else text[:37] + "..."


COMMON = (
    Field("schema_version", "integer", doc="SCHEMA_VERSION when written; absent: 0"),
    Field("kind", "string", required=True),
    Field("experiment", "string"),
    Field("run_id", "string", doc="unique and stable, e.g. 'granularity/digits/dws:g=4/seed=0'"),
    Field("status", "string", doc="'ok', 'unsupported', 'skipped', or FAILED"),
    Field("reason", "string", nullable=True, doc="why a case is not 'ok'"),
    Field("error", "string", nullable=True),
    Field("traceback", "string", nullable=True),
    Field("seed", "integer", nullable=True),
    Field("seconds", "number"),
    Field("config", "object", doc="what was run; records group by it, minus 'seed'"),
    Field("provenance", "object", doc="sepconv.provenance.provenance()"),
)

_TIMING = (Field("median_ms", "number"), Field("p25_ms", "number"), Field("p75_ms", "number"),
           Field("iqr_ms", "number"), Field("min_ms", "number"), Field("max_ms", "number"),
           Field("repeats", "integer"), Field("times_ms", "array"),
           Field("compile_ms", "number", nullable=True), Field("warmup_kept", "boolean"))
LAYER_BENCH = (Field("run_id", "string", required=True), Field("mode", "string", required=True),
               Field("status", "string", required=True), Field("config", "object", required=True),
               Field("provenance", "object", required=True), *_TIMING)
_LAYER_BENCH_OK = ("median_ms", "p25_ms", "p75_ms", "repeats")

KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("train", "one training run of one configuration and seed", (
        Field("metrics", "object", doc="registered metrics (sepconv.records.metrics), "
              "'effective_rank': {layer: value}, any other numbers"),
        Field("cost", "object", doc="params, params_with_bn, mult_adds"),
        Field("timings", "object", doc="{impl: {timing metric: value}}"),
        Field("plans", "object"))),
    Kind("bench", "one configuration's measured speed per implementation", (
        Field("timings", "object", doc="{impl: {fwd_ms | infer_ms | fwdbwd_ms | train_step_ms "
              "| *_images_per_s: value}}"),
        Field("cost", "object"))),
    Kind("decomposition", "projection errors of a standard conv onto spectrum points", (
        Field("decomposition", "object", doc="{'layer', 'errors': [{group_size, "
              "depth_multiplier, pointwise, rel_error}]}"),)),
    Kind("cka", "a linear-CKA matrix over (label, layer) pairs", (
        Field("cka", "object", doc="{'labels', 'layers', 'matrix'}: sepconv.analysis.cka_record"),)),
    Kind("paper_cost", "one printed figure of a paper's table beside ours", (
        *(Field(n, "string", required=True) for n in ("table", "title", "source", "row",
                                                        "quantity", "paper_printed", "rounding")),
        Field("ours", "number", required=True), Field("ours_exact", "any", required=True),
        Field("difference", "number", required=True),
        Field("relative_difference", "number", required=True),
        Field("matches", "boolean", required=True), Field("note", "string", nullable=True),
        Field("cited_top1_percent", "number", nullable=True),
        Field("provenance", "object", required=True))),
    Kind("conv_layer", "one conv layer (or spatial + pointwise block), one impl and mode",
         (*LAYER_BENCH, Field("impl", "string", required=True),
          Field("max_rel_err_vs_xla", "number", nullable=True),
          Field("auto_plan", "object", nullable=True), Field("roofline", "object")),
         _LAYER_BENCH_OK),
    Kind("flax_block", "one Flax block, one variant (flax, flax + sepconv, torch) and mode",
         (*LAYER_BENCH, Field("block", "string", required=True),
          Field("variant", "string", required=True), Field("description", "string"),
          Field("max_rel_diff_vs_flax", "number", nullable=True)), _LAYER_BENCH_OK),
    Kind("train_step", "one model's training step, one conv impl",
         (*LAYER_BENCH, Field("impl", "string", required=True),
          Field("images_per_s", "number")), _LAYER_BENCH_OK),
    Kind("epoch", "one epoch of a training run (its metrics.jsonl)"),
    Kind("train_result", "a training run's final result (its metrics.jsonl)"),
)}


def _check_numbers(where: str, values: dict, names) -> str | None:
  for name in names:
    value = values.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
      return f"field '{where}.{name}' (={_short(value)}) must be a number"
  return None


def _check_contents(record: dict) -> str | None:
  """Registered metrics must be numbers wherever a record keeps them."""
  m = record.get("metrics")
  if isinstance(m, dict):
    error = _check_numbers("metrics", m, _metrics.names("metrics"))
    if error:
      return error
    if "effective_rank" in m and not isinstance(m["effective_rank"], dict):
      return f"field 'metrics.effective_rank' (={_short(m['effective_rank'])}) must be an object"
  c = record.get("cost")
  if isinstance(c, dict):
    error = _check_numbers("cost", c, _metrics.names("cost"))
    if error:
      return error
  t = record.get("timings")
  if isinstance(t, dict):
    timing_names = (*_metrics.names("timing"),
                    *(n for m in _metrics.METRICS for n in m.recorded_as))
    for impl, timing in t.items():
      if not isinstance(timing, dict):
        return f"field 'timings.{impl}' (={_short(timing)}) must be an object"
      error = _check_numbers(f"timings.{impl}", timing, timing_names)
      if error:
        return error
  return None


def record_error(record) -> str | None:
  """Why ``record`` does not fit the schema, naming the field (None where it fits)."""
  if not isinstance(record, dict):
    return f"a record (={_short(record)}) must be a JSON object"
  kind = KINDS.get(record.get("kind")) if isinstance(record.get("kind"), str) else None
  fields = {f.name: f for f in COMMON}
  if kind is not None:
    fields.update({f.name: f for f in kind.fields})
  for name, field in fields.items():
    if name not in record:
      if field.required:
        return f"field '{name}' is missing (required in {record.get('kind')!r} records)"
      continue
    error = field.error(record[name])
    if error:
      return f"field '{name}' {error}"
  version = record.get("schema_version", 0)
  if version > SCHEMA_VERSION:
    return (f"field 'schema_version' (={version}) is newer than this sepconv reads "
            f"(={SCHEMA_VERSION})")
  if kind is not None and record.get("status") == "ok":
    for name in kind.required_when_ok:
      if name not in record:
        return f"field '{name}' is missing (required in {kind.name!r} records with status 'ok')"
  return _check_contents(record)


def validate_record(record) -> dict:
  """``record`` itself, after checking it; ValueError naming the field that is wrong."""
  error = record_error(record)
  if error:
    raise ValueError(error)
  return record



LAYER_BENCH_KINDS = ("conv_layer", "flax_block", "train_step")


def layer_bench_record(kind: str, *, run_id: str, mode: str, status: str, config: dict,
                       provenance: dict, timing: dict | None = None, **fields) -> dict:
  """A layer-benchmark record (``LAYER_BENCH``), checked against its kind.

  Args:
    kind: one of ``LAYER_BENCH_KINDS``.
    run_id: shared by the records of one invocation.
    mode: what was timed ('fwd', 'fwdbwd', 'forward', 'train_step').
    status: 'ok', or why not ('unsupported', 'skipped'; say why in ``reason``).
    config: the timed case (shape, dtype, ...).
    provenance: ``sepconv.provenance.provenance()``.
    timing: ``sepconv.timing.Timing.summary()`` of a timed case.
    **fields: the kind's own fields (impl, block, variant, errors, rates, ...).
  """
  if kind not in LAYER_BENCH_KINDS:
    raise ValueError(f"kind (={kind!r}) must be one of {LAYER_BENCH_KINDS}")
  record = {"kind": kind, "run_id": run_id, "mode": mode, "status": status, "config": config,
            **fields, "provenance": provenance, **(timing or {})}
  return validate_record(record)
