"""Make a database role the site's runtime role: it may not rewrite the audit log."""

from django.core.management.base import BaseCommand, CommandError

from audit.roles import (
    RoleError,
    runtime_role_harden,
    runtime_role_problem,
    runtime_role_statements,
)


class Command(BaseCommand):
    help = (
        "Grant ROLE what the site needs (run as the owner of the tables) and revoke its "
        "UPDATE, DELETE and TRUNCATE on the audit log. PostgreSQL only."
    )

    def add_arguments(self, parser):
        parser.add_argument("role", help="the role the site connects as (not the owner)")
        parser.add_argument(
            "--sql", action="store_true", help="print the statements instead of running them"
        )

    def handle(self, *args, role: str, sql: bool, **options):
        try:
            if sql:
                problem = runtime_role_problem(role)
                if problem is not None:
                    raise RoleError(problem)
                self.stdout.write(";\n".join(runtime_role_statements(role)) + ";")
                return
            statements = runtime_role_harden(role=role)
        except RoleError as exc:
            raise CommandError(f"Cannot harden {role}: {exc}") from None
        self.stdout.write(
            self.style.SUCCESS(
                f"{role} may read and write the site's tables and only read and insert "
                f"audit events ({len(statements)} statements run)."
            )
        )
