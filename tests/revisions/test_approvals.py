"""Four eyes on production merges: request, approve, reject, lapse, queue (revisions.approvals).

Pulls are made as rows here (a ready pull with its changeset), so the rules of approvals
are tested on their own; the approval that starts a merge uses the engine's merge_start.
"""

from types import SimpleNamespace

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from audit.signals import revision_event
from integrations.models import AccessLevel, Environment, Role
from integrations.permissions import forget_grants
from revisions import approval_state, approvals
from revisions.errors import InvalidState, UnresolvedConflicts
from revisions.models import (
    Approval,
    ApprovalDecision,
    ChangeSet,
    Resolution,
    Revision,
    RevisionStatus,
    RevisionType,
)
from revisions.selectors import approval_queue, approval_queue_count
from tests.factories import GrantFactory, IntegrationFactory, UserFactory

pytestmark = pytest.mark.django_db

LINEAGE = "5b0b7f0e-8c1e-4c47-9d39-0d7f8f7f0a11"


def _pull(integration, user, *, unresolved=0, status=RevisionStatus.READY):
    revision = Revision.objects.create(
        integration=integration,
        number=Revision.objects.filter(integration=integration).count() + 1,
        type=RevisionType.PULL,
        status=status,
        created_by=user,
        target_version=integration.version,
        summary={"added": 0, "modified": 1, "deleted": 0, "conflicts": 1, "unresolved": unresolved},
    )
    ChangeSet.objects.create(
        revision=revision,
        data={
            "resources": [
                {
                    "lineage_id": LINEAGE,
                    "type": "flow",
                    "name": "Orders",
                    "action": "modified",
                    "fields": [
                        {
                            "path": "schedule",
                            "base": "a",
                            "ours": "b",
                            "theirs": "c",
                            "conflict": True,
                            "resolution": None,
                        }
                    ],
                }
            ]
        },
    )
    return revision


@pytest.fixture
def events():
    seen = []

    def receiver(sender, revision, verb, user, **kwargs):
        seen.append((verb, getattr(user, "username", None)))

    revision_event.connect(receiver, dispatch_uid="test-approval-events")
    yield seen
    revision_event.disconnect(dispatch_uid="test-approval-events")


@pytest.fixture
def pull(integration, developer):
    return _pull(integration, developer)


def test_request_moves_a_ready_production_pull_to_awaiting_approval(
    pull, developer, events, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        approval = approvals.approval_request(
            revision=pull, user=developer, comment="  check taxes "
        )
    pull.refresh_from_db()
    assert pull.status == RevisionStatus.AWAITING_APPROVAL
    assert approval.decision == ApprovalDecision.PENDING
    assert approval.request_comment == "check taxes"
    assert approval.changeset_hash == approval_state.changeset_hash(pull)
    assert events == [("approval_requested", "dev")]
    assert not approval_state.is_approved(pull)


def test_sandbox_pulls_need_no_approval_and_cannot_ask_for_one(developer):
    sandbox = IntegrationFactory(environment=Environment.SANDBOX)
    GrantFactory(integration=sandbox, user=developer)
    revision = _pull(sandbox, developer)
    assert approval_state.is_approved(revision)
    with pytest.raises(InvalidState, match="sandbox"):
        approvals.approval_request(revision=revision, user=developer)
    assert not Approval.objects.exists()


def test_request_refused_with_unresolved_conflicts_or_wrong_status(integration, developer):
    with pytest.raises(UnresolvedConflicts):
        approvals.approval_request(
            revision=_pull(integration, developer, unresolved=1), user=developer
        )
    other = IntegrationFactory(name="Other prod")
    GrantFactory(integration=other, user=developer)
    forget_grants(developer)
    queued = _pull(other, developer, status=RevisionStatus.QUEUED)
    with pytest.raises(InvalidState, match="queued"):
        approvals.approval_request(revision=queued, user=developer)
    assert not Approval.objects.exists()
    assert queued.status == RevisionStatus.QUEUED


def test_asking_twice_is_a_conflict(pull, developer):
    approvals.approval_request(revision=pull, user=developer)
    with pytest.raises(InvalidState, match="already requested"):
        approvals.approval_request(revision=pull, user=developer)
    assert Approval.objects.count() == 1


def test_monitor_grant_may_not_request(integration, monitor):
    revision = _pull(integration, monitor)
    with pytest.raises(PermissionDenied):
        approvals.approval_request(revision=revision, user=monitor)


@pytest.mark.parametrize("role", [Role.APPROVER, Role.ADMINISTRATOR])
def test_requester_can_never_decide_on_own_request_whatever_the_role(integration, role):
    asker = UserFactory(username=f"asker-{role}", role=role)
    revision = _pull(integration, asker)
    approvals.approval_request(revision=revision, user=asker)
    with pytest.raises(PermissionDenied, match="another approver"):
        approvals.approval_approve(revision=revision, user=asker)
    with pytest.raises(PermissionDenied, match="another approver"):
        approvals.approval_reject(revision=revision, user=asker, comment="no")
    revision.refresh_from_db()
    assert revision.status == RevisionStatus.AWAITING_APPROVAL
    assert Approval.objects.get().decision == ApprovalDecision.PENDING


@pytest.mark.parametrize("role", [Role.DEVELOPER, Role.MONITOR])
def test_only_approvers_and_administrators_decide(pull, developer, role):
    approvals.approval_request(revision=pull, user=developer)
    other = UserFactory(username=f"other-{role}", role=role)
    GrantFactory(integration=pull.integration, user=other, level=AccessLevel.MANAGE)
    with pytest.raises(PermissionDenied, match="approver"):
        approvals.approval_approve(revision=pull, user=other)
    with pytest.raises(PermissionDenied, match="approver"):
        approvals.approval_reject(revision=pull, user=other)
    assert Approval.objects.get().decision == ApprovalDecision.PENDING


def test_reject_sends_the_pull_back_to_ready_with_the_comment(
    pull, developer, approver, events, django_capture_on_commit_callbacks
):
    approvals.approval_request(revision=pull, user=developer)
    with django_capture_on_commit_callbacks(execute=True):
        approvals.approval_reject(revision=pull, user=approver, comment="Wrong tax rate")
    pull.refresh_from_db()
    assert pull.status == RevisionStatus.READY
    approval = Approval.objects.get()
    assert approval.decision == ApprovalDecision.REJECTED
    assert approval.decided_by == approver
    assert approval.decision_comment == "Wrong tax rate"
    assert events == [("rejected", "april")]
    assert not approval_state.is_approved(pull)
    # The author may ask again; a new request row, the rejected one stays as history.
    approvals.approval_request(revision=pull, user=developer, comment="fixed")
    assert list(Approval.objects.values_list("decision", flat=True)) == ["pending", "rejected"]


def test_deciding_without_a_request_is_a_conflict(pull, approver):
    with pytest.raises(InvalidState, match="not awaiting approval"):
        approvals.approval_approve(revision=pull, user=approver)
    with pytest.raises(InvalidState, match="not awaiting approval"):
        approvals.approval_reject(revision=pull, user=approver)


def test_changed_resolution_lapses_the_request_and_reopens_the_pull(
    pull, developer, events, django_capture_on_commit_callbacks
):
    approvals.approval_request(revision=pull, user=developer)
    with django_capture_on_commit_callbacks(execute=True):
        Resolution.objects.create(
            revision=pull, lineage_id=LINEAGE, path="schedule", choose="ours", chosen_by=developer
        )
    pull.refresh_from_db()
    assert pull.status == RevisionStatus.READY
    assert Approval.objects.get().decision == ApprovalDecision.LAPSED
    assert ("approval_lapsed", "dev") in events


def test_refresh_lapses_even_when_it_finds_the_same_changes(pull, developer, approver):
    approvals.approval_request(revision=pull, user=developer)
    changeset = pull.changeset
    before = approval_state.changeset_hash(pull)
    # A refresh recomputes: same data, a new computation.
    changeset.computed_at = timezone.now()
    changeset.save()
    assert approval_state.changeset_hash(pull) != before
    assert Approval.objects.get().decision == ApprovalDecision.LAPSED
    pull.refresh_from_db()
    assert pull.status == RevisionStatus.READY
    with pytest.raises(InvalidState):
        approvals.approval_approve(revision=pull, user=approver)


def test_given_approval_lapses_when_the_changeset_changes_afterwards(pull, developer, approver):
    # As if the merge had not started yet: an approved row and the pull still awaiting.
    Approval.objects.create(
        revision=pull,
        requested_by=developer,
        changeset_hash=approval_state.changeset_hash(pull),
        decision=ApprovalDecision.APPROVED,
        decided_by=approver,
    )
    assert approval_state.is_approved(pull)
    Resolution.objects.create(revision=pull, lineage_id=LINEAGE, path="schedule", choose="theirs")
    assert not approval_state.is_approved(pull)
    assert Approval.objects.get().decision == ApprovalDecision.LAPSED


def test_hash_depends_on_changes_resolutions_and_version_only(pull):
    first = approval_state.changeset_hash(pull)
    assert approval_state.changeset_hash(Revision.objects.get(pk=pull.pk)) == first
    pull.target_version += 1
    assert approval_state.changeset_hash(pull) != first


def test_queue_lists_awaiting_pulls_for_approvers_and_counts_others_requests(
    integration, developer, approver, admin_user, monitor
):
    mine = _pull(integration, approver)
    theirs = _pull(IntegrationFactory(name="Other prod"), developer)
    GrantFactory(integration=theirs.integration, user=developer)
    _pull(IntegrationFactory(), developer)  # ready, not asked: not in any queue
    approvals.approval_request(revision=mine, user=approver)
    approvals.approval_request(revision=theirs, user=developer)
    assert list(approval_queue(approver)) == [mine, theirs]
    assert approval_queue_count(approver) == 1  # own request waits for someone else
    assert approval_queue_count(admin_user) == 2
    assert list(approval_queue(developer)) == []
    assert approval_queue_count(monitor) == 0


@pytest.fixture
def merge(monkeypatch):
    """The engine's merge_start, recorded: what approve hands over, and in whose name."""
    from revisions import services

    record = SimpleNamespace(calls=[], refuse=None)

    def merge_start(*, revision, user):
        record.calls.append((revision.pk, user.username, approval_state.is_approved(revision)))
        if record.refuse is not None:
            raise record.refuse
        revision.move_to(RevisionStatus.MERGING)
        return revision

    monkeypatch.setattr(services, "merge_start", merge_start)
    return record


def test_approve_records_the_decision_and_starts_the_merge_as_the_approver(
    pull, developer, approver, events, merge, django_capture_on_commit_callbacks
):
    approvals.approval_request(revision=pull, user=developer)
    with django_capture_on_commit_callbacks(execute=True):
        approvals.approval_approve(revision=pull, user=approver, comment=" Fine ")
    assert merge.calls == [(pull.pk, "april", True)]
    approval = Approval.objects.get()
    assert (approval.decision, approval.decided_by, approval.decision_comment) == (
        ApprovalDecision.APPROVED,
        approver,
        "Fine",
    )
    pull.refresh_from_db()
    assert pull.status == RevisionStatus.MERGING
    assert events == [("approved", "april")]


def test_approval_is_not_recorded_when_the_merge_cannot_start(pull, developer, approver, merge):
    from revisions.errors import StaleReview

    approvals.approval_request(revision=pull, user=developer)
    merge.refuse = StaleReview("The target changed since the pull was computed.")
    with pytest.raises(StaleReview):
        approvals.approval_approve(revision=pull, user=approver)
    assert Approval.objects.get().decision == ApprovalDecision.PENDING
    pull.refresh_from_db()
    assert pull.status == RevisionStatus.AWAITING_APPROVAL


def test_a_decision_reads_the_pull_fresh_not_the_page_it_was_loaded_for(
    pull, developer, approver, merge
):
    from django.db.models import F

    from integrations.models import Integration

    approvals.approval_request(revision=pull, user=developer)
    stale = Revision.objects.get(pk=pull.pk)  # as the approver's page loaded it
    # Meanwhile: the target moved on, the pull was refreshed and asked again.
    Integration.objects.filter(pk=pull.integration_id).update(version=F("version") + 1)
    Revision.objects.filter(pk=pull.pk).update(target_version=F("target_version") + 1)
    pull.changeset.computed_at = timezone.now()
    pull.changeset.save()
    approvals.approval_request(revision=Revision.objects.get(pk=pull.pk), user=developer)
    approvals.approval_approve(revision=stale, user=approver)
    assert merge.calls == [(pull.pk, "april", True)]
    assert stale.status == RevisionStatus.MERGING


def test_approver_is_warned_before_approving_a_pull_whose_target_moved_and_keeps_the_comment(
    pull, developer, approver, approver_client
):
    """The target moved after the request: the page says so before Approve is clicked, and
    the refusal comes back on the page with the approver's comment still in its box."""
    from django.db.models import F
    from django.urls import reverse

    from integrations.models import Integration

    approvals.approval_request(revision=pull, user=developer)
    Integration.objects.filter(pk=pull.integration_id).update(version=F("version") + 1)
    page = approver_client.get(reverse("revisions:detail", args=[pull.pk])).content.decode()
    assert 'data-testid="stale-warning"' in page
    assert f"reviewed at version {pull.target_version}" in page
    response = approver_client.post(
        reverse("revisions:approve", args=[pull.pk]), {"comment": "Checked the tax rounding"}
    )
    assert response.status_code == 409
    body = response.content.decode()
    assert ">Checked the tax rounding</textarea>" in body
    assert "changed since" in body
    assert Approval.objects.get().decision == ApprovalDecision.PENDING
