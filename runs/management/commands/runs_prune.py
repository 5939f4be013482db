"""Delete old flow runs (retention): `manage.py runs_prune [--days N]`."""

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from runs.services import runs_prune


class Command(BaseCommand):
    help = "Delete runs that ended more than --days days ago (default ILM_RUN_RETENTION_DAYS)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--days", type=int, default=None)

    def handle(self, *args, days: int | None = None, **options) -> None:
        days = settings.ILM_RUN_RETENTION_DAYS if days is None else days
        if days < 0:
            raise CommandError("--days cannot be negative.")
        count = runs_prune(older_than=timezone.now() - timedelta(days=days))
        self.stdout.write(f"Deleted {count} run(s) that ended more than {days} day(s) ago.")
