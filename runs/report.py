"""What the engine returns: plain dataclasses, no Django (the engine's output shape).

`runs/engine.py` fills a `RunReport`; `runs/services.py` stores it as run records. Step
latencies are fixed log buckets (`runs/histogram.py`) so percentiles merge across runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

RunStatus = Literal["queued", "running", "succeeded", "partial", "failed", "canceled"]
ErrorKind = Literal["http", "script", "mapping", "timeout", "connection"]


@dataclass
class RunErrorReport:
    step: str  # the step's lineage id
    record_index: int  # index of the record in the run's input (-1: the whole page/batch)
    kind: ErrorKind
    message: str
    http_status: int | None = None
    record: Any = None  # the failing record (masked by the Django side before storing)
    response_excerpt: str = ""
    script_line: int | None = None
    # the record as it entered the failing step: what a retry from that step sends on
    # (None when not known: a whole page or batch, or a hook that changed the count)
    retry_record: Any = None


@dataclass
class StepReport:
    lineage_id: str
    name: str
    kind: str
    records_in: int = 0
    records_out: int = 0
    errors: int = 0
    duration_ms: float = 0.0
    http_calls: int = 0
    http_retries: int = 0
    # counts per bucket of runs.histogram.BUCKETS_MS (response time of each HTTP call)
    histogram: list[int] = field(default_factory=list)
    # time spent, for the benchmark's split: http, hooks, mapping (ms)
    split_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class RunReport:
    status: RunStatus = "succeeded"
    records_in: int = 0
    records_out: int = 0
    retries: int = 0
    pages: int = 0
    steps: list[StepReport] = field(default_factory=list)
    errors: list[RunErrorReport] = field(default_factory=list)
    error_count: int = 0  # all errors, also those beyond the kept first N
    # test mode: what each import step would have sent [{"step": lineage, "records": [...]}]
    output: list[dict[str, Any]] = field(default_factory=list)
    # test mode: {step lineage: [input index of each output record]} (-1: a hook changed
    # the number of records, so which input it came from is unknown)
    output_indexes: dict[str, list[int]] = field(default_factory=dict)
    # the first N input records of the run (export output, or the given records)
    samples: list[Any] = field(default_factory=list)
    message: str = ""  # why a run failed as a whole (no steps, flow disabled, canceled ...)
