"""Revision endpoints' answers in the states docs/api.md names: 202 and polling, 409s, 403s, 400s.

Each request commits as on a server (its on-commit tasks run, Celery is eager).
"""

from __future__ import annotations

import pytest

from integrations.models import AccessLevel, Environment, Flow
from integrations.services import resource_update
from revisions.models import Approval, Revision
from tests.factories import CacheEntryFactory, FlowFactory, GrantFactory, LookupCacheFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def send(django_capture_on_commit_callbacks):
    def call(api, method, path, body=None):
        with django_capture_on_commit_callbacks(execute=True):
            return getattr(api, method)(f"/api/v1{path}", body, format="json")

    return call


@pytest.fixture
def flow(integration):
    return FlowFactory(integration=integration, name="Orders", description="All")


@pytest.fixture
def sandbox(send, dev_api, integration, flow):
    response = send(dev_api, "post", f"/integrations/{integration.pk}/clone", {"name": "Sandbox"})
    assert response.status_code == 201, response.json()
    sandbox = type(integration).objects.get(pk=response.json()["id"])
    twin = Flow.objects.get(integration=sandbox, lineage_id=flow.lineage_id)
    resource_update(instance=twin, data={"description": "Paid only"})
    return sandbox


@pytest.fixture
def pull(send, dev_api, integration, sandbox):
    response = send(
        dev_api,
        "post",
        f"/integrations/{integration.pk}/revisions",
        {"type": "pull", "source_integration": sandbox.pk},
    )
    assert response.status_code == 202
    assert response.json()["status"] == "queued"
    return dev_api.get(f"/api/v1/revisions/{response.json()['id']}").json()


def test_pull_is_polled_to_ready_with_its_summary(pull):
    assert pull["status"] == "ready"
    assert pull["summary"] == {
        "added": 0,
        "modified": 1,
        "deleted": 0,
        "conflicts": 0,
        "unresolved": 0,
    }


def test_changes_of_a_queued_pull_are_409(dev_api, integration, sandbox):
    response = dev_api.post(
        f"/api/v1/integrations/{integration.pk}/revisions",
        {"type": "pull", "source_integration": sandbox.pk},
        format="json",
    )  # not committed: still queued
    assert response.status_code == 202
    changes = dev_api.get(f"/api/v1/revisions/{response.json()['id']}/changes")
    assert changes.status_code == 409
    assert "poll" in changes.json()["detail"]


def test_pull_from_outside_the_family_is_400(dev_api, integration, developer):
    from tests.factories import IntegrationFactory

    stranger = IntegrationFactory(name="Stranger", environment=Environment.SANDBOX)
    GrantFactory(integration=stranger, user=developer)
    response = dev_api.post(
        f"/api/v1/integrations/{integration.pk}/revisions",
        {"type": "pull", "source_integration": stranger.pk},
        format="json",
    )
    assert response.status_code == 400
    assert "source_integration" in response.json()["errors"]
    assert not Revision.objects.filter(integration=integration, type="pull").exists()


def test_pull_needs_a_source_and_an_unseen_source_is_400(dev_api, integration, outsider):
    from tests.factories import IntegrationFactory

    url = f"/api/v1/integrations/{integration.pk}/revisions"
    response = dev_api.post(url, {"type": "pull"}, format="json")
    assert response.status_code == 400
    assert "source_integration" in response.json()["errors"]
    hidden = IntegrationFactory(name="Hidden")
    response = dev_api.post(url, {"type": "pull", "source_integration": hidden.pk}, format="json")
    assert response.status_code == 400
    assert "No integration with this id that you can see" in response.json()["detail"]


def test_production_merge_without_approval_is_403_and_changes_nothing(
    send, dev_api, pull, integration, flow
):
    response = send(dev_api, "post", f"/revisions/{pull['id']}/merge")
    assert response.status_code == 403
    assert "approve" in response.json()["detail"]
    assert Flow.objects.get(pk=flow.pk).description == "All"
    assert dev_api.get(f"/api/v1/revisions/{pull['id']}").json()["status"] == "ready"


def test_stale_review_is_409(send, dev_api, approver_api, pull, flow):
    send(dev_api, "post", f"/revisions/{pull['id']}/request-approval", {"comment": "ok?"})
    resource_update(instance=flow, data={"schedule": "0 * * * *"})  # target changes
    response = send(approver_api, "post", f"/revisions/{pull['id']}/approve", {"comment": "fine"})
    assert response.status_code == 409
    assert "changed since this pull was computed" in response.json()["detail"]
    # Nothing recorded: the request still waits, unapproved.
    assert Approval.objects.get().decision == "pending"


def test_reject_sends_the_pull_back_to_ready(send, dev_api, approver_api, pull):
    send(dev_api, "post", f"/revisions/{pull['id']}/request-approval", {})
    response = send(approver_api, "post", f"/revisions/{pull['id']}/reject", {"comment": "No"})
    assert response.status_code == 200
    assert response.json()["status"] == "ready"
    # Asking twice while waiting is a conflict; after a reject one may ask again.
    assert send(dev_api, "post", f"/revisions/{pull['id']}/request-approval").status_code == 200
    again = send(dev_api, "post", f"/revisions/{pull['id']}/request-approval")
    assert again.status_code == 409


def test_approver_role_needed_to_approve_and_requester_never(
    send, dev_api, admin_api, approver_api, approver, pull
):
    # Nothing asked yet: nothing to approve.
    assert send(approver_api, "post", f"/revisions/{pull['id']}/approve").status_code == 409
    send(approver_api, "post", f"/revisions/{pull['id']}/request-approval")
    response = send(approver_api, "post", f"/revisions/{pull['id']}/approve")
    assert response.status_code == 403
    assert "another approver" in response.json()["detail"]
    assert send(dev_api, "post", f"/revisions/{pull['id']}/approve").status_code == 403
    response = send(admin_api, "post", f"/revisions/{pull['id']}/approve", {"comment": "ok"})
    assert response.status_code == 202
    assert dev_api.get(f"/api/v1/revisions/{pull['id']}").json()["status"] == "completed"


def test_sandbox_target_merges_without_approval(send, dev_api, integration, sandbox, flow):
    resource_update(instance=flow, data={"schedule": "0 1 * * *"})
    response = send(
        dev_api,
        "post",
        f"/integrations/{sandbox.pk}/revisions",
        {"type": "pull", "source_integration": integration.pk},
    )
    pull = response.json()
    assert send(dev_api, "post", f"/revisions/{pull['id']}/request-approval").status_code == 409
    merged = send(dev_api, "post", f"/revisions/{pull['id']}/merge")
    assert merged.status_code == 202 and merged.json()["status"] == "merging"
    assert dev_api.get(f"/api/v1/revisions/{pull['id']}").json()["status"] == "completed"
    assert Flow.objects.get(integration=sandbox, lineage_id=flow.lineage_id).schedule == "0 1 * * *"


def test_cancel_and_list_filters(send, dev_api, integration, pull):
    assert send(dev_api, "post", f"/revisions/{pull['id']}/cancel").json()["status"] == "canceled"
    assert send(dev_api, "post", f"/revisions/{pull['id']}/cancel").status_code == 409
    url = f"/api/v1/integrations/{integration.pk}/revisions"
    assert [r["id"] for r in dev_api.get(f"{url}?type=pull&status=canceled").json()["results"]] == [
        pull["id"]
    ]
    assert dev_api.get(f"{url}?created_by=nobody").json()["results"] == []
    assert dev_api.get(f"{url}?status=bogus").status_code == 400


def test_clone_with_cache_data_over_5_mb_is_400_and_no_clone(dev_api, integration):
    cache = LookupCacheFactory(integration=integration)
    CacheEntryFactory(cache=cache, size=5 * 1024 * 1024)
    before = type(integration).objects.count()
    response = dev_api.post(
        f"/api/v1/integrations/{integration.pk}/clone",
        {"name": "Big", "include_lookup_cache_data": True},
        format="json",
    )
    assert response.status_code == 400
    assert "include_lookup_cache_data" in response.json()["errors"]
    assert type(integration).objects.count() == before


def test_developer_clones_production_to_sandbox_but_not_to_production(
    dev_api, integration, developer
):
    url = f"/api/v1/integrations/{integration.pk}/clone"
    response = dev_api.post(url, {"name": "P2", "environment": "production"}, format="json")
    assert response.status_code == 403
    response = dev_api.post(url, {"name": "S"}, format="json")
    assert response.status_code == 201
    assert response.json()["environment"] == "sandbox"
    # A developer with read access only (monitor grant) may clone too.
    reader = GrantFactory(
        integration=integration, user__username="reader", level=AccessLevel.MONITOR
    ).user
    from tests.api.conftest import token_client

    assert token_client(reader).post(url, {"name": "R"}, format="json").status_code == 201


def test_asking_approval_for_a_stale_review_is_409(send, dev_api, pull, flow):
    resource_update(instance=flow, data={"schedule": "0 * * * *"})
    response = send(dev_api, "post", f"/revisions/{pull['id']}/request-approval")
    assert response.status_code == 409
    assert "refresh the pull" in response.json()["detail"]
    assert not Approval.objects.exists()
    again = send(dev_api, "post", f"/revisions/{pull['id']}/request-approval")
    assert again.status_code == 409  # still stale until the pull is refreshed
