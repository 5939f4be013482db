"""Lookup caches: data is copied by a clone only under 5 MB; operations carry settings only."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.test import override_settings
from django.urls import reverse

from integrations.models import Environment, Integration, LookupCache, LookupCacheEntry
from integrations.services import resource_delete, resource_update
from revisions import services
from revisions.models import Revision
from tests.api.conftest import token_client
from tests.factories import CacheEntryFactory, LookupCacheFactory

pytestmark = pytest.mark.django_db
CACHE_COPY_LIMIT = settings.ILM_CLONE_CACHE_DATA_LIMIT_BYTES


@pytest.fixture
def run(django_capture_on_commit_callbacks):
    def call(fn, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            result = fn(**kwargs)
        result.refresh_from_db()
        return result

    return call


def _cache_with(integration, total_bytes: int) -> LookupCache:
    """A cache whose entries' recorded sizes add up to exactly `total_bytes`."""
    cache = LookupCacheFactory(integration=integration, name="Prices")
    CacheEntryFactory(cache=cache, key="big", size=total_bytes - 10)
    CacheEntryFactory(cache=cache, key="small", size=10)
    return cache


@pytest.mark.parametrize(
    ("size", "copied"),
    [(CACHE_COPY_LIMIT - 1, True), (CACHE_COPY_LIMIT, False), (CACHE_COPY_LIMIT + 1, False)],
    ids=["under", "at", "over"],
)
def test_clone_copies_cache_data_only_under_5_mb(integration, developer, run, size, copied):
    _cache_with(integration, size)
    integrations = Integration.objects.count()
    if copied:
        clone = run(
            services.integration_clone,
            source=integration,
            user=developer,
            name="Copy",
            environment=Environment.SANDBOX,
            copy_cache_data=True,
        )
        entries = LookupCacheEntry.objects.filter(cache__integration=clone)
        assert sorted(e.key for e in entries) == ["big", "small"]
    else:
        with pytest.raises(ValidationError, match="under 5 MB"):
            services.integration_clone(
                source=integration,
                user=developer,
                name="Copy",
                environment=Environment.SANDBOX,
                copy_cache_data=True,
            )
        assert Integration.objects.count() == integrations
        assert not Revision.objects.exists()


def test_clone_without_data_ignores_the_size(integration, developer, run):
    _cache_with(integration, CACHE_COPY_LIMIT + 1)
    clone = run(
        services.integration_clone,
        source=integration,
        user=developer,
        name="Copy",
        environment=Environment.SANDBOX,
    )
    assert LookupCache.objects.filter(integration=clone).count() == 1
    assert not LookupCacheEntry.objects.filter(cache__integration=clone).exists()


def test_a_cache_brought_back_by_revert_is_empty(integration, developer, run):
    cache = LookupCacheFactory(integration=integration, name="Prices")
    CacheEntryFactory(cache=cache, key="k1")
    snap = services.snapshot_create(integration=integration, user=developer)
    lineage = cache.lineage_id
    resource_delete(instance=cache)
    run(services.revert_start, revision=snap, user=developer)
    restored = LookupCache.objects.get(integration=integration, lineage_id=lineage)
    assert restored.entries.count() == 0


def test_an_existing_cache_keeps_its_entries_through_a_revert(integration, developer, run):
    cache = LookupCacheFactory(integration=integration, name="Prices", settings={"ttl_days": 1})
    CacheEntryFactory(cache=cache, key="k1")
    snap = services.snapshot_create(integration=integration, user=developer)
    resource_update(instance=cache, data={"settings": {"ttl_days": 7}})
    CacheEntryFactory(cache=cache, key="k2")
    run(services.revert_start, revision=snap, user=developer)
    cache.refresh_from_db()
    assert cache.settings == {"ttl_days": 1}
    assert sorted(cache.entries.values_list("key", flat=True)) == ["k1", "k2"]


@override_settings(ILM_CLONE_CACHE_DATA_LIMIT_BYTES=1024 * 1024)
def test_the_clone_limit_is_its_setting_for_service_page_and_api(
    integration, developer, dev_client
):
    _cache_with(integration, 2 * 1024 * 1024)  # under 5 MB, over the 1 MB set here
    integrations = Integration.objects.count()
    with pytest.raises(ValidationError, match="copied only under 1 MB"):
        services.integration_clone(
            source=integration, user=developer, name="Copy", copy_cache_data=True
        )
    page = dev_client.get(reverse("revisions:clone", args=[integration.pk]))
    assert "Only when they total under 1 MB" in page.content.decode()
    posted = dev_client.post(
        reverse("revisions:clone", args=[integration.pk]),
        {"name": "Copy", "environment": Environment.SANDBOX, "copy_cache_data": "on"},
    )
    assert posted.status_code == 400
    assert "copied only under 1 MB" in posted.content.decode()
    answer = token_client(developer).post(
        f"/api/v1/integrations/{integration.pk}/clone",
        {"name": "Copy", "include_lookup_cache_data": True},
        format="json",
    )
    assert answer.status_code == 400
    assert "copied only under 1 MB" in answer.json()["errors"]["include_lookup_cache_data"][0]
    assert Integration.objects.count() == integrations
    assert not Revision.objects.exists()
