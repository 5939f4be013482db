"""Walk the audit hash chain; exit non-zero naming the first broken link."""

from django.core.management.base import BaseCommand, CommandError

from audit.chain import verify


class Command(BaseCommand):
    help = "Check that no audit event was changed, removed or inserted since it was written."

    def add_arguments(self, parser):
        parser.add_argument("--chunk-size", type=int, default=5000)

    def handle(self, *args, chunk_size: int, **options):
        checked, broken = verify(chunk_size=chunk_size)
        if broken is not None:
            raise CommandError(
                f"Audit chain broken at {broken} ({checked} event(s) before it are intact)."
            )
        self.stdout.write(self.style.SUCCESS(f"Audit chain intact: {checked} event(s) checked."))
