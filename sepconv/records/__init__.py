"""Result records: the schema (kinds, fields, version), the metric registry, and the file.

* ``schema``: each record kind and its fields; ``validate_record``; ``SCHEMA_VERSION``;
  ``RECORDS_FILE``, the one name of an experiment's records file.
* ``metrics``: the registry of recorded metrics that reports aggregate, compare and plot.
* ``jsonl``: ``append_record`` (one flushed line, checked) and ``read_records`` (checked,
  naming ``file:line`` and the field that is wrong).
"""

from sepconv.records.jsonl import append_record, read_records
from sepconv.records.metrics import METRICS, Metric, metric
from sepconv.records.schema import (KINDS, RECORDS_FILE, SCHEMA_VERSION, Field, Kind,
                                    record_error, validate_record)

__all__ = ["KINDS", "METRICS", "RECORDS_FILE", "SCHEMA_VERSION", "Field", "Kind", "Metric",
           "append_record", "metric", "read_records", "record_error", "validate_record"]
