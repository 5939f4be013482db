"""A task that cannot do its work records why on the revision and changes nothing.

The merge is queued while no worker runs; the target is edited meanwhile. The worker that
then picks the merge up finds the review stale, marks the pull failed with a message that
says what to do, writes nothing, and leaves the integration free for a new pull.
"""

from __future__ import annotations

import pytest

from integrations import services as domain
from integrations.models import Environment, Flow
from revisions import services
from revisions.document import document_of
from revisions.models import Revision, RevisionStatus
from tests.factories import FlowFactory, StepFactory
from tests.integration.workers import run_tasks_here, wait_for_status

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_merge_of_a_stale_review_fails_with_a_message_and_writes_nothing(
    integration, developer, start_worker
):
    production = integration
    orders = FlowFactory(integration=production, name="Orders to ERP")
    StepFactory(flow=orders, name="Fetch orders", position=1)
    # Set-up, run in this process; no worker runs until the merge is queued.
    with run_tasks_here():
        sandbox = services.integration_clone(
            source=production, user=developer, name="Sandbox", environment=Environment.SANDBOX
        )
        domain.resource_update(instance=orders, data={"schedule": "0 * * * *"})
        pull = services.pull_create(target=sandbox, source=production, user=developer)
    pull.refresh_from_db()
    assert pull.status == RevisionStatus.READY, pull.error

    services.merge_start(revision=pull, user=developer)
    domain.resource_update(
        instance=Flow.objects.get(integration=sandbox, lineage_id=orders.lineage_id),
        data={"description": "Edited in the sandbox after the review"},
    )
    sandbox.refresh_from_db()
    doc_after_edit = document_of(sandbox)
    version_after_edit = sandbox.version
    revisions_after_edit = Revision.objects.filter(integration=sandbox).count()

    worker = start_worker()
    pull = wait_for_status(pull, RevisionStatus.FAILED, workers=[worker])
    assert "changed since" in pull.error
    assert "refresh the pull" in pull.error
    sandbox.refresh_from_db()
    assert document_of(sandbox) == doc_after_edit
    assert sandbox.version == version_after_edit
    assert Revision.objects.filter(integration=sandbox).count() == revisions_after_edit

    # The failed pull no longer holds the integration: a new pull computes and shows the change.
    again = services.pull_create(target=sandbox, source=production, user=developer)
    again = wait_for_status(again, RevisionStatus.READY, workers=[worker])
    assert again.summary["modified"] == 1
    assert again.summary["conflicts"] == 0
