"""`manage.py ilm_snapshot INTEGRATION [--description TEXT] [--user NAME]`."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from revisions import services
from revisions.management.operations import integration_arg, report, run_service, user_arg


class Command(BaseCommand):
    help = "Store the current state of an integration as a snapshot revision."

    def add_arguments(self, parser) -> None:
        parser.add_argument("integration", help="Integration id")
        parser.add_argument("--description", default="", help="What this snapshot is for")
        parser.add_argument("--user", default=None, help="Username to record as the author")

    def handle(self, *args, integration, description, user, **options) -> None:
        target = integration_arg(integration)
        author = user_arg(user)
        revision = run_service(
            services.snapshot_create, integration=target, user=author, description=description
        )
        report(self, revision)
