"""The notifications list behind the bell: open one (marks it read and follows its link),
mark one or all read. Thin over `runs.notifications`; a user only ever reaches their own
notifications (anyone else's id is a 404). Without JavaScript every action is a plain
link or form; with htmx the list and the bell are swapped in place.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from integrations.fragments import is_fragment

from . import notifications
from .models import Notification

PAGE_SIZE = 30


def _list_url(request: HttpRequest) -> str:
    """The list as the user left it (page and filter come back as hidden fields)."""
    query = {k: request.POST[k] for k in ("page", "show") if request.POST.get(k)}
    url = reverse("notifications:list")
    if query:
        url += "?" + urlencode(query)
    return url


def _list_context(request, *, unread_only: bool, page: str | None) -> dict:
    page_obj = Paginator(
        notifications.notifications_of(request.user, unread_only=unread_only), PAGE_SIZE
    ).get_page(page)
    return {
        "page_obj": page_obj,
        "items": page_obj.object_list,
        "show": "unread" if unread_only else "all",
    }


@login_required
@require_GET
def notification_list(request: HttpRequest) -> HttpResponse:
    unread_only = request.GET.get("show") == "unread"
    context = _list_context(request, unread_only=unread_only, page=request.GET.get("page"))
    if is_fragment(request, "notification-list"):
        response = render(request, "runs/notifications.html#notification-list", context)
    else:
        response = render(request, "runs/notifications.html", context)
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


@login_required
@require_GET
def notification_open(request: HttpRequest, pk: int) -> HttpResponse:
    """Follow a notification: it is read now, and the user lands where it leads."""
    notification = get_object_or_404(Notification, pk=pk, recipient=request.user)
    notifications.mark_read(request.user, [notification.pk])
    if notification.url and url_has_allowed_host_and_scheme(
        notification.url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(notification.url)
    return redirect("notifications:list")


@login_required
@require_POST
def notification_read(request: HttpRequest, pk: int) -> HttpResponse:
    notification = get_object_or_404(Notification, pk=pk, recipient=request.user)
    notifications.mark_read(request.user, [notification.pk])
    if is_fragment(request):
        notification.refresh_from_db(fields=["read_at"])
        return render(
            request,
            "runs/notifications.html#notification-item-swap",
            {"item": notification, "bell_oob": True},
        )
    return redirect(_list_url(request))


@login_required
@require_POST
def notification_read_all(request: HttpRequest) -> HttpResponse:
    notifications.mark_read(request.user, "all")
    if is_fragment(request):
        unread_only = request.POST.get("show") == "unread"
        context = _list_context(request, unread_only=unread_only, page=request.POST.get("page"))
        context["bell_oob"] = True
        return render(request, "runs/notifications.html#notification-list-swap", context)
    return redirect(_list_url(request))
