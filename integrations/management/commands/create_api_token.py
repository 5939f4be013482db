"""`manage.py create_api_token USERNAME [--name N]`: print a new API token for a user."""

from django.core.management.base import BaseCommand, CommandError

from integrations.models import User
from integrations.services import api_token_create


class Command(BaseCommand):
    help = "Create an API token for a user and print it (it is shown only this once)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="command line", help="Shown on the profile page.")

    def handle(self, *args, username, name, **options):
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(
                f"No user named {username!r}; create one with: manage.py create_user "
                f"{username} --role developer"
            )
        if not user.is_active:
            raise CommandError(f"User {username!r} is inactive; its tokens would be refused.")
        _, raw = api_token_create(user=user, name=name)
        # Only the token on stdout, so scripts can capture it: TOKEN=$(manage.py ...).
        self.stdout.write(raw)
