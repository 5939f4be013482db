"""Rebuild the hourly monitoring rollups from the raw runs:
`manage.py monitoring_rollup --rebuild [--since 2026-11-01T00:00]`."""

from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_date, parse_datetime

from runs.rollups import rollup_rebuild


def _moment(text: str) -> datetime:
    moment = parse_datetime(text)
    if moment is None:
        day = parse_date(text)
        if day is None:
            raise CommandError(f"--since {text!r} is not a date or an ISO 8601 time.")
        moment = datetime(day.year, day.month, day.day)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = (
        "Recompute the hourly rollups monitoring reads, from the runs still kept. With "
        "--since, only the hours from then on are replaced (runs pruned before then keep "
        "their rollups); without it every rollup is rebuilt."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--rebuild", action="store_true", help="Recompute the rollups.")
        parser.add_argument("--since", default=None, help="Date or ISO time (UTC if naive).")

    def handle(self, *args, rebuild: bool = False, since: str | None = None, **options) -> None:
        if not rebuild:
            raise CommandError("Say --rebuild to recompute the rollups from the raw runs.")
        start = _moment(since) if since else None
        count = rollup_rebuild(since=start)
        where = f" from {start:%Y-%m-%d %H}:00 UTC on" if start else ""
        self.stdout.write(f"Rebuilt {count} hourly rollup row(s){where}.")
