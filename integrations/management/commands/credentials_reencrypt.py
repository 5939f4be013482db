"""Re-encrypt stored connection credentials with the first key of ILM_SECRET_KEYS.

Rotation: put the new key first in ILM_SECRET_KEYS (keep the old one after it), run this,
then remove the old key.
"""

from django.core.management.base import BaseCommand

from integrations.services import credentials_reencrypt


class Command(BaseCommand):
    help = "Re-encrypt every connection's credentials with the first key of ILM_SECRET_KEYS."

    def handle(self, *args, **options) -> None:
        count = credentials_reencrypt()
        self.stdout.write(f"Re-encrypted the credentials of {count} connection(s).")
