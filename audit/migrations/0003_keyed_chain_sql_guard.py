"""The keyed chain's key id, and an append-only guard that no session setting turns off.

pgtrigger's guard honours `SET pgtrigger.ignore`, which any role may set: it is replaced
by plain triggers that refuse UPDATE and DELETE of any row and TRUNCATE of the table,
whoever asks. Only the table's owner can disable them (ALTER TABLE … DISABLE TRIGGER),
so the site runs as another role (audit/roles.py); when ILM_DB_RUNTIME_ROLE names it,
its rights to rewrite the table are revoked here as well. PostgreSQL only: SQLite has
neither roles nor these triggers.

Events written before this migration keep an empty key id and their unkeyed hashes: they
cannot be re-signed (that would rewrite them, and the key is not the database's to know).
`audit_verify` accepts them only as the first ILM_AUDIT_LEGACY_EVENTS events of the log.
"""

import pgtrigger.migrations
from django.conf import settings
from django.db import migrations, models

GUARD_SQL = """
CREATE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        RAISE EXCEPTION 'Cannot truncate % table: the audit log is append-only', TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RAISE EXCEPTION 'Cannot update or delete rows from % table: the audit log is append-only',
        TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_event_no_rewrite BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION audit_event_append_only();
CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only();
"""

UNGUARD_SQL = """
DROP TRIGGER IF EXISTS audit_event_no_truncate ON {table};
DROP TRIGGER IF EXISTS audit_event_no_rewrite ON {table};
DROP FUNCTION IF EXISTS audit_event_append_only();
"""


def _run(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        table = schema_editor.quote_name(apps.get_model("audit", "Event")._meta.db_table)
        schema_editor.execute(sql.format(table=table), params=None)

    return run


def revoke_from_runtime_role(apps, schema_editor):
    role = getattr(settings, "ILM_DB_RUNTIME_ROLE", "")
    if not role or schema_editor.connection.vendor != "postgresql":
        return
    from audit.roles import revoke_rewrites_sql

    table = apps.get_model("audit", "Event")._meta.db_table
    schema_editor.execute(revoke_rewrites_sql(role, table=table), params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0002_index_username"),
    ]

    operations = [
        migrations.AddField(
            model_name="event",
            name="key_id",
            field=models.CharField(blank=True, default="", max_length=16),
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name="event",
            name="append_only",
        ),
        migrations.RunPython(_run(GUARD_SQL), _run(UNGUARD_SQL), elidable=False),
        migrations.RunPython(revoke_from_runtime_role, migrations.RunPython.noop, elidable=False),
    ]
