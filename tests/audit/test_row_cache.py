"""The audit list's rows are rendered once per event and page, then served from the
cache: what a reader sees is the same either way, and never another page's row."""

import re

import pytest
from django.core.cache import cache
from django.urls import reverse

from tests.factories import FlowFactory

pytestmark = pytest.mark.django_db


def test_a_cached_row_reads_as_a_fresh_one_and_each_page_keeps_its_own_links(
    admin_client_, integration
):
    cache.clear()
    flow = FlowFactory(integration=integration, name="Orders <nightly>")
    log = reverse("audit:log")
    tab = reverse("audit:integration", args=[integration.pk])

    def page(url):  # the list of events (nonces and CSRF tokens differ per response)
        body = admin_client_.get(url).content.decode()
        return re.search(r'<div class="au-list".*?<nav class="pagination', body, re.S).group(0)

    fresh = page(log)
    cached = page(log)
    assert cached == fresh
    assert "Orders &lt;nightly&gt;" in fresh and "Orders <nightly>" not in fresh
    assert f'href="{log}?integration={integration.pk}"' in fresh

    in_tab = page(tab)
    assert f"#{flow.pk}" in in_tab
    assert f'href="{tab}?operation=' in in_tab and f'href="{log}?operation=' not in in_tab
    assert f'href="{log}?integration=' not in in_tab  # the tab has no integration column
