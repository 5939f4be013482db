"""`manage.py ilm_pull TARGET SOURCE [--description TEXT] [--user NAME]`."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from revisions import services
from revisions.management.operations import integration_arg, report, run_service, user_arg


class Command(BaseCommand):
    help = "Open a pull of SOURCE's changes into TARGET (integrations of one family)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("target", help="Id of the integration that receives the changes")
        parser.add_argument("source", help="Id of the integration the changes come from")
        parser.add_argument("--description", default="")
        parser.add_argument("--user", default=None, help="Username to record as the author")

    def handle(self, *args, target, source, description, user, **options) -> None:
        revision = run_service(
            services.pull_create,
            target=integration_arg(target),
            source=integration_arg(source),
            user=user_arg(user),
            description=description,
        )
        report(self, revision)
