"""A revert never discards what happened after it was asked for.

It records the integration's version it was previewed at (or asked at) and applies only
while the integration is still there; otherwise it fails with a message and writes
nothing. The preview page says before Confirm when another operation blocks the revert,
and what happens to lookup caches it brings back.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from integrations.models import Flow, Integration, LookupCacheEntry
from integrations.services import (
    integration_update,
    resource_create,
    resource_delete,
    resource_update,
)
from revisions import services, tasks
from revisions.document import document_of
from revisions.errors import StaleReview
from revisions.models import Revision, RevisionStatus, RevisionType
from tests.api.conftest import token_client
from tests.factories import CacheEntryFactory, FlowFactory, LookupCacheFactory

pytestmark = pytest.mark.django_db
S = RevisionStatus


@pytest.fixture
def flow(integration):
    return FlowFactory(integration=integration, name="Orders", schedule="0 * * * *")


@pytest.fixture
def snapshot(integration, flow, developer):
    """A snapshot, then a change the revert to it would undo."""
    snap = services.snapshot_create(integration=integration, user=developer, description="Good")
    resource_update(instance=flow, data={"schedule": "0 3 * * *"})
    return snap


def version_of(integration) -> int:
    return Integration.objects.get(pk=integration.pk).version


def reverts_of(integration):
    return Revision.objects.filter(integration=integration, type=RevisionType.REVERT)


# The engine -----------------------------------------------------------------------------


def test_edits_made_after_the_revert_was_asked_for_fail_it_and_survive(
    integration, flow, snapshot, developer
):
    # Asked for, not yet run (the task is enqueued on commit; nothing commits here).
    revert = services.revert_start(revision=snapshot, user=developer)
    assert revert.status == S.QUEUED and revert.target_version == version_of(integration)
    integration_update(integration=integration, data={"documentation": "# Runbook"})
    resource_create(integration=integration, type_key="flow", data={"name": "Returns"})
    before = document_of(integration)

    tasks.revert_run(revert.pk)

    revert.refresh_from_db()
    assert revert.status == S.FAILED
    assert "changed since this revert was previewed" in revert.error
    assert "nothing was reverted" in revert.error.lower()
    assert document_of(integration) == before
    integration.refresh_from_db()
    assert integration.documentation == "# Runbook"
    assert Flow.objects.filter(integration=integration, name="Returns").exists()
    assert Flow.objects.get(pk=flow.pk).schedule == "0 3 * * *"
    assert not Revision.objects.filter(operation=revert).exists()  # no automatic snapshots


def test_a_revert_previewed_at_an_older_version_is_refused_at_once(
    integration, flow, snapshot, developer
):
    previewed_at = version_of(integration)
    resource_create(integration=integration, type_key="flow", data={"name": "Returns"})
    with pytest.raises(StaleReview, match=r"changed since this revert was previewed"):
        services.revert_start(revision=snapshot, user=developer, version=previewed_at)
    assert not reverts_of(integration).exists()


def test_a_revert_still_at_its_previewed_version_completes(
    integration, flow, snapshot, developer, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        revert = services.revert_start(
            revision=snapshot, user=developer, version=version_of(integration)
        )
    revert.refresh_from_db()
    assert revert.status == S.COMPLETED, revert.error
    assert Flow.objects.get(pk=flow.pk).schedule == "0 * * * *"


# The API --------------------------------------------------------------------------------


@pytest.fixture
def send(django_capture_on_commit_callbacks):
    def call(api, method, path, body=None):
        with django_capture_on_commit_callbacks(execute=True):
            return getattr(api, method)(f"/api/v1{path}", body, format="json")

    return call


def test_api_preview_says_its_version_and_a_stale_one_is_409(
    integration, flow, snapshot, developer, send
):
    api = token_client(developer)
    preview = api.get(f"/api/v1/revisions/{snapshot.pk}/revert-preview").json()
    assert preview["version"] == version_of(integration)
    assert [r["name"] for r in preview["resources"]] == ["Orders"]

    resource_update(instance=flow, data={"description": "Changed after the preview"})
    response = send(
        api, "post", f"/revisions/{snapshot.pk}/revert", {"version": preview["version"]}
    )
    assert response.status_code == 409
    assert "changed since this revert was previewed" in response.json()["detail"]
    assert not reverts_of(integration).exists()
    assert Flow.objects.get(pk=flow.pk).description == "Changed after the preview"

    fresh = api.get(f"/api/v1/revisions/{snapshot.pk}/revert-preview").json()
    response = send(api, "post", f"/revisions/{snapshot.pk}/revert", {"version": fresh["version"]})
    assert response.status_code == 202, response.json()
    revert = reverts_of(integration).get()
    assert revert.status == S.COMPLETED


def test_api_revert_without_a_version_still_works(integration, flow, snapshot, developer, send):
    response = send(token_client(developer), "post", f"/revisions/{snapshot.pk}/revert", {})
    assert response.status_code == 202, response.json()
    assert Flow.objects.get(pk=flow.pk).schedule == "0 * * * *"


def test_api_revert_with_a_bad_version_is_400_and_changes_nothing(
    integration, snapshot, developer, send
):
    response = send(
        token_client(developer), "post", f"/revisions/{snapshot.pk}/revert", {"version": "soon"}
    )
    assert response.status_code == 400
    assert "version" in response.json()["errors"]
    assert not reverts_of(integration).exists()


def test_api_revert_by_a_monitor_is_refused(integration, snapshot, monitor, send):
    response = send(token_client(monitor), "post", f"/revisions/{snapshot.pk}/revert", {})
    assert response.status_code == 403
    assert not reverts_of(integration).exists()


def test_the_schema_documents_the_version_of_a_revert(dev_client):
    schema = dev_client.get("/api/v1/schema?format=json").json()
    components = schema["components"]["schemas"]
    assert "version" in components["RevertRequest"]["properties"]
    assert "version" in components["RevertPreview"]["properties"]


# The preview page -----------------------------------------------------------------------


def revert_url(revision):
    return reverse("revisions:revert", args=[revision.pk])


def test_preview_carries_its_version_and_a_stale_confirm_shows_the_new_changes(
    dev_client, integration, flow, snapshot, run_on_commit
):
    page = dev_client.get(revert_url(snapshot)).content.decode()
    previewed_at = version_of(integration)
    assert f'name="version" value="{previewed_at}"' in page
    assert "Returns" not in page

    resource_create(integration=integration, type_key="flow", data={"name": "Returns"})
    response = run_on_commit(
        dev_client.post, revert_url(snapshot), {"to": "after", "version": previewed_at}
    )
    html = response.content.decode()
    assert response.status_code == 400
    assert "changed since this revert was previewed" in html
    assert "Returns" in html  # the revert would now remove it: shown before applying
    assert f'name="version" value="{version_of(integration)}"' in html
    assert not reverts_of(integration).exists()

    run_on_commit(
        dev_client.post, revert_url(snapshot), {"to": "after", "version": version_of(integration)}
    )
    assert reverts_of(integration).get().status == S.COMPLETED
    assert not Flow.objects.filter(integration=integration, name="Returns").exists()


def test_preview_says_before_confirm_that_an_open_operation_blocks_the_revert(
    dev_client, integration, snapshot, developer
):
    other = services.snapshot_create(integration=integration, user=developer)
    resource_update(
        instance=Flow.objects.get(integration=integration), data={"schedule": "1 * * * *"}
    )
    open_revert = services.revert_start(revision=other, user=developer)  # queued, not run
    html = dev_client.get(revert_url(snapshot)).content.decode()
    assert 'data-testid="revert-blocked"' in html
    assert f"open revert #{open_revert.number} (queued)" in html
    assert "disabled" in html.split('data-testid="confirm-revert"')[1].split(">")[0]


def test_preview_of_an_unblocked_revert_has_an_enabled_confirm(dev_client, snapshot):
    html = dev_client.get(revert_url(snapshot)).content.decode()
    assert 'data-testid="revert-blocked"' not in html
    assert "disabled" not in html.split('data-testid="confirm-revert"')[1].split(">")[0]


def test_preview_warns_that_a_cache_brought_back_comes_back_empty(
    dev_client, integration, developer
):
    cache = LookupCacheFactory(integration=integration, name="SKU map")
    CacheEntryFactory(cache=cache, key="A", value={"v": 1})
    snap = services.snapshot_create(integration=integration, user=developer)
    resource_delete(instance=cache)
    html = dev_client.get(revert_url(snap)).content.decode()
    assert "Lookup cache entries are kept." not in html
    assert "1 lookup cache will come back empty:" in html and "SKU map" in html
    assert "re-upload the data before running flows" in html
    assert not LookupCacheEntry.objects.exists()


# The revision page after an operation that created an empty cache -----------------------


def test_revision_page_warns_about_caches_a_revert_brought_back_empty(
    dev_client, integration, developer, django_capture_on_commit_callbacks
):
    cache = LookupCacheFactory(integration=integration, name="SKU map")
    CacheEntryFactory(cache=cache, key="A", value={"v": 1})
    LookupCacheFactory(integration=integration, name="Kept map")
    snap = services.snapshot_create(integration=integration, user=developer)
    resource_delete(instance=cache)
    with django_capture_on_commit_callbacks(execute=True):
        revert = services.revert_start(revision=snap, user=developer)
    revert.refresh_from_db()
    assert revert.status == S.COMPLETED, revert.error
    html = dev_client.get(reverse("revisions:detail", args=[revert.pk])).content.decode()
    assert "1 lookup cache created empty:" in html and "SKU map" in html
    assert "Kept map" not in html
    assert "re-upload the data before running flows" in html

    # Once data is uploaded again, the warning goes.
    restored = integration.lookupcaches.get(name="SKU map")
    CacheEntryFactory(cache=restored, key="A", value={"v": 1})
    html = dev_client.get(reverse("revisions:detail", args=[revert.pk])).content.decode()
    assert 'data-testid="empty-cache-warning"' not in html


def test_revision_page_of_a_snapshot_has_no_cache_warning(dev_client, integration, developer):
    LookupCacheFactory(integration=integration, name="Empty map")
    snap = services.snapshot_create(integration=integration, user=developer)
    html = dev_client.get(reverse("revisions:detail", args=[snap.pk])).content.decode()
    assert 'data-testid="empty-cache-warning"' not in html


def test_caches_tab_warns_about_caches_an_operation_created_empty(
    dev_client, integration, developer, django_capture_on_commit_callbacks
):
    cache = LookupCacheFactory(integration=integration, name="SKU map")
    CacheEntryFactory(cache=cache, key="A", value={"v": 1})
    snap = services.snapshot_create(integration=integration, user=developer)
    resource_delete(instance=cache)
    resource_create(
        integration=integration,
        type_key="lookup_cache",
        data={"name": "Made by hand", "key_path": "k"},
    )
    tab = reverse("integrations:caches", args=[integration.pk])
    assert 'data-testid="empty-cache-warning"' not in dev_client.get(tab).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        services.revert_start(revision=snap, user=developer)
    html = dev_client.get(tab).content.decode()
    warning = html.split('data-testid="empty-cache-warning"')[1].split("</div>")[0]
    assert "SKU map" in warning and "re-upload the data before running flows" in warning
    assert "Made by hand" not in warning  # created by a person, who knows it is empty
