"""The status groupings are declared beside the transition table and agree with it;
pages read them through the model, not by comparing status names."""

from __future__ import annotations

import pytest
from django.urls import reverse

from revisions.models import (
    ACTIVE_STATUSES,
    CANCELLABLE_STATUSES,
    FINAL_STATUSES,
    OPEN_STATUSES,
    REVIEWABLE_STATUSES,
    TRANSITIONS,
    Revision,
    RevisionStatus,
    RevisionType,
)

S = RevisionStatus


def test_final_statuses_are_exactly_those_with_no_way_out():
    assert {s for s, moves in TRANSITIONS.items() if not moves} == FINAL_STATUSES
    assert set(S.values) - FINAL_STATUSES == OPEN_STATUSES


def test_active_and_reviewable_split_the_open_statuses():
    assert ACTIVE_STATUSES | REVIEWABLE_STATUSES == OPEN_STATUSES
    assert not ACTIVE_STATUSES & REVIEWABLE_STATUSES


def test_what_can_be_canceled_can_move_to_canceled():
    for statuses in CANCELLABLE_STATUSES.values():
        assert all(S.CANCELED in TRANSITIONS[s] for s in statuses)


@pytest.mark.parametrize("status", S.values)
def test_the_model_properties_read_the_groupings(status):
    pull = Revision(type=RevisionType.PULL, status=status)
    assert pull.is_active == (status in ACTIVE_STATUSES)
    assert pull.is_reviewable == (status in REVIEWABLE_STATUSES)
    assert pull.is_final == (status in FINAL_STATUSES)
    assert pull.is_cancellable == (status in OPEN_STATUSES and status != S.MERGING)
    snapshot = Revision(type=RevisionType.SNAPSHOT, status=status)
    assert not snapshot.is_cancellable


@pytest.mark.django_db
def test_refresh_is_offered_on_a_pull_awaiting_approval_as_on_a_ready_one(dev_client, sandbox_pull):
    page = reverse("revisions:detail", args=[sandbox_pull.pk])
    refresh = reverse("revisions:refresh", args=[sandbox_pull.pk])
    assert sandbox_pull.status == S.READY
    assert refresh in dev_client.get(page).content.decode()
    Revision.objects.filter(pk=sandbox_pull.pk).update(status=S.AWAITING_APPROVAL)
    assert refresh in dev_client.get(page).content.decode()
    Revision.objects.filter(pk=sandbox_pull.pk).update(status=S.CANCELED)
    assert refresh not in dev_client.get(page).content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("type_", "status", "note"),
    [
        (
            RevisionType.PULL,
            S.MERGING,
            "Applying the reviewed changes in one transaction. "
            "A snapshot was taken before anything changed. This page updates by itself.",
        ),
        (RevisionType.PULL, S.QUEUED, "Waiting for a worker to pick it up. This page"),
        (
            RevisionType.PULL,
            S.RUNNING,
            "Comparing the two integrations with their last sync point. This page",
        ),
        (
            RevisionType.REVERT,
            S.RUNNING,
            "Restoring the earlier state. A snapshot was taken first. This page",
        ),
        (RevisionType.CLONE, S.RUNNING, "Working on it. This page updates by itself."),
    ],
)
def test_the_progress_note_says_what_the_engine_is_doing(
    dev_client, sandbox_pull, type_, status, note
):
    Revision.objects.filter(pk=sandbox_pull.pk).update(type=type_, status=status)
    html = dev_client.get(reverse("revisions:detail", args=[sandbox_pull.pk])).content.decode()
    assert note in html
    assert 'class="spinner"' in html


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("type_", "title"),
    [
        (RevisionType.PULL, "✓ Merged"),
        (RevisionType.REVERT, "✓ Reverted"),
        (RevisionType.CLONE, "✓ Cloned"),
        (RevisionType.SNAPSHOT, "✓ Snapshot saved"),
    ],
)
def test_a_completed_revision_is_headed_by_what_it_did(dev_client, sandbox_pull, type_, title):
    Revision.objects.filter(pk=sandbox_pull.pk).update(type=type_, status=S.COMPLETED)
    html = dev_client.get(reverse("revisions:detail", args=[sandbox_pull.pk])).content.decode()
    assert f"<h2>{title}</h2>" in html
    assert 'data-status="completed"><span aria-hidden="true">✓</span>Completed</span>' in html


@pytest.mark.django_db
def test_a_failed_revision_shows_its_mark_and_its_error(dev_client, sandbox_pull):
    Revision.objects.filter(pk=sandbox_pull.pk).update(status=S.FAILED, error="Source vanished")
    html = dev_client.get(reverse("revisions:detail", args=[sandbox_pull.pk])).content.decode()
    assert 'data-status="failed"><span aria-hidden="true">✕</span>Failed</span>' in html
    assert "✕ Pull failed" in html and "Source vanished" in html
