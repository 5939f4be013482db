"""Change control on revert (issue #10, section 3): rolling back a protected integration.

Production broke and must get back to a stable state now: approvers and administrators
revert a protected integration at once. A developer's revert waits in awaiting_approval
for an approver (four eyes), pinned to what it would revert; approving runs it,
rejecting cancels it, and nothing changes until then. Merging an approved pull into a
protected integration is how changes land, so it is never blocked.
"""

import pytest
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import reverse

from integrations.models import Flow
from integrations.services import integration_protection_set, resource_update
from revisions import approval_state, approvals, services
from revisions.errors import InvalidState
from revisions.models import Approval, ApprovalDecision, Revision, RevisionStatus, RevisionType
from tests.api.conftest import token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def protected(integration):
    integration.protected = True
    integration.save()
    return integration


@pytest.fixture
def merged(protected, stocked, sandbox, make_pull, developer, approver, run_on_commit):
    """A pull from the sandbox merged into the protected integration, approved by an
    approver: the flow's schedule changed. Returns the completed pull."""
    flow = Flow.objects.get(integration=sandbox, lineage_id=stocked["flow"].lineage_id)
    resource_update(instance=flow, data={"schedule": "*/5 * * * *"})
    pull = make_pull(target=protected, source=sandbox)
    assert pull.status == RevisionStatus.READY
    approvals.approval_request(revision=pull, user=developer)
    run_on_commit(approvals.approval_approve, revision=pull, user=approver)
    pull.refresh_from_db()
    assert pull.status == RevisionStatus.COMPLETED
    return pull


def _schedule(stocked):
    return Flow.objects.get(pk=stocked["flow"].pk).schedule


def test_an_approved_pull_merges_into_a_protected_integration(merged, stocked, protected):
    assert _schedule(stocked) == "*/5 * * * *"
    protected.refresh_from_db()
    assert protected.protected


def test_a_developers_revert_waits_for_an_approver_and_changes_nothing(
    merged, stocked, developer, protected, run_on_commit
):
    version = type(protected).objects.get(pk=protected.pk).version
    revert = run_on_commit(services.revert_start, revision=merged, user=developer, side="before")
    assert revert.type == RevisionType.REVERT
    assert revert.status == RevisionStatus.AWAITING_APPROVAL
    assert _schedule(stocked) == "*/5 * * * *"
    assert type(protected).objects.get(pk=protected.pk).version == version
    approval = Approval.objects.get(revision=revert)
    assert approval.decision == ApprovalDecision.PENDING
    assert approval.requested_by == developer
    assert approval.changeset_hash == approval_state.revert_hash(revert)


def test_an_approver_approves_the_revert_and_it_runs(
    merged, stocked, developer, approver, run_on_commit
):
    revert = run_on_commit(services.revert_start, revision=merged, user=developer, side="before")
    run_on_commit(approvals.approval_approve, revision=revert, user=approver, comment="Go back")
    revert.refresh_from_db()
    assert revert.status == RevisionStatus.COMPLETED
    assert _schedule(stocked) != "*/5 * * * *"
    approval = Approval.objects.get(revision=revert)
    assert approval.decision == ApprovalDecision.APPROVED
    assert approval.decided_by == approver
    assert approval.decision_comment == "Go back"


@pytest.mark.parametrize("who", ["approver", "admin_user"])
def test_approvers_and_administrators_roll_back_at_once(
    who, merged, stocked, request, run_on_commit
):
    user = request.getfixturevalue(who)
    revert = run_on_commit(services.revert_start, revision=merged, user=user, side="before")
    revert.refresh_from_db()
    assert revert.status == RevisionStatus.COMPLETED
    assert _schedule(stocked) != "*/5 * * * *"
    assert not Approval.objects.filter(revision=revert).exists()


def test_an_unprotected_integration_is_reverted_at_once_by_its_developer(
    integration, stocked, developer, run_on_commit
):
    before = _schedule(stocked)
    snapshot = services.snapshot_create(integration=integration, user=developer)
    resource_update(instance=stocked["flow"], data={"schedule": "0 * * * *"})
    revert = run_on_commit(services.revert_start, revision=snapshot, user=developer)
    revert.refresh_from_db()
    assert revert.status == RevisionStatus.COMPLETED
    assert _schedule(stocked) == before


def test_rejecting_a_revert_cancels_it_and_changes_nothing(
    merged, stocked, developer, approver, run_on_commit
):
    revert = run_on_commit(services.revert_start, revision=merged, user=developer, side="before")
    approvals.approval_reject(revision=revert, user=approver, comment="Fix forward instead")
    revert.refresh_from_db()
    assert revert.status == RevisionStatus.CANCELED
    assert _schedule(stocked) == "*/5 * * * *"
    assert Approval.objects.get(revision=revert).decision == ApprovalDecision.REJECTED


def test_a_developer_may_not_approve_a_revert(merged, developer, run_on_commit):
    revert = run_on_commit(services.revert_start, revision=merged, user=developer, side="before")
    other = type(developer).objects.create(username="dev2", role="developer")
    with pytest.raises(PermissionDenied):
        approvals.approval_approve(revision=revert, user=other)
    revert.refresh_from_db()
    assert revert.status == RevisionStatus.AWAITING_APPROVAL


def test_approval_is_refused_when_the_integration_changed_since_the_request(
    merged, stocked, protected, developer, approver, admin_user, run_on_commit
):
    revert = run_on_commit(services.revert_start, revision=merged, user=developer, side="before")
    # An administrator turns protection off and edits directly meanwhile.
    integration_protection_set(
        integration=protected, protected=False, user=admin_user, reason="Hotfix"
    )
    resource_update(instance=Flow.objects.get(pk=stocked["flow"].pk), data={"enabled": False})
    with pytest.raises(InvalidState, match="changed since this revert was asked for"):
        run_on_commit(approvals.approval_approve, revision=revert, user=approver)
    revert.refresh_from_db()
    assert revert.status == RevisionStatus.AWAITING_APPROVAL
    assert Approval.objects.get(revision=revert).decision == ApprovalDecision.PENDING
    assert Flow.objects.get(pk=stocked["flow"].pk).enabled is False
    # The requester cancels it and may ask again.
    services.revision_cancel(revision=revert, user=developer)
    revert.refresh_from_db()
    assert revert.status == RevisionStatus.CANCELED


def test_a_waiting_revert_holds_the_integration_like_any_open_operation(
    merged, protected, sandbox, developer, make_pull, run_on_commit
):
    from revisions.errors import OperationInProgress

    run_on_commit(services.revert_start, revision=merged, user=developer, side="before")
    with pytest.raises(OperationInProgress):
        services.pull_create(target=protected, source=sandbox, user=developer)


def test_the_approval_queue_lists_a_waiting_revert(merged, developer, approver, run_on_commit):
    from revisions.selectors import approval_queue, approval_queue_count

    revert = run_on_commit(services.revert_start, revision=merged, user=developer, side="before")
    assert list(approval_queue(approver)) == [revert]
    assert approval_queue_count(approver) == 1
    client = Client()
    client.force_login(approver)
    html = client.get(reverse("revisions:approvals")).content.decode()
    assert reverse("revisions:detail", args=[revert.pk]) in html


# Over the API ----------------------------------------------------------------------------


def test_api_developer_revert_answers_202_awaiting_approval_then_approver_runs_it(
    merged, stocked, developer, approver, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = token_client(developer).post(
            f"/api/v1/revisions/{merged.pk}/revert", {"to": "before"}, format="json"
        )
    assert response.status_code == 202
    body = response.json()
    assert body["type"] == "revert" and body["status"] == "awaiting_approval"
    assert _schedule(stocked) == "*/5 * * * *"
    # The developer cannot approve it.
    refused = token_client(developer).post(f"/api/v1/revisions/{body['id']}/approve", {})
    assert refused.status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        response = token_client(approver).post(
            f"/api/v1/revisions/{body['id']}/approve", {"comment": "ok"}, format="json"
        )
    assert response.status_code == 202
    assert Revision.objects.get(pk=body["id"]).status == RevisionStatus.COMPLETED
    assert _schedule(stocked) != "*/5 * * * *"


def test_api_approver_revert_runs_at_once(
    merged, stocked, approver, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = token_client(approver).post(
            f"/api/v1/revisions/{merged.pk}/revert", {"to": "before"}, format="json"
        )
    assert response.status_code == 202
    assert Revision.objects.get(pk=response.json()["id"]).status == RevisionStatus.COMPLETED


def test_api_reject_cancels_a_waiting_revert(merged, developer, approver, run_on_commit):
    revert = run_on_commit(services.revert_start, revision=merged, user=developer, side="before")
    response = token_client(approver).post(
        f"/api/v1/revisions/{revert.pk}/reject", {"comment": "no"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["status"] == "canceled"


# In the pages ----------------------------------------------------------------------------


def test_ui_developer_revert_waits_and_approver_approves_it_from_the_page(
    merged, stocked, developer, approver, django_capture_on_commit_callbacks
):
    dev = Client()
    dev.force_login(developer)
    preview = dev.get(reverse("revisions:revert", args=[merged.pk]) + "?to=before")
    assert "your revert waits for an approver" in preview.content.decode()
    response = dev.post(
        reverse("revisions:revert", args=[merged.pk]), {"to": "before", "description": ""}
    )
    assert response.status_code == 302
    revert = Revision.objects.get(type=RevisionType.REVERT)
    assert revert.status == RevisionStatus.AWAITING_APPROVAL
    page = dev.get(response["Location"], follow=True).content.decode()
    assert "waits for an approver" in page
    assert "Revert waiting for an approver" in page
    assert "Approve and revert" not in page  # not for the developer
    assert _schedule(stocked) == "*/5 * * * *"

    boss = Client()
    boss.force_login(approver)
    detail = reverse("revisions:detail", args=[revert.pk])
    assert "Approve and revert" in boss.get(detail).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = boss.post(reverse("revisions:approve", args=[revert.pk]), {"comment": ""})
    assert response.status_code == 302
    revert.refresh_from_db()
    assert revert.status == RevisionStatus.COMPLETED
    assert _schedule(stocked) != "*/5 * * * *"
    assert "Approved by" in boss.get(detail).content.decode()
