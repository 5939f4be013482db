"""The behaviour of a pull: start, read and execute behaviour checks (docs/api.md, "Behaviour of
a pull, and pulls into many"). The review page, the API and the task call these.

A check is a row before it is a task (`behaviour_check_run`, enqueued on commit). It is
pinned to `revisions.approvals.changeset_hash` of the pull when it starts: a refresh or a
changed resolution changes the hash, so `behaviour_current` finds no check for the new
hash and starts one (with the records the last one used): the behaviour follows the
resolutions without anyone asking.

`behaviour_check_execute` loads what the pure `runs.behaviour.behaviour_diff` takes and
stores its result: ours is the target's document now; theirs is that document with the
pull's changeset applied under the current resolutions (an unresolved conflict counts as
"theirs" until someone decides it, and the result says how many). Both sides use the
target's lookup-cache entries and credentials; nothing is written to either integration
and imports send nothing.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from integrations.models import Connection, LookupCacheEntry, User
from revisions import diff as revision_diff
from revisions.approvals import changeset_hash
from revisions.document import document_of
from revisions.models import Revision, RevisionStatus, RevisionType
from revisions.services import changes_of

from . import behaviour
from .models import BEHAVIOUR_OPEN, BehaviourCheck, BehaviourStatus, FlowSample
from .services import MASK, RunRefused, _clean_records, _masked_field, _secret_values, mask_record

log = logging.getLogger(__name__)

# Pulls whose changeset can be tested: computed and not yet merged or dropped.
TESTABLE = (RevisionStatus.READY, RevisionStatus.AWAITING_APPROVAL)


def _testable(revision: Revision) -> None:
    if revision.type != RevisionType.PULL:
        raise RunRefused("Only a pull has a behaviour to test.", 400)
    if revision.status not in TESTABLE:
        raise RunRefused(
            f"Pull #{revision.number} is {revision.get_status_display().lower()}; its behaviour "
            "is tested while it is ready for review or awaiting approval.",
            409,
        )


def _enqueue(check_id: int) -> None:
    from .tasks import behaviour_check_run

    transaction.on_commit(lambda: behaviour_check_run.delay(check_id))


def behaviour_check_start(
    *, revision: Revision, user: User | None, records: list[Any] | None = None
) -> BehaviourCheck:
    """Start a behaviour check of a ready pull: its saved samples, or `records` (given, run
    through every flow the pull touches). A check of the same records already open for the
    current changeset is returned instead of starting a second one.

    Refusals (`RunRefused`): 400 not a pull or bad records; 409 the pull is not ready.
    """
    if records is not None:
        records = _clean_records(records)
    with transaction.atomic():
        locked = Revision.objects.select_for_update().get(pk=revision.pk)
        _testable(locked)
        pinned = changeset_hash(locked)
        open_check = (
            BehaviourCheck.objects.filter(
                revision=locked, changeset_hash=pinned, status__in=BEHAVIOUR_OPEN
            )
            .order_by("-pk")
            .first()
        )
        if open_check is not None and open_check.records == records:
            return open_check
        check = BehaviourCheck.objects.create(
            revision=locked,
            changeset_hash=pinned,
            records=records,
            created_by=user if getattr(user, "pk", None) else None,
        )
        _enqueue(check.pk)
    return check


def behaviour_current(*, revision: Revision, user: User | None = None) -> BehaviourCheck | None:
    """The check that describes the pull as it is now, started if there is none yet.

    A pull still open gets a check pinned to its current changeset hash (the newest one
    for that hash; a new one with the last check's records when the resolutions or the
    changes moved on). A merged, canceled or failed pull keeps its last check (or none).
    """
    latest = BehaviourCheck.objects.filter(revision=revision).order_by("-pk").first()
    if revision.type != RevisionType.PULL or revision.status not in TESTABLE:
        return latest
    pinned = changeset_hash(revision)
    current = (
        BehaviourCheck.objects.filter(revision=revision, changeset_hash=pinned)
        .order_by("-pk")
        .first()
    )
    if current is not None:
        return current
    try:
        return behaviour_check_start(
            revision=revision, user=user, records=latest.records if latest else None
        )
    except RunRefused:  # moved on meanwhile (merged, canceled): show what there is
        return BehaviourCheck.objects.filter(revision=revision).order_by("-pk").first()


def is_stale(check: BehaviourCheck) -> bool:
    """Was the check computed for another changeset than the pull's current one?"""
    revision = check.revision
    if revision.status not in TESTABLE:
        return False
    return check.changeset_hash != changeset_hash(revision)


# Execute ---------------------------------------------------------------------------------


def _claim(check_id: int) -> BehaviourCheck | None:
    """Move the check to running; None when it is final already. A check found running (a
    worker died) runs again whole: it writes nothing but its own row."""
    with transaction.atomic():
        check = (
            BehaviourCheck.objects.select_for_update()
            .select_related("revision", "revision__integration")
            .filter(pk=check_id)
            .first()
        )
        if check is None or not check.is_open:
            return None
        check.status = BehaviourStatus.RUNNING
        check.started_at = timezone.now()
        check.progress = {"done": 0, "total": 0}
        check.save(update_fields=["status", "started_at", "progress"])
        return check


def _provisional(changes: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The changeset with each unresolved conflict taken as "theirs", and how many."""
    extra = []
    for res in changes.get("resources") or []:
        if not res.get("included", True):
            continue
        open_fields = [f for f in res["fields"] if f["conflict"] and f.get("resolution") is None]
        if not open_fields:
            continue
        if revision_diff.is_whole_resource_conflict(res):
            extra.append({"lineage_id": res["lineage_id"], "path": None, "choose": "theirs"})
        else:
            extra += [
                {"lineage_id": res["lineage_id"], "path": f["path"], "choose": "theirs"}
                for f in open_fields
            ]
    if not extra:
        return changes, 0
    unresolved = changes["summary"]["unresolved"]
    return revision_diff.with_resolutions(changes, extra), unresolved


def _records_for(check: BehaviourCheck, source_id: int | None):
    target_id = check.revision.integration_id
    samples: dict[tuple[int, str], list[Any]] = {}
    ids = [i for i in (target_id, source_id) if i]
    for integration_id, lineage, records in FlowSample.objects.filter(
        integration_id__in=ids
    ).values_list("integration_id", "flow_lineage_id", "records"):
        samples[(integration_id, str(lineage))] = records or []

    def records_for(flow_id: str) -> tuple[list[Any], str]:
        if check.records is not None:
            return list(check.records), "given"
        if samples.get((target_id, flow_id)):
            return samples[(target_id, flow_id)], "target"
        if source_id and samples.get((source_id, flow_id)):
            # a flow the target has never run (new, or never live): the source's samples
            return samples[(source_id, flow_id)], "source"
        return [], "none"

    return records_for


def _referenced(documents: list[dict[str, Any]], kind: str) -> set[str]:
    found: set[str] = set()
    for doc in documents:
        for body in doc["resources"].values():
            if body.get("type") != "step":
                continue
            if kind == "connection" and body.get("connection"):
                found.add(str(body["connection"]))
            config = body.get("config") if isinstance(body.get("config"), dict) else {}
            if kind == "cache":
                for m in config.get("mappings") or []:
                    if isinstance(m, dict) and m.get("lookup_cache"):
                        found.add(str(m["lookup_cache"]))
            if kind == "hooks" and config.get("hooks"):
                found.add("hooks")
    return found


def _mask_result(result: dict[str, Any], secrets: set[str]) -> dict[str, Any]:
    for flow in result["flows"]:
        for record in flow["different"]:
            for row in record["fields"]:
                leaf = row["path"].rsplit(".", 1)[-1].split("[", 1)[0]
                for side in ("ours", "theirs"):
                    if _masked_field(leaf) and row[side] not in (None, ""):
                        row[side] = MASK
                    else:
                        row[side] = mask_record(row[side], secrets)
        for side in ("ours", "theirs"):
            for error in flow["errors"][side]:
                error["message"] = mask_record(error["message"], secrets)
    return result


def behaviour_check_execute(
    *, check_id: int, transport: httpx.BaseTransport | None = None
) -> BehaviourCheck | None:
    """Compute a queued check and store its result (what `behaviour_check_run` does).

    Idempotent: a final check is left as it is. `transport` replaces the network for the
    lookups that read over HTTP (imports never send in a test run).
    """
    check = _claim(check_id)
    if check is None:
        return BehaviourCheck.objects.filter(pk=check_id).first()
    try:
        result = _compute(check, transport)
        status, message = BehaviourStatus.SUCCEEDED, ""
    except Exception as exc:  # the check must end, and say why, whatever happened
        log.exception("Behaviour check %s stopped", check.pk)
        result = {}
        status = BehaviourStatus.FAILED
        message = f"The behaviour test stopped: {exc}" if str(exc) else type(exc).__name__
    BehaviourCheck.objects.filter(pk=check.pk, status=BehaviourStatus.RUNNING).update(
        status=status, result=result, message=message[:2000], ended_at=timezone.now()
    )
    check.refresh_from_db()
    return check


def _compute(check: BehaviourCheck, transport: httpx.BaseTransport | None) -> dict[str, Any]:
    from .netguard import make_url_guard

    revision = check.revision
    target_id = revision.integration_id
    ours = document_of(target_id)
    changes, provisional = _provisional(changes_of(revision))
    theirs = revision_diff.apply_changes(ours, changes)
    changed = {str(r["lineage_id"]) for r in changes["resources"] if r.get("included", True)}
    documents = [ours, theirs]
    cache_ids = _referenced(documents, "cache")
    caches: dict[str, dict[str, Any]] = {cid: {} for cid in cache_ids}
    for lineage, key, value in LookupCacheEntry.objects.filter(
        cache__integration_id=target_id, cache__lineage_id__in=cache_ids
    ).values_list("cache__lineage_id", "key", "value"):
        caches[str(lineage)][key] = value
    credentials = {
        str(c.lineage_id): c.credentials
        for c in Connection.objects.filter(
            integration_id=target_id, lineage_id__in=_referenced(documents, "connection")
        ).only("lineage_id", "credentials")
    }

    def on_flow(done: int, total: int) -> None:
        BehaviourCheck.objects.filter(pk=check.pk, status=BehaviourStatus.RUNNING).update(
            progress={"done": done, "total": total}
        )

    kwargs: dict[str, Any] = {
        "caches": caches,
        "credentials": credentials,
        "transport": transport,
        "url_guard": make_url_guard(
            allow_private=settings.ILM_RUN_ALLOW_PRIVATE,
            allowed_hosts=settings.ILM_RUN_ALLOWED_HOSTS,
        ),
        "on_flow": on_flow,
    }
    records_for = _records_for(check, revision.source_integration_id)
    if _referenced(documents, "hooks"):
        from .engine import scripts_of
        from .hooks import V8HookRunner

        limits = {
            "time_limit_ms": settings.ILM_RUN_HOOK_TIME_LIMIT_MS,
            "memory_limit_mb": settings.ILM_RUN_HOOK_MEMORY_LIMIT_MB,
        }
        with (
            V8HookRunner(scripts_of(ours), **limits) as mine,
            V8HookRunner(scripts_of(theirs), **limits) as theirs_hooks,
        ):
            result = behaviour.behaviour_diff(
                ours,
                theirs,
                changed,
                records_for,
                hooks={"ours": mine, "theirs": theirs_hooks},
                **kwargs,
            )
    else:
        result = behaviour.behaviour_diff(ours, theirs, changed, records_for, **kwargs)
    result["unresolved_as_theirs"] = provisional
    return _mask_result(result, _secret_values(credentials))
