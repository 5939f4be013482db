"""The data migration of change control: production integrations that exist already
become protected; sandboxes do not."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("integrations", "0003_encrypt_existing_credentials")]
AFTER = [("integrations", "0004_integration_protected")]


@pytest.mark.django_db(transaction=True)
def test_existing_production_integrations_become_protected():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps.get_model("integrations", "Integration")
    prod = old.objects.create(name="Orders", environment="production")
    sandbox = old.objects.create(name="Orders (sandbox)", environment="sandbox")

    try:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(AFTER)
        new = executor.loader.project_state(AFTER).apps.get_model("integrations", "Integration")
        assert new.objects.get(pk=prod.pk).protected is True
        assert new.objects.get(pk=sandbox.pk).protected is False
    finally:
        # Going back to BEFORE unapplied every app that depends on integrations
        # (runs, revisions, ...); put the whole schema back for the tests that
        # run after this one on the same database.
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
