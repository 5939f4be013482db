"""The database role split that keeps the audit log append-only (PostgreSQL).

One role owns the tables and runs the migrations; the site (gunicorn, Celery) connects
as another, the runtime role, which may read and write the domain's tables but may only
read and insert audit events. A table's owner can always disable its triggers, so the
runtime role must not own the event table nor be a member of the role that does, nor be
a superuser. `runtime_role_harden` grants the runtime role what the site needs and
revokes the rest; migration 0003 revokes the audit rewrites from ILM_DB_RUNTIME_ROLE.
"""

from __future__ import annotations

import re

from django.db import connection, transaction

from .models import Event

# What nobody but the owner may do to audit events (TRIGGER would let a role add one).
REWRITES = "UPDATE, DELETE, TRUNCATE, TRIGGER, REFERENCES"

_ROLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")


class RoleError(ValueError):
    """A role that cannot serve as the runtime role (named in the message)."""


def _quoted(role: str) -> str:
    if not _ROLE_NAME.fullmatch(role):
        raise RoleError(
            f"{role!r} is not a plain role name (letters, digits, _ and $; at most 63)."
        )
    return connection.ops.quote_name(role)


def revoke_rewrites_sql(role: str, *, table: str | None = None) -> str:
    """The statement that takes the rights to rewrite the audit log away from `role`."""
    table = connection.ops.quote_name(table or Event._meta.db_table)
    return f"REVOKE {REWRITES} ON {table} FROM {_quoted(role)}"


def _require_postgresql() -> None:
    if connection.vendor != "postgresql":
        raise RoleError("database roles exist on PostgreSQL only; this database is not.")


def runtime_role_problem(role: str) -> str | None:
    """Why `role` cannot be the runtime role (it does not exist, is a superuser, or owns
    the event table), or None when it can."""
    _require_postgresql()
    _quoted(role)
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", [role])
        found = cursor.fetchone()
        if found is None:
            return (
                f"role {role} does not exist; create it first, e.g. "
                f"CREATE ROLE {role} LOGIN PASSWORD '…'"
            )
        if found[0]:
            return f"role {role} is a superuser, which ignores privileges and can disable triggers"
        cursor.execute(
            "SELECT tableowner, pg_has_role(%s, tableowner, 'MEMBER') FROM pg_tables"
            " WHERE schemaname = current_schema() AND tablename = %s",
            [role, Event._meta.db_table],
        )
        owner, member = cursor.fetchone()
    if member:
        return (
            f"role {role} owns {Event._meta.db_table} or is a member of its owner {owner}: "
            "an owner can disable the table's triggers; the runtime role must be another role"
        )
    return None


def runtime_role_statements(role: str) -> list[str]:
    """The statements that make `role` the runtime role: read and write the site's tables
    (also those later migrations create), read and insert audit events, nothing more."""
    quoted = _quoted(role)
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_schema(), current_user")
        schema, owner = cursor.fetchone()
    schema, owner = connection.ops.quote_name(schema), connection.ops.quote_name(owner)
    return [
        f"GRANT USAGE ON SCHEMA {schema} TO {quoted}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {quoted}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {quoted}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema}"
        f" GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {quoted}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema}"
        f" GRANT USAGE, SELECT ON SEQUENCES TO {quoted}",
        revoke_rewrites_sql(role),
    ]


def runtime_role_harden(*, role: str) -> list[str]:
    """Grant `role` the runtime privileges and revoke its audit rewrites; run as the
    owner of the tables. Raises RoleError (nothing changed) for a role that cannot be
    the runtime role. Returns the statements run."""
    problem = runtime_role_problem(role)
    if problem is not None:
        raise RoleError(problem)
    statements = runtime_role_statements(role)
    with transaction.atomic(), connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
    return statements
