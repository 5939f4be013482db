"""The Revisions tab, review page, revert preview and approvals as their users see them."""

import re

import pytest
from django.urls import reverse

from integrations.models import AccessLevel, Flow, Script
from revisions import services
from revisions.models import Approval, Revision, RevisionStatus, RevisionType
from tests.factories import FlowFactory, GrantFactory, IntegrationFactory, UserFactory

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}


def hx(target=None):
    headers = dict(HX)
    if target:
        headers["HTTP_HX_TARGET"] = target
    return headers


def detail(revision):
    return reverse("revisions:detail", args=[revision.pk])


def url(name, revision):
    return reverse(f"revisions:{name}", args=[revision.pk])


# The tab ---------------------------------------------------------------------------------


def test_tab_lists_revisions_newest_first_with_actions(dev_client, integration, developer):
    first = services.snapshot_create(integration=integration, user=developer, description="One")
    second = services.snapshot_create(integration=integration, user=developer, description="Two")
    # The integration moves on, so the snapshots are earlier states to go back to.
    type(integration).objects.filter(pk=integration.pk).update(description="Moved on")
    response = dev_client.get(reverse("revisions:tab", args=[integration.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert html.index("Two") < html.index("One")
    assert f"#{second.number}" in html and f"#{first.number}" in html
    assert "Create snapshot" in html and "Create pull" in html
    assert "Revert to this" in html and "Compare with now" in html
    assert response["Vary"] and "HX-Request" in response["Vary"]


def test_the_state_the_integration_is_in_is_not_offered_as_a_revert(
    dev_client, integration, developer
):
    snapshot = services.snapshot_create(integration=integration, user=developer, description="Now")
    html = dev_client.get(reverse("revisions:tab", args=[integration.pk])).content.decode()
    assert "Revert to this" not in html and "Compare with now" not in html
    page = dev_client.get(detail(snapshot)).content.decode()
    assert "Revert to this" not in page and "is in this state now" in page


def test_monitor_sees_no_action_buttons_on_the_tab(monitor_client, integration, developer):
    services.snapshot_create(integration=integration, user=developer, description="Kept")
    html = monitor_client.get(reverse("revisions:tab", args=[integration.pk])).content.decode()
    assert "Kept" in html
    for label in ("Create snapshot", "Create pull", "Revert to this", ">Clone</a>", ">Cancel<"):
        assert label not in html


def test_tab_filters_by_type_and_answers_htmx_with_the_table_only(
    dev_client, clean_pull, integration
):
    tab = reverse("revisions:tab", args=[integration.pk])
    response = dev_client.get(tab, {"type": "pull"}, **hx("revisions-table"))
    html = response.content.decode()
    assert "<html" not in html and 'id="revisions-table"' in html
    assert "Bring in sandbox changes" in html
    assert "Review" in html
    snapshots = dev_client.get(tab, {"type": "snapshot"}, **hx("revisions-table")).content
    assert b"Bring in sandbox changes" not in snapshots


def test_tab_says_what_to_do_when_filters_match_nothing(dev_client, integration):
    response = dev_client.get(reverse("revisions:tab", args=[integration.pk]), {"status": "failed"})
    assert b"No revisions match these filters" in response.content


def test_empty_tab_explains_how_to_start(dev_client, integration):
    html = dev_client.get(reverse("revisions:tab", args=[integration.pk])).content.decode()
    assert "No revisions yet" in html
    assert "Pulls need a clone" in html


def test_tab_paginates(dev_client, integration, developer):
    for i in range(27):
        services.snapshot_create(integration=integration, user=developer, description=f"S{i}")
    tab = reverse("revisions:tab", args=[integration.pk])
    page1 = dev_client.get(tab).content.decode()
    assert "1–25 of 27" in page1 and "Older" in page1
    page2 = dev_client.get(tab, {"page": 2}).content.decode()
    assert ">S0<" in page2 and ">S26<" not in page2


def test_invisible_integration_tab_is_404(integration):
    stranger = UserFactory(username="stranger")
    from django.test import Client

    client = Client()
    client.force_login(stranger)
    assert client.get(reverse("revisions:tab", args=[integration.pk])).status_code == 404
    snap = services.snapshot_create(integration=integration, user=None, description="x")
    assert client.get(detail(snap)).status_code == 404


# Snapshots, clones and pulls --------------------------------------------------------------


def test_snapshot_needs_a_description_and_changes_nothing_without_one(dev_client, integration):
    target = reverse("revisions:snapshot", args=[integration.pk])
    response = dev_client.post(target, {"description": "   "})
    assert response.status_code == 400
    assert b"Describe the snapshot" in response.content
    assert not Revision.objects.filter(integration=integration).exists()
    response = dev_client.post(target, {"description": "Before prices"})
    assert response.status_code == 302
    snap = Revision.objects.get(integration=integration)
    assert snap.type == RevisionType.SNAPSHOT and snap.status == RevisionStatus.COMPLETED


def test_pull_form_offers_the_family_and_explains_an_empty_one(dev_client, sandbox, integration):
    html = dev_client.get(reverse("revisions:pull", args=[integration.pk])).content.decode()
    assert "Orders sandbox" in html
    lonely = IntegrationFactory(name="Lonely")
    GrantFactory(integration=lonely, user=sandbox.created_by or UserFactory(username="dev"))
    html = dev_client.get(reverse("revisions:pull", args=[lonely.pk])).content.decode()
    assert "Nothing to pull from" in html


def test_creating_a_pull_computes_it_and_opens_the_review(
    dev_client, stocked, sandbox, integration, django_capture_on_commit_callbacks
):
    Flow.objects.filter(integration=sandbox).update(description="changed")
    FlowFactory(integration=sandbox, name="Refunds")
    with django_capture_on_commit_callbacks(execute=True):
        response = dev_client.post(
            reverse("revisions:pull", args=[integration.pk]),
            {"source": sandbox.pk, "description": "Refunds flow"},
        )
    pull = Revision.objects.get(integration=integration, type=RevisionType.PULL)
    assert response.status_code == 302 and response["Location"] == detail(pull)
    pull.refresh_from_db()
    assert pull.status == RevisionStatus.READY
    html = dev_client.get(detail(pull)).content.decode()
    assert "Refunds" in html


def test_pull_from_outside_the_family_is_refused_and_creates_nothing(
    dev_client, integration, developer
):
    other = IntegrationFactory(name="Other")
    GrantFactory(integration=other, user=developer)
    response = dev_client.post(
        reverse("revisions:pull", args=[integration.pk]),
        {"source": other.pk, "description": "x"},
    )
    assert response.status_code == 400
    assert not Revision.objects.filter(type=RevisionType.PULL).exists()


def test_developer_clones_into_a_sandbox_only(dev_client, stocked, integration):
    page = dev_client.get(reverse("revisions:clone", args=[integration.pk])).content.decode()
    assert 'value="production"' not in page
    response = dev_client.post(
        reverse("revisions:clone", args=[integration.pk]),
        {"name": "My sandbox", "environment": "production"},
    )
    assert response.status_code == 400
    assert not type(integration).objects.filter(name="My sandbox").exists()


# The review page ----------------------------------------------------------------------


def test_review_page_shows_summary_and_resources_but_loads_field_diffs_lazily(
    dev_client, clean_pull
):
    response = dev_client.get(detail(clean_pull))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Map order fields" in html and "Tax rounding" in html
    assert "modified" in html
    # The step is listed under its flow, named though the flow itself did not change.
    assert re.search(r"<strong>Orders to ERP</strong>\s*<span[^>]*>— unchanged itself", html)
    # Values are not in the page until a resource is expanded.
    assert "total_gross" not in html
    assert 'hx-trigger="toggle once"' in html


def test_expanding_a_resource_shows_its_field_diff(dev_client, clean_pull, stocked):
    step = stocked["step"]
    response = dev_client.get(url_res(clean_pull, step.lineage_id), **HX)
    html = response.content.decode()
    assert "<html" not in html
    assert "config" in html
    assert '<ins class="dw">total_gross</ins>' in html or "total_gross" in html
    script = dev_client.get(url_res(clean_pull, stocked["script"].lineage_id), **HX)
    assert b'class="dl"' in script.content  # code is a line diff with line numbers
    assert b'0.<ins class="dw">25</ins>' in script.content  # the changed word, marked


def url_res(revision, lineage_id):
    return reverse("revisions:resource", args=[revision.pk, lineage_id])


def test_resource_diff_without_htmx_is_a_full_page(dev_client, clean_pull, stocked):
    response = dev_client.get(url_res(clean_pull, stocked["script"].lineage_id))
    assert b"<html" in response.content and b"Tax rounding" in response.content


def test_secrets_never_appear_on_review_pages(dev_client, sandbox_pull, stocked):
    html = dev_client.get(detail(sandbox_pull)).content.decode()
    conn = dev_client.get(url_res(sandbox_pull, stocked["connection"].lineage_id), **HX)
    for page in (html, conn.content.decode()):
        assert "s3cr3t-key" not in page and "credentials" not in page


def _build_pull(n, integration, developer, run_on_commit):
    for i in range(n):
        FlowFactory(integration=integration, name=f"Flow {i:03d}")
    clone = run_on_commit(
        services.integration_clone, source=integration, user=developer, name=f"Clone {n}"
    )
    if not clone.grants.filter(user=developer).exists():
        GrantFactory(integration=clone, user=developer, level=AccessLevel.MANAGE)
    for flow in Flow.objects.filter(integration=clone):
        flow.description = f"changed {flow.name}"
        flow.save()
    pull = run_on_commit(
        services.pull_create, target=integration, source=clone, user=developer, description="x"
    )
    pull.refresh_from_db()
    assert pull.status == RevisionStatus.READY
    return pull


def test_review_page_queries_do_not_grow_with_the_number_of_changes(
    dev_client, developer, run_on_commit, django_assert_max_num_queries
):
    small_target = IntegrationFactory(name="Small")
    big_target = IntegrationFactory(name="Big")
    for target in (small_target, big_target):
        GrantFactory(integration=target, user=developer, level=AccessLevel.MANAGE)
    small = _build_pull(3, small_target, developer, run_on_commit)
    big = _build_pull(150, big_target, developer, run_on_commit)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as small_q:
        assert dev_client.get(detail(small)).status_code == 200
    with django_assert_max_num_queries(len(small_q.captured_queries)):
        response = dev_client.get(detail(big))
    assert response.content.count(b'class="rv-res ') == 150


# Conflicts, resolutions and leaving resources out -------------------------------------


def test_merge_is_disabled_with_the_reason_until_conflicts_are_resolved(
    dev_client, conflict_pull, stocked
):
    html = dev_client.get(detail(conflict_pull)).content.decode()
    assert re.search(r'<button[^>]*disabled[^>]*data-testid="merge-button"', html)
    assert "Resolve 1 conflict to merge" in html
    flow = stocked["flow"]
    response = dev_client.post(
        url("resolve", conflict_pull),
        {"lineage_id": flow.lineage_id, "path": "schedule", "choose": "theirs"},
        **HX,
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert f'id="diff-{flow.lineage_id}"' in body
    assert "✓ Takes theirs" in body
    # Out-of-band: the counts and the merge box change without a reload.
    assert 'id="review-summary"' in body and 'hx-swap-oob="true"' in body
    assert re.search(r"<strong>0</strong> unresolved", body)
    assert "Request approval" in body  # production target: the enabled next step
    assert 'id="merge-box"' in body


def test_a_changed_resolution_is_kept_and_shown(dev_client, conflict_pull, stocked):
    flow = stocked["flow"]
    for choice in ("theirs", "ours"):
        dev_client.post(
            url("resolve", conflict_pull),
            {"lineage_id": flow.lineage_id, "path": "schedule", "choose": choice},
            **HX,
        )
    html = dev_client.get(url_res(conflict_pull, flow.lineage_id), **HX).content.decode()
    assert "✓ Keeps ours" in html


def test_bad_resolution_input_is_refused_with_a_message(dev_client, conflict_pull):
    response = dev_client.post(
        url("resolve", conflict_pull), {"lineage_id": "nope", "choose": "mine"}, **HX
    )
    assert response.status_code == 409
    assert "ilm:toast" in response["HX-Trigger"]


def test_leaving_a_resource_out_marks_it_and_the_merge_keeps_the_target_version(
    dev_client, sandbox_pull, stocked, sandbox, run_on_commit
):
    conn = stocked["connection"]
    response = dev_client.post(
        url("include", sandbox_pull), {"lineage_id": conn.lineage_id, "include": "0"}, **HX
    )
    assert response.status_code == 200
    assert "Left out" in response.content.decode()
    with_flow_only = dev_client.get(detail(sandbox_pull)).content.decode()
    assert "Left out" in with_flow_only
    run_on_commit(dev_client.post, url("merge", sandbox_pull))
    sandbox_pull.refresh_from_db()
    assert sandbox_pull.status == RevisionStatus.COMPLETED
    twin = type(conn).objects.get(integration=sandbox, lineage_id=conn.lineage_id)
    assert twin.config == {"base_url": "https://api.example.com", "timeout": 30}
    flow = Flow.objects.get(integration=sandbox, lineage_id=stocked["flow"].lineage_id)
    assert flow.description == "Every paid order, hourly"


def test_only_conflicts_filter_lists_conflicting_resources(dev_client, conflict_pull):
    response = dev_client.get(detail(conflict_pull), {"only": "conflicts"}, **hx("resource-list"))
    html = response.content.decode()
    assert "<html" not in html
    assert "Orders to ERP" in html and "Tax rounding" not in html


def test_the_view_toggle_follows_the_list_it_swaps(dev_client, conflict_pull):
    """Swapping the list alone must not leave "All changes" pressed: the toggle comes
    along out of band, and the pressed state is announced with aria-pressed."""

    def pressed(html: str) -> list[str]:
        return re.findall(r'aria-pressed="true"[^>]*>([^<]+)</a>', html)

    only = dev_client.get(detail(conflict_pull), {"only": "conflicts"}, **hx("resource-list"))
    html = only.content.decode()
    assert 'id="rv-view-filter"' in html and 'hx-swap-oob="true"' in html
    assert pressed(html) == ["Only conflicts"]
    back = dev_client.get(detail(conflict_pull), **hx("resource-list")).content.decode()
    assert pressed(back) == ["All changes"]
    page = dev_client.get(detail(conflict_pull)).content.decode()
    assert pressed(page) == ["All changes"] and 'hx-swap-oob="true"' not in page


# Merge, progress, results -----------------------------------------------------------------


def test_merge_into_a_sandbox_completes_and_links_the_snapshot_before(
    dev_client, sandbox_pull, run_on_commit
):
    response = run_on_commit(dev_client.post, url("merge", sandbox_pull))
    assert response.status_code == 302
    sandbox_pull.refresh_from_db()
    assert sandbox_pull.status == RevisionStatus.COMPLETED
    html = dev_client.get(detail(sandbox_pull)).content.decode()
    assert "Merged" in html and "Snapshot before" in html
    status = dev_client.get(url("status", sandbox_pull), **HX)
    assert status.status_code == 286


def test_status_polls_while_the_engine_works_and_stops_when_final(dev_client, integration):
    running = Revision.objects.create(
        integration=integration, number=1, type=RevisionType.PULL, status=RevisionStatus.RUNNING
    )
    response = dev_client.get(url("status", running), **HX)
    assert response.status_code == 200 and b'hx-trigger="every 1s"' in response.content
    row = dev_client.get(url("status", running), {"part": "row"}, **HX)
    assert row.status_code == 200 and b"every 2s" in row.content
    running.status = RevisionStatus.FAILED
    running.error = "The source integration was deleted; pick another source."
    running.save()
    done = dev_client.get(url("status", running), **HX)
    assert done.status_code == 286 and done["HX-Refresh"] == "true"
    page = dev_client.get(detail(running)).content.decode()
    assert "The source integration was deleted" in page and "Create pull again" in page


def test_merge_with_unresolved_conflicts_is_refused_with_the_reason(
    admin_client_, conflict_pull, run_on_commit
):
    response = run_on_commit(admin_client_.post, url("merge", conflict_pull), follow=True)
    conflict_pull.refresh_from_db()
    assert conflict_pull.status == RevisionStatus.READY
    assert b"message-error" in response.content


def test_cancel_leaves_the_target_unchanged(dev_client, clean_pull, integration):
    integration.refresh_from_db()
    version = integration.version
    response = dev_client.post(url("cancel", clean_pull))
    assert response.status_code == 302
    clean_pull.refresh_from_db()
    integration.refresh_from_db()
    assert clean_pull.status == RevisionStatus.CANCELED
    assert integration.version == version


# Approvals ----------------------------------------------------------------------------


def test_production_pull_needs_approval_and_the_requester_cannot_approve(
    dev_client, approver_client, clean_pull, developer, approver, run_on_commit
):
    html = dev_client.get(detail(clean_pull)).content.decode()
    assert "Request approval" in html and "Merge into" not in html
    refused = run_on_commit(dev_client.post, url("merge", clean_pull))
    clean_pull.refresh_from_db()
    assert refused.status_code == 302 and clean_pull.status == RevisionStatus.READY

    dev_client.post(url("request_approval", clean_pull), {"comment": "Please check taxes"})
    clean_pull.refresh_from_db()
    assert clean_pull.status == RevisionStatus.AWAITING_APPROVAL
    # The requester (a developer) sees no approve button and may not approve.
    html = dev_client.get(detail(clean_pull)).content.decode()
    assert "Approve and merge" not in html and "Waiting for approval" in html
    assert dev_client.post(url("approve", clean_pull)).status_code == 403

    queue = approver_client.get(reverse("revisions:approvals")).content.decode()
    assert "Bring in sandbox changes" in queue and "Please check taxes" in queue
    review = approver_client.get(detail(clean_pull)).content.decode()
    assert "Approve and merge" in review
    run_on_commit(approver_client.post, url("approve", clean_pull), {"comment": "Fine"})
    clean_pull.refresh_from_db()
    assert clean_pull.status == RevisionStatus.COMPLETED
    script = Script.objects.get(integration=clean_pull.integration, name="Tax rounding")
    assert "0.25" in script.code


def test_approver_who_requested_cannot_approve_own_request(approver_client, clean_pull):
    approver_client.post(url("request_approval", clean_pull), {"comment": ""})
    html = approver_client.get(detail(clean_pull)).content.decode()
    assert "Approve and merge" not in html
    assert "another approver must give it" in html
    assert approver_client.post(url("approve", clean_pull)).status_code == 403
    clean_pull.refresh_from_db()
    assert clean_pull.status == RevisionStatus.AWAITING_APPROVAL


def test_reject_needs_a_comment_and_returns_the_pull_for_changes(
    dev_client, approver_client, clean_pull
):
    dev_client.post(url("request_approval", clean_pull), {"comment": ""})
    approver_client.post(url("reject", clean_pull), {"comment": " "})
    clean_pull.refresh_from_db()
    assert clean_pull.status == RevisionStatus.AWAITING_APPROVAL
    approver_client.post(url("reject", clean_pull), {"comment": "Wrong tax rate"})
    clean_pull.refresh_from_db()
    assert clean_pull.status == RevisionStatus.READY
    html = dev_client.get(detail(clean_pull)).content.decode()
    assert "Wrong tax rate" in html and "Request approval" in html


def test_refresh_voids_an_approval_request_and_the_page_says_so(
    dev_client, clean_pull, run_on_commit
):
    dev_client.post(url("request_approval", clean_pull), {"comment": ""})
    run_on_commit(dev_client.post, url("refresh", clean_pull))
    clean_pull.refresh_from_db()
    assert clean_pull.status == RevisionStatus.READY
    assert not Approval.objects.filter(revision=clean_pull, decision="pending").exists()
    html = dev_client.get(detail(clean_pull)).content.decode()
    assert "lapsed" in html


def test_approvals_queue_is_for_approvers_only(dev_client, monitor_client, approver_client):
    assert dev_client.get(reverse("revisions:approvals")).status_code == 403
    assert monitor_client.get(reverse("revisions:approvals")).status_code == 403
    html = approver_client.get(reverse("revisions:approvals")).content.decode()
    assert "Nothing waiting for approval" in html


# Revert -----------------------------------------------------------------------------------


def test_revert_preview_shows_exactly_what_changes_then_reverts(
    dev_client, sandbox_pull, sandbox, stocked, run_on_commit
):
    run_on_commit(dev_client.post, url("merge", sandbox_pull))
    sandbox_pull.refresh_from_db()
    preview = dev_client.get(url("revert", sandbox_pull), {"to": "before"})
    html = preview.content.decode()
    assert preview.status_code == 200
    assert "Orders to ERP" in html and "ERP API" in html
    assert "Revert Orders sandbox" in html
    flow_diff = dev_client.get(
        reverse("revisions:revert_resource", args=[sandbox_pull.pk, stocked["flow"].lineage_id]),
        {"to": "before"},
        **HX,
    ).content.decode()
    assert "Every paid order, hourly" in flow_diff and "After the revert" in flow_diff
    response = run_on_commit(
        dev_client.post, url("revert", sandbox_pull), {"to": "before", "description": "Undo"}
    )
    revert = Revision.objects.get(integration=sandbox, type=RevisionType.REVERT)
    assert response["Location"] == detail(revert)
    revert.refresh_from_db()
    assert revert.status == RevisionStatus.COMPLETED
    flow = Flow.objects.get(integration=sandbox, lineage_id=stocked["flow"].lineage_id)
    assert flow.description != "Every paid order, hourly"
    again = dev_client.get(url("revert", sandbox_pull), {"to": "before"}).content.decode()
    assert "Nothing to revert" in again


# Permissions on every action ------------------------------------------------------------

ACTIONS = [
    "resolve",
    "include",
    "refresh",
    "merge",
    "cancel",
    "request_approval",
    "approve",
    "reject",
    "revert",
]


@pytest.mark.parametrize("name", ACTIONS)
def test_monitor_posts_are_refused(monitor_client, clean_pull, name):
    before = Revision.objects.get(pk=clean_pull.pk).status
    response = monitor_client.post(url(name, clean_pull), {"comment": "x", "choose": "ours"})
    assert response.status_code == 403
    assert Revision.objects.get(pk=clean_pull.pk).status == before


@pytest.mark.parametrize("name", ["snapshot", "pull", "clone"])
def test_monitor_cannot_start_operations(monitor_client, integration, name):
    target = reverse(f"revisions:{name}", args=[integration.pk])
    assert monitor_client.post(target, {"description": "x", "name": "x"}).status_code == 403
    assert not Revision.objects.filter(integration=integration).exists()


def test_monitor_sees_the_review_without_any_action(monitor_client, conflict_pull, stocked):
    html = monitor_client.get(detail(conflict_pull)).content.decode()
    assert "Orders to ERP" in html
    for label in (
        "Keep ours",
        "Leave out",
        "Request approval",
        "Merge into",
        "Refresh",
        "Cancel this pull",
        'data-testid="merge-button"',
    ):
        assert label not in html
    diff = monitor_client.get(url_res(conflict_pull, stocked["flow"].lineage_id), **HX)
    assert b"Keep ours" not in diff.content and b"schedule" in diff.content


@pytest.mark.parametrize("name", ACTIONS + ["detail", "status"])
def test_actions_on_an_invisible_integration_are_404(clean_pull, name):
    from django.test import Client

    client = Client()
    client.force_login(UserFactory(username="outsider"))
    method = client.get if name in ("detail", "status") else client.post
    assert method(url(name, clean_pull)).status_code == 404


# More of the tab, whole-resource conflicts, including back, sync badge -------------------


def test_tab_filters_by_user_and_date_range_and_a_reversed_range_shows_nothing(
    dev_client, integration, developer, approver
):
    from datetime import timedelta

    from django.utils import timezone

    mine = services.snapshot_create(integration=integration, user=developer, description="Mine")
    theirs = services.snapshot_create(integration=integration, user=approver, description="Theirs")
    Revision.objects.filter(pk=theirs.pk).update(created_at=timezone.now() - timedelta(days=10))
    tab = reverse("revisions:tab", args=[integration.pk])
    by_user = dev_client.get(tab, {"created_by": developer.username}, **hx("revisions-table"))
    by_user = by_user.content
    assert b">Mine<" in by_user and b">Theirs<" not in by_user
    today = timezone.localdate()
    recent = dev_client.get(tab, {"since": today - timedelta(days=2), "until": today}).content
    assert b">Mine<" in recent and b">Theirs<" not in recent
    old = dev_client.get(tab, {"until": today - timedelta(days=5)}).content
    assert b">Theirs<" in old and b">Mine<" not in old
    reversed_range = dev_client.get(tab, {"since": today, "until": today - timedelta(days=1)})
    assert b"swap the dates" in reversed_range.content
    # A bad filter shows no rows rather than rows it did not ask for.
    assert mine.number and b">Mine<" not in reversed_range.content
    assert b"a filter is not valid" in reversed_range.content


def test_a_failed_revision_row_shows_its_error_and_offers_a_new_pull(
    dev_client, integration, sandbox
):
    Revision.objects.create(
        integration=integration,
        number=9,
        type=RevisionType.PULL,
        status=RevisionStatus.FAILED,
        source_integration=sandbox,
        error="The source integration changed its family; pick another source.",
    )
    html = dev_client.get(reverse("revisions:tab", args=[integration.pk])).content.decode()
    assert "pick another source" in html
    assert f"{reverse('revisions:pull', args=[integration.pk])}?source={sandbox.pk}" in html


def test_a_resource_deleted_by_the_source_and_changed_here_is_one_decision(
    dev_client, stocked, sandbox, integration, make_pull, run_on_commit
):
    from integrations.services import resource_delete, resource_update

    resource_update(instance=stocked["script"], data={"function": "preMap"})
    resource_delete(instance=Script.objects.get(integration=sandbox, name="Tax rounding"))
    pull = make_pull(target=integration, source=sandbox)
    lid = stocked["script"].lineage_id
    diff = dev_client.get(url_res(pull, lid), **HX).content.decode()
    assert "Orders sandbox deleted Tax rounding" in diff
    assert "Take theirs (delete it)" in diff and "Keep ours (keep it)" in diff
    assert diff.count('name="path"') == 1 and 'name="path" value=""' in diff  # one choice
    response = dev_client.post(
        url("resolve", pull), {"lineage_id": lid, "path": "", "choose": "ours"}, **HX
    )
    body = response.content.decode()
    assert response.status_code == 200 and "✓ Keeps ours" in body
    assert re.search(r"<strong>0</strong> unresolved", body)


def test_a_left_out_resource_can_be_included_again(dev_client, sandbox_pull, stocked):
    lid = stocked["connection"].lineage_id
    dev_client.post(url("include", sandbox_pull), {"lineage_id": lid, "include": "0"}, **HX)
    response = dev_client.post(
        url("include", sandbox_pull), {"lineage_id": lid, "include": "1"}, **HX
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert "Left out" not in body and ">Leave out</button>" in body


def test_include_with_bad_input_is_refused_and_changes_nothing(dev_client, sandbox_pull):
    response = dev_client.post(url("include", sandbox_pull), {"lineage_id": "x"}, **HX)
    assert response.status_code == 409
    assert not sandbox_pull.resolutions.exists()


def test_a_completed_snapshot_can_be_restored_from_its_row(
    dev_client, integration, developer, stocked, run_on_commit
):
    from integrations.services import resource_update

    snap = services.snapshot_create(integration=integration, user=developer, description="Good")
    resource_update(instance=stocked["flow"], data={"schedule": "0 3 * * *"})
    preview = dev_client.get(url("revert", snap), {"to": "after"}).content.decode()
    assert "Revert Storefront orders → ERP to the state of snapshot #" in preview
    assert "Orders to ERP" in preview
    run_on_commit(dev_client.post, url("revert", snap), {"to": "after", "description": ""})
    stocked["flow"].refresh_from_db()
    assert stocked["flow"].schedule == "*/15 * * * *"


def test_the_integration_header_says_when_a_clone_is_behind_its_source(
    dev_client, stocked, sandbox
):
    from integrations.services import resource_update

    resource_update(instance=stocked["flow"], data={"description": "Only paid orders"})
    html = dev_client.get(reverse("revisions:tab", args=[sandbox.pk])).content.decode()
    assert "Behind Storefront orders → ERP" in html


def test_a_long_review_list_loads_more_on_demand(dev_client, developer, run_on_commit, monkeypatch):
    from revisions import review

    target = IntegrationFactory(name="Many")
    GrantFactory(integration=target, user=developer, level=AccessLevel.MANAGE)
    pull = _build_pull(5, target, developer, run_on_commit)
    monkeypatch.setattr(review, "RESOURCES_PER_PAGE", 3)
    html = dev_client.get(detail(pull)).content.decode()
    assert html.count('class="rv-res ') == 3 and "3 of 5 shown" in html
    more = re.search(r'hx-get="([^"]*offset=3[^"]*)"', html).group(1).replace("&amp;", "&")
    chunk = dev_client.get(more, **hx("more-resources")).content.decode()
    assert "<html" not in chunk and chunk.count('class="rv-res ') == 2
    assert "(continued)" in chunk and "Show more changes" not in chunk


def test_expand_all_loads_many_diffs_in_one_request_each_swapped_into_its_resource(
    dev_client, monitor_client, conflict_pull, stocked, django_assert_max_num_queries
):
    flow, script = stocked["flow"].lineage_id, stocked["script"].lineage_id
    target = reverse("revisions:resources", args=[conflict_pull.pk])
    ids = f"{flow},{script},not-an-id,{stocked['connection'].lineage_id}"
    with django_assert_max_num_queries(12):
        response = dev_client.get(target, {"ids": ids}, **HX)
    html = response.content.decode()
    assert response.status_code == 200
    # The unchanged connection is skipped; the two changed resources come out-of-band.
    assert html.count('hx-swap-oob="true"') == 2
    assert f'id="body-{flow}"' in html and f'id="body-{script}"' in html
    assert "Keep ours" in html and "preMap" in html
    assert b"Keep ours" not in monitor_client.get(target, {"ids": ids}, **HX).content


def test_batch_diffs_of_an_invisible_integration_are_404(clean_pull, stocked):
    from django.test import Client

    client = Client()
    client.force_login(UserFactory(username="outsider"))
    target = reverse("revisions:resources", args=[clean_pull.pk])
    assert client.get(target, {"ids": str(stocked["flow"].lineage_id)}).status_code == 404
