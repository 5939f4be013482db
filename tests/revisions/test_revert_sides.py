"""Which state of a revision a revert may restore is the service's rule; page and API
show its refusal (a snapshot or clone has one state: only pulls and reverts have a
"before")."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from revisions import services
from revisions.models import Revision, RevisionType
from tests.api.conftest import token_client

pytestmark = pytest.mark.django_db

ONE_STATE = "'before' is for pulls and reverts; a snapshot or clone has one state."


@pytest.fixture
def moved_on(integration, developer):
    """A snapshot of the integration, which has changed since."""
    snap = services.snapshot_create(integration=integration, user=developer, description="One")
    type(integration).objects.filter(pk=integration.pk).update(description="Moved on")
    return snap


def _reverts():
    return Revision.objects.filter(type=RevisionType.REVERT).count()


def test_service_refuses_before_of_a_snapshot_and_opens_nothing(moved_on, developer):
    with pytest.raises(ValidationError) as caught:
        services.revert_start(revision=moved_on, user=developer, side="before")
    assert caught.value.message_dict == {"to": [ONE_STATE]}
    with pytest.raises(ValidationError):
        services.revert_preview(revision=moved_on, side="before")
    assert _reverts() == 0


def test_service_refuses_an_unknown_side(moved_on, developer):
    with pytest.raises(ValidationError, match="Use 'after' or 'before'"):
        services.revert_start(revision=moved_on, user=developer, side="sideways")
    assert _reverts() == 0


def test_page_shows_the_refusal_as_a_form_error_instead_of_switching_sides(dev_client, moved_on):
    url = reverse("revisions:revert", args=[moved_on.pk])
    preview = dev_client.get(url, {"to": "before"})
    html = preview.content.decode()
    assert preview.status_code == 400
    assert "Cannot revert this way" in html and "a snapshot or clone has one state" in html
    assert 'data-testid="confirm-revert"' not in html
    posted = dev_client.post(url, {"to": "before", "description": "Undo"})
    assert posted.status_code == 400
    assert "a snapshot or clone has one state" in posted.content.decode()
    assert _reverts() == 0


def test_page_still_reverts_a_snapshot_to_after(dev_client, moved_on, run_on_commit):
    url = reverse("revisions:revert", args=[moved_on.pk])
    assert dev_client.get(url).status_code == 200
    response = run_on_commit(dev_client.post, url, {"to": "after", "description": ""})
    assert response.status_code == 302
    assert _reverts() == 1


def test_api_answers_400_with_the_same_error(developer, moved_on):
    api = token_client(developer)
    posted = api.post(f"/api/v1/revisions/{moved_on.pk}/revert", {"to": "before"}, format="json")
    assert posted.status_code == 400
    assert posted.json()["errors"] == {"to": [ONE_STATE]}
    preview = api.get(f"/api/v1/revisions/{moved_on.pk}/revert-preview?to=before")
    assert preview.status_code == 400
    assert preview.json()["detail"] == ONE_STATE
    sideways = api.get(f"/api/v1/revisions/{moved_on.pk}/revert-preview?to=sideways")
    assert sideways.status_code == 400
    assert _reverts() == 0
