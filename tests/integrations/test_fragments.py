"""One rule for whether a request gets a page's fragment, whichever app answers it."""

from __future__ import annotations

import json

import pytest
from django.http import HttpResponse
from django.test import RequestFactory
from django.urls import reverse
from django_htmx.middleware import HtmxMiddleware

from integrations.fragments import is_fragment
from revisions.models import Revision, RevisionStatus, RevisionType


def _request(**headers):
    request = RequestFactory().get("/", **headers)
    HtmxMiddleware(lambda r: HttpResponse())(request)
    return request


HX = {"HTTP_HX_REQUEST": "true"}


@pytest.mark.parametrize(
    ("headers", "any_target", "list_target"),
    [
        ({}, False, False),
        (HX, True, False),
        ({**HX, "HTTP_HX_TARGET": "list"}, True, True),
        ({**HX, "HTTP_HX_TARGET": "list", "HTTP_HX_BOOSTED": "true"}, False, False),
        ({**HX, "HTTP_HX_TARGET": "list", "HTTP_HX_HISTORY_RESTORE_REQUEST": "true"}, False, False),
    ],
    ids=["plain", "htmx", "htmx-target", "boosted", "history-restore"],
)
def test_fragment_only_for_htmx_that_is_neither_boosted_nor_a_history_restore(
    headers, any_target, list_target
):
    request = _request(**headers)
    assert is_fragment(request) is any_target
    assert is_fragment(request, "list") is list_target


@pytest.mark.django_db
def test_a_history_restore_of_a_revision_page_gets_the_whole_page(dev_client, integration):
    running = Revision.objects.create(
        integration=integration, number=1, type=RevisionType.PULL, status=RevisionStatus.RUNNING
    )
    url = reverse("revisions:status", args=[running.pk])
    fragment = dev_client.get(url, **HX).content.decode()
    assert "<html" not in fragment
    restored = dev_client.get(
        reverse("revisions:detail", args=[running.pk]),
        **HX,
        HTTP_HX_HISTORY_RESTORE_REQUEST="true",
    ).content.decode()
    assert "<html" in restored


@pytest.mark.django_db
def test_htmx_answers_use_django_htmx_redirect_and_toast(dev_client, integration):
    snapshot_url = reverse("revisions:snapshot", args=[integration.pk])
    saved = dev_client.post(snapshot_url, {"description": "One"}, **HX)
    assert saved.status_code == 200
    assert saved["HX-Redirect"] == reverse("revisions:tab", args=[integration.pk])
    done = Revision.objects.create(
        integration=integration, number=9, type=RevisionType.PULL, status=RevisionStatus.FAILED
    )
    refused = dev_client.post(reverse("revisions:cancel", args=[done.pk]), **HX)
    assert refused.status_code == 409
    toast = json.loads(refused["HX-Trigger"])["ilm:toast"]
    assert "cannot be canceled" in toast["value"]
    assert Revision.objects.get(pk=done.pk).status == RevisionStatus.FAILED
