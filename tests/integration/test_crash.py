"""Merges and reverts that a worker does not finish, and merges delivered twice.

A merge (and a revert) is one transaction. A worker killed with SIGKILL in the middle of
it leaves the target exactly as it was (document, version, history). Redis redelivers the
unacknowledged task (acks late) once its visibility timeout has passed; another worker then
finds the revision still merging and does the whole merge, once: version +1, one history
row per changed resource, one completed pull, two automatic snapshots.

A revert killed the same way is done whole, once, by the next worker.

The doomed worker pauses inside the transaction right after its first resource write
(`worker_hooks`, `ILM_TEST_PAUSE_IN_APPLY`), so the kill lands mid-merge every time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connection

from integrations import services as domain
from integrations.models import Environment, Flow, FlowStep, Integration, LookupCache, Script
from revisions import services
from revisions.document import document_of
from revisions.models import ChangeSet, Revision, RevisionStatus, RevisionType
from tests.factories import FlowFactory, ScriptFactory, StepFactory
from tests.integration.workers import run_tasks_here, wait_for, wait_for_status

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

VISIBILITY_TIMEOUT = 3


def _history_total(integration) -> int:
    return sum(
        model.history.filter(integration_id=integration.pk).count()
        for model in (Flow, FlowStep, Script, LookupCache)
    )


@dataclass
class ReadyPull:
    production: Integration
    sandbox: Integration
    pull: Revision
    touched: int
    doc_before: dict[str, Any]
    version_before: int
    history_before: int
    revisions_before: int

    def assert_untouched(self) -> None:
        self.sandbox.refresh_from_db()
        assert document_of(self.sandbox) == self.doc_before
        assert self.sandbox.version == self.version_before
        assert _history_total(self.sandbox) == self.history_before
        assert Revision.objects.filter(integration=self.sandbox).count() == self.revisions_before

    def assert_merged_once(self) -> None:
        sandbox = self.sandbox
        sandbox.refresh_from_db()
        assert sandbox.version == self.version_before + 1
        assert document_of(sandbox)["resources"] == document_of(self.production)["resources"]
        assert _history_total(sandbox) == self.history_before + self.touched
        completed = Revision.objects.filter(
            integration=sandbox, type=RevisionType.PULL, status=RevisionStatus.COMPLETED
        )
        assert list(completed.values_list("pk", flat=True)) == [self.pull.pk]
        # The two automatic snapshots around the merge, once; nothing else was added.
        assert Revision.objects.filter(integration=sandbox).count() == self.revisions_before + 2
        snapshots = Revision.objects.filter(
            integration=sandbox, type=RevisionType.SNAPSHOT, operation=self.pull
        )
        assert snapshots.count() == 2


@pytest.fixture
def ready_pull(integration, developer, not_eager) -> ReadyPull:
    """A sandbox clone, production changed since, and a pull of those changes ready to merge.

    Set-up, not under test here: it runs in this process.
    """
    production = integration
    flows = [FlowFactory(integration=production, name=f"Flow {n}") for n in range(4)]
    for flow in flows:
        for position in (1, 2, 3):
            StepFactory(flow=flow, name=f"{flow.name} step {position}", position=position)
    ScriptFactory(integration=production, name="Tax rounding")
    with run_tasks_here():
        sandbox = services.integration_clone(
            source=production, user=developer, name="Sandbox", environment=Environment.SANDBOX
        )
        for flow in flows[:2]:
            domain.resource_update(instance=flow, data={"description": f"{flow.name}, reworked"})
        for step in FlowStep.objects.filter(flow=flows[2]):
            domain.resource_update(instance=step, data={"name": f"{step.name} (v2)"})
        new_flow = domain.resource_create(
            integration=production,
            type_key="flow",
            data={"name": "Returns", "schedule": "0 6 * * *"},
        )
        for position in (1, 2):
            domain.resource_create(
                integration=production,
                type_key="step",
                data={
                    "flow": new_flow,
                    "name": f"Returns {position}",
                    "position": position,
                    "kind": "transform",
                },
            )
        for step in FlowStep.objects.filter(flow=flows[3]):
            domain.resource_delete(instance=step)
        domain.resource_delete(instance=flows[3])
        pull = services.pull_create(target=sandbox, source=production, user=developer)
    pull.refresh_from_db()
    assert pull.status == RevisionStatus.READY, pull.error
    touched = len(ChangeSet.objects.get(revision=pull).data["resources"])
    assert touched == 2 + 3 + 3 + 4  # 2 flows, 3 steps modified; 1 flow + 2 steps added; 4 gone
    sandbox.refresh_from_db()
    return ReadyPull(
        production=production,
        sandbox=sandbox,
        pull=pull,
        touched=touched,
        doc_before=document_of(sandbox),
        version_before=sandbox.version,
        history_before=_history_total(sandbox),
        revisions_before=Revision.objects.filter(integration=sandbox).count(),
    )


def _start_rescuer(start_worker):
    """A worker that redelivers what another took and did not acknowledge (after 3 s)."""
    return start_worker(
        CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT), ILM_TEST_RESTORE_EVERY_SECOND="1"
    )


def test_sigkill_mid_merge_leaves_nothing_and_redelivery_merges_once(
    ready_pull, developer, start_worker, tmp_path
):
    paused = tmp_path / "paused"
    doomed = start_worker(ILM_TEST_PAUSE_IN_APPLY=str(paused))
    services.merge_start(revision=ready_pull.pull, user=developer)
    wait_for(paused.exists, what="the worker to be inside the merge", workers=[doomed])
    assert paused.read_text().split()[0] == str(doomed.pid)
    doomed.kill()

    ready_pull.assert_untouched()
    assert Revision.objects.get(pk=ready_pull.pull.pk).status == RevisionStatus.MERGING

    rescuer = _start_rescuer(start_worker)
    wait_for_status(ready_pull.pull, RevisionStatus.COMPLETED, workers=[rescuer])
    ready_pull.assert_merged_once()


def _waiting_on_a_lock() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


def test_merge_delivered_twice_while_the_first_runs_merges_once(
    ready_pull, developer, start_worker, tmp_path
):
    paused = tmp_path / "paused"
    first = start_worker(ILM_TEST_PAUSE_IN_APPLY=str(paused))
    services.merge_start(revision=ready_pull.pull, user=developer)
    wait_for(paused.exists, what="the first worker to be inside the merge", workers=[first])

    # A second worker gets the same task again (the first has not acknowledged it) and
    # waits for the lock the first merge holds.
    second = _start_rescuer(start_worker)
    wait_for(
        _waiting_on_a_lock,
        what="the second delivery to wait for the merge's lock",
        workers=[second],
    )
    assert Revision.objects.get(pk=ready_pull.pull.pk).status == RevisionStatus.MERGING

    (paused.parent / f"{paused.name}.resume").touch()
    wait_for_status(ready_pull.pull, RevisionStatus.COMPLETED, workers=[first, second])
    wait_for(
        lambda: not _waiting_on_a_lock(), what="the second delivery to finish", workers=[second]
    )
    assert first.alive() and second.alive()
    ready_pull.assert_merged_once()


def test_sigkill_mid_revert_leaves_nothing_and_redelivery_reverts_once(
    ready_pull, developer, start_worker, tmp_path
):
    with run_tasks_here():
        services.merge_start(revision=ready_pull.pull, user=developer)
    pull = Revision.objects.get(pk=ready_pull.pull.pk)
    assert pull.status == RevisionStatus.COMPLETED, pull.error
    sandbox = ready_pull.sandbox
    sandbox.refresh_from_db()
    doc_merged, version_merged = document_of(sandbox), sandbox.version
    history_merged = _history_total(sandbox)

    paused = tmp_path / "paused"
    doomed = start_worker(ILM_TEST_PAUSE_IN_APPLY=str(paused))
    revert = services.revert_start(revision=pull, user=developer, side="before")
    wait_for(paused.exists, what="the worker to be inside the revert", workers=[doomed])
    doomed.kill()

    sandbox.refresh_from_db()
    assert document_of(sandbox) == doc_merged
    assert sandbox.version == version_merged
    assert _history_total(sandbox) == history_merged
    assert Revision.objects.get(pk=revert.pk).is_open

    rescuer = _start_rescuer(start_worker)
    wait_for_status(revert, RevisionStatus.COMPLETED, workers=[rescuer])
    sandbox.refresh_from_db()
    assert document_of(sandbox) == ready_pull.doc_before
    assert sandbox.version == version_merged + 1
    assert _history_total(sandbox) == history_merged + ready_pull.touched
    assert Revision.objects.filter(integration=sandbox, operation=revert).count() == 2
    assert Revision.objects.filter(integration=sandbox, type=RevisionType.REVERT).count() == 1
