"""Walk the audit hash chain; exit non-zero naming the first broken link.

With `--checkpoint FILE` the log is also held against the checkpoints in FILE (see
audit/checkpoints.py), which shows events removed from the end and an emptied table. An
intact log is checkpointed again (ILM_AUDIT_CHECKPOINT_FILE and the log line).
"""

from django.core.management.base import BaseCommand, CommandError

from audit.chain import check
from audit.checkpoints import CheckpointFileError, checkpoint_record, checkpoints_read


class Command(BaseCommand):
    help = (
        "Check that no audit event was changed, removed or inserted since it was written "
        "(with --checkpoint FILE: that none was removed from the end either)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--chunk-size", type=int, default=5000)
        parser.add_argument(
            "--checkpoint",
            metavar="FILE",
            help="JSON lines of checkpoints (ILM_AUDIT_CHECKPOINT_FILE) to hold the log against",
        )

    def handle(self, *args, chunk_size: int, checkpoint: str | None, **options):
        recorded = []
        if checkpoint:
            try:
                recorded = checkpoints_read(checkpoint)
            except CheckpointFileError as exc:
                raise CommandError(f"Checkpoint file {checkpoint}: {exc}.") from None
        verdict = check(chunk_size=chunk_size, checkpoints=recorded)
        if verdict.broken is not None:
            raise CommandError(
                f"Audit chain broken at {verdict.broken} "
                f"({verdict.checked} event(s) before it are intact)."
            )
        head = verdict.head
        tail = f" Last event {head.last_id}, hash {head.head}." if head.last_id else ""
        against = f" Matches {len(recorded)} checkpoint(s) in {checkpoint}." if recorded else ""
        try:
            checkpoint_record(head)
        except OSError as exc:
            raise CommandError(
                f"Audit chain intact ({verdict.checked} event(s)), but its checkpoint could "
                f"not be written: {exc}."
            ) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Audit chain intact: {verdict.checked} event(s) checked.{tail}{against}"
            )
        )
