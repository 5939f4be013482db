"""Operations started at the same moment on one integration, from threads on PostgreSQL.

Each thread has its own database connection, so the database decides: the one open
operation per integration is a constraint, and a merge locks its revision. Exactly one
caller proceeds; the others get a refusal they can act on, and the work happens once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.db import connection

from integrations import services as domain
from integrations.models import Environment, Flow, FlowStep
from revisions import services
from revisions.document import document_of
from revisions.errors import InvalidState, NothingToRevert, OperationInProgress
from revisions.models import Revision, RevisionStatus, RevisionType
from tests.factories import FlowFactory, StepFactory
from tests.integration.workers import wait_for_status

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _at_once(calls: list[Callable[[], object]]) -> list[tuple[object | None, Exception | None]]:
    """Run the calls in threads released together; (result, error) for each, in order."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[tuple[object | None, Exception | None]] = [(None, None)] * len(calls)

    def run(i: int, call: Callable[[], object]) -> None:
        try:
            barrier.wait(timeout=30)
            outcomes[i] = (call(), None)
        except Exception as exc:  # recorded and asserted on below
            outcomes[i] = (None, exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return outcomes


@pytest.fixture
def pair(integration, developer, celery_worker):
    """Production with two flows, and a sandbox clone of it (cloned by the worker)."""
    flow = FlowFactory(integration=integration, name="Orders to ERP")
    StepFactory(flow=flow, name="Fetch orders", position=1)
    StepFactory(flow=flow, name="Post orders", position=2)
    FlowFactory(integration=integration, name="Invoices to ERP")
    sandbox = services.integration_clone(
        source=integration, user=developer, name="Orders sandbox", environment=Environment.SANDBOX
    )
    clone_revision = Revision.objects.get(integration=sandbox, type=RevisionType.CLONE)
    wait_for_status(clone_revision, RevisionStatus.COMPLETED, workers=[celery_worker])
    integration.refresh_from_db()
    sandbox.refresh_from_db()
    return integration, sandbox


def test_two_pulls_at_once_one_proceeds_the_other_is_refused(pair, developer, celery_worker):
    production, sandbox = pair
    domain.resource_update(
        instance=Flow.objects.get(integration=production, name="Orders to ERP"),
        data={"schedule": "0 * * * *"},
    )

    outcomes = _at_once(
        [
            lambda: services.pull_create(target=sandbox, source=production, user=developer),
            lambda: services.pull_create(target=sandbox, source=production, user=developer),
        ]
    )

    started = [result for result, error in outcomes if error is None]
    refused = [error for result, error in outcomes if error is not None]
    assert len(started) == 1
    assert len(refused) == 1 and isinstance(refused[0], OperationInProgress), refused
    assert "already has an open pull" in str(refused[0])
    assert Revision.objects.filter(integration=sandbox, type=RevisionType.PULL).count() == 1
    wait_for_status(started[0], RevisionStatus.READY, workers=[celery_worker])


def test_two_merges_at_once_merge_once(pair, developer, celery_worker):
    production, sandbox = pair
    orders = Flow.objects.get(integration=production, name="Orders to ERP")
    domain.resource_update(instance=orders, data={"schedule": "0 * * * *"})
    StepFactory(flow=orders, name="Notify buyer", position=3)
    pull = services.pull_create(target=sandbox, source=production, user=developer)
    pull = wait_for_status(pull, RevisionStatus.READY, workers=[celery_worker])
    sandbox.refresh_from_db()
    version = sandbox.version
    steps_history = FlowStep.history.filter(integration_id=sandbox.pk).count()

    outcomes = _at_once(
        [
            lambda: services.merge_start(revision=Revision.objects.get(pk=pull.pk), user=developer),
            lambda: services.merge_start(revision=Revision.objects.get(pk=pull.pk), user=developer),
        ]
    )

    errors = [error for _, error in outcomes if error is not None]
    assert len(errors) == 1, outcomes
    # The second finds the pull already merging (or merged): not ready for review any more.
    assert isinstance(errors[0], InvalidState), errors
    assert "only a pull ready for review can be merged" in str(errors[0])
    pull = wait_for_status(pull, RevisionStatus.COMPLETED, workers=[celery_worker])
    sandbox.refresh_from_db()
    assert sandbox.version == version + 1
    assert FlowStep.history.filter(integration_id=sandbox.pk).count() == steps_history + 1
    assert document_of(sandbox)["resources"] == document_of(production)["resources"]


def test_merge_and_cancel_at_once_exactly_one_wins(pair, developer, celery_worker):
    production, sandbox = pair
    domain.resource_update(
        instance=Flow.objects.get(integration=production, name="Invoices to ERP"),
        data={"description": "Monthly"},
    )
    pull = services.pull_create(target=sandbox, source=production, user=developer)
    pull = wait_for_status(pull, RevisionStatus.READY, workers=[celery_worker])
    sandbox.refresh_from_db()
    doc_before, version_before = document_of(sandbox), sandbox.version

    merge, cancel = _at_once(
        [
            lambda: services.merge_start(revision=Revision.objects.get(pk=pull.pk), user=developer),
            lambda: services.revision_cancel(
                revision=Revision.objects.get(pk=pull.pk), user=developer
            ),
        ]
    )

    assert (merge[1] is None) != (cancel[1] is None), (merge, cancel)
    assert isinstance(merge[1] or cancel[1], InvalidState)
    pull = wait_for_status(
        pull, RevisionStatus.COMPLETED, RevisionStatus.CANCELED, workers=[celery_worker]
    )
    sandbox.refresh_from_db()
    if merge[1] is None:
        assert pull.status == RevisionStatus.COMPLETED
        assert sandbox.version == version_before + 1
        assert document_of(sandbox)["resources"] == document_of(production)["resources"]
    else:
        assert pull.status == RevisionStatus.CANCELED
        assert sandbox.version == version_before
        assert document_of(sandbox) == doc_before


def test_two_reverts_at_once_one_proceeds_the_other_is_refused(pair, developer, celery_worker):
    production, _ = pair
    before = services.snapshot_create(integration=production, user=developer, description="v1")
    domain.resource_update(
        instance=Flow.objects.get(integration=production, name="Invoices to ERP"),
        data={"enabled": False},
    )

    outcomes = _at_once(
        [
            lambda: services.revert_start(revision=before, user=developer),
            lambda: services.revert_start(revision=before, user=developer),
        ]
    )

    started = [result for result, error in outcomes if error is None]
    refused = [error for result, error in outcomes if error is not None]
    assert len(started) == 1 and len(refused) == 1, outcomes
    # Refused as busy, or (if the first had already finished) as nothing left to revert.
    assert isinstance(refused[0], (OperationInProgress, NothingToRevert)), refused
    revert = wait_for_status(started[0], RevisionStatus.COMPLETED, workers=[celery_worker])
    assert revert.type == RevisionType.REVERT
    assert Flow.objects.get(integration=production, name="Invoices to ERP").enabled is True
