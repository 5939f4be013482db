"""Writes of error management: record, retry, resolve, assign and prune flow errors.

An error (`FlowError`) is one failed record (or batch) of one step; it stays open until a
retry of it succeeds or someone resolves it. A live run's errors are folded in when the
run is stored (`errors_record`): the same step, masked record and message seen again add
an occurrence to the open error (a partial unique constraint keeps one open error per
fingerprint, also under concurrent runs).

A retry is a row before it is a task (`errors_retry_start` creates an `ErrorRetry` and
enqueues `retry_errors` on commit); `errors_retry_execute` runs each error's retry data
(or the edited record) through the engine from the failing step on, with the flow as it
is now, and moves every error to resolved (by retry) or keeps it open with `retries` + 1.
Never twice: the retry is claimed queued → running under a row lock, as runs are.

Permission is the caller's check (integrations.permissions: `view` to see errors,
`manage_errors` to resolve and assign, `retry_errors` to retry).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import BooleanField, ExpressionWrapper, F, Q
from django.urls import reverse
from django.utils import timezone

from audit.chain import append
from audit.models import Action as AuditAction
from integrations.credentials import fernet
from integrations.json_input import json_value_check
from integrations.models import Integration, User
from integrations.permissions import can_see, integration_managers
from revisions.document import document_of
from revisions.models import Revision

from . import error_selectors
from .auditing import actor_of, audit_event
from .models import (
    ErrorRetry,
    ErrorRetryStatus,
    ErrorState,
    FlowError,
    Notification,
    NotificationKind,
    ResolvedBy,
    Run,
)
from .notifications import notify
from .report import RunReport
from .services import (
    MASK,
    RunRefused,
    _clean_message,
    _secret_values,
    execute_flow,
    flow_inputs,
    mask_record,
)

log = logging.getLogger(__name__)

MAX_RETRY_IDS = 10_000
# Records per engine call of a retry: the row's counts move between chunks (progress).
RETRY_CHUNK = 2000
INTERRUPTED = (
    "Interrupted: the worker running this retry stopped. Errors it had not reached stay "
    "open; retry them again."
)


def fingerprint(step_lineage_id: str, message: str, record: Any) -> str:
    """What folds duplicates: the step, the message and the masked record."""
    body = orjson.dumps(record, option=orjson.OPT_SORT_KEYS) if record is not None else b""
    digest = hashlib.sha256()
    digest.update(str(step_lineage_id).encode())
    digest.update(b"\0")
    digest.update(message.encode("utf-8", "surrogatepass"))
    digest.update(b"\0")
    digest.update(body)
    return digest.hexdigest()


@functools.cache
def _record_key_secret(secret_key: str) -> bytes:
    return hashlib.sha256(b"ilm.runs.errors.record_key\0" + secret_key.encode()).digest()


def record_key(step_lineage_id: Any, record: Any) -> str:
    """Which record, at which step: a keyed hash (HMAC over SECRET_KEY, so a record's
    secrets cannot be guessed from it) of the step and the record as it entered the step.
    A record that fails at a step and later goes through it has the same key both times
    (auto-resolve); "" for no record."""
    if record is None:
        return ""
    body = orjson.dumps(record, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    message = str(step_lineage_id).encode() + b"\0" + body
    return hmac.new(_record_key_secret(settings.SECRET_KEY), message, hashlib.sha256).hexdigest()


def seal_record(record: Any) -> str | None:
    """A Fernet token of the record's JSON, its keys in their order (the editor shows
    the record as the step got it)."""
    return None if record is None else fernet().encrypt(orjson.dumps(record)).decode()


def open_record(token: str) -> Any:
    return orjson.loads(fernet().decrypt(token.encode()))


def retry_data_of(error: FlowError) -> Any:
    """The record a retry of `error` sends on from its step (None when not kept)."""
    return None if error.retry_data is None else open_record(error.retry_data)


# Audit ---------------------------------------------------------------------------------


def _error_name(error: FlowError) -> str:
    return _name(error.pk, error.flow_name, error.step_name, error.message)


def _name(pk: int, flow_name: str, step_name: str, message: str) -> str:
    return f"Error {pk} of {flow_name} / {step_name}: {message[:120]}"


# Record (from a stored run) ------------------------------------------------------------


def errors_record(
    *,
    run: Run,
    report: RunReport,
    secrets: set[str],
    step_names: dict[str, str],
    now: datetime,
) -> int:
    """Fold a live run's errors into the open errors of the integration (in the caller's
    transaction, with the run locked). Returns how many new errors were opened."""
    folded: dict[str, dict[str, Any]] = {}
    for e in report.errors:
        message = _clean_message(e.message, secrets)
        record = mask_record(e.record, secrets)
        key = fingerprint(e.step, message, record)
        entry = folded.get(key)
        if entry is None:
            folded[key] = {
                "step": str(e.step),
                "message": message,
                "record": record,
                "record_index": e.record_index,
                "kind": e.kind,
                "http_status": e.http_status,
                "excerpt": _clean_message(e.response_excerpt, secrets),
                "retry": e.retry_record,
                "key": record_key(e.step, e.retry_record),
                "count": 1,
            }
        else:
            entry["count"] += 1
            if e.retry_record is not None:
                entry["retry"] = e.retry_record
                entry["key"] = record_key(e.step, e.retry_record)
    for attempt in range(2):
        try:
            with transaction.atomic():
                return _fold(run, folded, step_names, now)
        except IntegrityError:
            # A concurrent run opened the same error between our read and insert: read again.
            if attempt:
                raise
    return 0


def _fold(
    run: Run, folded: dict[str, dict[str, Any]], step_names: dict[str, str], now: datetime
) -> int:
    existing = {
        e.fingerprint: e
        for e in FlowError.objects.select_for_update().filter(
            integration_id=run.integration_id, state=ErrorState.OPEN, fingerprint__in=list(folded)
        )
    }
    fresh: list[FlowError] = []
    seen: list[FlowError] = []
    for key, entry in folded.items():
        error = existing.get(key)
        if error is None:
            fresh.append(
                FlowError(
                    integration_id=run.integration_id,
                    run=run,
                    flow_lineage_id=run.flow_lineage_id,
                    flow_name=run.flow_name[:200],
                    step_lineage_id=uuid.UUID(entry["step"]),
                    step_name=step_names.get(entry["step"], "")[:200],
                    fingerprint=key,
                    record_index=entry["record_index"],
                    kind=entry["kind"],
                    message=entry["message"],
                    http_status=entry["http_status"],
                    response_excerpt=entry["excerpt"],
                    record=entry["record"],
                    retry_data=seal_record(entry["retry"]),
                    record_key=entry["key"],
                    first_seen=now,
                    last_seen=now,
                    occurrences=entry["count"],
                )
            )
            continue
        error.run = run
        error.last_seen = now
        error.occurrences += entry["count"]
        error.record_index = entry["record_index"]
        error.http_status = entry["http_status"]
        error.response_excerpt = entry["excerpt"]
        if entry["retry"] is not None:
            error.retry_data = seal_record(entry["retry"])
            error.record_key = entry["key"]
        seen.append(error)
    FlowError.objects.bulk_create(fresh, batch_size=500)
    FlowError.objects.bulk_update(
        seen,
        [
            "run",
            "last_seen",
            "occurrences",
            "record_index",
            "http_status",
            "response_excerpt",
            "retry_data",
            "record_key",
        ],
        batch_size=500,
    )
    return len(fresh)


# Auto-resolve --------------------------------------------------------------------------


class PassedRecords:
    """While a live run runs: the open errors whose record went through their step this
    time (the engine's `on_passed`). Watches only the flow's steps that have open errors
    with a known record, and looks each page's records up by key (bounded memory)."""

    def __init__(self, integration_id: int, step_ids: Iterable[str]) -> None:
        self.integration_id = integration_id
        self.error_ids: set[int] = set()
        self.steps = frozenset(
            str(step)
            for step in step_ids
            if FlowError.objects.filter(
                integration_id=integration_id, step_lineage_id=step, state=ErrorState.OPEN
            )
            .exclude(record_key="")
            .exists()
        )

    def __call__(self, step: str, records: list[Any]) -> None:
        keys = {record_key(step, r) for r in records}
        self.error_ids.update(
            FlowError.objects.filter(
                integration_id=self.integration_id,
                step_lineage_id=step,
                state=ErrorState.OPEN,
                record_key__in=keys,
            )
            .exclude(record_key="")
            .values_list("pk", flat=True)
        )


def errors_auto_resolve(
    *, run: Run, report: RunReport, passed: Iterable[int], now: datetime
) -> int:
    """Celigo's auto-resolve, in the run's store transaction after `errors_record`. An open
    error of a record at a step is resolved by `auto` when a later live run (never a
    retry or a test run) takes the same record through that step (`passed`, found by
    `PassedRecords`: the cause was fixed elsewhere), or when the same record fails at that
    step again in another way (the newest error of a record stays, as Celigo shows only
    that). Errors this run opened or added an occurrence to stay open. One audit event
    each. Returns how many were resolved."""
    keys: dict[str, set[str]] = defaultdict(set)
    for e in report.errors:
        if e.retry_record is not None:
            keys[str(e.step)].add(record_key(e.step, e.retry_record))
    wanted = sorted(set(passed))
    if not wanted and not keys:
        return 0
    which = Q(pk__in=wanted) if wanted else Q(pk__in=[])
    for step, found in keys.items():
        which |= Q(step_lineage_id=step, record_key__in=found)
    # Rows locked in pk order, read as tuples: a run may resolve thousands at once.
    locked = list(
        FlowError.objects.select_for_update(of=("self",))
        .filter(which, integration_id=run.integration_id, state=ErrorState.OPEN)
        .exclude(record_key="")
        .exclude(run_id=run.pk)
        .order_by("pk")
        .values_list("pk", "flow_name", "step_name", "message")
    )
    done = 0
    integration = run.integration
    changes = [
        {"field": "state", "old": ErrorState.OPEN.value, "new": ErrorState.RESOLVED.value},
        {"field": "resolved_by", "old": None, "new": ResolvedBy.AUTO.value},
        {"field": "run", "old": None, "new": run.pk},
    ]
    # Why, in words on the error (its resolve comment), by the run that did it.
    went_through = f"Run #{run.pk} took this record through the step."
    superseded = (
        f"Run #{run.pk} failed this record at this step in another way; see its newest error."
    )
    passed_ids = set(wanted)
    for start in range(0, len(locked), 2000):
        chunk = locked[start : start + 2000]
        for comment, ids in (
            (went_through, [pk for pk, *_ in chunk if pk in passed_ids]),
            (superseded, [pk for pk, *_ in chunk if pk not in passed_ids]),
        ):
            if ids:
                FlowError.objects.filter(pk__in=ids).update(
                    state=ErrorState.RESOLVED,
                    resolved_by=ResolvedBy.AUTO,
                    resolved_at=now,
                    resolve_comment=comment,
                )
        append(
            [
                audit_event(
                    integration,
                    None,
                    AuditAction.ERROR_RESOLVED,
                    resource_type="error",
                    resource_id=pk,
                    resource_name=_name(pk, flow, step, message),
                    changes=changes,
                )
                for pk, flow, step, message in chunk
            ]
        )
        done += len(chunk)
    return done


# Retry ---------------------------------------------------------------------------------


def _clean_ids(ids: Any) -> list[int]:
    if not isinstance(ids, list) or not ids:
        raise RunRefused("ids must be a non-empty list of error ids.", 400, field="ids")
    if len(ids) > MAX_RETRY_IDS:
        raise RunRefused(f"At most {MAX_RETRY_IDS} errors at a time.", 400, field="ids")
    out: list[int] = []
    for value in ids:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise RunRefused(f"{value!r} is not an error id.", 400, field="ids")
        try:
            number = int(value)
        except ValueError:
            raise RunRefused(f"{value!r} is not an error id.", 400, field="ids") from None
        if not 0 < number < 2**63:
            raise RunRefused(f"{value!r} is not an error id.", 400, field="ids")
        out.append(number)
    return list(dict.fromkeys(out))


def _errors_of(integration: Integration, ids: list[int]) -> list[FlowError]:
    """The errors `ids` of `integration` (their id, state and whether retry data is kept:
    up to 10,000 of them, so not their records); 400 naming any that is not there."""
    errors = list(
        FlowError.objects.filter(integration=integration, pk__in=ids)
        .only("pk", "state", "integration_id")
        .annotate(
            has_retry_data=ExpressionWrapper(
                Q(retry_data__isnull=False), output_field=BooleanField()
            )
        )
        .order_by("pk")
    )
    missing = sorted(set(ids) - {e.pk for e in errors})
    if missing:
        shown = ", ".join(str(m) for m in missing[:10])
        raise RunRefused(f"No error {shown} in {integration.name!r}.", 400, field="ids")
    return errors


def unmask(edited: Any, original: Any) -> Any:
    """The edited record with every masked value (••••••) put back from the original: the
    editor shows secrets masked, and a retry sends what was there."""
    if edited == MASK and original is not None:
        return original
    if isinstance(edited, dict) and isinstance(original, dict):
        return {k: unmask(v, original.get(k)) for k, v in edited.items()}
    if isinstance(edited, list) and isinstance(original, list):
        return [unmask(v, original[i] if i < len(original) else None) for i, v in enumerate(edited)]
    return edited


def _clean_edits(records: Any, errors: list[FlowError]) -> dict[str, Any]:
    if records in (None, {}):
        return {}
    if not isinstance(records, dict):
        raise RunRefused(
            "records must be an object of {error id: edited record}.", 400, field="records"
        )
    by_id = {str(e.pk): e for e in errors}
    edits: dict[str, Any] = {}
    kept = dict(
        FlowError.objects.filter(pk__in=[int(k) for k in records if str(k) in by_id]).values_list(
            "pk", "retry_data"
        )
    )
    for key, record in records.items():
        error = by_id.get(str(key))
        if error is None:
            raise RunRefused(
                f"records names error {key}, which is not among the ids retried.",
                400,
                field="records",
            )
        if not isinstance(record, dict):
            raise RunRefused(
                f"The record of error {key} is not a JSON object.", 400, field="records"
            )
        try:
            json_value_check(record, field=f"records.{key}")
        except ValidationError as exc:
            raise RunRefused(" ".join(exc.messages), 400, field="records") from None
        token = kept.get(error.pk)
        edits[str(error.pk)] = unmask(record, open_record(token) if token else None)
    return edits


def errors_retry_start(
    *,
    integration: Integration,
    user: User | None,
    ids: Any,
    records: Any = None,
    revision: Any = None,
) -> ErrorRetry:
    """Create a queued retry of the errors `ids` of `integration` (edited `records`,
    {error id: record}, replace their retry data) and enqueue `retry_errors` on commit.

    Refusals (`RunRefused`, 400): ids not a list, not errors of this integration, errors
    already resolved, errors without retry data and no edited record, bad records.
    """
    wanted = _clean_ids(ids)
    errors = _errors_of(integration, wanted)
    resolved = [e.pk for e in errors if not e.is_open]
    if resolved:
        raise RunRefused(
            f"Error {', '.join(map(str, resolved[:10]))} is resolved already; retry open errors.",
            400,
            field="ids",
        )
    edits = _clean_edits(records, errors)
    bare = [e.pk for e in errors if not e.has_retry_data and str(e.pk) not in edits]
    if bare:
        raise RunRefused(
            f"Error {', '.join(map(str, bare[:10]))} has no retry data (a whole page or batch "
            "failed, or it is older than the retry data kept): edit its record to retry it, "
            "or resolve it.",
            400,
            field="ids",
        )
    with transaction.atomic():
        retry = ErrorRetry.objects.create(
            integration=integration,
            revision=revision,
            created_by=user if user is not None and getattr(user, "pk", None) else None,
            error_ids=[e.pk for e in errors],
            edits=seal_record(edits) if edits else "",
            total=len(errors),
        )
        detail = [{"field": "errors", "old": None, "new": len(errors)}]
        if edits:
            detail.append({"field": "edited_records", "old": None, "new": sorted(edits)})
        if revision is not None:
            detail.append({"field": "revision", "old": None, "new": revision.pk})
        append(
            [
                audit_event(
                    integration,
                    user,
                    AuditAction.ERROR_RETRIED,
                    resource_type="error_retry",
                    resource_id=retry.pk,
                    resource_name=f"Retry {retry.pk} of {len(errors)} error(s)",
                    changes=detail,
                )
            ]
        )
        transaction.on_commit(lambda: _enqueue(retry.pk))
    return retry


def _enqueue(retry_id: int) -> None:
    from .tasks import retry_errors

    retry_errors.delay(retry_id)


def _claim(retry_id: int) -> tuple[ErrorRetry, bool]:
    with transaction.atomic():
        retry = ErrorRetry.objects.select_for_update().get(pk=retry_id)
        if retry.status == ErrorRetryStatus.QUEUED:
            retry.status = ErrorRetryStatus.RUNNING
            retry.started_at = timezone.now()
            retry.save(update_fields=["status", "started_at"])
            return retry, True
        if retry.status == ErrorRetryStatus.RUNNING:
            retry.status = ErrorRetryStatus.FAILED
            retry.ended_at = timezone.now()
            retry.message = INTERRUPTED
            retry.save(update_fields=["status", "ended_at", "message"])
        return retry, False


def errors_retry_execute(
    *, retry_id: int, transport: httpx.BaseTransport | None = None
) -> ErrorRetry:
    """Run a queued retry (what `retry_errors` does). Idempotent as `run_execute` is: a
    retry already final is returned as it is; one found running is marked failed as
    interrupted (its errors not reached stay open). `transport` replaces the network."""
    retry, mine = _claim(retry_id)
    if not mine:
        return retry
    try:
        _retry(retry, transport)
    except Exception as exc:  # a bug must still end the retry
        log.exception("Retry %s stopped by an unexpected error", retry.pk)
        ErrorRetry.objects.filter(pk=retry.pk).update(
            status=ErrorRetryStatus.FAILED,
            ended_at=timezone.now(),
            message=f"The retry stopped: {type(exc).__name__}.",
        )
        return ErrorRetry.objects.get(pk=retry.pk)
    retry.refresh_from_db()
    if retry.failed == 0 and retry.skipped == 0:
        retry.status = ErrorRetryStatus.SUCCEEDED
    elif retry.succeeded == 0:
        retry.status = ErrorRetryStatus.FAILED
    else:
        retry.status = ErrorRetryStatus.PARTIAL
    retry.ended_at = timezone.now()
    retry.save(update_fields=["status", "ended_at"])
    return retry


def _retry(retry: ErrorRetry, transport: httpx.BaseTransport | None) -> None:
    edits: dict[str, Any] = open_record(retry.edits) if retry.edits else {}
    errors = list(
        FlowError.objects.filter(
            integration_id=retry.integration_id, pk__in=retry.error_ids, state=ErrorState.OPEN
        )
        .only("pk", "flow_lineage_id", "step_lineage_id", "retry_data", "retries")
        .order_by("pk")
    )
    gone = retry.total - len(errors)  # resolved meanwhile (by someone, another retry)
    if gone:
        ErrorRetry.objects.filter(pk=retry.pk).update(skipped=F("skipped") + gone)
    groups: dict[tuple[str, str], list[FlowError]] = defaultdict(list)
    for error in errors:
        groups[(str(error.flow_lineage_id), str(error.step_lineage_id))].append(error)
    document = document_of(retry.integration_id)
    inputs_by_flow: dict[str, Any] = {}
    for (flow_id, step_id), group in groups.items():
        if step_id not in _step_ids(document, flow_id):
            _settle(
                retry,
                [],
                [
                    (e, "The step no longer exists in the flow; resolve this error.", None)
                    for e in group
                ],
                set(),
            )
            continue
        inputs = inputs_by_flow.get(flow_id)
        if inputs is None:
            inputs = inputs_by_flow[flow_id] = flow_inputs(retry.integration_id, flow_id, document)
        secrets = _secret_values(inputs.credentials)
        for start in range(0, len(group), RETRY_CHUNK):
            chunk = group[start : start + RETRY_CHUNK]
            records = [edits[str(e.pk)] if str(e.pk) in edits else retry_data_of(e) for e in chunk]
            inputs.records = records
            report = execute_flow(inputs, flow_id, start_at=step_id, transport=transport)
            _settle_report(retry, chunk, records, report, secrets, edits)


def _step_ids(document: dict[str, Any], flow_id: str) -> set[str]:
    return {
        str(key)
        for key, body in document["resources"].items()
        if body.get("type") == "step" and str(body.get("flow")) == flow_id
    }


def _settle_report(
    retry: ErrorRetry,
    chunk: list[FlowError],
    records: list[Any],
    report: RunReport,
    secrets: set[str],
    edits: dict[str, Any],
) -> None:
    by_index: dict[int, Any] = {}
    whole: str | None = None
    for e in report.errors:
        if 0 <= e.record_index < len(chunk):
            by_index.setdefault(e.record_index, e)
        else:
            whole = whole or e.message
    if report.status == "failed" and not report.errors:
        whole = report.message or "The retry failed."
    ok: list[FlowError] = []
    failed: list[tuple[FlowError, str, Any]] = []
    for i, error in enumerate(chunk):
        found = by_index.get(i)
        if found is not None:
            failed.append((error, _clean_message(found.message, secrets), found))
        elif whole is not None:
            failed.append((error, _clean_message(whole, secrets), None))
        else:
            ok.append(error)
    changed = {error.pk: records[i] for i, error in enumerate(chunk) if str(error.pk) in edits}
    _settle(retry, ok, failed, secrets, changed)


def _settle(
    retry: ErrorRetry,
    ok: list[FlowError],
    failed: list[tuple[FlowError, str, Any]],
    secrets: set[str],
    changed: dict[int, Any] | None = None,
) -> None:
    """Resolve the errors that went through; keep the others open with retries + 1 and
    the new failure; count both on the retry row. One transaction per chunk."""
    now = timezone.now()
    changed = changed or {}
    with transaction.atomic():
        if ok:
            FlowError.objects.filter(pk__in=[e.pk for e in ok], state=ErrorState.OPEN).update(
                state=ErrorState.RESOLVED,
                resolved_by=ResolvedBy.RETRY,
                resolved_at=now,
                retries=F("retries") + 1,
                last_retry=retry,
            )
        for error, message, found in failed:
            error.retries += 1
            error.last_retry = retry
            error.last_seen = now
            error.message = message
            if found is not None:
                error.kind = found.kind
                error.http_status = found.http_status
                error.response_excerpt = _clean_message(found.response_excerpt, secrets)
            if error.pk in changed:
                # The edited record is what is retried from now on.
                error.retry_data = seal_record(changed[error.pk])
                error.record = mask_record(changed[error.pk], secrets)
        fields = ["retries", "last_retry", "last_seen", "message"]
        found_fields = ["kind", "http_status", "response_excerpt"]
        edited_fields = ["retry_data", "record"]
        # Each group writes only what was set on it (the rest was not loaded).
        for group, extra in (
            ([f[0] for f in failed if f[2] is None and f[0].pk not in changed], []),
            ([f[0] for f in failed if f[2] is not None and f[0].pk not in changed], found_fields),
            ([f[0] for f in failed if f[2] is None and f[0].pk in changed], edited_fields),
            (
                [f[0] for f in failed if f[2] is not None and f[0].pk in changed],
                found_fields + edited_fields,
            ),
        ):
            if group:
                FlowError.objects.bulk_update(group, fields + extra, batch_size=500)
        ErrorRetry.objects.filter(pk=retry.pk).update(
            succeeded=F("succeeded") + len(ok), failed=F("failed") + len(failed)
        )


# Resolve and assign --------------------------------------------------------------------


def errors_resolve(
    *, integration: Integration, user: User | None, ids: Any, comment: str = ""
) -> int:
    """Resolve the open errors `ids` of `integration` by `user` with `comment`, one audit
    event each. Errors already resolved are left as they are. Returns how many moved."""
    wanted = _clean_ids(ids)
    if not isinstance(comment, str):
        raise RunRefused("comment must be text.", 400, field="comment")
    if len(comment) > 5000:
        raise RunRefused("comment is at most 5,000 characters.", 400, field="comment")
    errors = _errors_of(integration, wanted)
    now = timezone.now()
    actor = actor_of(user)
    with transaction.atomic():
        locked = list(
            FlowError.objects.select_for_update()
            .filter(pk__in=[e.pk for e in errors], state=ErrorState.OPEN)
            .order_by("pk")
        )
        if not locked:
            return 0
        FlowError.objects.filter(pk__in=[e.pk for e in locked]).update(
            state=ErrorState.RESOLVED,
            resolved_by=ResolvedBy.USER,
            resolved_by_user=actor,
            resolved_at=now,
            resolve_comment=comment,
        )
        changes = [{"field": "state", "old": ErrorState.OPEN.value, "new": "resolved"}]
        if comment:
            changes.append({"field": "comment", "old": None, "new": comment})
        append(
            [
                audit_event(
                    integration,
                    user,
                    AuditAction.ERROR_RESOLVED,
                    resource_type="error",
                    resource_id=e.pk,
                    resource_name=_error_name(e),
                    changes=changes,
                )
                for e in locked
            ]
        )
    return len(locked)


def errors_assign(
    *, integration: Integration, user: User | None, ids: Any, assignee: User | None
) -> int:
    """Assign the errors `ids` of `integration` to `assignee` (None: unassign), one audit
    event for each error whose assignee changed. The assignee must be able to see the
    integration (400 otherwise). Unless they assigned themselves, the assignee gets one
    notification (and mail) once this commits: a link to the error, or to their open
    errors of the integration when several were assigned at once. Returns how many
    errors changed hands."""
    wanted = _clean_ids(ids)
    if assignee is not None and not can_see(assignee, integration):
        raise RunRefused(
            f"{assignee.get_username()} cannot see {integration.name!r}; give them access first.",
            400,
            field="assignee",
        )
    errors = _errors_of(integration, wanted)
    new_id = assignee.pk if assignee is not None else None
    new = assignee.get_username() if assignee is not None else None
    with transaction.atomic():
        locked = list(
            FlowError.objects.select_for_update(of=("self",))
            .filter(pk__in=[e.pk for e in errors])
            .select_related("assignee")
            .defer("retry_data")
            .order_by("pk")
        )
        changed = [e for e in locked if e.assignee_id != new_id]
        if not changed:
            return 0
        FlowError.objects.filter(pk__in=[e.pk for e in changed]).update(assignee=assignee)
        append(
            [
                audit_event(
                    integration,
                    user,
                    AuditAction.ERROR_ASSIGNED,
                    resource_type="error",
                    resource_id=e.pk,
                    resource_name=_error_name(e),
                    changes=[
                        {
                            "field": "assignee",
                            "old": e.assignee.get_username() if e.assignee_id else None,
                            "new": new,
                        }
                    ],
                )
                for e in changed
            ]
        )
        actor = actor_of(user)
        if assignee is not None and (actor is None or actor.pk != assignee.pk):
            _notify_assigned(integration, actor, assignee, changed)
    return len(changed)


def _notify_assigned(
    integration: Integration, actor: User | None, assignee: User, errors: list[FlowError]
) -> None:
    by = actor.get_username() if actor is not None else "ILM"
    if len(errors) == 1:
        (error,) = errors
        title = f"Error assigned to you: {error.flow_name} / {error.step_name}"
        body = f"{by} assigned you an error of {integration.name}: {error.message[:300]}"
        url = reverse("runs:error", args=[error.pk])
    else:
        title = f"{len(errors)} errors of {integration.name} assigned to you"
        flows = sorted({e.flow_name for e in errors})
        body = f"{by} assigned you {len(errors)} errors of {', '.join(flows[:5])}" + (
            f" and {len(flows) - 5} more flows." if len(flows) > 5 else "."
        )
        url = (
            reverse("runs:errors", args=[integration.pk])
            + "?"
            + urlencode({"tab": "open", "assignee": assignee.get_username()})
        )
    notify(
        [assignee],
        kind=NotificationKind.ERROR_ASSIGNED,
        title=title,
        body=body,
        url=url,
        integration=integration,
    )


def error_assign(*, error: FlowError, user: User | None, assignee: User | None) -> FlowError:
    """Assign one error (see `errors_assign`); returns it as it is now."""
    errors_assign(integration=error.integration, user=user, ids=[error.pk], assignee=assignee)
    return FlowError.objects.get(pk=error.pk)


# Retry with the fix: the notification after a merge ------------------------------------


def errors_offer_retry(*, revision: Revision) -> list[Notification]:
    """After a pull is merged: when the flows it touched have open errors that can be
    retried, tell the integration's managers (notification and mail, after commit) with a
    link to the revision page, where "Retry N open errors of the flows this change
    touched" is. Nothing when there is nothing to retry."""
    flows, count = error_selectors.retry_offer_count(revision)
    if not count:
        return []
    integration = revision.integration
    errors_word = f"{count:,} open error{'s' if count != 1 else ''}"
    flows_word = f"{flows} flow{'s' if flows != 1 else ''}"
    with transaction.atomic():
        return notify(
            integration_managers(integration),
            kind=NotificationKind.ERRORS_RETRY_OFFER,
            title=f"Retry {errors_word} with the fix merged in pull #{revision.number}",
            body=(
                f"Pull #{revision.number} into {integration.name} changed {flows_word} "
                f"with {errors_word}. Retry them with the flows as they are now from the "
                "revision page."
            ),
            url=reverse("revisions:detail", args=[revision.pk]),
            integration=integration,
        )


def on_revision_event(sender: Any, revision: Revision, verb: str, **kwargs: Any) -> None:
    """`audit.signals.revision_event` (sent by revisions once an operation commits): a
    merge may offer a retry with the fix. A failure here is logged; the merge stands."""
    if verb != "merge":
        return
    try:
        errors_offer_retry(revision=revision)
    except Exception:
        log.exception("Could not offer a retry of errors after revision %s", revision.pk)


# Retention -----------------------------------------------------------------------------


def errors_prune_retry_data(*, keep: int | None = None) -> int:
    """Drop the retry data of all but the most recent `keep` errors of each step of each
    integration (ILM_ERROR_RETRY_DATA_PER_STEP; a clone's steps share lineage ids but not
    errors); those errors keep their summary and masked record. Returns how many errors
    lost their retry data."""
    keep = settings.ILM_ERROR_RETRY_DATA_PER_STEP if keep is None else keep
    if keep < 0:
        raise ValueError("keep is 0 or more.")
    pruned = 0
    steps = (
        FlowError.objects.filter(retry_data__isnull=False)
        .order_by()
        .values_list("integration_id", "step_lineage_id")
        .distinct()
    )
    for integration_id, step in list(steps):
        mine = FlowError.objects.filter(
            integration_id=integration_id, step_lineage_id=step, retry_data__isnull=False
        )
        # The keep+1-th newest error of the step (index flowerror_recent): it and
        # everything older go.
        edge = list(
            mine.order_by("-last_seen", "-pk").values_list("last_seen", "pk")[keep : keep + 1]
        )
        if not edge:
            continue
        last_seen, pk = edge[0]
        pruned += mine.filter(
            Q(last_seen__lt=last_seen) | Q(last_seen=last_seen, pk__lte=pk)
        ).update(retry_data=None)
    return pruned
