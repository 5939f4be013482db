from django.http import HttpRequest

from .permissions import Action, can


def navigation(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    # The approvals waiting (nav_approval_count) come from revisions.context_processors.
    return {
        "nav_can_audit": can(user, Action.VIEW_GLOBAL_AUDIT),
        "nav_can_approve": can(user, Action.APPROVE),
        "nav_can_manage_users": can(user, Action.MANAGE_USERS),
    }
