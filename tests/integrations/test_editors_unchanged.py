"""Saving an editor unchanged changes nothing (issue #10, section 1).

For every editor of the integration pages, on every instance of it in the demo data: load
the edit form, submit it exactly as a browser would with nothing touched, and the
integration's canonical document is byte-identical, its fields are as they were, `version`
did not move and no history row was written. The editors come from the URL conf: every
URL of the integration pages is either an editor listed here or named as not one, so a
new editor fails `test_every_integration_page_url_is_classified` until it is covered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import URLPattern, get_resolver, reverse

from integrations import services
from integrations.models import (
    Connection,
    Flow,
    FlowStep,
    Integration,
    IntegrationAccess,
    LookupCache,
    Script,
    User,
)
from integrations.views import RESOURCE_UI
from revisions.document import canonical_bytes, document_of
from tests.integrations.rendered_form import submission_of

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Editor:
    """One editor: the page that shows its form, the URL it posts to, its instances."""

    url_name: str
    kind: str | None
    instances: Callable[[], Iterator[tuple[Integration, str, str]]]  # (integration, page, action)


def _resource_editor(kind: str) -> Editor:
    model = RESOURCE_UI[kind].model

    def instances():
        for obj in model.objects.select_related("integration").order_by("pk"):
            url = reverse("integrations:resource_edit", args=[obj.integration_id, kind, obj.pk])
            yield obj.integration, url, ""

    return Editor("resource_edit", kind, instances)


def _steps():
    for step in FlowStep.objects.select_related("integration").order_by("pk"):
        url = reverse("integrations:step_edit", args=[step.integration_id, step.flow_id, step.pk])
        yield step.integration, url, ""


def _settings():
    for integration in Integration.objects.order_by("pk"):
        page = reverse("integrations:settings", args=[integration.pk])
        yield integration, page, page


def _access():
    for integration in Integration.objects.order_by("pk"):
        page = reverse("integrations:settings", args=[integration.pk])
        yield integration, page, reverse("integrations:access", args=[integration.pk])


EDITORS: tuple[Editor, ...] = (
    Editor("settings", None, _settings),  # name, description, documentation, ignore-fields
    Editor("access", None, _access),
    *(_resource_editor(kind) for kind in RESOURCE_UI),
    Editor("step_edit", None, _steps),  # mappings and hooks
)

# Every other URL of the integration pages, and why it is not an editor of what exists.
NOT_EDITORS: dict[str, str] = {
    "home": "page",
    "create": "creates an integration",
    "detail": "page",
    "flows": "tab",
    "connections": "tab",
    "caches": "tab",
    "scripts": "tab",
    "docs_preview": "renders a preview, writes nothing",
    "delete": "deletes",
    "sync_badge": "fragment",
    "resource_new": "creates a resource",
    "resource_delete": "deletes",
    "flow": "page",
    "step_new": "creates a step",
    "step_delete": "deletes",
    "step_move": "a button: moving is the change asked for",
    "cache": "page",
    "cache_entry_add": "adds data (entries are data, not in the document)",
    "cache_upload": "adds data",
    "cache_clear": "clears data",
    "protection": "a button: turning change control on or off is the change asked for",
}


def _integration_url_names() -> set[str]:
    resolver = get_resolver()
    namespace = resolver.namespace_dict["integrations"][1]
    return {p.name for p in namespace.url_patterns if isinstance(p, URLPattern)}


def test_every_integration_page_url_is_classified():
    editors = {e.url_name for e in EDITORS}
    unknown = _integration_url_names() - editors - set(NOT_EDITORS)
    assert not unknown, (
        f"New integration page URL(s) {sorted(unknown)}: add each to EDITORS (and so to the "
        "unchanged-save test) or to NOT_EDITORS with the reason it edits nothing that exists."
    )
    assert not editors & set(NOT_EDITORS)
    # Every resource kind the shared editor serves is covered.
    assert {e.kind for e in EDITORS if e.url_name == "resource_edit"} == set(RESOURCE_UI)


@pytest.fixture
def demo(django_capture_on_commit_callbacks) -> User:
    """The demo data, with ignore-fields set (so that editor has something to keep)."""
    with django_capture_on_commit_callbacks(execute=True):
        call_command("load_demo", stdout=StringIO())
    # Protected production has no editors (change control refuses direct writes): the
    # demo's production integrations are unprotected so that every editor is walked.
    Integration.objects.update(protected=False)
    for integration in Integration.objects.all():
        services.integration_update(
            integration=integration,
            data={"ignore_fields": {"connection": ["config.base_url"], "flow": ["enabled"]}},
        )
    return User.objects.get(username="admin")


HISTORY_MODELS = (Integration, Connection, Flow, FlowStep, Script, LookupCache, IntegrationAccess)


def _state(integration: Integration) -> tuple:
    integration = Integration.objects.get(pk=integration.pk)
    fields = {
        f.attname: getattr(integration, f.attname)
        for f in Integration._meta.concrete_fields
        if f.attname != "updated_at"
    }
    grants = sorted(integration.grants.values_list("user__username", "level"))
    return canonical_bytes(document_of(integration)), fields, grants


def _history_rows() -> int:
    return sum(model.history.count() for model in HISTORY_MODELS)


@pytest.mark.parametrize("editor", EDITORS, ids=lambda e: e.kind or e.url_name)
def test_saving_an_editor_unchanged_changes_nothing(editor: Editor, demo: User):
    client = Client()
    client.force_login(demo)
    checked = 0
    for integration, page, action in editor.instances():
        before = _state(integration)
        history = _history_rows()
        response = client.get(page)
        assert response.status_code == 200, page
        data = submission_of(response.content.decode(), action)
        response = client.post(action or page, data)
        assert response.status_code == 302, (
            f"{page}: the unchanged form was refused: {response.content.decode()[:2000]}"
        )
        after = _state(integration)
        assert after[0] == before[0], f"{page}: the document changed"
        assert after[1] == before[1], f"{page}: the integration's fields changed"
        assert after[2] == before[2], f"{page}: the grants changed"
        assert _history_rows() == history, f"{page}: a history row was written"
        checked += 1
    assert checked, f"the demo data has no {editor.kind or editor.url_name} to edit"
