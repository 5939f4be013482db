"""In-app notifications (the bell in the nav) and the email that goes with them.

`notify` is the one writer: alerts, error assignment and the retry offer after a merge
all call it. It writes one row per recipient in one INSERT and, after the transaction
commits, mails the recipients who have an address (a rolled-back alert sends nothing).
`unread_count` and `mark_read` serve the bell and the list page; they only ever touch
the asking user's own rows. `integration_managers` (declared in the permission table)
says who an integration's notifications go to.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import partial
from typing import Any, Literal
from uuid import uuid4

from django.conf import settings
from django.core.cache import cache
from django.core.mail import send_mass_mail
from django.db import transaction
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone

from integrations.models import Integration, User
from integrations.permissions import integration_managers

from .models import Notification, NotificationKind

__all__ = [
    "integration_managers",
    "mark_read",
    "notifications_of",
    "notify",
    "unread_count",
]

logger = logging.getLogger(__name__)

TITLE_MAX = Notification._meta.get_field("title").max_length
URL_MAX = Notification._meta.get_field("url").max_length


def _checked_url(url: str) -> str:
    """A notification leads somewhere on this site: a path, never another host."""
    if url and (not url.startswith("/") or url.startswith("//") or "\\" in url):
        raise ValueError(f"A notification's url must be a path on this site, not {url!r}.")
    if len(url) > URL_MAX:
        raise ValueError(f"A notification's url is at most {URL_MAX} characters.")
    return url


def notify(
    users: Iterable[User],
    *,
    kind: NotificationKind | str,
    title: str,
    body: str = "",
    url: str = "",
    integration: Integration | None = None,
    email: bool = True,
) -> list[Notification]:
    """Notify each (active, distinct) user: one row each, written in one query; when
    `email`, one mail each to those with an address, sent once the transaction commits.

    `url` is a path on this site (the notification's link); a title longer than the
    column is cut with an ellipsis, line breaks become spaces (it is a mail subject).
    """
    kind = NotificationKind(kind)
    url = _checked_url(url)
    title = " ".join(title.split())
    if len(title) > TITLE_MAX:
        title = title[: TITLE_MAX - 1] + "…"
    recipients: dict[int, User] = {}
    for user in users:
        if user.is_active and user.pk not in recipients:
            recipients[user.pk] = user
    if not recipients:
        return []
    created = Notification.objects.bulk_create(
        [
            Notification(
                recipient=user,
                kind=kind,
                title=title,
                body=body,
                url=url,
                integration=integration,
            )
            for user in recipients.values()
        ]
    )
    unread_changed(recipients)  # bulk_create sends no post_save
    if email:
        messages = [_mail(n) for n in created if n.recipient.email]
        if messages:
            # robust: a mail server that is down is logged, and does not turn the
            # caller's committed work into an error page.
            transaction.on_commit(partial(_send, messages), robust=True)
    return created


def _mail(notification: Notification) -> tuple[str, str, str, list[str]]:
    lines = [notification.body] if notification.body else []
    if notification.url:
        # The link goes through the notification, so following it marks it read.
        link = settings.ILM_SITE_URL.rstrip("/") + reverse(
            "notifications:open", args=[notification.pk]
        )
        lines.append(f"Open in ILM: {link}")
    if notification.integration_id:
        lines.append(f"Integration: {notification.integration.name}")
    lines.append(
        "All your notifications: "
        + settings.ILM_SITE_URL.rstrip("/")
        + reverse("notifications:list")
    )
    return (
        f"[ILM] {notification.title}",
        "\n\n".join(lines),
        settings.DEFAULT_FROM_EMAIL,
        [notification.recipient.email],
    )


def _send(messages: list[tuple[str, str, str, list[str]]]) -> None:
    sent = send_mass_mail(messages, fail_silently=False)
    logger.info("Sent %d notification mail(s)", sent)


def notifications_of(user: User, *, unread_only: bool = False) -> QuerySet[Notification]:
    """The user's own notifications, newest first."""
    qs = Notification.objects.filter(recipient=user).select_related("integration")
    if unread_only:
        qs = qs.filter(read_at__isnull=True)
    return qs.order_by("-created_at", "-pk")


# The bell's count is on every page: kept in the cache under a generation per user that
# every change of their notifications replaces (written here, or deleted by a cascade).
UNREAD_TIMEOUT_S = 3600


def _unread_generation(user_id: int) -> str:
    key = f"ilm:unread:generation:{user_id}"
    found = cache.get(key)
    if found is None:
        cache.add(key, uuid4().hex, None)
        found = cache.get(key)
    return found


def unread_changed(user_ids: Iterable[int]) -> None:
    """The users' notifications changed: their bell counts again. Now, so the writer's own
    transaction reads afresh, and after the commit, since a request that read the rows as
    they were may have kept them under the generation set now (a read takes the
    generation before the rows)."""
    ids = sorted(set(user_ids))

    def renew() -> None:
        cache.set_many({f"ilm:unread:generation:{pk}": uuid4().hex for pk in ids}, None)

    if ids:
        renew()
        transaction.on_commit(renew)


def notification_row_changed(sender: Any, instance: Notification, **kwargs: Any) -> None:
    """post_save / post_delete of a Notification (a cascade deletes them too)."""
    unread_changed([instance.recipient_id])


def unread_count(user: User) -> int:
    """How many of the user's notifications are unread (one indexed COUNT, then kept in
    the cache until they change)."""
    if not user or not user.is_authenticated:
        return 0
    key = f"ilm:unread:{user.pk}:{_unread_generation(user.pk)}"
    found = cache.get(key)
    if found is None:
        found = Notification.objects.filter(recipient=user, read_at__isnull=True).count()
        cache.set(key, found, UNREAD_TIMEOUT_S)
    return found


def mark_read(user: User, ids: Iterable[int] | Literal["all"]) -> int:
    """Mark the user's unread notifications read: those with these ids, or all of them.
    Others' ids are ignored. Returns how many changed."""
    qs = Notification.objects.filter(recipient=user, read_at__isnull=True)
    if ids != "all":
        qs = qs.filter(pk__in=list(ids))
    changed = qs.update(read_at=timezone.now())
    if changed:
        unread_changed([user.pk])
    return changed
