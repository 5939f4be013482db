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
