"""The integration's current tree hash (what the Revisions tab compares each row with) is
kept per version: read once while nothing changes, worked out again after any change."""

from __future__ import annotations

import pytest

from integrations.models import Integration
from integrations.services import resource_update
from revisions import selectors, services
from tests.factories import FlowFactory

pytestmark = pytest.mark.django_db


def fresh(integration) -> Integration:
    return Integration.objects.get(pk=integration.pk)


def test_the_hash_is_the_snapshots_until_a_change_and_then_a_new_one(
    integration, developer, django_assert_max_num_queries
):
    flow = FlowFactory(integration=integration, name="Orders", schedule="0 * * * *")
    snap = services.snapshot_create(integration=integration, user=developer, description="s")
    snap.refresh_from_db()
    current = fresh(integration)
    assert selectors.current_tree_hash(current) == snap.tree_after.hash
    # Unchanged: the kept hash, without reading the integration's resources again.
    with django_assert_max_num_queries(0):
        assert selectors.current_tree_hash(current) == snap.tree_after.hash

    resource_update(instance=flow, data={"schedule": "0 3 * * *"})
    changed = selectors.current_tree_hash(fresh(integration))
    assert changed != snap.tree_after.hash
    again = services.snapshot_create(integration=integration, user=developer, description="t")
    again.refresh_from_db()
    assert changed == again.tree_after.hash


def test_a_hash_read_after_the_integration_moved_on_is_not_kept_for_the_old_version(
    integration, developer
):
    flow = FlowFactory(integration=integration, name="Orders", schedule="0 * * * *")
    stale = fresh(integration)  # read at this version …
    resource_update(instance=flow, data={"schedule": "0 3 * * *"})  # … which then moves on
    now = selectors.current_tree_hash(stale)
    resource_update(instance=flow, data={"schedule": "0 * * * *"})
    # the old version's key holds nothing: asking at it works the hash out from the rows
    assert selectors.current_tree_hash(stale) != now
