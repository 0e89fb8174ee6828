"""The course's benchmarks: measured numbers with their provenance, ``python -m attn_course.bench``.

Imports point one way, from the command down to the record format:

* ``__main__``: the command line, ``python -m attn_course.bench flash|linear|sparse ...``;
* the suites, one module each, saying *what* to run (implementations, inputs, float64
  reference, FLOPs credited): :mod:`~attn_course.bench.flash` (notebook 04: the course's
  FlashAttention kernel, naive attention, PyTorch SDPA), :mod:`~attn_course.bench.linear`
  (05: causal linear attention) and :mod:`~attn_course.bench.sparse` (06: sliding window);
* :mod:`~attn_course.bench.gpucheck`: the one short visit to a GPU machine
  (``python -m attn_course.bench.gpucheck``), built on the flash suite;
* :mod:`~attn_course.bench.harness`: *how* every suite measures (one measuring loop:
  median time, peak memory, error against float64; the FLOP count and TFLOP/s; the
  Triton interpreter rule; the record's provenance), so all records mean the same;
* :mod:`~attn_course.bench.plots`: figures of records; the only module importing plotly;
* :mod:`~attn_course.bench.records`: what a record and a result are (schema, statuses,
  :class:`~attn_course.bench.records.BenchResult`), writing, loading and reading records.

The names re-exported here are the ones notebooks use without caring which module holds
them. The FLOP and TFLOP/s formulas the suites credit are lesson arithmetic and live in
:mod:`attn_course.cost`. Importing this package does not import the suites, the kernels or
plotly.
"""

from attn_course.bench.harness import BenchConfig, configs_from
from attn_course.bench.records import (
    SCHEMA,
    load_records,
    ratios,
    record_label,
    results_table,
    scaling_exponent,
    write_record,
)

__all__ = [
    "SCHEMA",
    "BenchConfig",
    "configs_from",
    "load_records",
    "ratios",
    "record_label",
    "results_table",
    "scaling_exponent",
    "write_record",
]
