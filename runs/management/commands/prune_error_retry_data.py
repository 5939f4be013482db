"""Drop the retry data of all but the most recent errors of each step (the daily beat
task does the same)."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from runs.errors import errors_prune_retry_data


class Command(BaseCommand):
    help = (
        "Keep retry data for the most recent ILM_ERROR_RETRY_DATA_PER_STEP errors of each "
        "step; older errors keep their summary and masked record."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--keep",
            type=int,
            default=None,
            help="Errors per step whose retry data stays (default: the setting).",
        )

    def handle(self, *args, keep=None, **options):
        if keep is not None and keep < 0:
            raise CommandError("--keep is 0 or more.")
        kept = settings.ILM_ERROR_RETRY_DATA_PER_STEP if keep is None else keep
        pruned = errors_prune_retry_data(keep=kept)
        self.stdout.write(f"Dropped the retry data of {pruned} error(s); kept {kept} per step.")
