"""The seed scenario end to end, every operation run by a real Celery worker on PostgreSQL.

Production "Storefront orders → ERP" is cloned into a sandbox; the sandbox changes flows,
steps, a mapping and a lookup cache's settings (and gains a cache of its own, with data);
production meanwhile changes a script and the same flow schedule the sandbox changed. The
pull into production shows that one conflict, the reviewer takes the sandbox's value, an
approver approves, the merge lands; then production is reverted to before the merge and
pulled again, which shows exactly what is still to bring over: the same changes again.
"""

from __future__ import annotations

import pytest

from audit.context import Source
from audit.models import Action, Event
from integrations import services as domain
from integrations.models import (
    Environment,
    Flow,
    FlowStep,
    LookupCache,
    LookupCacheEntry,
    Role,
    Script,
    StepKind,
)
from revisions import approvals, services
from revisions.apply import change_reason
from revisions.document import document_of
from revisions.errors import ApprovalRequired, UnresolvedConflicts
from revisions.models import ChangeSet, Revision, RevisionStatus, RevisionType
from tests.factories import (
    CacheEntryFactory,
    ConnectionFactory,
    FlowFactory,
    LookupCacheFactory,
    ScriptFactory,
    StepFactory,
    UserFactory,
)
from tests.integration.workers import wait_for_status

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _twin(model, integration, original):
    return model.objects.get(integration=integration, lineage_id=original.lineage_id)


def _changes(revision: Revision) -> dict[str, dict]:
    """The pull's changeset by lineage id: action and {path: field change}."""
    data = ChangeSet.objects.get(revision=revision).data
    return {
        r["lineage_id"]: {
            "type": r["type"],
            "action": r["action"],
            "fields": {f["path"]: f for f in r["fields"]},
        }
        for r in data["resources"]
    }


def _shape(changes: dict[str, dict]) -> dict[str, tuple]:
    """What a changeset brings over, without resolutions: action, paths and conflicts."""
    return {
        lineage_id: (
            c["action"],
            sorted(
                (path, f["base"], f["ours"], f["theirs"], f["conflict"])
                for path, f in c["fields"].items()
            ),
        )
        for lineage_id, c in changes.items()
    }


def _history_count(integration) -> int:
    return sum(
        model.history.filter(integration_id=integration.pk).count()
        for model in (Flow, FlowStep, Script, LookupCache)
    )


@pytest.fixture
def production(integration):
    """The seed production integration: a connection, a cache with data, two flows, a script."""
    erp = ConnectionFactory(integration=integration, name="ERP API")
    skus = LookupCacheFactory(
        integration=integration, name="SKU map", key_path="sku", settings={"ttl_days": 30}
    )
    for n in range(3):
        CacheEntryFactory(cache=skus, key=f"SKU-{n}", value={"erp_item": f"ITEM-{n}"}, size=30)
    orders = FlowFactory(integration=integration, name="Orders to ERP", schedule="*/15 * * * *")
    StepFactory(flow=orders, name="Fetch orders", position=1, kind=StepKind.EXPORT)
    StepFactory(
        flow=orders,
        name="Map order lines",
        position=2,
        kind=StepKind.TRANSFORM,
        config={
            "mappings": [
                {"source": "sku", "target": "item", "lookup_cache": str(skus.lineage_id)},
                {"source": "qty", "target": "quantity", "lookup_cache": None},
            ]
        },
    )
    StepFactory(flow=orders, name="Post to ERP", position=3, kind=StepKind.IMPORT, connection=erp)
    inventory = FlowFactory(integration=integration, name="Inventory sync", schedule="0 * * * *")
    StepFactory(flow=inventory, name="Read stock", position=1, kind=StepKind.EXPORT)
    StepFactory(flow=inventory, name="Write stock", position=2, kind=StepKind.IMPORT)
    ScriptFactory(integration=integration, name="Tax rounding", code="return round(x, 2);\n")
    integration.refresh_from_db()
    return integration


def test_clone_change_pull_resolve_merge_revert_and_repull(production, developer, celery_worker):
    approver = UserFactory(username="april", role=Role.APPROVER)
    workers = [celery_worker]
    prod_doc_at_start = document_of(production)

    # Clone production into a sandbox: the worker copies it, same lineage ids, no cache data.
    sandbox = services.integration_clone(
        source=production, user=developer, name="Orders sandbox", environment=Environment.SANDBOX
    )
    clone_revision = Revision.objects.get(integration=sandbox, type=RevisionType.CLONE)
    wait_for_status(clone_revision, RevisionStatus.COMPLETED, workers=workers)
    sandbox.refresh_from_db()
    assert sandbox.cloned_from_id == production.pk
    assert document_of(sandbox)["resources"] == prod_doc_at_start["resources"]
    assert not LookupCacheEntry.objects.filter(cache__integration=sandbox).exists()

    # The sandbox changes flows, steps, a mapping and a lookup cache.
    orders = Flow.objects.get(integration=production, name="Orders to ERP")
    inventory = Flow.objects.get(integration=production, name="Inventory sync")
    map_step = FlowStep.objects.get(integration=production, name="Map order lines")
    skus = LookupCache.objects.get(integration=production, name="SKU map")
    script = Script.objects.get(integration=production)

    sb_orders = _twin(Flow, sandbox, orders)
    domain.resource_update(instance=sb_orders, data={"schedule": "*/5 * * * *"})
    sb_map = _twin(FlowStep, sandbox, map_step)
    domain.resource_update(
        instance=sb_map,
        data={
            "name": "Map order lines and prices",
            "config": {
                "mappings": [
                    {"source": "sku", "target": "item_no", "lookup_cache": str(skus.lineage_id)},
                    {"source": "qty", "target": "quantity", "lookup_cache": None},
                ]
            },
        },
    )
    domain.resource_update(
        instance=_twin(LookupCache, sandbox, skus), data={"settings": {"ttl_days": 7}}
    )
    for step in FlowStep.objects.filter(integration=sandbox, flow=_twin(Flow, sandbox, inventory)):
        domain.resource_delete(instance=step)
    domain.resource_delete(instance=_twin(Flow, sandbox, inventory))
    returns = domain.resource_create(
        integration=sandbox,
        type_key="flow",
        data={"name": "Returns to ERP", "description": "Credit notes", "schedule": "0 6 * * *"},
    )
    warehouses = domain.resource_create(
        integration=sandbox,
        type_key="lookup_cache",
        data={"name": "Warehouse map", "key_path": "code", "settings": {"ttl_days": 1}},
    )
    domain.cache_entries_add(cache=warehouses, entries=[{"key": "W1", "value": {"site": "Lyon"}}])
    return_step = domain.resource_create(
        integration=sandbox,
        type_key="step",
        data={
            "flow": returns,
            "name": "Map returns",
            "position": 1,
            "kind": StepKind.TRANSFORM,
            "config": {
                "mappings": [
                    {"source": "wh", "target": "site", "lookup_cache": str(warehouses.lineage_id)}
                ]
            },
        },
    )

    # Production meanwhile: the same schedule, differently (a conflict), and a script.
    domain.resource_update(instance=orders, data={"schedule": "*/10 * * * *"})
    domain.resource_update(instance=script, data={"code": "return round(x, 4);\n"})
    production.refresh_from_db()
    prod_doc_before_pull = document_of(production)
    version_before_pull = production.version

    # Pull the sandbox into production: computed by the worker, nothing written to the target.
    pull = services.pull_create(target=production, source=sandbox, user=developer)
    pull = wait_for_status(pull, RevisionStatus.READY, workers=workers)
    production.refresh_from_db()
    assert production.version == version_before_pull
    assert document_of(production) == prod_doc_before_pull

    changes = _changes(pull)
    inventory_steps = {
        str(s.lineage_id) for s in FlowStep.objects.filter(integration=production, flow=inventory)
    }
    assert {lid: c["action"] for lid, c in changes.items()} == {
        str(orders.lineage_id): "modified",
        str(map_step.lineage_id): "modified",
        str(skus.lineage_id): "modified",
        str(inventory.lineage_id): "deleted",
        **dict.fromkeys(inventory_steps, "deleted"),
        str(returns.lineage_id): "added",
        str(warehouses.lineage_id): "added",
        str(return_step.lineage_id): "added",
    }
    schedule = changes[str(orders.lineage_id)]["fields"]["schedule"]
    assert (schedule["base"], schedule["ours"], schedule["theirs"], schedule["conflict"]) == (
        "*/15 * * * *",
        "*/10 * * * *",
        "*/5 * * * *",
        True,
    )
    assert not any(
        f["conflict"]
        for lid, c in changes.items()
        for f in c["fields"].values()
        if lid != str(orders.lineage_id)
    )
    assert pull.summary["conflicts"] == 1
    assert pull.summary["unresolved"] == 1
    assert str(script.lineage_id) not in changes  # only production changed it

    # A merge with the conflict open is refused; so is one without an approval.
    with pytest.raises(UnresolvedConflicts):
        services.merge_start(revision=pull, user=developer)
    summary = services.resolution_set(
        revision=pull,
        user=developer,
        lineage_id=str(orders.lineage_id),
        path="schedule",
        choose="theirs",
    )
    pull.refresh_from_db()
    assert pull.summary["unresolved"] == 0
    assert (summary or pull.summary)["conflicts"] == 1
    with pytest.raises(ApprovalRequired):
        services.merge_start(revision=pull, user=developer)

    # Four eyes: the developer asks, the approver approves and the merge starts.
    history_before_merge = _history_count(production)
    approvals.approval_request(revision=pull, user=developer, comment="Sandbox changes")
    approvals.approval_approve(revision=pull, user=approver, comment="Looks right")
    pull = wait_for_status(pull, RevisionStatus.COMPLETED, workers=workers)

    production.refresh_from_db()
    assert production.version == version_before_pull + 1
    merged = document_of(production)
    expected = dict(document_of(sandbox)["resources"])
    expected[str(script.lineage_id)] = prod_doc_before_pull["resources"][str(script.lineage_id)]
    assert merged["resources"] == expected
    assert merged["integration"] == prod_doc_before_pull["integration"]
    # Caches: settings carried, data never; the existing cache keeps its entries.
    assert LookupCache.objects.get(pk=skus.pk).settings == {"ttl_days": 7}
    assert skus.entries.count() == 3
    new_cache = _twin(LookupCache, production, warehouses)
    assert new_cache.entries.count() == 0
    # One history row per resource the merge touched, each naming the revision.
    touched = len(changes)
    assert _history_count(production) == history_before_merge + touched
    reason = change_reason(pull)
    assert (
        sum(
            model.history.filter(integration_id=production.pk, history_change_reason=reason).count()
            for model in (Flow, FlowStep, LookupCache)
        )
        == touched
    )

    # The worker wrote them in the approver's name, as one ILM operation (the audit).
    merge_events = Event.objects.filter(
        revision_id=pull.pk,
        integration_id=production.pk,
        action__in=[Action.CREATED, Action.UPDATED, Action.DELETED],
    )
    assert merge_events.count() == touched
    assert set(merge_events.values_list("source", "user_id")) == {(Source.ILM, approver.pk)}
    assert len(set(merge_events.values_list("operation_id", flat=True))) == 1
    assert Event.objects.filter(revision_id=pull.pk, action=Action.MERGE).count() == 1

    # Revert production to before the merge: back to exactly that document.
    preview = services.revert_preview(revision=pull, side="before")
    assert {r["lineage_id"] for r in preview["resources"]} == set(changes)
    revert = services.revert_start(revision=pull, user=developer, side="before")
    revert = wait_for_status(revert, RevisionStatus.COMPLETED, workers=workers)
    production.refresh_from_db()
    assert document_of(production) == prod_doc_before_pull
    assert production.version == version_before_pull + 2
    assert skus.entries.count() == 3
    assert not LookupCache.objects.filter(integration=production, name="Warehouse map").exists()

    # Re-pull: the sync point moved back with the revert, so the same changes (and the same
    # conflict, unresolved on this new pull) are still to bring over.
    repull = services.pull_create(target=production, source=sandbox, user=developer)
    repull = wait_for_status(repull, RevisionStatus.READY, workers=workers)
    assert _shape(_changes(repull)) == _shape(changes)
    assert repull.summary["conflicts"] == 1
    assert repull.summary["unresolved"] == 1
    assert document_of(production) == prod_doc_before_pull
