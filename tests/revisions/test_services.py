"""The revision engine's services end to end (eager Celery, tasks run on commit)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from audit.signals import revision_event
from integrations.models import (
    Connection,
    Environment,
    Flow,
    FlowStep,
    LookupCache,
    LookupCacheEntry,
    Script,
)
from integrations.services import resource_create, resource_delete, resource_update
from revisions import selectors, services, tasks
from revisions.diff import INTEGRATION_KEY
from revisions.document import document_of
from revisions.errors import (
    ApprovalRequired,
    InvalidState,
    NothingToRevert,
    OperationInProgress,
    StaleReview,
    UnresolvedConflicts,
)
from revisions.models import Blob, Resolution, Revision, RevisionStatus, RevisionType, SyncPoint
from tests.factories import (
    CacheEntryFactory,
    ConnectionFactory,
    FlowFactory,
    IntegrationFactory,
    LookupCacheFactory,
    ScriptFactory,
    StepFactory,
)
from tests.revisions.conftest import document_of_tree

pytestmark = pytest.mark.django_db
S = RevisionStatus


@pytest.fixture
def run(django_capture_on_commit_callbacks):
    """Call a service and run what it enqueued on commit (eager Celery)."""

    def call(fn, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            result = fn(**kwargs)
        if hasattr(result, "refresh_from_db"):
            result.refresh_from_db()
        return result

    return call


@pytest.fixture
def prod(integration):
    conn = ConnectionFactory(integration=integration, name="ERP API", credentials={"k": "secret"})
    cache = LookupCacheFactory(integration=integration, name="SKU map")
    CacheEntryFactory(cache=cache, key="A", value={"v": 1})
    flow = FlowFactory(integration=integration, name="Orders")
    step = StepFactory(
        flow=flow,
        name="Map",
        connection=conn,
        config={"mappings": [{"source": "sku", "target": "item", "lookup_cache": None}]},
    )
    script = ScriptFactory(integration=integration, name="Tax")
    integration.refresh_from_db()
    return {
        "integration": integration,
        "connection": conn,
        "cache": cache,
        "flow": flow,
        "step": step,
        "script": script,
    }


@pytest.fixture
def sandbox(prod, developer, run):
    return run(
        services.integration_clone,
        source=prod["integration"],
        user=developer,
        name="Orders sandbox",
        environment=Environment.SANDBOX,
    )


def twin(obj, integration):
    return type(obj).objects.get(integration=integration, lineage_id=obj.lineage_id)


def fresh(obj):
    obj.refresh_from_db()
    return obj


# Snapshots ------------------------------------------------------------------------------


def test_snapshot_is_completed_numbered_and_stores_the_document(prod, developer):
    integration = prod["integration"]
    first = services.snapshot_create(integration=integration, user=developer, description="One")
    second = services.snapshot_create(integration=integration, user=developer, description="Two")
    assert (first.number, second.number) == (1, 2)
    assert first.status == S.COMPLETED and first.type == RevisionType.SNAPSHOT
    assert document_of_tree(first.tree_after) == document_of(integration)
    assert second.tree_after_id == first.tree_after_id


def test_snapshot_of_an_unchanged_integration_adds_no_blobs(prod, developer):
    services.snapshot_create(integration=prod["integration"], user=developer)
    blobs = Blob.objects.count()
    services.snapshot_create(integration=prod["integration"], user=developer)
    assert Blob.objects.count() == blobs


def test_snapshot_sends_a_revision_event(prod, developer, django_capture_on_commit_callbacks):
    seen = []

    def listener(sender, revision, verb, user, **kwargs):
        seen.append((verb, revision.pk, user))

    revision_event.connect(listener)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            snap = services.snapshot_create(integration=prod["integration"], user=developer)
    finally:
        revision_event.disconnect(listener)
    assert seen == [("snapshot", snap.pk, developer)]


# Clone ----------------------------------------------------------------------------------


def test_clone_copies_resources_with_new_pks_and_the_same_lineage(prod, sandbox):
    source = prod["integration"]
    assert sandbox.cloned_from == source and sandbox.lineage_id == source.lineage_id
    assert sandbox.environment == Environment.SANDBOX
    assert document_of(sandbox) == document_of(source)
    step = twin(prod["step"], sandbox)
    assert step.pk != prod["step"].pk
    assert step.connection.integration_id == sandbox.pk
    assert step.flow.integration_id == sandbox.pk
    clone_rev = Revision.objects.get(integration=sandbox)
    assert (clone_rev.type, clone_rev.status) == (RevisionType.CLONE, S.COMPLETED)
    assert SyncPoint.objects.filter(integration=sandbox, other=source).exists()
    assert SyncPoint.objects.filter(integration=source, other=sandbox).exists()


def test_a_new_clone_starts_at_version_1_and_counts_changes_from_there(prod, sandbox, developer):
    sandbox.refresh_from_db()
    assert sandbox.version == 1
    flow = twin(prod["flow"], sandbox)
    flow.description = "Changed in the sandbox"
    flow.save()
    sandbox.refresh_from_db()
    assert sandbox.version == 2


def test_clone_copies_no_credentials_and_no_cache_data_unless_asked(prod, sandbox):
    assert twin(prod["connection"], sandbox).credentials == {}
    assert not LookupCacheEntry.objects.filter(cache__integration=sandbox).exists()


def test_clone_copies_cache_data_when_asked(prod, developer, run):
    clone = run(
        services.integration_clone,
        source=prod["integration"],
        user=developer,
        name="With data",
        environment=Environment.SANDBOX,
        copy_cache_data=True,
    )
    entries = LookupCacheEntry.objects.filter(cache__integration=clone)
    assert [(e.key, e.value) for e in entries] == [("A", {"v": 1})]


def test_clone_needs_a_name_and_a_known_environment(prod, developer):
    with pytest.raises(ValidationError) as exc:
        services.integration_clone(
            source=prod["integration"], user=developer, name=" ", environment="moon"
        )
    assert set(exc.value.message_dict) == {"name", "environment"}


def test_clone_gives_its_creator_manage_access(sandbox, developer):
    assert sandbox.grants.filter(user=developer, level="manage").exists()


# Pull -----------------------------------------------------------------------------------


def pull(run, target, source, user):
    return run(services.pull_create, target=target, source=source, user=user)


def test_pull_computes_a_changeset_and_writes_nothing_to_the_target(prod, sandbox, developer, run):
    resource_update(instance=twin(prod["script"], sandbox), data={"code": "// v2"})
    FlowFactory(integration=sandbox, name="Returns")
    target = prod["integration"]
    before = (document_of(target), fresh(target).version)
    revision = pull(run, target, sandbox, developer)
    assert revision.status == S.READY
    assert revision.summary["added"] == 1 and revision.summary["modified"] == 1
    assert revision.summary["conflicts"] == 0
    assert (document_of(target), fresh(target).version) == before
    changes = selectors.changes_for_review(revision)
    script = next(r for r in changes["resources"] if r["type"] == "script")
    assert script["fields"] == [
        {
            "path": "code",
            "base": prod["script"].code,
            "ours": prod["script"].code,
            "theirs": "// v2",
            "conflict": False,
            "resolution": None,
        }
    ]


def test_pull_from_outside_the_family_is_refused(prod, developer):
    stranger = IntegrationFactory(name="Other")
    with pytest.raises(ValidationError, match="not of the same family"):
        services.pull_create(target=prod["integration"], source=stranger, user=developer)
    assert not Revision.objects.exists()


def test_pull_from_itself_is_refused(prod, developer):
    with pytest.raises(ValidationError, match="itself"):
        services.pull_create(target=prod["integration"], source=prod["integration"], user=developer)


def test_a_second_open_operation_is_refused(prod, sandbox, developer, run):
    pull(run, prod["integration"], sandbox, developer)
    with pytest.raises(OperationInProgress, match="pull #"):
        services.pull_create(target=prod["integration"], source=sandbox, user=developer)
    assert Revision.objects.filter(integration=prod["integration"]).count() == 1


def test_siblings_of_one_family_can_pull_from_each_other(prod, sandbox, developer, run):
    other = run(
        services.integration_clone,
        source=prod["integration"],
        user=developer,
        name="Second sandbox",
        environment=Environment.SANDBOX,
    )
    resource_update(instance=twin(prod["flow"], sandbox), data={"schedule": "0 1 * * *"})
    revision = pull(run, other, sandbox, developer)
    assert revision.status == S.READY
    assert revision.summary["modified"] == 1 and revision.summary["conflicts"] == 0
    assert list(selectors.family_of(sandbox, developer)) == sorted(
        [prod["integration"], other], key=lambda i: (i.name, i.pk)
    )


def test_ignore_fields_are_neither_shown_nor_carried(prod, sandbox, developer, run):
    target = prod["integration"]
    target.ignore_fields = {"connection": ["config.base_url"]}
    target.environment = Environment.SANDBOX
    target.save()
    conn = twin(prod["connection"], sandbox)
    resource_update(instance=conn, data={"config": {"base_url": "https://sbx", "timeout": 5}})
    revision = pull(run, fresh(target), sandbox, developer)
    [entry] = selectors.changes_for_review(revision)["resources"]
    assert [f["path"] for f in entry["fields"]] == ["config.timeout"]
    run(services.merge_start, revision=revision, user=developer)
    assert fresh(prod["connection"]).config == {
        "base_url": "https://api.example.com",
        "timeout": 5,
    }


# Conflicts, resolutions, merge -------------------------------------------------------------


@pytest.fixture
def sandbox_target(prod, sandbox, developer, run):
    """A pull into the sandbox (no approval needed) with one conflict on the flow."""
    resource_update(instance=prod["flow"], data={"schedule": "0 * * * *"})
    resource_update(instance=prod["script"], data={"code": "// from prod"})
    resource_update(instance=twin(prod["flow"], sandbox), data={"schedule": "*/5 * * * *"})
    return pull(run, fresh(sandbox), prod["integration"], developer)


def test_both_sides_changing_a_path_differently_is_a_conflict(sandbox_target):
    changes = selectors.changes_for_review(sandbox_target)
    flow = next(r for r in changes["resources"] if r["type"] == "flow")
    [field] = flow["fields"]
    assert (field["path"], field["ours"], field["theirs"], field["conflict"]) == (
        "schedule",
        "*/5 * * * *",
        "0 * * * *",
        True,
    )
    assert sandbox_target.summary["unresolved"] == 1


def test_merge_with_unresolved_conflicts_is_refused(sandbox_target, developer):
    with pytest.raises(UnresolvedConflicts):
        services.merge_start(revision=sandbox_target, user=developer)
    assert fresh(sandbox_target).status == S.READY


def test_resolving_then_merging_applies_the_choices(prod, sandbox, sandbox_target, developer, run):
    flow_lid = str(prod["flow"].lineage_id)
    summary = services.resolution_set(
        revision=sandbox_target, user=developer, lineage_id=flow_lid, path="schedule", choose="ours"
    )
    assert summary["unresolved"] == 0
    version = fresh(sandbox).version
    revision = run(services.merge_start, revision=sandbox_target, user=developer)
    assert revision.status == S.COMPLETED
    assert twin(prod["flow"], sandbox).schedule == "*/5 * * * *"  # ours kept
    assert twin(prod["script"], sandbox).code == "// from prod"  # theirs taken
    assert fresh(sandbox).version == version + 1
    auto = Revision.objects.filter(operation=revision).order_by("number")
    assert [a.description for a in auto] == [
        f"Before merging pull #{revision.number}",
        f"After merging pull #{revision.number}",
    ]
    assert revision.tree_after_id == auto[1].tree_after_id
    history = twin(prod["script"], sandbox).history.first()
    assert f"pull #{revision.number}" in history.history_change_reason


def test_a_resolution_that_is_not_a_conflict_is_refused(prod, sandbox_target, developer):
    with pytest.raises(ValidationError, match="not a conflict"):
        services.resolution_set(
            revision=sandbox_target,
            user=developer,
            lineage_id=str(prod["script"].lineage_id),
            path="code",
            choose="ours",
        )
    with pytest.raises(ValidationError, match="ours"):
        services.resolution_set(
            revision=sandbox_target,
            user=developer,
            lineage_id=str(prod["flow"].lineage_id),
            path="schedule",
            choose="mine",
        )
    assert not Resolution.objects.exists()


def test_resolutions_set_is_all_or_nothing(prod, sandbox_target, developer):
    with pytest.raises(ValidationError, match="Resolution 2"):
        services.resolutions_set(
            revision=sandbox_target,
            user=developer,
            resolutions=[
                {"lineage_id": str(prod["flow"].lineage_id), "path": "schedule", "choose": "ours"},
                {"lineage_id": "00000000-0000-4000-8000-000000000999", "choose": "ours"},
            ],
        )
    assert not Resolution.objects.exists()


def test_leaving_a_resource_out_keeps_ours(prod, sandbox, sandbox_target, developer, run):
    services.resolutions_set(
        revision=sandbox_target,
        user=developer,
        resolutions=[
            {"lineage_id": str(prod["flow"].lineage_id), "path": None, "choose": "ours"},
            {"lineage_id": str(prod["script"].lineage_id), "path": None, "choose": "ours"},
        ],
    )
    assert fresh(sandbox_target).summary["unresolved"] == 0
    code = twin(prod["script"], sandbox).code
    run(services.merge_start, revision=sandbox_target, user=developer)
    assert twin(prod["script"], sandbox).code == code != "// from prod"
    assert twin(prod["flow"], sandbox).schedule == "*/5 * * * *"


def test_refresh_keeps_resolutions_that_still_apply(prod, sandbox, sandbox_target, developer):
    flow_lid = str(prod["flow"].lineage_id)
    services.resolution_set(
        revision=sandbox_target,
        user=developer,
        lineage_id=flow_lid,
        path="schedule",
        choose="theirs",
    )
    resource_update(instance=twin(prod["script"], sandbox), data={"name": "Tax v2"})
    services.pull_refresh(revision=sandbox_target, user=developer)
    assert fresh(sandbox_target).summary["unresolved"] == 0
    assert Resolution.objects.filter(revision=sandbox_target).count() == 1
    # The target changed again: the sandbox now agrees with prod, so the choice lapses.
    resource_update(instance=twin(prod["flow"], sandbox), data={"schedule": "0 * * * *"})
    services.pull_refresh(revision=sandbox_target, user=developer)
    assert not Resolution.objects.filter(revision=sandbox_target).exists()


def test_merge_of_a_stale_review_is_refused(prod, sandbox, sandbox_target, developer):
    services.resolution_set(
        revision=sandbox_target,
        user=developer,
        lineage_id=str(prod["flow"].lineage_id),
        path="schedule",
        choose="theirs",
    )
    resource_update(instance=twin(prod["script"], sandbox), data={"name": "Changed meanwhile"})
    with pytest.raises(StaleReview, match="refresh"):
        services.merge_start(revision=sandbox_target, user=developer)
    assert fresh(sandbox_target).status == S.READY


def test_merge_that_finds_the_target_changed_fails_and_writes_nothing(
    prod, sandbox, sandbox_target, developer, django_capture_on_commit_callbacks
):
    services.resolution_set(
        revision=sandbox_target,
        user=developer,
        lineage_id=str(prod["flow"].lineage_id),
        path="schedule",
        choose="theirs",
    )
    with django_capture_on_commit_callbacks(execute=False):
        services.merge_start(revision=sandbox_target, user=developer)
    resource_update(instance=twin(prod["script"], sandbox), data={"name": "Changed meanwhile"})
    before = document_of(sandbox)
    tasks.merge_run(sandbox_target.pk)
    revision = fresh(sandbox_target)
    assert revision.status == S.FAILED
    assert "refresh the pull" in revision.error
    assert document_of(sandbox) == before


def test_merges_and_failed_merges_leave_the_garbage_collector_as_they_found_it(
    prod, sandbox, sandbox_target, developer, django_capture_on_commit_callbacks
):
    # A merge pauses Python's cyclic collector while it holds its documents; a worker
    # that went on without it would grow with every cycle it leaves.
    import gc

    services.resolution_set(
        revision=sandbox_target,
        user=developer,
        lineage_id=str(prod["flow"].lineage_id),
        path="schedule",
        choose="theirs",
    )
    gc.disable()
    try:  # paused by the caller: still paused afterwards
        with django_capture_on_commit_callbacks(execute=False):
            services.merge_start(revision=sandbox_target, user=developer)
        assert not gc.isenabled()
    finally:
        gc.enable()
    resource_update(instance=twin(prod["script"], sandbox), data={"name": "Changed meanwhile"})
    tasks.merge_run(sandbox_target.pk)  # fails: the target changed meanwhile
    assert fresh(sandbox_target).status == S.FAILED
    assert gc.isenabled()


def test_merge_into_production_needs_an_approval(prod, sandbox, developer, approver, run):
    resource_update(instance=twin(prod["script"], sandbox), data={"code": "// v2"})
    revision = pull(run, prod["integration"], sandbox, developer)
    with pytest.raises(ApprovalRequired):
        services.merge_start(revision=revision, user=developer)
    from revisions import approvals

    approvals.approval_request(revision=revision, user=developer)
    run(approvals.approval_approve, revision=revision, user=approver)
    assert fresh(revision).status == S.COMPLETED
    assert fresh(prod["script"]).code == "// v2"


def test_merge_task_delivered_twice_merges_once(prod, sandbox, sandbox_target, developer, run):
    services.resolution_set(
        revision=sandbox_target,
        user=developer,
        lineage_id=str(prod["flow"].lineage_id),
        path="schedule",
        choose="theirs",
    )
    run(services.merge_start, revision=sandbox_target, user=developer)
    revisions = Revision.objects.count()
    version = fresh(sandbox).version
    assert tasks.merge_run(sandbox_target.pk) == S.COMPLETED
    assert (Revision.objects.count(), fresh(sandbox).version) == (revisions, version)


def test_merge_creates_and_deletes_in_dependency_order(prod, sandbox, developer, run):
    conn = resource_create(
        integration=sandbox, type_key="connection", data={"name": "New API", "kind": "http"}
    )
    flow = resource_create(integration=sandbox, type_key="flow", data={"name": "New flow"})
    resource_create(
        integration=sandbox,
        type_key="step",
        data={"name": "New step", "flow": flow, "kind": "import", "connection": conn},
    )
    resource_delete(instance=twin(prod["step"], sandbox))
    resource_delete(instance=twin(prod["connection"], sandbox))
    target = prod["integration"]
    target.environment = Environment.SANDBOX  # no approval needed for this test
    target.save()
    revision = pull(run, fresh(target), sandbox, developer)
    revision = run(services.merge_start, revision=fresh(revision), user=developer)
    assert revision.status == S.COMPLETED, revision.error
    assert document_of(target)["resources"] == document_of(sandbox)["resources"]
    assert not Connection.objects.filter(pk=prod["connection"].pk).exists()
    new_step = FlowStep.objects.get(integration=target, name="New step")
    assert new_step.connection.integration_id == target.pk


# Cancel ---------------------------------------------------------------------------------


def test_cancel_closes_the_pull_and_frees_the_integration(
    prod, sandbox, sandbox_target, developer, run
):
    services.revision_cancel(revision=sandbox_target, user=developer)
    assert fresh(sandbox_target).status == S.CANCELED
    with pytest.raises(InvalidState):
        services.revision_cancel(revision=sandbox_target, user=developer)
    assert pull(run, fresh(sandbox), prod["integration"], developer).status == S.READY


# Revert ---------------------------------------------------------------------------------


def test_revert_to_before_a_merge_then_re_pull_shows_the_changes_again(
    prod, sandbox, developer, run
):
    target = prod["integration"]
    target.environment = Environment.SANDBOX
    target.save()
    resource_update(instance=twin(prod["script"], sandbox), data={"code": "// v2"})
    LookupCacheFactory(integration=sandbox, name="New cache")
    first = pull(run, fresh(target), sandbox, developer)
    first_changes = selectors.changes_for_review(first)
    run(services.merge_start, revision=first, user=developer)
    assert fresh(prod["script"]).code == "// v2"
    entries = LookupCacheEntry.objects.filter(cache=prod["cache"]).count()

    preview = services.revert_preview(revision=fresh(first), side="before")
    assert preview["summary"]["deleted"] == 1 and preview["summary"]["modified"] == 1
    revert = run(services.revert_start, revision=fresh(first), user=developer, side="before")
    assert revert.status == S.COMPLETED, revert.error
    assert document_of(target) == document_of_tree(fresh(first).tree_before)
    assert LookupCacheEntry.objects.filter(cache=prod["cache"]).count() == entries

    again = pull(run, fresh(target), sandbox, developer)
    assert selectors.changes_for_review(again)["resources"] == first_changes["resources"]


def test_revert_brings_back_deleted_resources_with_their_lineage(prod, developer, run):
    integration = prod["integration"]
    snap = services.snapshot_create(integration=integration, user=developer, description="ok")
    lineage = prod["script"].lineage_id
    resource_delete(instance=prod["script"])
    FlowFactory(integration=integration, name="Added later")
    revert = run(services.revert_start, revision=snap, user=developer)
    assert revert.status == S.COMPLETED
    assert Script.objects.get(integration=integration).lineage_id == lineage
    assert not Flow.objects.filter(integration=integration, name="Added later").exists()
    assert document_of(integration) == document_of_tree(snap.tree_after)


def test_reverting_to_the_current_state_is_refused(prod, developer):
    snap = services.snapshot_create(integration=prod["integration"], user=developer)
    with pytest.raises(NothingToRevert):
        services.revert_start(revision=snap, user=developer)
    assert Revision.objects.count() == 1


def test_revert_needs_a_known_side_and_a_completed_revision(prod, sandbox, developer, run):
    snap = services.snapshot_create(integration=prod["integration"], user=developer)
    with pytest.raises(ValidationError):
        services.revert_preview(revision=snap, side="sideways")
    clone_rev = Revision.objects.get(integration=sandbox, type=RevisionType.CLONE)
    with pytest.raises(ValidationError, match="a snapshot or clone has one state"):
        services.revert_preview(revision=clone_rev, side="before")


# Failures, sync status, scheduled snapshots ------------------------------------------------


def test_a_pull_whose_source_was_deleted_fails_with_a_message(
    prod, sandbox, developer, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        revision = services.pull_create(target=prod["integration"], source=sandbox, user=developer)
    for step in FlowStep.objects.filter(integration=sandbox):
        step.delete()
    sandbox.delete()
    tasks.pull_compute(revision.pk)
    revision.refresh_from_db()
    assert revision.status == S.FAILED
    assert "deleted" in revision.error


def test_sync_status_follows_local_and_remote_changes(prod, sandbox):
    assert selectors.sync_status(prod["integration"]) is None
    assert selectors.sync_status(sandbox)["state"] == "up_to_date"
    resource_update(instance=twin(prod["script"], sandbox), data={"code": "// local"})
    assert selectors.sync_status(sandbox)["state"] == "local_changes"
    resource_update(instance=prod["flow"], data={"description": "remote"})
    status = selectors.sync_status(sandbox)
    assert status["state"] == "diverged" and status["source"] == prod["integration"]


def test_sync_status_behind(prod, sandbox):
    resource_update(instance=prod["flow"], data={"description": "remote"})
    assert selectors.sync_status(sandbox)["state"] == "behind"


def test_scheduled_snapshots_skip_integrations_that_did_not_change(prod):
    integration = prod["integration"]
    integration.snapshot_schedule = "daily"
    integration.save()
    made = services.scheduled_snapshots_run()
    assert [r.integration_id for r in made] == [integration.pk]
    from datetime import timedelta

    from django.utils import timezone

    later = timezone.now() + timedelta(days=2)
    assert services.scheduled_snapshots_run(now=later) == []
    resource_update(instance=prod["script"], data={"code": "// changed"})
    assert len(services.scheduled_snapshots_run(now=later)) == 1
    assert services.scheduled_snapshots_run(now=later) == []


def test_integration_settings_travel_as_one_entry(prod, sandbox, developer, run):
    sandbox.description = "Better words"
    sandbox.save()
    target = prod["integration"]
    target.environment = Environment.SANDBOX
    target.save()
    revision = pull(run, fresh(target), sandbox, developer)
    [entry] = selectors.changes_for_review(revision)["resources"]
    assert entry["lineage_id"] == INTEGRATION_KEY and entry["type"] == "integration"
    run(services.merge_start, revision=revision, user=developer)
    assert fresh(target).description == "Better words"
    assert fresh(target).name == "Storefront orders → ERP"


def test_lookup_cache_created_by_merge_is_empty_and_existing_keeps_entries(
    prod, sandbox, developer, run
):
    new_cache = LookupCacheFactory(integration=sandbox, name="Fresh")
    CacheEntryFactory(cache=new_cache, key="X")
    cache = twin(prod["cache"], sandbox)
    resource_update(instance=cache, data={"settings": {"ttl_days": 99}})
    target = prod["integration"]
    target.environment = Environment.SANDBOX
    target.save()
    revision = pull(run, fresh(target), sandbox, developer)
    run(services.merge_start, revision=revision, user=developer)
    created = LookupCache.objects.get(integration=target, lineage_id=new_cache.lineage_id)
    assert created.entries.count() == 0
    assert fresh(prod["cache"]).settings == {"ttl_days": 99}
    assert prod["cache"].entries.count() == 1
