"""Scheduled snapshots: none / daily / weekly set through the API; skipped when nothing changed.

The beat entry runs `revisions.tasks.scheduled_snapshots` hourly; each run snapshots the
integrations whose schedule is due and whose state differs from their last snapshot.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from integrations.services import resource_update
from revisions.models import Revision, RevisionType
from revisions.services import scheduled_snapshots_run
from tests.factories import FlowFactory

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


def _scheduled(integration) -> list[Revision]:
    return list(
        Revision.objects.filter(
            integration=integration,
            type=RevisionType.SNAPSHOT,
            description__startswith="Scheduled",
        ).order_by("number")
    )


def _set_schedule(api, integration, schedule):
    response = api.patch(
        f"/api/v1/integrations/{integration.pk}", {"snapshot_schedule": schedule}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["snapshot_schedule"] == schedule


@pytest.fixture
def flow(integration):
    return FlowFactory(integration=integration, name="Orders")


def test_schedule_is_set_and_read_through_the_api(dev_api, integration):
    assert dev_api.get(f"/api/v1/integrations/{integration.pk}").json()["snapshot_schedule"] == (
        "none"
    )
    _set_schedule(dev_api, integration, "weekly")
    response = dev_api.patch(
        f"/api/v1/integrations/{integration.pk}", {"snapshot_schedule": "hourly"}, format="json"
    )
    assert response.status_code == 400
    assert "snapshot_schedule" in response.json()["errors"]
    integration.refresh_from_db()
    assert integration.snapshot_schedule == "weekly"


def test_monitor_cannot_change_the_schedule(monitor_api, integration):
    response = monitor_api.patch(
        f"/api/v1/integrations/{integration.pk}", {"snapshot_schedule": "daily"}, format="json"
    )
    assert response.status_code == 403
    integration.refresh_from_db()
    assert integration.snapshot_schedule == "none"


def test_no_schedule_no_snapshots(integration, flow):
    now = timezone.now()
    for days in (0, 1, 8):
        scheduled_snapshots_run(now=now + days * DAY)
    assert _scheduled(integration) == []


def test_daily_snapshots_only_when_due_and_changed(dev_api, integration, flow):
    _set_schedule(dev_api, integration, "daily")
    now = timezone.now()
    assert len(scheduled_snapshots_run(now=now)) == 1
    first = _scheduled(integration)[0]
    assert first.status == "completed" and first.created_by is None
    assert first.description == "Scheduled daily snapshot"
    # Not due again within the day, even after a change.
    resource_update(instance=flow, data={"description": "Changed"})
    assert scheduled_snapshots_run(now=now + timedelta(hours=6)) == []
    # Due: the change is stored.
    assert len(scheduled_snapshots_run(now=now + DAY)) == 1
    # Due again but nothing changed since: skipped, no empty revision.
    assert scheduled_snapshots_run(now=now + 3 * DAY) == []
    assert len(_scheduled(integration)) == 2


def test_weekly_waits_a_week(dev_api, integration, flow):
    _set_schedule(dev_api, integration, "weekly")
    now = timezone.now()
    scheduled_snapshots_run(now=now)
    resource_update(instance=flow, data={"enabled": False})
    assert scheduled_snapshots_run(now=now + 2 * DAY) == []
    assert len(scheduled_snapshots_run(now=now + 7 * DAY)) == 1
    assert len(_scheduled(integration)) == 2


def test_a_manual_snapshot_of_the_same_state_makes_the_scheduled_one_unneeded(
    dev_api, integration, flow
):
    manual = dev_api.post(
        f"/api/v1/integrations/{integration.pk}/revisions", {"type": "snapshot"}, format="json"
    )
    assert manual.status_code == 201
    _set_schedule(dev_api, integration, "daily")
    assert scheduled_snapshots_run(now=timezone.now() + DAY) == []
    assert _scheduled(integration) == []


def test_beat_runs_the_registered_task():
    from ilm_site.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["scheduled-snapshots"]
    app.loader.import_default_modules()
    assert entry["task"] in app.tasks


def test_the_task_snapshots_due_integrations(dev_api, integration, flow):
    from revisions.tasks import scheduled_snapshots

    _set_schedule(dev_api, integration, "daily")
    assert scheduled_snapshots.delay().get() == 1
    assert len(_scheduled(integration)) == 1
