"""`manage.py create_user USERNAME --role ROLE [--password P]`: create a user or change a role."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from integrations.models import Role
from integrations.services import user_create_or_update


class Command(BaseCommand):
    help = "Create a user with a role, or change an existing user's role (and password)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--password", default=None, help="Without it, no password login.")
        parser.add_argument("--email", default="")

    def handle(self, *args, username, role, password, email, **options):
        try:
            user, created = user_create_or_update(
                username=username, role=role, password=password, email=email
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        verb = "Created" if created else "Updated"
        self.stdout.write(f"{verb} user {user.username} with role {user.role}.")
