"""What the ilm_* management commands share: argument lookup, running a service, output."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from audit.context import Source, acting
from integrations.models import Integration, User
from revisions.errors import RevisionError
from revisions.models import Revision


def integration_arg(value: str) -> Integration:
    try:
        return Integration.objects.get(pk=int(value))
    except (ValueError, Integration.DoesNotExist):
        raise CommandError(f"No integration with id {value!r}.") from None


def revision_arg(value: str) -> Revision:
    try:
        return Revision.objects.select_related("integration").get(pk=int(value))
    except (ValueError, Revision.DoesNotExist):
        raise CommandError(f"No revision with id {value!r}.") from None


def user_arg(value: str | None) -> User | None:
    if not value:
        return None
    user = User.objects.filter(username=value).first()
    if user is None:
        raise CommandError(f"No user named {value!r}.")
    return user


def run_service(fn: Callable[..., Any], **kwargs: Any) -> Any:
    """Call a revision service as the given user; refusals become a clear CommandError."""
    with acting(kwargs.get("user"), Source.SYSTEM):
        try:
            return fn(**kwargs)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        except RevisionError as exc:
            raise CommandError(exc.message) from None


def report(command: BaseCommand, revision: Revision) -> None:
    revision.refresh_from_db()
    line = (
        f"Revision {revision.pk}: {revision.get_type_display().lower()} #{revision.number} "
        f"of integration {revision.integration_id}, {revision.get_status_display().lower()}"
    )
    if revision.error:
        line += f" — {revision.error}"
    command.stdout.write(line)
