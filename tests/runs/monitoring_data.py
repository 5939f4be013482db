"""Raw runs for the monitoring tests, written as `runs.services` stores them: a Run with
its steps (latency histograms, the connection called) and its kept error records."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from runs import rollups
from runs.models import Run, RunError, RunStep


def make_run(
    integration,
    flow_lineage_id: uuid.UUID,
    *,
    created_at: datetime,
    status: str = "succeeded",
    mode: str = "live",
    flow_name: str = "Orders",
    records_in: int = 0,
    records_out: int = 0,
    retries: int = 0,
    steps: Sequence[tuple[uuid.UUID | None, list[int]]] = (),
    errors: Sequence[tuple[str, int | None, str]] = (),
    extra_errors: int = 0,
    error_step: uuid.UUID | None = None,
    rollup: bool = True,
) -> Run:
    """One ended run; `errors` are (kind, http_status, message) kept records and
    `extra_errors` those beyond the kept ones. Rolled up as a run ending does."""
    run = Run.objects.create(
        integration=integration,
        flow_lineage_id=flow_lineage_id,
        flow_name=flow_name,
        mode=mode,
        status=status,
        records_in=records_in,
        records_out=records_out,
        errors=len(errors) + extra_errors,
        retries=retries,
        ended_at=created_at,
        started_at=created_at,
    )
    Run.objects.filter(pk=run.pk).update(created_at=created_at)
    run.created_at = created_at
    step_lineage = error_step or uuid.uuid4()
    RunStep.objects.bulk_create(
        RunStep(
            run=run,
            lineage_id=uuid.uuid4(),
            position=i + 1,
            name=f"Step {i + 1}",
            kind="import",
            histogram=list(hist),
            http_calls=sum(hist),
            connection_lineage_id=connection,
        )
        for i, (connection, hist) in enumerate(steps)
    )
    made: list[Any] = RunError.objects.bulk_create(
        RunError(
            run=run,
            step_lineage_id=step_lineage,
            step_name="Send",
            kind=kind,
            http_status=http_status,
            message=message,
            record={"id": i},
        )
        for i, (kind, http_status, message) in enumerate(errors)
    )
    if made:
        RunError.objects.filter(run=run).update(created_at=created_at)
    if rollup:
        rollups.rollup_run(run)
    return run
