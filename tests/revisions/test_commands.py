"""The ilm_* management commands call the services and report or refuse clearly."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from integrations.models import Environment
from integrations.services import resource_update
from revisions import services
from revisions.models import Revision, RevisionStatus, RevisionType
from tests.factories import FlowFactory, IntegrationFactory

pytestmark = pytest.mark.django_db(transaction=True)


def call(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def pair(developer):
    prod = IntegrationFactory(name="Prod", environment=Environment.SANDBOX)
    flow = FlowFactory(integration=prod, name="Orders")
    clone = services.integration_clone(
        source=prod, user=developer, name="Sandbox", environment=Environment.SANDBOX
    )
    return prod, clone, flow


def test_ilm_snapshot_creates_a_snapshot(pair, developer):
    prod, _, _ = pair
    out = call("ilm_snapshot", str(prod.pk), "--description", "Nightly", "--user", "dev")
    revision = Revision.objects.get(integration=prod, type=RevisionType.SNAPSHOT)
    assert revision.description == "Nightly" and revision.created_by == developer
    assert f"Revision {revision.pk}: snapshot #1" in out


def test_ilm_pull_merge_and_revert(pair):
    prod, clone, flow = pair
    twin = type(flow).objects.get(integration=clone, lineage_id=flow.lineage_id)
    resource_update(instance=twin, data={"schedule": "0 2 * * *"})
    out = call("ilm_pull", str(prod.pk), str(clone.pk), "--user", "dev")
    pull = Revision.objects.get(integration=prod, type=RevisionType.PULL)
    assert "ready for review" in out and pull.status == RevisionStatus.READY
    out = call("ilm_merge", str(pull.pk), "--user", "dev")
    assert "completed" in out
    flow.refresh_from_db()
    assert flow.schedule == "0 2 * * *"
    out = call("ilm_revert", str(pull.pk), "--to", "before")
    flow.refresh_from_db()
    assert flow.schedule == "*/15 * * * *"
    assert "revert" in out and "completed" in out


def test_commands_refuse_with_the_reason(pair):
    prod, clone, _ = pair
    with pytest.raises(CommandError, match="No integration"):
        call("ilm_snapshot", "99999")
    with pytest.raises(CommandError, match="No user"):
        call("ilm_snapshot", str(prod.pk), "--user", "ghost")
    stranger = IntegrationFactory(name="Stranger")
    with pytest.raises(CommandError, match="same family"):
        call("ilm_pull", str(prod.pk), str(stranger.pk))
    snap = services.snapshot_create(integration=prod, user=None)
    with pytest.raises(CommandError, match="nothing to revert"):
        call("ilm_revert", str(snap.pk))
    with pytest.raises(CommandError, match="not a pull"):
        call("ilm_merge", str(snap.pk))
