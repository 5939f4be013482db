"""Write audit events up to a date to a JSON Lines file, for archiving.

Streamed: events are read in chunks and written line by line, so a large log does not
sit in memory. Each line carries the event's hash and the previous hash, so an archive
can be checked on its own (with the key: the hashes are HMACs under ILM_AUDIT_KEY). Nothing
is deleted (the log is append-only). Afterwards the chain's head is checkpointed.
"""

import datetime as dt
import sys

import orjson
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from audit.chain import CHAIN_FIELDS
from audit.checkpoints import checkpoint_record, checkpoint_take
from audit.models import Event
from integrations.filters import parse_moment

# The row id, then everything the chain covers and its links (key id, previous hash, hash).
FIELDS = ("id", *CHAIN_FIELDS)


def parse_until(text: str) -> dt.datetime:
    """A date means up to the end of that day (UTC); a date-time is taken as given."""
    try:
        return parse_moment(text, end_of_day=True)
    except (ValidationError, ValueError, OverflowError):
        raise CommandError(
            f"--until {text!r} is not a date; use YYYY-MM-DD or an ISO 8601 date-time."
        ) from None


def _default(value):
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)


class Command(BaseCommand):
    help = "Export audit events up to --until DATE as JSON Lines (to --output or stdout)."

    def add_arguments(self, parser):
        parser.add_argument("--until", required=True, help="YYYY-MM-DD (inclusive) or date-time")
        parser.add_argument("--output", help="File to write; standard output when left out")
        parser.add_argument("--chunk-size", type=int, default=2000)

    def handle(self, *args, until: str, output: str | None, chunk_size: int, **options):
        end = parse_until(until)
        rows = (
            Event.objects.filter(at__lte=end)
            .order_by("id")
            .values(*FIELDS)
            .iterator(chunk_size=chunk_size)
        )
        target = open(output, "wb") if output else sys.stdout.buffer  # noqa: SIM115
        count = 0
        try:
            for row in rows:
                target.write(orjson.dumps(row, default=_default, option=orjson.OPT_UTC_Z))
                target.write(b"\n")
                count += 1
        finally:
            if output:
                target.close()
            else:
                target.flush()
        if output:
            self.stderr.write(f"Wrote {count} event(s) up to {end.isoformat()} to {output}.")
        try:
            checkpoint_record(checkpoint_take())
        except OSError as exc:
            raise CommandError(f"The audit checkpoint could not be written: {exc}.") from None
