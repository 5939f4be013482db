"""The one table of who may do what, and the checks every view, API call and task use.

A user's role gives a set of actions. Administrators and approvers see every
integration; developers and monitors see the integrations they hold a grant on. Actions
that change an integration also need a `manage` grant unless the role manages all.
Not visible → 404; visible but not allowed → 403.

Change control (docs/api.md, "Protection of production"): on a protected integration the
direct configuration writes (`CONFIGURATION_WRITES`) are refused for every role, with
`PROTECTED_DETAIL`; changes land through approved pulls, which this table does not block.
Lookup-cache entries are data, not configuration: `EDIT_CACHE_ENTRIES` stays allowed.
Deleting a production (or protected) integration and turning protection off are for
administrators only.
"""

from __future__ import annotations

from enum import StrEnum

from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404

from .models import AccessLevel, Environment, Integration, IntegrationAccess, Role, User


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
    # Start or cancel a live flow run.
    RUN = "run"
    # A test run sends nothing and changes no configuration: it needs the access an edit
    # needs, but change control does not refuse it (production is tested, not changed).
    TEST_RUN = "test_run"
    EDIT_CACHE_ENTRIES = "edit_cache_entries"
    UNPROTECT = "unprotect"
    # Scrape the Prometheus /metrics of the integrations one may see (runs/metrics.py).
    VIEW_METRICS = "view_metrics"
    # Error management: seeing errors is `view`; resolving and assigning them changes no
    # configuration (allowed on protected integrations) but needs a `manage` grant.
    MANAGE_ERRORS = "manage_errors"
    # Retrying errors sends their records live: a `manage` grant, and on a protected
    # production integration also what a live run needs (`run`, see ALSO_NEEDS).
    RETRY_ERRORS = "retry_errors"
    # Alert rules (runs/alerts.py): create, edit, delete and mute them. Changes no
    # configuration (allowed on protected integrations) but needs a `manage` grant; who
    # may see the integration sees its rules read-only.
    MANAGE_ALERTS = "manage_alerts"


PROTECTED_DETAIL = "Production is protected: change a sandbox clone and pull."
ADMIN_DELETE_DETAIL = "Only an administrator may delete a production or protected integration."


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
    Action.RUN,
    Action.TEST_RUN,
    Action.EDIT_CACHE_ENTRIES,
    Action.MANAGE_ERRORS,
    Action.RETRY_ERRORS,
    Action.MANAGE_ALERTS,
}

ROLE_ACTIONS: dict[str, frozenset[Action]] = {
    Role.ADMINISTRATOR: frozenset(Action),
    Role.APPROVER: frozenset(_READ | _CHANGE | {Action.APPROVE, Action.CLONE_TO_PRODUCTION}),
    Role.DEVELOPER: frozenset(_READ | _CHANGE | {Action.DELETE_INTEGRATION}),
    Role.MONITOR: frozenset(_READ | {Action.VIEW_METRICS}),
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
        Action.RUN,
        Action.TEST_RUN,
        Action.EDIT_CACHE_ENTRIES,
        Action.MANAGE_ERRORS,
        Action.RETRY_ERRORS,
        Action.MANAGE_ALERTS,
    }
)

# Actions that on a protected production integration also need another action: retrying
# errors there sends live records, as a live run does.
ALSO_NEEDS_ON_PROTECTED_PRODUCTION: dict[Action, Action] = {
    Action.RETRY_ERRORS: Action.RUN,
}

# Actions that on a production integration only these roles may take by hand (a live run
# of production sends real data; schedules run as the system and need no one's role).
PRODUCTION_ONLY: dict[Action, frozenset[str]] = {
    Action.RUN: frozenset({Role.ADMINISTRATOR, Role.APPROVER}),
}

# Direct writes to an integration's configuration (its own fields, its resources, the
# ignore-fields, a package imported onto it): refused on a protected integration for
# every role, administrators included (they turn protection off first).
CONFIGURATION_WRITES: frozenset[Action] = frozenset(
    {Action.EDIT, Action.CHANGE_ENVIRONMENT, Action.IMPORT_PACKAGE}
)

# Roles that see, and hold `manage` on, every integration.
SEES_ALL: frozenset[str] = frozenset({Role.ADMINISTRATOR, Role.APPROVER})


# Roles that may change an integration they hold `manage` on (a monitor with a `manage`
# grant still only reads): read from the table, not listed again.
MANAGING_ROLES: frozenset[str] = frozenset(
    role for role, actions in ROLE_ACTIONS.items() if actions & NEEDS_MANAGE_GRANT
)


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


def _role_allows(user: User, action: Action, integration: Integration | None) -> bool:
    role = role_of(user)
    if role is None or action not in ROLE_ACTIONS.get(role, ()):
        return False
    if (
        integration is not None
        and action in PRODUCTION_ONLY
        and integration.is_production
        and role not in PRODUCTION_ONLY[action]
    ):
        return False
    also = ALSO_NEEDS_ON_PROTECTED_PRODUCTION.get(action)
    if (
        also is not None
        and integration is not None
        and integration.protected
        and integration.is_production
        and not _role_allows(user, also, integration)
    ):
        return False
    if integration is None or role in SEES_ALL:
        return True
    level = _grant_level(user, integration)
    if level is None:
        return False
    if action in NEEDS_MANAGE_GRANT:
        return level == AccessLevel.MANAGE
    return True


def is_protected_from(action: Action, integration: Integration | None) -> bool:
    """Does change control refuse `action` on this integration, whoever asks?"""
    return integration is not None and integration.protected and action in CONFIGURATION_WRITES


def _admin_only(user: User, action: Action, integration: Integration | None) -> bool:
    """Deleting production, or a protected integration, needs an administrator."""
    return (
        action == Action.DELETE_INTEGRATION
        and integration is not None
        and (integration.is_production or integration.protected)
        and role_of(user) != Role.ADMINISTRATOR
    )


def can(user: User, action: Action, integration: Integration | None = None) -> bool:
    return (
        _role_allows(user, action, integration)
        and not is_protected_from(action, integration)
        and not _admin_only(user, action, integration)
    )


def require(user: User, action: Action, integration: Integration | None = None) -> None:
    if can(user, action, integration):
        return
    if _role_allows(user, action, integration):
        if is_protected_from(action, integration):
            raise PermissionDenied(PROTECTED_DETAIL)
        raise PermissionDenied(ADMIN_DELETE_DETAIL)
    what = action.value.replace("_", " ")
    raise PermissionDenied(f"Your role or access does not allow: {what}.")


def require_environment(user: User, environment: str | None) -> None:
    """Production integrations are made only by the roles that may clone into production."""
    if environment == Environment.PRODUCTION and not can(user, Action.CLONE_TO_PRODUCTION):
        raise PermissionDenied(
            "Your role may not create production integrations; create a sandbox instead."
        )


def allowed_actions(user: User, integration: Integration | None = None) -> set[str]:
    """Names of the allowed actions, for templates: `{% if 'edit' in perms_ilm %}`."""
    return {a.value for a in Action if can(user, a, integration)}


def integration_managers(integration: Integration) -> QuerySet[User]:
    """The active users who manage the integration: administrators (and superusers) and
    approvers, who hold `manage` on every integration, and users of a managing role with
    a `manage` grant on this one. Who gets its alerts and emails."""
    sees_all = Q(is_superuser=True) | Q(role__in=SEES_ALL)
    granted = Q(
        role__in=MANAGING_ROLES,
        grants__integration=integration,
        grants__level=AccessLevel.MANAGE,
    )
    return User.objects.filter(sees_all | granted, is_active=True).distinct().order_by("pk")


def forget_grants(user: User) -> None:
    """Drop the per-request grant cache after grants change."""
    if hasattr(user, "_ilm_grants"):
        del user._ilm_grants
