"""Issue 17: the review pages of the demo's pull read as names, never ids."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from integrations.models import User
from revisions.models import Revision, RevisionType
from revisions.selectors import changes_for_review

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
# The first 8 hex digits of an id, as the review once showed beside a name.
ID_PREFIX = re.compile(r"\(([0-9a-f]{8})\)")


class _Text(HTMLParser):
    """The text a person sees: text nodes outside script and style."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return " ".join(parser.parts)


@pytest.mark.django_db(transaction=True)
def test_no_id_in_the_visible_text_of_any_demo_pull_review():
    call_command("load_demo", stdout=StringIO())
    client = Client()
    client.force_login(User.objects.get(username="approver"))
    pulls = list(Revision.objects.filter(type=RevisionType.PULL))
    assert pulls
    for pull in pulls:
        pages = [reverse("revisions:detail", args=[pull.pk])]
        for res in changes_for_review(pull)["resources"]:
            pages.append(reverse("revisions:resource", args=[pull.pk, res["lineage_id"]]))
        for url in pages:
            response = client.get(url)
            assert response.status_code == 200, url
            text = visible_text(response.content.decode())
            assert not UUID.search(text), (url, UUID.search(text).group(0))
            assert not ID_PREFIX.search(text), (url, ID_PREFIX.search(text).group(0))
    # The step's new mapping reads as a table row with the schedule's meaning beside it.
    step = next(
        r for r in changes_for_review(pulls[0])["resources"] if r["name"] == "Shape the sales order"
    )
    html = client.get(reverse("revisions:resource", args=[pulls[0].pk, step["lineage_id"]]))
    text = visible_text(html.content.decode())
    assert "po_number" in text and "other_ref_num_po" in text and "1 added" in text
    flow = next(
        r
        for r in changes_for_review(pulls[0])["resources"]
        if r["name"] == "Refunds to credit memos"
    )
    html = client.get(reverse("revisions:resource", args=[pulls[0].pk, flow["lineage_id"]]))
    text = visible_text(html.content.decode())
    assert "every 30 minutes" in text and "at 15 minutes past the hour" in text


def _assert_no_id(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    text = visible_text(response.content.decode())
    assert not UUID.search(text), (url, UUID.search(text).group(0))
    assert not ID_PREFIX.search(text), (url, ID_PREFIX.search(text).group(0))
    return text


@pytest.mark.django_db(transaction=True)
def test_no_id_in_the_visible_text_of_the_demo_audit_revert_compare_and_snapshot_pages():
    from audit.models import Event
    from revisions import services
    from revisions.models import RevisionStatus

    call_command("load_demo", stdout=StringIO())
    admin = User.objects.get(username="admin")
    sandbox = Revision.objects.get(type=RevisionType.CLONE).integration
    services.snapshot_create(integration=sandbox, user=admin, description="Trial")
    client = Client()
    client.force_login(admin)

    # Every audit event, the steps' configs (mappings' caches, hooks' scripts) included.
    events = list(Event.objects.values_list("pk", "integration_id"))
    assert any(
        e.changes and any(c["field"] == "config" for c in e.changes)
        for e in Event.objects.filter(resource_type="step")
    )
    for integration_id in {i for _, i in events if i}:
        _assert_no_id(client, reverse("audit:integration", args=[integration_id]))
    _assert_no_id(client, reverse("audit:log"))
    for pk, _ in events:
        _assert_no_id(client, reverse("audit:event", args=[pk]))

    completed = Revision.objects.filter(status=RevisionStatus.COMPLETED, tree_after__isnull=False)
    assert completed.filter(type=RevisionType.SNAPSHOT).exists()
    for revision in completed:
        # The snapshot (or clone) page: what the state holds, by name.
        _assert_no_id(client, reverse("revisions:detail", args=[revision.pk]))
        # The revert preview and every resource it changes.
        _assert_no_id(client, reverse("revisions:revert", args=[revision.pk]))
        for res in services.revert_preview(revision=revision)["resources"]:
            _assert_no_id(
                client,
                reverse("revisions:revert_resource", args=[revision.pk, res["lineage_id"]])
                + "?to=after",
            )
        # Compare with now, and every resource that differs.
        _assert_no_id(client, reverse("revisions:compare", args=[revision.pk]) + "?with=now")
        changes, _, _ = selectors_compare(revision)
        for res in changes["resources"]:
            _assert_no_id(
                client,
                reverse("revisions:compare_resource", args=[revision.pk, res["lineage_id"]])
                + "?with=now",
            )

    # The step whose mapping uses a lookup cache names the cache, linked, on its audit event.
    event = next(
        e
        for e in Event.objects.filter(resource_type="step", action="created")
        if any(
            m.get("lookup_cache")
            for c in e.changes
            if c["field"] == "config"
            for m in (c["new"] or {}).get("mappings", [])
        )
    )
    html = client.get(reverse("audit:event", args=[event.pk])).content.decode()
    assert "Refers to lookup cache" in visible_text(html)


def selectors_compare(revision):
    from revisions.selectors import compare_states

    return compare_states(revision.integration, revision, None)


def test_a_deleted_cache_reads_as_deleted_by_name_in_the_audit_and_comes_back_by_name_in_a_revert(
    admin_client_, integration, developer
):
    from audit.models import Event
    from integrations.services import resource_delete
    from revisions import services
    from tests.factories import FlowFactory, LookupCacheFactory, ScriptFactory, StepFactory

    cache = LookupCacheFactory(integration=integration, name="Country codes")
    script = ScriptFactory(integration=integration, name="Tax rounding")
    flow = FlowFactory(integration=integration, name="Orders")
    step = StepFactory(
        flow=flow,
        name="Map",
        config={
            "mappings": [
                {"source": "cc", "target": "country", "lookup_cache": str(cache.lineage_id)}
            ],
            "hooks": {"preMap": str(script.lineage_id)},
        },
    )
    snapshot = services.snapshot_create(integration=integration, user=developer)
    step.config = {"mappings": [{"source": "cc", "target": "country", "lookup_cache": None}]}
    step.save()
    resource_delete(instance=cache)

    # The audit event of the step's change names the cache it no longer uses, as deleted,
    # and the script by name with a link to it.
    event = Event.objects.filter(resource_type="step", action="updated").latest("pk")
    html = admin_client_.get(reverse("audit:event", args=[event.pk])).content.decode()
    text = visible_text(html)
    assert "deleted lookup cache «Country codes»" in text
    assert "Tax rounding" in text and not UUID.search(text)
    scripts_url = reverse("integrations:scripts", args=[integration.pk])
    assert f'<a href="{scripts_url}">Tax rounding</a>' in html
    # A foreign key reads as the name, linked to its page, without the recorded "(#pk)".
    created = Event.objects.filter(resource_type="step", action="created").latest("pk")
    html = admin_client_.get(reverse("audit:event", args=[created.pk])).content.decode()
    flow_url = reverse("integrations:flow", args=[integration.pk, flow.pk])
    assert f'<a href="{flow_url}">Orders</a>' in html
    assert f"(#{flow.pk})" not in visible_text(html)
    # The cache's creation event, now that it is gone, still names it.
    assert "Country codes" in visible_text(
        admin_client_.get(
            reverse(
                "audit:event",
                args=[Event.objects.filter(resource_type="lookup_cache").earliest("pk").pk],
            )
        ).content.decode()
    )

    # Reverting to the snapshot brings the cache back: the preview names it from the
    # stored state, not as an unknown resource.
    html = admin_client_.get(
        reverse("revisions:revert_resource", args=[snapshot.pk, step.lineage_id]) + "?to=after"
    ).content.decode()
    text = visible_text(html)
    assert "Country codes" in text and not UUID.search(text)
    assert "neither integration" not in text
    # The hook's script, which still exists, is linked by name under the field.
    assert f'<a href="{scripts_url}">Tax rounding</a>' in html


def test_every_schedule_shown_carries_its_meaning(dev_client, integration):
    from audit.models import Event
    from tests.factories import FlowFactory

    flow = FlowFactory(integration=integration, name="Refunds", schedule="0 * * * *")
    flow.schedule = "*/30 * * * *"
    flow.save()
    created, updated = Event.objects.filter(resource_type="flow", resource_id=flow.pk).order_by(
        "pk"
    )
    text = visible_text(dev_client.get(reverse("audit:event", args=[updated.pk])).content.decode())
    assert "every hour" in text and "every 30 minutes" in text
    text = visible_text(dev_client.get(reverse("audit:event", args=[created.pk])).content.decode())
    assert "every hour" in text
    for url in (
        reverse("integrations:flow", args=[integration.pk, flow.pk]),
        reverse("integrations:flows", args=[integration.pk]),
    ):
        text = " ".join(visible_text(dev_client.get(url).content.decode()).split())
        assert re.search(r"\*/30 \* \* \* \* ?: every 30 minutes", text), url


CACHE = "0b7d4a4e-4f3c-4c3f-9d59-3b9f3f1c2a10"
SCRIPT = "1b7d4a4e-4f3c-4c3f-9d59-3b9f3f1c2a11"
GONE = "2b7d4a4e-4f3c-4c3f-9d59-3b9f3f1c2a12"


def test_references_at_any_depth_show_names_and_an_unknown_one_says_so():
    from revisions.review import Ref, field_rows

    res = {
        "lineage_id": "3b7d4a4e-4f3c-4c3f-9d59-3b9f3f1c2a13",
        "type": "step",
        "name": "Map",
        "action": "added",
        "fields": [
            {
                "path": "config",
                "base": None,
                "ours": None,
                "theirs": {
                    "hooks": {"preMap": SCRIPT},
                    "lookup": {"cache": CACHE, "fallback": GONE},
                },
                "conflict": False,
                "absent": ["base", "ours"],
            }
        ],
    }
    (row,) = field_rows(res, ref_names={CACHE: Ref("Country codes"), SCRIPT: "Tax rounding"})
    text = "".join(str(r.right) for r in row.diff.rows)
    assert "Country codes" in text and "Tax rounding" in text
    assert "a resource in neither integration" in text
    assert not UUID.search(text)


def test_counts_read_as_words_and_a_resolved_conflict_carries_no_warning():
    from revisions.review import counts_words

    words = counts_words({"modified": 3, "conflicts": 1, "unresolved": 0})
    assert [w["text"] for w in words] == ["3 changed", "1 conflict (resolved)"]
    assert [w["kind"] for w in words] == ["mod", "resolved"]
    words = counts_words({"added": 1, "conflicts": 2, "unresolved": 1})
    assert [w["text"] for w in words] == ["1 added", "2 conflicts (1 unresolved)"]
    assert words[-1]["kind"] == "conflict"


def test_a_schedule_reads_in_words():
    from integrations.schedules import describe_schedule

    assert describe_schedule("*/30 * * * *") == "every 30 minutes"
    assert describe_schedule("@daily") == "at 00:00"
    assert describe_schedule("") == "" and describe_schedule("not cron") == ""
