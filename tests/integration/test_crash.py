"""A worker killed with SIGKILL in the middle of a merge.

The merge is one transaction: the kill leaves the target exactly as it was (document,
version, history). Redis redelivers the unacknowledged task (acks late) once its
visibility timeout has passed; a second worker then finds the revision still merging and
does the whole merge, once: version +1, one history row per changed resource, one
completed pull.

The first merge worker pauses inside the merge transaction right after its first resource
write (`worker_hooks`, `ILM_TEST_PAUSE_IN_APPLY`), so the kill lands mid-merge every time.
"""

from __future__ import annotations

import time

import pytest

from integrations import services as domain
from integrations.models import Environment, Flow, FlowStep, LookupCache, Script
from revisions import services
from revisions.document import document_of
from revisions.models import ChangeSet, Revision, RevisionStatus, RevisionType
from tests.factories import FlowFactory, ScriptFactory, StepFactory
from tests.integration.workers import run_tasks_here, wait_for, wait_for_status

pytestmark = pytest.mark.django_db(transaction=True)

VISIBILITY_TIMEOUT = 5


def _history_counts(integration) -> dict[str, int]:
    return {
        model.__name__: model.history.filter(integration_id=integration.pk).count()
        for model in (Flow, FlowStep, Script, LookupCache)
    }


def test_sigkill_mid_merge_leaves_nothing_and_redelivery_merges_once(
    integration, developer, start_worker, tmp_path
):
    production = integration
    flows = [FlowFactory(integration=production, name=f"Flow {n}") for n in range(4)]
    for flow in flows:
        for position in (1, 2, 3):
            StepFactory(flow=flow, name=f"{flow.name} step {position}", position=position)
    ScriptFactory(integration=production, name="Tax rounding")

    # Set-up, run in this process: clone into a sandbox, change production, pull it in.
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
    doc_before = document_of(sandbox)
    version_before = sandbox.version
    history_before = _history_counts(sandbox)
    revisions_before = Revision.objects.filter(integration=sandbox).count()

    # The merge worker pauses after its first write inside the merge; kill it there.
    paused = tmp_path / "paused"
    doomed = start_worker(ILM_TEST_PAUSE_IN_APPLY=str(paused))
    services.merge_start(revision=pull, user=developer)
    wait_for(paused.exists, what="the worker to be inside the merge", workers=[doomed])
    delivered_at = time.time()
    assert paused.read_text().split()[0] == str(doomed.pid)
    doomed.kill()

    sandbox.refresh_from_db()
    assert document_of(sandbox) == doc_before
    assert sandbox.version == version_before
    assert _history_counts(sandbox) == history_before
    assert Revision.objects.get(pk=pull.pk).status == RevisionStatus.MERGING

    # Redelivery: a fresh worker with a short visibility timeout picks the task up again.
    time.sleep(max(0.0, delivered_at + VISIBILITY_TIMEOUT + 1 - time.time()))
    rescuer = start_worker(CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT))
    pull = wait_for_status(pull, RevisionStatus.COMPLETED, workers=[rescuer])

    sandbox.refresh_from_db()
    assert sandbox.version == version_before + 1
    assert document_of(sandbox)["resources"] == document_of(production)["resources"]
    after = _history_counts(sandbox)
    assert sum(after.values()) - sum(history_before.values()) == touched
    assert (
        Revision.objects.filter(
            integration=sandbox, type=RevisionType.PULL, status=RevisionStatus.COMPLETED
        ).count()
        == 1
    )
    # The two automatic snapshots around the merge, once: nothing else was added.
    assert Revision.objects.filter(integration=sandbox).count() == revisions_before + 2
    assert (
        Revision.objects.filter(
            integration=sandbox, type=RevisionType.SNAPSHOT, operation=pull
        ).count()
        == 2
    )
