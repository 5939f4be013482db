"""`manage.py load_demo`: users per role, three integrations and a sandbox clone, once."""

from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from integrations.models import (
    Connection,
    Environment,
    Flow,
    FlowStep,
    Integration,
    IntegrationAccess,
    LookupCache,
    LookupCacheEntry,
    Script,
    User,
)

pytestmark = pytest.mark.django_db(transaction=False)

MODELS = (
    User,
    Integration,
    IntegrationAccess,
    Connection,
    Flow,
    FlowStep,
    Script,
    LookupCache,
    LookupCacheEntry,
)


def counts():
    return {m.__name__: m.objects.count() for m in MODELS}


def load(django_capture_on_commit_callbacks) -> str:
    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("load_demo", stdout=out)
    return out.getvalue()


def test_load_demo_twice_creates_everything_once(django_capture_on_commit_callbacks):
    first = load(django_capture_on_commit_callbacks)
    after_first = counts()
    second = load(django_capture_on_commit_callbacks)
    assert counts() == after_first
    assert "already there" in second
    for text in (first, second):
        for line in (
            "admin",
            "ilm-demo-admin",
            "developer",
            "ilm-demo-developer",
            "approver",
            "ilm-demo-approver",
            "monitor",
            "ilm-demo-monitor",
        ):
            assert line in text


def test_demo_users_sign_in_with_the_printed_passwords(django_capture_on_commit_callbacks):
    load(django_capture_on_commit_callbacks)
    for username, role in (
        ("admin", "administrator"),
        ("approver", "approver"),
        ("developer", "developer"),
        ("monitor", "monitor"),
    ):
        user = authenticate(username=username, password=f"ilm-demo-{username}")
        assert user is not None and user.role == role


def test_demo_integrations_are_realistic(django_capture_on_commit_callbacks):
    load(django_capture_on_commit_callbacks)
    originals = Integration.objects.filter(cloned_from__isnull=True)
    assert originals.count() == 3
    for integration in originals:
        assert integration.flows.count() >= 2
        assert integration.connections.exists() and integration.scripts.exists()
        assert LookupCacheEntry.objects.filter(cache__integration=integration).exists()
        cache_ids = {str(c) for c in integration.lookupcaches.values_list("lineage_id", flat=True)}
        referenced = {
            m["lookup_cache"]
            for step in FlowStep.objects.filter(integration=integration)
            for m in step.config.get("mappings", [])
            if m.get("lookup_cache")
        }
        assert referenced and referenced <= cache_ids
        for step in FlowStep.objects.filter(integration=integration):
            step.full_clean()  # every step passes the domain's own validation
    monitor = User.objects.get(username="monitor")
    assert set(monitor.grants.values_list("level", flat=True)) == {"monitor"}
    assert monitor.grants.count() == 3


def test_demo_includes_a_sandbox_clone(django_capture_on_commit_callbacks):
    load(django_capture_on_commit_callbacks)
    clone = Integration.objects.get(cloned_from__isnull=False)
    assert clone.environment == Environment.SANDBOX
    assert clone.cloned_from.name == "Storefront orders → ERP"
    assert clone.flows.count() == clone.cloned_from.flows.count()
    load(django_capture_on_commit_callbacks)
    assert Integration.objects.filter(cloned_from__isnull=False).count() == 1


@pytest.mark.django_db(transaction=True)
def test_demo_opens_a_pull_with_one_conflict_ready_for_review():
    """Eager Celery, autocommit: the clone and the pull run as `make run` runs them."""
    from revisions.models import Revision, RevisionStatus, RevisionType
    from revisions.selectors import changes_for_review

    out = StringIO()
    call_command("load_demo", stdout=out)
    assert "opened for review" in out.getvalue()
    pull = Revision.objects.get(type=RevisionType.PULL)
    assert pull.status == RevisionStatus.READY, pull.error
    assert pull.integration.name == "Storefront orders → ERP"
    assert pull.source_integration.name == "Storefront orders → ERP (sandbox)"
    changes = changes_for_review(pull)
    changed = {(r["type"], r["name"]) for r in changes["resources"]}
    assert {
        ("script", "Normalise order"),
        ("step", "Shape the sales order"),
        ("flow", "Refunds to credit memos"),
    } <= changed
    assert changes["summary"]["conflicts"] == 1
    # The sandbox's new mapping and production's different new mapping do not clash.
    shape = next(r for r in changes["resources"] if r["name"] == "Shape the sales order")
    assert [(f["path"], f["conflict"]) for f in shape["fields"]] == [
        ('config.mappings[target="other_ref_num_po"]', False)
    ]
    call_command("load_demo", stdout=StringIO())
    assert Revision.objects.filter(type=RevisionType.PULL).count() == 1


@pytest.mark.django_db(transaction=True)
def test_demo_production_is_protected_and_its_pull_still_merges_after_approval():
    """Change control in the demo: production integrations are protected, the hotfix in
    production is on record with its reason, and the open pull lands through approval."""
    from revisions import approvals, services
    from revisions.models import Revision, RevisionStatus, RevisionType

    call_command("load_demo", stdout=StringIO())
    for integration in Integration.objects.all():
        assert integration.protected is (integration.environment == Environment.PRODUCTION)
    production = Integration.objects.get(name="Storefront orders → ERP")
    reasons = list(
        production.history.exclude(history_change_reason=None).values_list(
            "history_change_reason", flat=True
        )
    )
    assert any("Hotfix: the ERP rejects refunds on the hour" in r for r in reasons)

    pull = Revision.objects.get(type=RevisionType.PULL)
    developer = User.objects.get(username="developer")
    approver = User.objects.get(username="approver")
    conflict = next(
        r for r in services.changes_of(pull)["resources"] if any(f["conflict"] for f in r["fields"])
    )
    services.resolution_set(
        revision=pull,
        user=developer,
        lineage_id=conflict["lineage_id"],
        path=next(f["path"] for f in conflict["fields"] if f["conflict"]),
        choose="theirs",
    )
    pull.refresh_from_db()
    approvals.approval_request(revision=pull, user=developer)
    approvals.approval_approve(revision=pull, user=approver)
    pull.refresh_from_db()
    assert pull.status == RevisionStatus.COMPLETED, pull.error
    refunds = Flow.objects.get(integration=production, name="Refunds to credit memos")
    assert refunds.schedule == "*/30 * * * *"
    # Both new mappings landed: production's order, the sandbox's addition after it.
    shape = FlowStep.objects.get(flow__integration=production, name="Shape the sales order")
    assert [m["target"] for m in shape.config["mappings"]][-2:] == [
        "entity.phone",
        "other_ref_num_po",
    ]
    production.refresh_from_db()
    assert production.protected
