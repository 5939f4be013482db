"""Reads of the domain that views in several apps share."""

from __future__ import annotations

from .models import Integration, User
from .permissions import visible_integrations


def namesake_warning(user: User, integration: Integration) -> str | None:
    """A warning when another integration this user can see has the same name (ignoring
    case and surrounding spaces) in the same environment: two tiles, two review pages and
    two audit filters that read alike. Only what the user may see is named, so the check
    tells nothing about integrations hidden from them."""
    same = (
        visible_integrations(user)
        .filter(name__iexact=integration.name.strip(), environment=integration.environment)
        .exclude(pk=integration.pk)
        .count()
    )
    if not same:
        return None
    others = "another integration" if same == 1 else f"{same} other integrations"
    return (
        f"{others[0].upper()}{others[1:]} in {integration.get_environment_display().lower()} "
        f"is also named “{integration.name}”. Give each a name people can tell apart."
    )
