"""What every page's navigation shows of the revision engine: the approvals waiting."""

from django.http import HttpRequest

from integrations.permissions import Action, can

from .selectors import approval_queue_count


def approvals(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not can(user, Action.APPROVE):
        return {}
    return {"nav_approval_count": approval_queue_count(user)}
