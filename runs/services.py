"""Writes of the runtime: start, execute, cancel, schedule and prune flow runs.

A run is a row before it is a task (`run_start` creates it and enqueues `run_flow` on
commit); `run_execute` is what the task calls. It loads the inputs the pure engine
(`runs.engine.execute`) takes: the integration's canonical document, the connections'
credentials (decrypted only here), the lookup caches' entries and the scripts, and
stores the report: counts, one row per step with its latency histogram, the first
errors with the failing record masked, the samples of a successful live run.

Never twice: `run_execute` moves the run from queued to running in one transaction with
the row locked; a delivery that finds the run final does nothing, and one that finds it
running (a worker died mid-run, the broker delivered again) marks it failed as
interrupted instead of sending the records again.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import httpx
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from audit.chain import append
from audit.models import Action as AuditAction
from integrations.models import Connection, Flow, LookupCacheEntry, User
from integrations.schedules import normalize_cron
from revisions.document import document_of

from . import engine, rollups
from .alerts import enqueue_after_run
from .auditing import audit_event
from .models import (
    FINAL_STATUSES,
    OPEN_STATUSES,
    FlowSample,
    Run,
    RunError,
    RunMode,
    RunStatus,
    RunStep,
    RunTrigger,
)
from .report import RunReport

log = logging.getLogger(__name__)

MASK = "••••••"
MAX_GIVEN_RECORDS = 10_000
# How far back a tick looks for a schedule's latest fire time: a tick runs every minute,
# so this tolerates one late or missed tick without running a schedule set long after
# its fire time.
SCHEDULE_GRACE = timedelta(seconds=150)
INTERRUPTED = (
    "Interrupted: the worker running this flow stopped mid-run (records of the pages "
    "before it may have been sent). It is not run again, so nothing is sent twice; "
    "start a new run when ready."
)


class RunRefused(Exception):
    """A run that cannot be started or canceled; `status_code` is the HTTP answer."""

    def __init__(self, message: str, status_code: int = 400, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.http_status = status_code  # read by the API's exception handler
        self.field = field  # the input at fault (400), for `{"errors": {field: [...]}}`


# Audit ---------------------------------------------------------------------------------


def _audit(run: Run, action: str, user: User | None, **detail: Any) -> None:
    """One audit event about a run, written in the caller's transaction."""
    append(
        [
            audit_event(
                run.integration,
                user,
                action,
                resource_type="run",
                resource_id=run.pk,
                resource_name=f"Run {run.pk} of {run.flow_name}",
                changes=[{"field": k, "old": None, "new": v} for k, v in detail.items()],
            )
        ]
    )


# Start ---------------------------------------------------------------------------------


def _clean_records(records: Any) -> list[dict[str, Any]]:
    if not isinstance(records, list):
        raise RunRefused("records must be a JSON array of objects.", 400, field="records")
    if not records:
        raise RunRefused("records is empty: give at least one record.", 400, field="records")
    if len(records) > MAX_GIVEN_RECORDS:
        raise RunRefused(
            f"At most {MAX_GIVEN_RECORDS} records can be given to one run.", 400, field="records"
        )
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise RunRefused(f"Record {i} is not a JSON object.", 400, field="records")
    return records


def run_start(
    *,
    flow: Flow,
    user: User | None,
    mode: str = RunMode.LIVE,
    trigger: str = RunTrigger.MANUAL,
    records: list[dict[str, Any]] | None = None,
    scheduled_for: datetime | None = None,
) -> Run:
    """Create a queued run of `flow` and enqueue `run_flow` when the transaction commits.

    Refusals (`RunRefused`): 400 for a disabled flow, records that are not a list of
    objects, or a test run without records when the flow has no saved samples; 409 when a
    live run of the flow is already queued or running, or when the schedule's fire time
    `scheduled_for` already started a run. Permission is the caller's check
    (integrations.permissions: `run` for live runs, `edit` for test runs).
    """
    if mode not in RunMode.values:
        raise RunRefused(f"mode is one of {', '.join(RunMode.values)}.", 400, field="mode")
    if not flow.enabled:
        raise RunRefused(f"The flow {flow.name!r} is disabled; enable it to run it.", 400)
    if records is not None:
        records = _clean_records(records)
    if mode == RunMode.TEST:
        trigger = RunTrigger.TEST
        if records is None and not _samples_of(flow.integration_id, flow.lineage_id):
            raise RunRefused(
                f"The flow {flow.name!r} has no saved samples yet (they come from its last "
                "successful live run): paste records to test with.",
                400,
                field="records",
            )
    integration = flow.integration
    try:
        with transaction.atomic():
            run = Run.objects.create(
                integration=integration,
                flow=flow,
                flow_lineage_id=flow.lineage_id,
                flow_name=flow.name,
                mode=mode,
                trigger=trigger,
                created_by=user if user is not None and getattr(user, "pk", None) else None,
                input_records=records,
                integration_version=integration.version,
                scheduled_for=scheduled_for,
            )
            action = (
                AuditAction.RUN_SCHEDULED
                if trigger == RunTrigger.SCHEDULE
                else AuditAction.RUN_STARTED
            )
            detail: dict[str, Any] = {"flow": flow.name, "mode": mode, "trigger": trigger}
            if records is not None:
                detail["records"] = len(records)
            _audit(run, action, user, **detail)
            transaction.on_commit(lambda: _enqueue(run.pk))
    except IntegrityError:
        # The partial unique constraints: one open live run per flow, one run per fire time.
        if scheduled_for is not None and _fired(flow, scheduled_for):
            raise RunRefused(
                f"The flow {flow.name!r} already ran for its schedule at {scheduled_for:%H:%M}.",
                409,
            ) from None
        if _open_live_run(flow) is None:
            raise
        raise RunRefused(
            f"The flow {flow.name!r} is already running live; wait for that run to end or "
            "cancel it.",
            409,
        ) from None
    return run


def _enqueue(run_id: int) -> None:
    from .tasks import run_flow

    run_flow.delay(run_id)


def _open_live_run(flow: Flow) -> Run | None:
    return (
        Run.objects.filter(
            integration_id=flow.integration_id,
            flow_lineage_id=flow.lineage_id,
            mode=RunMode.LIVE,
            status__in=OPEN_STATUSES,
        )
        .order_by("-pk")
        .first()
    )


def _fired(flow: Flow, fire: datetime) -> bool:
    return Run.objects.filter(
        integration_id=flow.integration_id, flow_lineage_id=flow.lineage_id, scheduled_for=fire
    ).exists()


def _samples_of(integration_id: int, flow_lineage_id: uuid.UUID) -> list[Any]:
    sample = FlowSample.objects.filter(
        integration_id=integration_id, flow_lineage_id=flow_lineage_id
    ).first()
    return list(sample.records) if sample else []


# Execute -------------------------------------------------------------------------------


def _claim(run_id: int) -> tuple[Run, bool]:
    """Lock the run and move it queued → running. (run, True) when this delivery runs it;
    (run, False) when it is final already (a queued run canceled is final at once) or
    was found running (a worker died mid-run: marked failed, never run twice)."""
    with transaction.atomic():
        run = Run.objects.select_for_update().select_related("integration").get(pk=run_id)
        if run.status in FINAL_STATUSES:
            return run, False
        now = timezone.now()
        if run.status == RunStatus.RUNNING:
            run.status = RunStatus.FAILED
            run.message = INTERRUPTED
            run.ended_at = now
            run.save(update_fields=["status", "message", "ended_at"])
            _ended(run)
            return run, False
        run.status = RunStatus.RUNNING
        run.started_at = now
        run.progress = {"page": 0, "records": 0, "errors": 0}
        run.save(update_fields=["status", "started_at", "progress"])
        return run, True


@dataclass
class _Inputs:
    document: dict[str, Any]
    credentials: dict[str, dict[str, Any]]
    caches: dict[str, dict[str, Any]]
    scripts: dict[str, dict[str, str]]
    records: list[Any] | None


def _flow_steps(document: dict[str, Any], flow_lineage_id: str) -> list[dict[str, Any]]:
    return [
        body
        for body in document["resources"].values()
        if body.get("type") == "step" and str(body.get("flow")) == flow_lineage_id
    ]


def flow_inputs(
    integration_id: int, flow_lineage_id: str, document: dict[str, Any] | None = None
) -> _Inputs:
    """What the engine needs to run one flow of an integration as it is now: its document,
    the flow's connections' credentials (decrypted here), its caches' entries, the scripts.
    `records` is left None (the caller's)."""
    if document is None:
        document = document_of(integration_id)
    steps = _flow_steps(document, flow_lineage_id)
    cache_ids = {
        str(m["lookup_cache"])
        for step in steps
        for m in (step.get("config") or {}).get("mappings") or []
        if isinstance(m, dict) and m.get("lookup_cache")
    }
    caches: dict[str, dict[str, Any]] = {cid: {} for cid in cache_ids}
    for lineage, key, value in LookupCacheEntry.objects.filter(
        cache__integration_id=integration_id, cache__lineage_id__in=cache_ids
    ).values_list("cache__lineage_id", "key", "value"):
        caches[str(lineage)][key] = value
    connection_ids = {str(s["connection"]) for s in steps if s.get("connection")}
    credentials = {
        str(c.lineage_id): c.credentials
        for c in Connection.objects.filter(
            integration_id=integration_id, lineage_id__in=connection_ids
        ).only("lineage_id", "credentials")
    }
    return _Inputs(document, credentials, caches, engine.scripts_of(document), None)


def _inputs(run: Run) -> _Inputs:
    inputs = flow_inputs(run.integration_id, str(run.flow_lineage_id))
    records = run.input_records
    if records is None and run.mode == RunMode.TEST:
        records = _samples_of(run.integration_id, run.flow_lineage_id)
    inputs.records = records
    return inputs


def _uses_hooks(document: dict[str, Any], flow_lineage_id: str) -> bool:
    return any((s.get("config") or {}).get("hooks") for s in _flow_steps(document, flow_lineage_id))


def run_execute(*, run_id: int, transport: httpx.BaseTransport | None = None) -> Run:
    """Execute a queued run with the engine and record its outcome (what `run_flow` does).

    Idempotent: a run already final is returned as it is; one found running is marked
    failed as interrupted (see the module docstring). `transport` replaces the network
    (the demo's in-process WSGI transport, tests' mock transports).
    """
    run, mine = _claim(run_id)
    if not mine:
        return run
    connections: dict[str, str] = {}
    passed = None
    try:
        inputs = _inputs(run)
        secrets = _secret_values(inputs.credentials)
        flow_id = str(run.flow_lineage_id)
        connections = {
            str(lineage): str(body["connection"])
            for lineage, body in inputs.document["resources"].items()
            if body.get("type") == "step"
            and str(body.get("flow")) == flow_id
            and body.get("connection")
        }
        if run.mode == RunMode.LIVE:
            from .errors import PassedRecords

            passed = PassedRecords(run.integration_id, _flow_step_ids(inputs.document, flow_id))
        report = _execute(run, inputs, transport, passed)
    except Exception as exc:  # a bug or an unreachable database must still end the run
        log.exception("Run %s stopped by an unexpected error", run.pk)
        report = RunReport(status="failed", message=f"The run stopped: {type(exc).__name__}.")
        secrets = set()
        passed = None
    return _store(run, report, secrets, connections, passed.error_ids if passed else set())


def _flow_step_ids(document: dict[str, Any], flow_lineage_id: str) -> list[str]:
    return [
        str(key)
        for key, body in document["resources"].items()
        if body.get("type") == "step" and str(body.get("flow")) == flow_lineage_id
    ]


def _execute(
    run: Run, inputs: _Inputs, transport: httpx.BaseTransport | None, passed: Any = None
) -> RunReport:
    """Run the engine for `run`; `passed` (runs.errors.PassedRecords) hears which records
    went through the steps it watches."""
    pk = run.pk

    def on_page(report: RunReport) -> None:
        Run.objects.filter(pk=pk, status=RunStatus.RUNNING).update(
            pages=report.pages,
            progress={
                "page": report.pages,
                "records": report.records_in,
                "errors": report.error_count,
            },
        )

    def should_cancel() -> bool:
        # Canceled by a user, or no longer ours: a redelivery marked the run interrupted
        # (this worker was only slow), so stop before sending another page.
        return not Run.objects.filter(
            pk=pk, status=RunStatus.RUNNING, cancel_requested=False
        ).exists()

    return execute_flow(
        inputs,
        str(run.flow_lineage_id),
        mode=run.mode,
        transport=transport,
        on_page=on_page,
        should_cancel=should_cancel,
        on_passed=passed if passed is not None and passed.steps else None,
        watch_steps=passed.steps if passed is not None else (),
    )


def execute_flow(
    inputs: _Inputs,
    flow_lineage_id: str,
    *,
    mode: str = RunMode.LIVE,
    start_at: str | None = None,
    transport: httpx.BaseTransport | None = None,
    on_page: Any = None,
    should_cancel: Any = None,
    on_passed: Any = None,
    watch_steps: Any = (),
) -> RunReport:
    """Run the engine over `inputs` with the site's limits, SSRF guard and (when the flow
    has hooks) a V8 hook runner: what runs and error retries share."""
    from .netguard import make_url_guard

    kwargs: dict[str, Any] = {
        "mode": mode,
        "records": inputs.records,
        "transport": transport,
        "caches": inputs.caches,
        "credentials": inputs.credentials,
        "on_page": on_page,
        "should_cancel": should_cancel,
        "url_guard": make_url_guard(
            allow_private=settings.ILM_RUN_ALLOW_PRIVATE,
            allowed_hosts=settings.ILM_RUN_ALLOWED_HOSTS,
        ),
        "max_errors": settings.ILM_RUN_MAX_ERRORS,
        "sample_size": settings.ILM_RUN_SAMPLE_SIZE,
        "start_at": start_at,
        "on_passed": on_passed,
        "watch_steps": watch_steps,
    }
    if not _uses_hooks(inputs.document, flow_lineage_id):
        return engine.execute(inputs.document, flow_lineage_id, hooks=None, **kwargs)
    from .hooks import V8HookRunner

    with V8HookRunner(
        inputs.scripts,
        time_limit_ms=settings.ILM_RUN_HOOK_TIME_LIMIT_MS,
        memory_limit_mb=settings.ILM_RUN_HOOK_MEMORY_LIMIT_MB,
    ) as hooks:
        return engine.execute(inputs.document, flow_lineage_id, hooks=hooks, **kwargs)


# Masking -------------------------------------------------------------------------------


def _secret_values(credentials: dict[str, dict[str, Any]]) -> set[str]:
    """Every credential value worth hiding (long enough not to mask ordinary words)."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif value is not None and not isinstance(value, bool):
            text = str(value)
            if len(text) >= 4:
                found.add(text)

    walk(credentials)
    return found


def _masked_field(name: str) -> bool:
    lowered = str(name).lower()
    return any(word in lowered for word in settings.ILM_RUN_MASKED_FIELDS)


def mask_text(text: str, secrets: Iterable[str]) -> str:
    """The text with every credential value replaced by the mask."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def mask_record(value: Any, secrets: Iterable[str] = ()) -> Any:
    """A copy of a record with secret-named fields (ILM_RUN_MASKED_FIELDS) and credential
    values masked, at any depth."""
    secrets = set(secrets)
    if isinstance(value, dict):
        return {
            k: (MASK if _masked_field(k) and v not in (None, "") else mask_record(v, secrets))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask_record(v, secrets) for v in value]
    if isinstance(value, str):
        return mask_text(value, secrets)
    return value


_BEARER = re.compile(r"(?i)(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}")


def _clean_message(text: str, secrets: set[str]) -> str:
    return _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", mask_text(text or "", secrets))


# Store ---------------------------------------------------------------------------------


def _ended(run: Run, **rows: Any) -> None:
    """A run has ended (call in the transaction that ends it): add it to its flow's hourly
    rollup and, once committed, evaluate the alert rules that watch its flow."""
    rollups.rollup_run(run, **rows)
    if rollups.counts(run):
        integration_id, flow = run.integration_id, run.flow_lineage_id
        transaction.on_commit(partial(enqueue_after_run, integration_id, flow), robust=True)


def _store(
    run: Run,
    report: RunReport,
    secrets: set[str],
    connections: dict[str, str] | None = None,
    passed: set[int] | None = None,
) -> Run:
    """Record the report on the run: O(steps) rows plus the first errors, and add it to
    its flow's hourly rollup, in one transaction. A run that is no longer running (marked
    interrupted by a redelivery meanwhile) keeps its status: a run ends once.
    `connections`: step lineage id → the connection lineage id it called; `passed`: the
    open errors whose record went through their step (auto-resolved)."""
    connections = connections or {}
    now = timezone.now()
    status = report.status if report.status in FINAL_STATUSES else RunStatus.FAILED
    with transaction.atomic():
        claimed = Run.objects.select_for_update().get(pk=run.pk)
        if claimed.status != RunStatus.RUNNING:
            return claimed
        steps = RunStep.objects.bulk_create(
            [
                RunStep(
                    run=run,
                    lineage_id=uuid.UUID(str(s.lineage_id)),
                    position=i + 1,  # the engine reports steps in position order
                    name=s.name[:200],
                    kind=s.kind,
                    records_in=s.records_in,
                    records_out=s.records_out,
                    errors=s.errors,
                    duration_ms=s.duration_ms,
                    http_calls=s.http_calls,
                    http_retries=s.http_retries,
                    histogram=list(s.histogram),
                    connection_lineage_id=(
                        uuid.UUID(connections[str(s.lineage_id)])
                        if str(s.lineage_id) in connections
                        else None
                    ),
                )
                for i, s in enumerate(report.steps)
            ]
        )
        names = {str(s.lineage_id): s.name for s in report.steps}
        if run.mode == RunMode.LIVE and report.errors:
            from .errors import errors_record

            errors_record(run=claimed, report=report, secrets=secrets, step_names=names, now=now)
        if run.mode == RunMode.LIVE and (passed or report.errors):
            from .errors import errors_auto_resolve

            errors_auto_resolve(run=claimed, report=report, passed=passed or (), now=now)
        errors = RunError.objects.bulk_create(
            [
                RunError(
                    run=run,
                    step_lineage_id=uuid.UUID(str(e.step)),
                    step_name=names.get(str(e.step), "")[:200],
                    record_index=e.record_index,
                    kind=e.kind,
                    message=_clean_message(e.message, secrets),
                    http_status=e.http_status,
                    record=mask_record(e.record, secrets),
                    response_excerpt=_clean_message(e.response_excerpt, secrets),
                    script_line=e.script_line,
                )
                for e in report.errors[: settings.ILM_RUN_MAX_ERRORS]
            ],
            batch_size=500,
        )
        claimed.status = status
        claimed.ended_at = now
        claimed.records_in = report.records_in
        claimed.records_out = report.records_out
        claimed.errors = max(report.error_count, len(report.errors))
        claimed.retries = report.retries
        claimed.pages = report.pages
        claimed.progress = {
            "page": report.pages,
            "records": report.records_in,
            "errors": claimed.errors,
        }
        claimed.output = mask_record(report.output, secrets) if run.mode == RunMode.TEST else []
        claimed.message = _clean_message(report.message, secrets)
        claimed.save(
            update_fields=[
                "status",
                "ended_at",
                "records_in",
                "records_out",
                "errors",
                "retries",
                "pages",
                "progress",
                "output",
                "message",
            ]
        )
        if (
            run.mode == RunMode.LIVE
            and status == RunStatus.SUCCEEDED
            and run.input_records is None
            and report.samples
        ):
            FlowSample.objects.update_or_create(
                integration_id=run.integration_id,
                flow_lineage_id=run.flow_lineage_id,
                defaults={"run": claimed, "records": mask_record(report.samples, secrets)},
            )
        _ended(claimed, steps=steps, errors=errors)
    return claimed


# Cancel --------------------------------------------------------------------------------


def run_cancel(*, run: Run, user: User | None) -> Run:
    """Cancel a queued run at once, a running one between pages (records already sent stay
    sent; the run's counts say how many). A run that has ended: 409."""
    with transaction.atomic():
        locked = Run.objects.select_for_update().select_related("integration").get(pk=run.pk)
        if locked.status in FINAL_STATUSES:
            raise RunRefused(f"Run {locked.pk} has already ended ({locked.status}).", 409)
        if locked.status == RunStatus.QUEUED:
            locked.status = RunStatus.CANCELED
            locked.ended_at = timezone.now()
            locked.message = "Canceled before it started."
        locked.cancel_requested = True
        locked.save(update_fields=["status", "ended_at", "message", "cancel_requested"])
        _ended(locked)  # a queued run canceled has ended (no-op otherwise)
        _audit(locked, AuditAction.RUN_CANCELED, user, flow=locked.flow_name, was=run.status)
    return locked


# Schedules -----------------------------------------------------------------------------


def _latest_fire(schedule: str, now: datetime) -> datetime | None:
    from croniter import croniter

    schedule = normalize_cron(schedule)
    if not schedule:
        return None
    # croniter's get_prev from just after `now` gives a fire time at or before `now`.
    return croniter(schedule, now + timedelta(microseconds=1)).get_prev(datetime)


def schedule_due(now: datetime | None = None) -> list[Run]:
    """Start the scheduled runs that are due at `now` (the beat's one-minute tick).

    Schedules are read fresh from the database on every tick, so an edit counts at the
    next tick. A flow is due when its latest fire time is within the last tick or two
    and that fire time has not started a run yet (a unique constraint makes a repeated
    or concurrent tick start nothing twice). Disabled flows are not scheduled; a flow
    still running live skips that fire time (a later tick within the grace may start it
    once the run ended). Runs are started as the system (no user).
    """
    now = now or timezone.now()
    started: list[Run] = []
    flows = (
        Flow.objects.filter(enabled=True)
        .exclude(schedule="")
        .select_related("integration")
        .order_by("pk")
    )
    # The fire times that already started a run, in one query for every flow.
    fired = set(
        Run.objects.filter(scheduled_for__gt=now - SCHEDULE_GRACE).values_list(
            "integration_id", "flow_lineage_id", "scheduled_for"
        )
    )
    for flow in flows:
        fire = _latest_fire(flow.schedule, now)
        if fire is None or fire <= now - SCHEDULE_GRACE:
            continue
        if (flow.integration_id, flow.lineage_id, fire) in fired:
            continue
        try:
            started.append(
                run_start(
                    flow=flow,
                    user=None,
                    mode=RunMode.LIVE,
                    trigger=RunTrigger.SCHEDULE,
                    scheduled_for=fire,
                )
            )
        except RunRefused as exc:
            log.info("Scheduled run of flow %s skipped: %s", flow.pk, exc.message)
    return started


# Retention -----------------------------------------------------------------------------


def runs_prune(*, older_than: datetime) -> int:
    """Delete runs (with their steps and errors) that ended before `older_than`. Open runs
    and the run a flow's samples came from stay. Returns how many runs were deleted."""
    keep = FlowSample.objects.exclude(run=None).values("run_id")
    doomed = Run.objects.filter(~Q(status__in=OPEN_STATUSES), ended_at__lt=older_than).exclude(
        pk__in=keep
    )
    deleted = 0
    while True:
        ids = list(doomed.values_list("pk", flat=True)[:1000])
        if not ids:
            return deleted
        with transaction.atomic():
            RunError.objects.filter(run_id__in=ids).delete()
            RunStep.objects.filter(run_id__in=ids).delete()
            Run.objects.filter(pk__in=ids).delete()
        deleted += len(ids)
