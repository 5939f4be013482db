from django.http import HttpRequest

from .notifications import unread_count


def notification_bell(request: HttpRequest) -> dict:
    """The bell's unread count: counted at most once per request, and only when a
    template shows it (htmx fragments without the nav cost nothing)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}

    def count() -> int:
        if not hasattr(request, "_ilm_unread_notifications"):
            request._ilm_unread_notifications = unread_count(user)
        return request._ilm_unread_notifications

    return {"nav_unread_notifications": count}
