"""The seed scenario driven only through the REST API, as a CI pipeline would.

Set-up uses the two commands docs/api.md gives scripts (`create_user`, `create_api_token`);
everything after is HTTP with bearer tokens: build production, clone it into a sandbox,
change both sides, pull, resolve the conflict, merge with an approval (four eyes), revert
to before the merge, pull again. Celery runs eagerly; each request's on-commit work is run
as the request commits, so polling `GET /revisions/{id}` sees the outcome.
"""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

FINAL = {"completed", "failed", "canceled"}


class Api:
    """A token client whose writes commit (and run their on-commit tasks) like a server's."""

    def __init__(self, username: str, role: str, capture) -> None:
        call_command("create_user", username, "--role", role, stdout=StringIO())
        out = StringIO()
        call_command("create_api_token", username, stdout=out)
        self.client = APIClient()
        self.client.credentials(HTTP_AUTHORIZATION=f"Bearer {out.getvalue().strip()}")
        self.capture = capture

    def __call__(self, method: str, path: str, body=None, *, expect: int | tuple = 200):
        with self.capture(execute=True):
            response = getattr(self.client, method)(f"/api/v1{path}", body, format="json")
        codes = expect if isinstance(expect, tuple) else (expect,)
        assert response.status_code in codes, (method, path, response.status_code, response.data)
        return response.data

    def wait(self, revision_id: int, until: set[str]) -> dict:
        """Poll the revision as a client does until it reaches one of `until`."""
        for _ in range(20):
            revision = self("get", f"/revisions/{revision_id}")
            if revision["status"] in until | FINAL:
                break
        assert revision["status"] in until, revision
        return revision


@pytest.fixture
def people(django_capture_on_commit_callbacks):
    return {
        "admin": Api("root", "administrator", django_capture_on_commit_callbacks),
        "dev": Api("dana", "developer", django_capture_on_commit_callbacks),
        "approver": Api("april", "approver", django_capture_on_commit_callbacks),
    }


def _by_id(items, key="id"):
    return {item[key]: item for item in items}


def _document(api, integration_id):
    return api("get", f"/integrations/{integration_id}/document")


def test_seed_scenario_through_the_api_with_tokens(people):
    admin, dev, approver = people["admin"], people["dev"], people["approver"]

    # Production, made by an administrator, managed by the developer.
    prod = admin(
        "post",
        "/integrations",
        {"name": "Storefront orders → ERP", "environment": "production"},
        expect=201,
    )
    admin("put", f"/integrations/{prod['id']}/access", [{"user": "dana", "level": "manage"}])
    dev("post", "/integrations", {"name": "P", "environment": "production"}, expect=403)
    # New production starts protected: no direct writes until an administrator turns
    # protection off, with a reason, for the initial build.
    assert prod["protected"] is True
    refused = dev("post", f"/integrations/{prod['id']}/flows", {"name": "X"}, expect=403)
    assert "change a sandbox clone and pull" in refused["detail"]
    dev("patch", f"/integrations/{prod['id']}", {"protected": False, "reason": "x"}, expect=403)
    admin(
        "patch",
        f"/integrations/{prod['id']}",
        {"protected": False, "reason": "Initial build"},
    )
    conn = dev(
        "post",
        f"/integrations/{prod['id']}/connections",
        {"name": "ERP", "kind": "http", "config": {"base_url": "https://erp"}},
        expect=201,
    )
    cache = dev(
        "post",
        f"/integrations/{prod['id']}/lookup-caches",
        {"name": "SKU map", "key_path": "sku", "settings": {"ttl_days": 30}},
        expect=201,
    )
    dev(
        "post",
        f"/lookup-caches/{cache['id']}/entries",
        {"key": "A-1", "value": {"item": 1}},
        expect=201,
    )
    flow = dev(
        "post",
        f"/integrations/{prod['id']}/flows",
        {"name": "Orders", "description": "All orders", "schedule": "*/15 * * * *"},
        expect=201,
    )
    step = dev(
        "post",
        f"/flows/{flow['id']}/steps",
        {
            "name": "Map order",
            "kind": "import",
            "position": 1,
            "connection": conn["id"],
            "config": {
                "mappings": [
                    {"source": "total", "target": "amount", "lookup_cache": None},
                    {"source": "sku", "target": "item", "lookup_cache": cache["lineage_id"]},
                ]
            },
        },
        expect=201,
    )
    script = dev(
        "post",
        f"/integrations/{prod['id']}/scripts",
        {"name": "Tax", "function": "preSavePage", "code": "const rate = 0.2;"},
        expect=201,
    )
    snapshot = dev(
        "post", f"/integrations/{prod['id']}/revisions", {"type": "snapshot"}, expect=201
    )
    assert snapshot["status"] == "completed"

    # Clone into a sandbox (developers with access may) and wait for the copy.
    sandbox = dev(
        "post", f"/integrations/{prod['id']}/clone", {"name": "Orders sandbox"}, expect=201
    )
    assert sandbox["environment"] == "sandbox" and sandbox["cloned_from"] == prod["id"]
    clone_rev = dev("get", f"/integrations/{sandbox['id']}/revisions?type=clone")["results"][0]
    dev.wait(clone_rev["id"], {"completed"})
    assert prod["id"] in _by_id(dev("get", f"/integrations/{sandbox['id']}/family"))
    sb_doc = _document(dev, sandbox["id"])
    assert set(sb_doc["resources"]) == set(_document(dev, prod["id"])["resources"])
    twin = {
        kind: _by_id(dev("get", f"/integrations/{sandbox['id']}/{kind}")["results"], "lineage_id")
        for kind in ("flows", "scripts", "lookup-caches", "connections")
    }
    sb_flow = twin["flows"][flow["lineage_id"]]
    sb_step = _by_id(dev("get", f"/flows/{sb_flow['id']}/steps")["results"], "lineage_id")[
        step["lineage_id"]
    ]
    sb_cache = twin["lookup-caches"][cache["lineage_id"]]

    # The sandbox changes a flow, a mapping and a cache's settings; production meanwhile
    # changes the same flow schedule differently and a script.
    dev("patch", f"/flows/{sb_flow['id']}", {"schedule": "*/5 * * * *", "description": "Paid only"})
    mappings = sb_step["config"]["mappings"]
    mappings[0]["source"] = "total_gross"
    dev("patch", f"/steps/{sb_step['id']}", {"config": {**sb_step["config"], "mappings": mappings}})
    dev("patch", f"/lookup-caches/{sb_cache['id']}", {"settings": {"ttl_days": 7}})
    dev("patch", f"/flows/{flow['id']}", {"schedule": "0 * * * *"})
    dev("patch", f"/scripts/{script['id']}", {"code": "const rate = 0.25;"})
    before_merge = _document(dev, prod["id"])
    # Production goes under change control: from now on changes land through pulls.
    admin("patch", f"/integrations/{prod['id']}", {"protected": True})
    dev("patch", f"/scripts/{script['id']}", {"code": "const rate = 0.3;"}, expect=403)

    # Pull into production: 202 queued, then ready with the one conflict.
    pull = dev(
        "post",
        f"/integrations/{prod['id']}/revisions",
        {"type": "pull", "source_integration": sandbox["id"], "description": "Paid orders"},
        expect=202,
    )
    assert pull["type"] == "pull"
    dev(
        "post",
        f"/integrations/{prod['id']}/revisions",
        {"type": "pull", "source_integration": sandbox["id"]},
        expect=409,
    )
    pull = dev.wait(pull["id"], {"ready"})
    assert pull["summary"]["conflicts"] == 1 and pull["summary"]["unresolved"] == 1
    changes = dev("get", f"/revisions/{pull['id']}/changes")
    by_lineage = _by_id(changes["resources"], "lineage_id")
    assert set(by_lineage) >= {flow["lineage_id"], step["lineage_id"], cache["lineage_id"]}
    conflict = next(f for f in by_lineage[flow["lineage_id"]]["fields"] if f["conflict"])
    assert (conflict["ours"], conflict["theirs"]) == ("0 * * * *", "*/5 * * * *")
    # The script changed only in production: not brought over, not a conflict.
    assert script["lineage_id"] not in by_lineage

    # Unresolved: no merge. Resolve by taking the sandbox's value.
    dev("post", f"/revisions/{pull['id']}/merge", expect=(403, 409))
    summary = dev(
        "post",
        f"/revisions/{pull['id']}/resolutions",
        {
            "resolutions": [
                {"lineage_id": flow["lineage_id"], "path": conflict["path"], "choose": "theirs"}
            ]
        },
    )
    assert summary["unresolved"] == 0

    # Production: merging needs an approval, the requester cannot give it.
    assert dev("post", f"/revisions/{pull['id']}/merge", expect=403)["detail"]
    asked = dev("post", f"/revisions/{pull['id']}/request-approval", {"comment": "Paid only"})
    assert asked["status"] == "awaiting_approval"
    dev("post", f"/revisions/{pull['id']}/approve", {}, expect=403)
    merged = approver("post", f"/revisions/{pull['id']}/approve", {"comment": "Fine"}, expect=202)
    assert merged["status"] in ("merging", "completed")
    dev.wait(pull["id"], {"completed"})

    after_merge = _document(dev, prod["id"])
    merged_flow = after_merge["resources"][flow["lineage_id"]]
    assert (merged_flow["schedule"], merged_flow["description"]) == ("*/5 * * * *", "Paid only")
    merged_step = after_merge["resources"][step["lineage_id"]]
    assert merged_step["config"]["mappings"][0]["source"] == "total_gross"
    assert after_merge["resources"][cache["lineage_id"]]["settings"] == {"ttl_days": 7}
    assert after_merge["resources"][script["lineage_id"]]["code"] == "const rate = 0.25;"
    assert dev("get", f"/lookup-caches/{cache['id']}")["entry_count"] == 1  # data untouched

    # Revert to before the merge: preview, then 202; production is protected, so the
    # developer's revert waits for an approver, who rolls it back; the document is back.
    preview = dev("get", f"/revisions/{pull['id']}/revert-preview?to=before")
    assert flow["lineage_id"] in _by_id(preview["resources"], "lineage_id")
    revert = dev(
        "post",
        f"/revisions/{pull['id']}/revert",
        {"to": "before", "description": "Undo"},
        expect=202,
    )
    assert revert["type"] == "revert" and revert["reverted_to"] == pull["id"]
    assert revert["status"] == "awaiting_approval"
    assert _document(dev, prod["id"]) == after_merge
    dev("post", f"/revisions/{revert['id']}/approve", {}, expect=403)
    approver("post", f"/revisions/{revert['id']}/approve", {"comment": "Undo"}, expect=202)
    dev.wait(revert["id"], {"completed"})
    assert _document(dev, prod["id"]) == before_merge
    dev("post", f"/revisions/{pull['id']}/revert", {"to": "before"}, expect=409)

    # Pull again: exactly what is still to bring over, the same changes.
    again = dev(
        "post",
        f"/integrations/{prod['id']}/revisions",
        {"type": "pull", "source_integration": sandbox["id"]},
        expect=202,
    )
    again = dev.wait(again["id"], {"ready"})
    changes_again = dev("get", f"/revisions/{again['id']}/changes")
    assert set(_by_id(changes_again["resources"], "lineage_id")) == set(by_lineage)

    # The history is all there, newest first.
    types = [r["type"] for r in dev("get", f"/integrations/{prod['id']}/revisions")["results"]]
    assert types[0] == "pull" and "revert" in types and types[-1] == "snapshot"
    dev("post", f"/revisions/{again['id']}/cancel", expect=200)
    assert dev("get", f"/revisions/{again['id']}")["status"] == "canceled"

    # Every step is in the audit log, with who took it.
    events = admin("get", f"/audit?integration={prod['id']}&resource_type=revision")["results"]
    steps = {(e["action"], e["user"]) for e in events}
    assert {
        ("approval_requested", "dana"),
        ("approved", "april"),
        ("revert", "dana"),
        ("cancel", "dana"),
    } <= steps, steps
    assert any(action == "merge" for action, _ in steps)
