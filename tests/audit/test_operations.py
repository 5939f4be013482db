"""ILM operations appear in the audit: the starter, source ilm, one id per operation."""

import pytest

from audit.models import Event

pytestmark = pytest.mark.django_db


def test_clone_is_recorded_with_its_copied_resources(stocked, sandbox, developer):
    clone_events = Event.objects.filter(integration_id=sandbox.pk)
    assert clone_events.filter(resource_type="revision", action="clone").exists()
    copied = clone_events.filter(action="created").exclude(
        resource_type__in=["access", "integration"]
    )
    assert {e.resource_type for e in copied} >= {"connection", "flow", "step", "script"}
    assert {e.username for e in copied} == {"dev"}


@pytest.mark.django_db(transaction=True)
def test_merge_changes_carry_the_starter_source_ilm_and_one_operation(
    sandbox_pull, sandbox, developer, run_on_commit
):
    # Transactional, as in production: the engine's on-commit events fire inside the
    # task's audit context (a test transaction would hold them until after it).
    from revisions import services

    revision = sandbox_pull
    assert revision.status == "ready"
    run_on_commit(services.merge_start, revision=revision, user=developer)
    revision.refresh_from_db()
    assert revision.status == "completed"

    merge = Event.objects.get(resource_type="revision", action="merge", revision_id=revision.pk)
    assert merge.username == "dev" and merge.source == "ilm"
    assert merge.integration_id == sandbox.pk
    group = Event.objects.filter(operation_id=merge.operation_id)
    changed = group.filter(action="updated").exclude(resource_type="integration")
    assert {e.resource_name for e in changed} >= {"Orders to ERP", "ERP API"}
    assert {e.source for e in group} == {"ilm"}
    assert {e.username for e in group} == {"dev"}
    assert {e.revision_id for e in changed} == {revision.pk}
    flow = changed.get(resource_name="Orders to ERP")
    assert {c["field"]: c["new"] for c in flow.changes} == {
        "description": "Every paid order, hourly"
    }
