"""Cron schedules: due flows start at the tick, edits count at the next tick, one validator."""

from datetime import UTC, datetime

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.urls import reverse

from audit.models import Event
from integrations.models import Flow
from integrations.schedules import validate_cron
from integrations.services import resource_create, resource_update
from runs.models import Run, RunStatus
from runs.selectors import next_run_at
from runs.services import schedule_due
from tests.runs.conftest import build_flow

pytestmark = pytest.mark.django_db


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2026, 3, 2, hh, mm, ss, tzinfo=UTC)


def test_a_due_flow_starts_once_per_fire_time_as_the_system(sandbox):
    flow = build_flow(sandbox, schedule="*/15 * * * *")
    (run,) = schedule_due(at(10, 15, 20))
    assert run.trigger == "schedule" and run.mode == "live" and run.created_by is None
    assert run.scheduled_for == at(10, 15) and run.status == RunStatus.QUEUED
    assert run.flow_id == flow.pk
    event = Event.objects.get(resource_type="run", resource_id=run.pk)
    assert event.action == "run_scheduled" and event.username == "" and event.source == "system"
    # The same minute again, and the next minute: that fire time already started a run.
    assert schedule_due(at(10, 15, 50)) == []
    Run.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
    assert schedule_due(at(10, 16, 5)) == []
    # Between fire times nothing is due.
    assert schedule_due(at(10, 22)) == []
    (later,) = schedule_due(at(10, 30, 1))
    assert later.scheduled_for == at(10, 30)


def test_a_schedule_edit_takes_effect_at_the_next_tick_without_a_restart(sandbox):
    flow = build_flow(sandbox, schedule="0 * * * *")
    assert schedule_due(at(10, 5)) == []
    resource_update(instance=flow, data={"schedule": "*/5 * * * *"})
    (run,) = schedule_due(at(10, 5, 30))
    assert run.scheduled_for == at(10, 5)
    resource_update(instance=flow, data={"schedule": ""})
    Run.objects.update(status=RunStatus.SUCCEEDED)
    assert schedule_due(at(10, 10)) == []


def test_a_disabled_flows_schedule_does_not_run(sandbox):
    flow = build_flow(sandbox, schedule="* * * * *")
    resource_update(instance=flow, data={"enabled": False})
    assert schedule_due(at(9, 0)) == []
    assert not Run.objects.exists()
    assert next_run_at(flow, at(9, 0)) is None


def test_a_flow_still_running_live_skips_the_fire_time(sandbox):
    flow = build_flow(sandbox, schedule="* * * * *")
    (first,) = schedule_due(at(9, 0))
    assert schedule_due(at(9, 1)) == []  # the 9:00 run is still queued
    assert list(Run.objects.values_list("pk", flat=True)) == [first.pk]
    assert flow.enabled


def test_a_late_tick_starts_a_missed_fire_but_an_old_one_is_not_replayed(sandbox):
    build_flow(sandbox, schedule="0 6 * * *")
    (run,) = schedule_due(at(6, 2))  # the 6:00 tick was missed, this one is late
    assert run.scheduled_for == at(6, 0)
    Run.objects.update(status=RunStatus.SUCCEEDED)
    assert schedule_due(at(12, 0)) == []  # hours later: not replayed


def test_next_run_at_reads_the_schedule(sandbox):
    flow = build_flow(sandbox, schedule="30 2 * * *")
    assert next_run_at(flow, at(1, 0)) == at(2, 30)
    assert next_run_at(flow, at(2, 30)) == datetime(2026, 3, 3, 2, 30, tzinfo=UTC)
    flow.schedule = ""
    assert next_run_at(flow, at(1, 0)) is None


def test_the_beat_ticks_every_minute():
    entry = django_settings.CELERY_BEAT_SCHEDULE["runs-tick"]
    assert entry["task"] == "runs.tasks.runs_tick"
    assert entry["schedule"].minute == set(range(60)) and len(entry["schedule"].hour) == 24


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("* * * *", "has 4"),
        ("61 * * * *", "minute field '61' is out of range (0–59)"),
        ("* * * * 1#9", "day of week field"),
        ("@fortnightly", "not a schedule macro"),
        ("*/0 * * * *", "step of 0"),
    ],
)
def test_a_bad_schedule_is_refused_by_the_service_the_api_and_the_page(
    sandbox, dev_api, dev_client, value, message
):
    flow = build_flow(sandbox, schedule="")
    with pytest.raises(ValidationError) as refused:
        resource_update(instance=flow, data={"schedule": value})
    assert message in str(refused.value)
    with pytest.raises(ValidationError):
        resource_create(integration=sandbox, type_key="flow", data={"name": "N", "schedule": value})
    response = dev_api.patch(f"/api/v1/flows/{flow.pk}", {"schedule": value}, format="json")
    assert response.status_code == 400 and message in response.json()["detail"]
    # The page's form only carries the service's refusal to the schedule field.
    page = dev_client.post(
        reverse("integrations:resource_edit", args=[sandbox.pk, "flows", flow.pk]),
        {"name": flow.name, "description": "", "enabled": "on", "schedule": value},
    )
    assert page.status_code == 400
    assert message in page.context["form"].errors["schedule"][0]
    flow.refresh_from_db()
    assert flow.schedule == ""
    assert not Flow.objects.filter(integration=sandbox, name="N").exists()


def test_every_writer_stores_the_schedule_normalized(sandbox, dev_api, dev_client):
    flow = build_flow(sandbox, schedule="")
    response = dev_api.patch(
        f"/api/v1/flows/{flow.pk}", {"schedule": "  0   6 * * 1-5 "}, format="json"
    )
    assert response.status_code == 200
    flow.refresh_from_db()
    assert flow.schedule == "0 6 * * 1-5"
    made = resource_create(
        integration=sandbox, type_key="flow", data={"name": "Daily", "schedule": "@Daily"}
    )
    assert made.schedule == "@daily"
    dev_client.post(
        reverse("integrations:resource_edit", args=[sandbox.pk, "flows", flow.pk]),
        {"name": flow.name, "description": "", "enabled": "on", "schedule": " @HOURLY"},
    )
    flow.refresh_from_db()
    assert flow.schedule == "@hourly"


def test_valid_schedules_are_normalized():
    assert validate_cron("  0   6 * * 1-5 ") == "0 6 * * 1-5"
    assert validate_cron("@Daily") == "@daily"
    assert validate_cron("") == ""


def test_the_tick_task_starts_a_due_flow_once(sandbox):
    from runs.tasks import runs_tick

    flow = build_flow(sandbox, schedule="* * * * *")
    assert runs_tick() == 1
    # Again (the same minute, or the next while that run is still queued): nothing more.
    assert runs_tick() == 0
    (run,) = Run.objects.filter(flow_lineage_id=flow.lineage_id)
    assert run.trigger == "schedule"


def test_a_tick_with_nothing_due_reads_two_queries_however_many_flows(
    sandbox, django_assert_num_queries
):
    for _ in range(6):
        build_flow(sandbox, schedule="0 6 * * *")
    with django_assert_num_queries(2):  # the fired times, the scheduled flows
        assert schedule_due(at(9, 0)) == []


def test_a_schedule_stored_before_normalizing_is_kept_when_sent_back_unchanged(sandbox):
    flow = build_flow(sandbox, schedule="")
    type(flow).objects.filter(pk=flow.pk).update(schedule="*/15  * * * *")
    flow.refresh_from_db()
    sandbox.refresh_from_db()
    version = sandbox.version
    resource_update(instance=flow, data={"schedule": "*/15  * * * *"})
    flow.refresh_from_db()
    sandbox.refresh_from_db()
    assert flow.schedule == "*/15  * * * *" and sandbox.version == version
    resource_update(instance=flow, data={"schedule": "*/30  * * * *"})
    flow.refresh_from_db()
    assert flow.schedule == "*/30 * * * *"
