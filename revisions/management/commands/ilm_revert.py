"""`manage.py ilm_revert REVISION [--to after|before] [--description TEXT] [--user NAME]`."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from revisions import services
from revisions.management.operations import report, revision_arg, run_service, user_arg


class Command(BaseCommand):
    help = "Restore an integration to the state after (or before) one of its revisions."

    def add_arguments(self, parser) -> None:
        parser.add_argument("revision", help="Id of the revision to restore")
        parser.add_argument("--to", choices=("after", "before"), default="after")
        parser.add_argument("--description", default="")
        parser.add_argument("--user", default=None, help="Username to record as the author")

    def handle(self, *args, revision, to, description, user, **options) -> None:
        result = run_service(
            services.revert_start,
            revision=revision_arg(revision),
            user=user_arg(user),
            side=to,
            description=description,
        )
        report(self, result)
