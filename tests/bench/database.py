"""The benchmark database: a fresh copy of a template for every `make bench`.

The template (`<name>_template`) holds the migrated schema, the demo users and the
1,000,000 generated audit events, so a run starts from the same state each time and the
heavy generation happens once. `CREATE DATABASE … TEMPLATE` copies files, which takes
seconds where re-generating takes minutes. Only this module talks to the server as an
administrator (drop, create); it touches no database but `<name>` and `<name>_template`.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql


def split(url: str) -> tuple[str, str]:
    """(URL of the server's maintenance database, name of the benchmark database)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql", "pgsql"):
        raise SystemExit(
            f"make bench needs PostgreSQL (BENCH_DATABASE_URL / DATABASE_URL), got {url!r}."
        )
    name = parts.path.lstrip("/")
    if not name:
        raise SystemExit(f"No database name in {url!r}.")
    admin = urlunsplit(parts._replace(path="/postgres"))
    return admin, name


def template_name(name: str) -> str:
    return f"{name}_template"


def _exists(conn: psycopg.Connection, name: str) -> bool:
    return (
        conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None
    )


def _disconnect(conn: psycopg.Connection, name: str) -> None:
    # Only sessions on the benchmark's own databases (left by an interrupted run).
    conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = %s AND pid <> pg_backend_pid()",
        [name],
    )


def fresh_from_template(url: str) -> bool:
    """Recreate the benchmark database, from the template when there is one.

    Returns whether the template was used.
    """
    admin, name = split(url)
    template = template_name(name)
    with psycopg.connect(admin, autocommit=True) as conn:
        _disconnect(conn, name)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        if _exists(conn, template):
            _disconnect(conn, template)
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
            return True
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return False


def save_as_template(url: str) -> None:
    """Make the current state of the benchmark database the template of the next runs.

    The caller closes its own connections first.
    """
    admin, name = split(url)
    template = template_name(name)
    with psycopg.connect(admin, autocommit=True) as conn:
        _disconnect(conn, template)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(template)))
        _disconnect(conn, name)
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(template), sql.Identifier(name)
            )
        )


def server_version(url: str) -> str:
    admin, _ = split(url)
    with psycopg.connect(admin, autocommit=True) as conn:
        return conn.execute("SHOW server_version").fetchone()[0]
