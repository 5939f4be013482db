"""The one table of who may do what, and the checks every view, API call and task use.

A user's role gives a set of actions. Administrators and approvers see every
integration; developers and monitors see the integrations they hold a grant on. Actions
that change an integration also need a `manage` grant unless the role manages all.
Not visible → 404; visible but not allowed → 403.
"""

from __future__ import annotations

from enum import StrEnum

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404

from .models import AccessLevel, Integration, IntegrationAccess, Role, User


class Action(StrEnum):
    VIEW = "view"
    VIEW_AUDIT = "view_audit"
    EXPORT = "export"
    CREATE_INTEGRATION = "create_integration"
    EDIT = "edit"
    DELETE_INTEGRATION = "delete_integration"
    CHANGE_ENVIRONMENT = "change_environment"
    MANAGE_ACCESS = "manage_access"
    MANAGE_USERS = "manage_users"
    VIEW_GLOBAL_AUDIT = "view_global_audit"
    CLONE = "clone"
    CLONE_TO_PRODUCTION = "clone_to_production"
    IMPORT_PACKAGE = "import_package"
    SNAPSHOT = "snapshot"
    PULL = "pull"
    RESOLVE = "resolve"
    MERGE = "merge"
    REVERT = "revert"
    CANCEL = "cancel"
    REQUEST_APPROVAL = "request_approval"
    APPROVE = "approve"


_READ = {Action.VIEW, Action.VIEW_AUDIT, Action.EXPORT}
_CHANGE = {
    Action.EDIT,
    Action.SNAPSHOT,
    Action.CLONE,
    Action.PULL,
    Action.RESOLVE,
    Action.MERGE,
    Action.REVERT,
    Action.CANCEL,
    Action.REQUEST_APPROVAL,
    Action.CREATE_INTEGRATION,
    Action.IMPORT_PACKAGE,
}

ROLE_ACTIONS: dict[str, frozenset[Action]] = {
    Role.ADMINISTRATOR: frozenset(Action),
    Role.APPROVER: frozenset(_READ | _CHANGE | {Action.APPROVE, Action.CLONE_TO_PRODUCTION}),
    Role.DEVELOPER: frozenset(_READ | _CHANGE | {Action.DELETE_INTEGRATION}),
    Role.MONITOR: frozenset(_READ),
}

# Actions on one integration that a developer may take only with a `manage` grant.
NEEDS_MANAGE_GRANT: frozenset[Action] = frozenset(
    {
        Action.EDIT,
        Action.DELETE_INTEGRATION,
        Action.SNAPSHOT,
        Action.PULL,
        Action.RESOLVE,
        Action.MERGE,
        Action.REVERT,
        Action.CANCEL,
        Action.REQUEST_APPROVAL,
    }
)

# Roles that see, and hold `manage` on, every integration.
SEES_ALL: frozenset[str] = frozenset({Role.ADMINISTRATOR, Role.APPROVER})


def role_of(user: User) -> str | None:
    if not user or not user.is_authenticated or not user.is_active:
        return None
    return Role.ADMINISTRATOR if user.is_superuser else user.role


def visible_integrations(user: User) -> QuerySet[Integration]:
    role = role_of(user)
    if role is None:
        return Integration.objects.none()
    if role in SEES_ALL:
        return Integration.objects.all()
    return Integration.objects.filter(grants__user=user).distinct()


# How pages name an integration the user may not see (a clone's source, say): that it
# exists is no secret to someone who sees the clone, its name is.
HIDDEN_INTEGRATION_NAME = "a source you cannot see"


def shown_name(user: User, integration: Integration) -> str:
    """The integration's name if the user may see it, else HIDDEN_INTEGRATION_NAME."""
    return integration.name if can_see(user, integration) else HIDDEN_INTEGRATION_NAME


def can_see(user: User, integration: Integration) -> bool:
    role = role_of(user)
    if role is None:
        return False
    if role in SEES_ALL:
        return True
    return _grant_level(user, integration) is not None


def get_visible_integration(user: User, pk: int | str, *, for_update: bool = False) -> Integration:
    """The integration if the user may see it; 404 otherwise (its existence is not told)."""
    qs = visible_integrations(user)
    if for_update:
        qs = qs.select_for_update()
    try:
        return qs.get(pk=pk)
    except (Integration.DoesNotExist, ValueError, TypeError):
        raise Http404("No such integration.") from None


def _grant_level(user: User, integration: Integration) -> str | None:
    cache = getattr(user, "_ilm_grants", None)
    if cache is None:
        cache = dict(
            IntegrationAccess.objects.filter(user=user).values_list("integration_id", "level")
        )
        user._ilm_grants = cache
    return cache.get(integration.pk)


def can(user: User, action: Action, integration: Integration | None = None) -> bool:
    role = role_of(user)
    if role is None or action not in ROLE_ACTIONS.get(role, ()):
        return False
    if integration is None or role in SEES_ALL:
        return True
    level = _grant_level(user, integration)
    if level is None:
        return False
    if action in NEEDS_MANAGE_GRANT:
        return level == AccessLevel.MANAGE
    return True


def require(user: User, action: Action, integration: Integration | None = None) -> None:
    if not can(user, action, integration):
        what = action.value.replace("_", " ")
        raise PermissionDenied(f"Your role or access does not allow: {what}.")


def allowed_actions(user: User, integration: Integration | None = None) -> set[str]:
    """Names of the allowed actions, for templates: `{% if 'edit' in perms_ilm %}`."""
    return {a.value for a in Action if can(user, a, integration)}


def forget_grants(user: User) -> None:
    """Drop the per-request grant cache after grants change."""
    if hasattr(user, "_ilm_grants"):
        del user._ilm_grants
