"""`manage.py ilm_merge REVISION [--user NAME]`."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from revisions import services
from revisions.management.operations import report, revision_arg, run_service, user_arg


class Command(BaseCommand):
    help = "Merge a pull that is ready (conflicts resolved; approved for production)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("revision", help="Id of the pull revision")
        parser.add_argument("--user", default=None, help="Username merging it")

    def handle(self, *args, revision, user, **options) -> None:
        result = run_service(
            services.merge_start, revision=revision_arg(revision), user=user_arg(user)
        )
        report(self, result)
