"""A hypothesis state machine over the engine's services.

Two integrations of one family (a "prod" and its sandbox clone, both sandboxes so merges
need no approval) are edited on either side, pulled both ways, resolved, merged,
snapshotted, canceled and reverted in any order. After every step: versions only grow, no
resource points outside its integration or at something missing, and a completed revert
leaves the integration's document equal to the restored revision's tree.
"""

from __future__ import annotations

import os

import pytest
from django.db import transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from integrations.models import Environment, FlowStep, LookupCache
from integrations.resources import RESOURCE_TYPES
from integrations.services import resource_create, resource_delete, resource_update
from revisions import services, tasks
from revisions.document import document_of, document_of_tree
from revisions.errors import NothingToRevert, OperationInProgress, StaleReview
from revisions.models import Revision, RevisionStatus, RevisionType
from tests.factories import (
    ConnectionFactory,
    FlowFactory,
    IntegrationFactory,
    ScriptFactory,
    StepFactory,
    UserFactory,
)

S = RevisionStatus
SIDES = st.sampled_from(["prod", "sandbox"])
WORDS = st.sampled_from(["alpha", "beta", "gamma", "delta"])


class EngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # Each example runs in a savepoint rolled back at teardown: examples do not mix.
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        self.pull: Revision | None = None
        self.versions: dict[int, int] = {}
        self.history: list[Revision] = []

    def teardown(self) -> None:
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    @initialize()
    def family(self) -> None:
        self.user = UserFactory(username="machine")
        prod = IntegrationFactory(name="Prod", environment=Environment.SANDBOX)
        conn = ConnectionFactory(integration=prod, name="API")
        flow = FlowFactory(integration=prod, name="Orders")
        StepFactory(flow=flow, name="Export", connection=conn)
        ScriptFactory(integration=prod, name="Tax")
        sandbox = services.integration_clone(
            source=prod, user=self.user, name="Sandbox", environment=Environment.SANDBOX
        )
        tasks.clone_run(Revision.objects.get(integration=sandbox).pk)
        prod.refresh_from_db()
        sandbox.refresh_from_db()
        self.sides = {"prod": prod, "sandbox": sandbox}
        assert document_of(prod) == document_of(sandbox)

    def _side(self, name: str):
        integration = self.sides[name]
        integration.refresh_from_db()
        return integration

    # Edits -----------------------------------------------------------------------------

    @rule(side=SIDES, word=WORDS)
    def edit_flow(self, side: str, word: str) -> None:
        flow = self._side(side).flows.order_by("pk").first()
        if flow is not None:
            resource_update(instance=flow, data={"schedule": f"{word} * * * *"})

    @rule(side=SIDES, word=WORDS)
    def edit_script(self, side: str, word: str) -> None:
        script = self._side(side).scripts.order_by("pk").first()
        if script is not None:
            resource_update(instance=script, data={"code": f"// {word}"})

    @rule(side=SIDES, word=WORDS)
    def add_flow_with_step(self, side: str, word: str) -> None:
        integration = self._side(side)
        flow = resource_create(integration=integration, type_key="flow", data={"name": word})
        resource_create(
            integration=integration,
            type_key="step",
            data={"name": f"{word} step", "flow": flow, "kind": "export"},
        )

    @rule(side=SIDES)
    def delete_a_script(self, side: str) -> None:
        script = self._side(side).scripts.order_by("pk").first()
        if script is not None:
            resource_delete(instance=script)

    @rule(side=SIDES)
    def delete_a_step(self, side: str) -> None:
        step = FlowStep.objects.filter(integration=self._side(side)).order_by("-pk").first()
        if step is not None:
            resource_delete(instance=step)

    # Operations ------------------------------------------------------------------------

    @precondition(lambda self: self.pull is None)
    @rule(into=SIDES)
    def open_pull(self, into: str) -> None:
        other = "sandbox" if into == "prod" else "prod"
        try:
            revision = services.pull_create(
                target=self._side(into), source=self._side(other), user=self.user
            )
        except OperationInProgress:
            return
        tasks.pull_compute(revision.pk)
        revision.refresh_from_db()
        assert revision.status == S.READY, revision.error
        self.pull = revision

    @precondition(lambda self: self.pull is not None)
    @rule(choose=st.sampled_from(["ours", "theirs"]))
    def resolve_all(self, choose: str) -> None:
        changes = services.changes_of(self.pull)
        choices = [
            {"lineage_id": r["lineage_id"], "path": f["path"], "choose": choose}
            for r in changes["resources"]
            for f in r["fields"]
            if f["conflict"]
        ]
        if choices:
            summary = services.resolutions_set(
                revision=self.pull, user=self.user, resolutions=choices
            )
            assert summary["unresolved"] == 0

    @precondition(lambda self: self.pull is not None)
    @rule()
    def merge(self) -> None:
        revision = self.pull
        if services.changes_of(revision)["summary"]["unresolved"]:
            return
        target_before = document_of(revision.integration)
        try:
            services.merge_start(revision=revision, user=self.user)
        except StaleReview:
            services.pull_refresh(revision=revision, user=self.user)
            return
        tasks.merge_run(revision.pk)
        revision.refresh_from_db()
        assert revision.status == S.COMPLETED, revision.error
        assert document_of_tree(revision.tree_before) == target_before
        assert document_of(revision.integration) == document_of_tree(revision.tree_after)
        self.history.append(revision)
        self.pull = None

    @precondition(lambda self: self.pull is not None)
    @rule()
    def cancel(self) -> None:
        services.revision_cancel(revision=self.pull, user=self.user)
        self.pull = None

    @rule(side=SIDES)
    def snapshot(self, side: str) -> None:
        self.history.append(services.snapshot_create(integration=self._side(side), user=self.user))

    @precondition(lambda self: self.pull is None and self.history)
    @rule(data=st.data(), revert_side=st.sampled_from(["after", "before"]))
    def revert(self, data, revert_side: str) -> None:
        restored = data.draw(st.sampled_from(self.history))
        restored.refresh_from_db()
        if revert_side == "before" and restored.type == RevisionType.SNAPSHOT:
            revert_side = "after"
        try:
            revision = services.revert_start(revision=restored, user=self.user, side=revert_side)
        except NothingToRevert:
            tree = restored.tree_after if revert_side == "after" else restored.tree_before
            assert document_of(restored.integration) == document_of_tree(tree)
            return
        tasks.revert_run(revision.pk)
        revision.refresh_from_db()
        assert revision.status == S.COMPLETED, revision.error
        tree = restored.tree_after if revert_side == "after" else restored.tree_before
        assert document_of(restored.integration) == document_of_tree(tree)
        self.history.append(revision)

    # Invariants ------------------------------------------------------------------------

    @invariant()
    def versions_only_grow(self) -> None:
        if not hasattr(self, "sides"):
            return
        for integration in self.sides.values():
            integration.refresh_from_db(fields=["version"])
            last = self.versions.get(integration.pk, 0)
            assert integration.version >= last
            self.versions[integration.pk] = integration.version

    @invariant()
    def no_orphan_resources(self) -> None:
        if not hasattr(self, "sides"):
            return
        for integration in self.sides.values():
            steps = FlowStep.objects.filter(integration=integration).select_related(
                "flow", "connection"
            )
            caches = {
                str(x)
                for x in LookupCache.objects.filter(integration=integration).values_list(
                    "lineage_id", flat=True
                )
            }
            for step in steps:
                assert step.flow.integration_id == integration.pk
                assert step.connection is None or step.connection.integration_id == integration.pk
                for mapping in step.config.get("mappings", []):
                    assert mapping.get("lookup_cache") in (None, "") or (
                        mapping["lookup_cache"] in caches
                    )
            for rt in RESOURCE_TYPES.values():
                lids = list(
                    rt.model.objects.filter(integration=integration).values_list(
                        "lineage_id", flat=True
                    )
                )
                assert len(lids) == len(set(lids))


EngineMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("ILM_STATE_MACHINE_EXAMPLES", "20")),
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.mark.django_db
def test_engine_state_machine():
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(EngineMachine, settings=EngineMachine.TestCase.settings)
