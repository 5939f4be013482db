"""Error management's notifications: the assignee hears of an assignment (API, the list's
select-many bar and the error page share one service), and a merge that touched flows with
open errors offers the integration's managers a retry with the fix."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.urls import reverse

from audit.models import Event
from integrations.models import AccessLevel, FlowStep, Integration
from revisions import services as revision_services
from runs.errors import errors_assign, errors_offer_retry
from runs.models import FlowError, Notification, NotificationKind
from tests.factories import GrantFactory, UserFactory
from tests.runs.conftest import run_once

pytestmark = pytest.mark.django_db


@pytest.fixture
def mia(sandbox):
    """Another manager of the integration, with a mail address."""
    user = UserFactory(username="mia", email="mia@example.com")
    GrantFactory(integration=sandbox, user=user, level=AccessLevel.MANAGE)
    return user


# Assign --------------------------------------------------------------------------------


def test_assigning_an_error_by_api_notifies_the_assignee_with_a_link_and_a_mail(
    live_flow, erp, dev_api, mia, django_capture_on_commit_callbacks
):
    erp.reject = {2}
    run_once(live_flow)
    error = FlowError.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        response = dev_api.patch(f"/api/v1/errors/{error.pk}", {"assignee": "mia"}, format="json")
    assert response.status_code == 200, response.json()
    note = Notification.objects.get(recipient=mia)
    assert note.kind == NotificationKind.ERROR_ASSIGNED
    assert note.url == reverse("runs:error", args=[error.pk])
    assert note.integration_id == live_flow.integration_id
    assert note.title == "Error assigned to you: Orders to ERP / Send to ERP"
    assert note.body.startswith("dev assigned you an error of Shop → ERP: ")
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["mia@example.com"]
    assert f"/notifications/{note.pk}/" in mail.outbox[0].body
    assert Event.objects.filter(action="error_assigned", resource_id=error.pk).count() == 1
    # Following the link shows the assignee the error.
    opened = mia_client(mia).get(note.url)
    assert opened.status_code == 200


def mia_client(user):
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


def test_assigning_many_from_the_list_sends_one_notification_to_the_assignee(
    live_flow, erp, dev_client, mia, django_capture_on_commit_callbacks
):
    erp.reject = {1, 2, 3}
    run_once(live_flow)
    ids = sorted(FlowError.objects.values_list("pk", flat=True))
    with django_capture_on_commit_callbacks(execute=True):
        response = dev_client.post(
            reverse("runs:errors_bulk", args=[live_flow.integration_id]),
            {"action": "assign", "assignee": "mia", "ids": [str(i) for i in ids]},
        )
    assert response.status_code == 302
    assert FlowError.objects.filter(assignee=mia).count() == 3
    note = Notification.objects.get(recipient=mia)
    assert note.title == "3 errors of Shop → ERP assigned to you"
    assert note.url == (
        reverse("runs:errors", args=[live_flow.integration_id]) + "?tab=open&assignee=mia"
    )
    assert len(mail.outbox) == 1
    assert Event.objects.filter(action="error_assigned").count() == 3
    # The link lists exactly the errors assigned to her.
    page = mia_client(mia).get(note.url).content.decode()
    assert (
        sorted(int(i) for i in re.findall(r'class="error-link" href="/errors/(\d+)/"', page)) == ids
    )


def test_assigning_on_the_error_page_notifies_and_reassigning_the_same_person_does_not(
    live_flow, erp, dev_client, mia, django_capture_on_commit_callbacks
):
    erp.reject = {4}
    run_once(live_flow)
    error = FlowError.objects.get()
    url = reverse("runs:error", args=[error.pk])
    with django_capture_on_commit_callbacks(execute=True):
        dev_client.post(url, {"action": "assign", "assignee": "mia"})
        dev_client.post(url, {"action": "assign", "assignee": "mia"})
    assert Notification.objects.filter(recipient=mia).count() == 1
    assert Event.objects.filter(action="error_assigned").count() == 1
    assert len(mail.outbox) == 1


def test_assigning_yourself_or_unassigning_notifies_nobody(
    live_flow, erp, developer, django_capture_on_commit_callbacks
):
    developer.email = "dev@example.com"
    developer.save()
    erp.reject = {1}
    run_once(live_flow)
    error = FlowError.objects.get()
    integration = live_flow.integration
    with django_capture_on_commit_callbacks(execute=True):
        assert errors_assign(
            integration=integration, user=developer, ids=[error.pk], assignee=developer
        )
        assert errors_assign(integration=integration, user=developer, ids=[error.pk], assignee=None)
    assert not Notification.objects.exists() and mail.outbox == []
    assert [
        e.changes[0]["new"] for e in Event.objects.filter(action="error_assigned").order_by("pk")
    ] == [
        "dev",
        None,
    ]


def test_an_assignment_refused_notifies_nobody_and_changes_nothing(
    live_flow, erp, dev_api, monitor_api, outsider, django_capture_on_commit_callbacks
):
    erp.reject = {1}
    run_once(live_flow)
    error = FlowError.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        # Someone who cannot see the integration is not given its errors (400) ...
        refused = dev_api.patch(
            f"/api/v1/errors/{error.pk}", {"assignee": outsider.username}, format="json"
        )
        # ... and a monitor may not assign (403).
        forbidden = monitor_api.patch(
            f"/api/v1/errors/{error.pk}", {"assignee": "mo"}, format="json"
        )
    assert refused.status_code == 400 and forbidden.status_code == 403
    assert not Notification.objects.exists() and mail.outbox == []
    assert FlowError.objects.get().assignee is None
    assert not Event.objects.filter(action="error_assigned").exists()


def test_bulk_assign_naming_an_error_of_another_integration_assigns_none(
    live_flow, erp, developer, mia, django_capture_on_commit_callbacks
):
    from runs.services import RunRefused

    erp.reject = {1}
    run_once(live_flow)
    error = FlowError.objects.get()
    with pytest.raises(RunRefused) as refused, django_capture_on_commit_callbacks(execute=True):
        errors_assign(
            integration=live_flow.integration,
            user=developer,
            ids=[error.pk, error.pk + 999],
            assignee=mia,
        )
    assert refused.value.field == "ids"
    assert FlowError.objects.get().assignee is None and not Notification.objects.exists()


# Retry with the fix --------------------------------------------------------------------


def _mappings(order_key: str) -> list[dict[str, str]]:
    return [
        {"source": "order_id", "target": order_key},
        {"source": "amount", "target": "amount"},
        {"source": "email", "target": "email"},
    ]


def _merge(integration: Integration, developer, capture, change) -> object:
    """Clone the integration, `change(clone)`, pull it back and merge it."""
    with capture(execute=True):
        clone = revision_services.integration_clone(
            source=integration, user=developer, name="Orders sandbox fix"
        )
    change(Integration.objects.get(pk=clone.pk))
    with capture(execute=True):
        pull = revision_services.pull_create(target=integration, source=clone, user=developer)
    pull.refresh_from_db()
    assert pull.status == "ready", pull.error
    with capture(execute=True):
        revision_services.merge_start(revision=pull, user=developer)
    pull.refresh_from_db()
    assert pull.status == "completed", pull.error
    return pull


def _fix_mapping(clone: Integration) -> None:
    step = FlowStep.objects.get(flow__integration=clone, name="Send to ERP")
    step.config = {**step.config, "mappings": _mappings("order_id")}
    step.save()


def test_a_merge_that_fixes_a_flow_with_open_errors_notifies_its_managers_with_the_offer(
    live_flow,
    erp,
    developer,
    approver,
    monitor,
    mia,
    outsider,
    django_capture_on_commit_callbacks,
):
    step = FlowStep.objects.get(flow=live_flow, name="Send to ERP")
    step.config = {**step.config, "mappings": _mappings("orderid")}
    step.save()
    run_once(live_flow)
    assert FlowError.objects.filter(state="open").count() == 5
    mail.outbox.clear()
    pull = _merge(
        live_flow.integration, developer, django_capture_on_commit_callbacks, _fix_mapping
    )

    notes = Notification.objects.filter(kind=NotificationKind.ERRORS_RETRY_OFFER)
    # The integration's managers: its manage grants and the approvers (who manage all);
    # not the monitor, not someone without access.
    assert {n.recipient.username for n in notes} == {"dev", "mia", "april"}
    note = notes.get(recipient=mia)
    assert note.title == f"Retry 5 open errors with the fix merged in pull #{pull.number}"
    assert "changed 1 flow with 5 open errors" in note.body
    assert note.url == reverse("revisions:detail", args=[pull.pk])
    assert note.integration_id == live_flow.integration_id
    assert [m.to for m in mail.outbox] == [["mia@example.com"]]
    # The link leads to the offer itself.
    page = mia_client(mia).get(note.url).content.decode()
    assert "Retry 5 open errors of the flows this change touched" in page


def test_a_merge_whose_flows_have_no_open_errors_notifies_nobody(
    live_flow, erp, developer, mia, django_capture_on_commit_callbacks
):
    erp.reject = {2}
    run_once(live_flow)
    FlowError.objects.update(state="resolved", resolved_by="user")

    def rename_step(clone: Integration) -> None:
        step = FlowStep.objects.get(flow__integration=clone, name="Send to ERP")
        step.config = {**step.config, "batch_size": 2}
        step.save()

    mail.outbox.clear()
    _merge(live_flow.integration, developer, django_capture_on_commit_callbacks, rename_step)
    assert not Notification.objects.filter(kind=NotificationKind.ERRORS_RETRY_OFFER).exists()
    assert mail.outbox == []


def test_the_offer_is_not_sent_for_other_revision_events_and_a_broken_offer_keeps_the_merge(
    live_flow, erp, developer, mia, django_capture_on_commit_callbacks, monkeypatch
):
    step = FlowStep.objects.get(flow=live_flow, name="Send to ERP")
    step.config = {**step.config, "mappings": _mappings("orderid")}
    step.save()
    run_once(live_flow)

    def broken(revision):
        raise RuntimeError("mail server on fire")

    monkeypatch.setattr("runs.errors.error_selectors.retry_offer_count", broken)
    pull = _merge(
        live_flow.integration, developer, django_capture_on_commit_callbacks, _fix_mapping
    )
    assert pull.status == "completed"
    assert not Notification.objects.exists()
    monkeypatch.undo()
    # Snapshots, clones and pulls sent their events too; only the merge offers.
    sent = errors_offer_retry(revision=pull)
    assert {n.recipient.username for n in sent} >= {"dev", "mia"}
