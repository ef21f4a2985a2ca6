"""Result reports: tables and plots re-rendered from raw JSON-lines records alone.

``sepconv report [NAME] [--results-dir results]`` (or ``render_experiment`` /
``render_all``) reads ``results/<NAME>/records.jsonl`` and writes, inside that
folder:

* ``tables/<slug>.md`` (GitHub Markdown), ``.tex`` (booktabs tabular) and
  ``.csv`` (full precision, ``<col>_mean``/``<col>_std`` columns, ``<col>_ci95``
  where a mean is over seeds), for slugs ``train``, ``effective_rank``,
  ``bench``, ``decomposition`` (pivoted: one block per layer, group size down,
  depth multiplier across), ``pairs`` (every pair of variants) and
  ``cka_<label>``; the Markdown and LaTeX files start with a provenance block
  (comment). Means over runs carry their 95% t-interval (``stats``); the training
  table gives each variant's paired difference from the standard anchor (``anchor``:
  corrected resampled t-test for k-fold runs, paired t over seeds on a fixed split)
  with its raw and Holm-adjusted p-value, whether it is resolved, and the smallest
  difference resolvable at 80% power; its caption (a LaTeX ``table`` float) names
  n, the test and the adjustment;
* ``tables/summary.md``: the generated reading of the training results against
  the anchor (``anchor.reading``), also at the head of the README;
* ``plots/*.png`` and ``*.pdf`` at one paper column's width, one colour per
  family everywhere, the anchor on each plot it belongs to, 95% CI error bars:
  accuracy vs mult-adds, throughput vs group size per implementation, measured
  time vs counted mult-adds, projection error vs group size, CKA heatmaps
  (shared 0-1 colour scale);
* ``README.md``: the reading, provenance (record counts, versions, device kinds,
  CPU, git revisions, time span, all taken from the records) and every table and plot.

``sepconv report --compare REFERENCE_DIR RUN_DIR`` (``compare.compare_dirs``)
prints whether a run reproduced a reference, per variant, with the provenance
differences, as Markdown or LaTeX.

``tables/`` and ``plots/`` belong to the renderer: earlier ``.md .tex .csv .png
.pdf`` files there are deleted first, so nothing stale survives. Rendering the
same records twice gives byte-identical files (tables, PNG and PDF). Nothing is
typed in: every number is computed from the records.

Record format
-------------
The schema is code: ``sepconv.records.schema`` defines each record kind ("train",
"bench", "decomposition", "cka", "paper_cost", and the layer-benchmark kinds) and its
fields, and ``sepconv.records.metrics`` registers every metric the tables, comparison
and plots show (name, header, format, unit, direction); records are read and written
with ``sepconv.records.read_records`` / ``append_record``, which check them and name
the file, line and field that is wrong. In short, a "train" record reads::

  {"schema_version": 1, "experiment": "granularity", "kind": "train",
   "run_id": "granularity/digits/dws:g=4/seed=0", "seed": 0,
   "config": {"model": "mobilenet_v1", "dataset": "digits", "conv": "dws:g=4", "label": ..., ...},
   "metrics": {<registered metric>: value, ..., "effective_rank": {"<layer>": value}},
   "cost": {"params": int, "mult_adds": int, "params_with_bn": int},
   "provenance": {...}}                                  # sepconv.provenance.provenance()

Rules the renderer follows:

* Records are grouped by ``config`` minus any ``seed`` key: one row per
  configuration, mean ± sample std (ddof=1) over its records; the std is shown
  only with two or more (the training and effective-rank tables show the 95%
  t-interval half-width instead). Rows are labelled by ``config.label``, else
  ``config.conv``, else ``run_id`` without its ``/seed=..``; rows with the same
  label but different configs get the differing fields appended.
* ``train`` rows: the registered metrics of the training layout (fractions shown
  as %); any other numeric metric (e.g. ``test_loss``) appears in the CSV only.
  Ordered by dataset, model, mult-adds.
* ``bench``: one row per (configuration, implementation). A throughput recorded
  in the timing (a registered throughput's ``recorded_as``) is used as is;
  otherwise it is batch / time per record (its ``derived_from`` timings), the
  batch being the first of config ``bench_batch``, ``batch``, ``batch_size``. The throughput
  plot needs ``config.group_size``.
* ``decomposition``: ``depth_multiplier`` is null for plain grouped convs
  (``pointwise`` false); ``config`` describes the decomposed standard model.
  Rows average over records with the same (config, layer, point).
* ``cka``: the matrix axes index the (label, layer) pairs, label-major: one
  label and many layers is layer-by-layer, many labels and one layer is
  variant-by-variant. Matrices of records with the same config and axes are
  averaged elementwise; without ``config.label`` such a group is called
  "variants at <layer>" or "<label> layers". ``sepconv.analysis.cka_record``
  builds this field.
* Fields absent for a kind are simply missing; unknown fields are ignored;
  records of unknown kind are skipped and counted in the provenance block; a
  CKA matrix that does not fit its axes skips that record. A field of the wrong type
  is an error when the records are read.
"""

from sepconv.report.render import render_all, render_experiment

__all__ = ["render_all", "render_experiment"]
