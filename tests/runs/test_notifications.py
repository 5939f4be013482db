"""In-app notifications: `notify` writes rows and mails, the bell counts, the list page
shows a user their own notifications only, and marking read works with and without htmx."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core import mail
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from integrations.models import AccessLevel, Role
from integrations.permissions import Action, can
from runs.models import Notification, NotificationKind
from runs.notifications import (
    integration_managers,
    mark_read,
    notify,
    unread_changed,
    unread_count,
)
from tests.factories import GrantFactory, IntegrationFactory, UserFactory

LIST = "/notifications/"


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _notify(users, **kw):
    kw.setdefault("kind", NotificationKind.ALERT_FIRED)
    kw.setdefault("title", "Orders → ERP: 3 failed runs in a row")
    return notify(users, **kw)


# notify --------------------------------------------------------------------------------


def test_notify_creates_one_row_per_user_in_one_query(
    db, developer, approver, monitor, django_assert_num_queries
):
    with django_assert_num_queries(1):
        created = _notify([developer, approver, monitor], email=False)
    assert len(created) == 3
    assert all(n.pk for n in created)
    assert set(Notification.objects.values_list("recipient__username", flat=True)) == {
        "dev",
        "april",
        "mo",
    }


def test_notify_mails_only_users_with_an_email_address(
    db, developer, approver, integration, django_capture_on_commit_callbacks
):
    developer.email = "dev@example.com"
    developer.save()
    with django_capture_on_commit_callbacks(execute=True):
        _notify(
            [developer, approver],
            body="The last 3 runs failed.",
            url=f"/integrations/{integration.pk}/",
            integration=integration,
        )
    assert Notification.objects.count() == 2
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["dev@example.com"]
    assert message.subject == "[ILM] Orders → ERP: 3 failed runs in a row"
    notification = Notification.objects.get(recipient=developer)
    assert "The last 3 runs failed." in message.body
    # The mail's link goes through the notification, so following it marks it read.
    assert f"/notifications/{notification.pk}/" in message.body
    assert integration.name in message.body


def test_notify_sends_mail_only_after_the_transaction_commits(db, developer):
    developer.email = "dev@example.com"
    developer.save()
    with pytest.raises(RuntimeError), transaction.atomic():
        _notify([developer])
        raise RuntimeError("the alert's transaction fails")
    assert Notification.objects.count() == 0
    assert mail.outbox == []


def test_notify_without_email_sends_no_mail(db, developer, django_capture_on_commit_callbacks):
    developer.email = "dev@example.com"
    developer.save()
    with django_capture_on_commit_callbacks(execute=True):
        _notify([developer], email=False)
    assert Notification.objects.count() == 1
    assert mail.outbox == []


def test_notify_skips_inactive_and_repeated_users(db, developer, approver):
    approver.is_active = False
    approver.save()
    created = _notify([developer, developer, approver], email=False)
    assert [n.recipient for n in created] == [developer]


def test_notify_nobody_writes_nothing(db, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert _notify([]) == []


@pytest.mark.parametrize("url", ["https://evil.example/", "//evil.example/x", "orders", "/\\x"])
def test_notify_refuses_a_link_off_the_site_and_writes_nothing(db, developer, url):
    with pytest.raises(ValueError, match="path on this site"):
        _notify([developer], url=url)
    assert Notification.objects.count() == 0


def test_notify_refuses_an_unknown_kind(db, developer):
    with pytest.raises(ValueError):
        _notify([developer], kind="weather_report")
    assert Notification.objects.count() == 0


def test_notify_keeps_a_long_title_within_the_column_on_one_line(db, developer):
    (n,) = _notify([developer], title="Line one\nline two " + "x" * 300, email=False)
    n.refresh_from_db()
    assert len(n.title) == 200 and n.title.endswith("…")
    assert "\n" not in n.title


# Who manages an integration --------------------------------------------------------------


def test_integration_managers_are_those_the_permission_table_lets_change_it(
    db, admin_user, approver, developer, monitor, integration
):
    other_dev = UserFactory(username="other", role=Role.DEVELOPER)
    watcher = UserFactory(username="watcher", role=Role.DEVELOPER)
    GrantFactory(integration=integration, user=watcher, level=AccessLevel.MONITOR)
    # A monitor with a manage grant still only reads.
    monitor_mgr = UserFactory(username="monmgr", role=Role.MONITOR)
    GrantFactory(integration=integration, user=monitor_mgr, level=AccessLevel.MANAGE)
    superuser = UserFactory(username="root", role=Role.MONITOR, is_superuser=True)
    gone = UserFactory(username="gone", role=Role.APPROVER, is_active=False)
    other = IntegrationFactory(name="Elsewhere")
    GrantFactory(integration=other, user=other_dev, level=AccessLevel.MANAGE)

    managers = set(integration_managers(integration))
    assert managers == {admin_user, approver, developer, superuser}
    everyone = [admin_user, approver, developer, monitor, other_dev, watcher, monitor_mgr]
    everyone += [superuser, gone]
    integration.protected = False
    assert managers == {u for u in everyone if can(u, Action.EDIT, integration)}


def test_integration_managers_is_one_query(db, integration, django_assert_num_queries):
    with django_assert_num_queries(1):
        list(integration_managers(integration))


# unread_count and mark_read ------------------------------------------------------------


def test_unread_count_counts_only_the_users_unread(db, developer, approver):
    mine = _notify([developer], email=False) + _notify([developer], email=False)
    _notify([approver], email=False)
    assert unread_count(developer) == 2
    assert mark_read(developer, [mine[0].pk]) == 1
    assert unread_count(developer) == 1
    assert unread_count(approver) == 1


def test_mark_read_ignores_other_users_ids(db, developer, approver):
    (theirs,) = _notify([approver], email=False)
    assert mark_read(developer, [theirs.pk]) == 0
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_mark_read_all_reads_only_the_users_own(db, developer, approver):
    _notify([developer, approver], email=False)
    _notify([developer], email=False)
    assert mark_read(developer, "all") == 2
    assert unread_count(developer) == 0
    assert unread_count(approver) == 1
    assert mark_read(developer, "all") == 0


# The bell ------------------------------------------------------------------------------


def test_the_bell_shows_the_unread_count_with_an_accessible_name(db, developer):
    _notify([developer], email=False)
    _notify([developer], email=False)
    html = _client(developer).get("/").content.decode()
    assert 'aria-label="Notifications, 2 unread"' in html
    assert 'class="count-badge bell-count"' in html


def test_the_bell_without_unread_says_so(db, developer):
    html = _client(developer).get("/").content.decode()
    assert 'aria-label="Notifications, none unread"' in html
    assert "bell-count" not in html


def test_the_bell_caps_its_badge_at_99_plus(db, developer):
    for _ in range(3):
        _notify([developer], email=False)
    Notification.objects.bulk_create(
        [
            Notification(recipient=developer, kind=NotificationKind.ALERT_FIRED, title="x")
            for _ in range(100)
        ]
    )
    html = _client(developer).get("/").content.decode()
    assert "Notifications, 103 unread" in html
    assert ">99+<" in html


def test_a_page_with_the_bell_costs_the_same_queries_however_many_notifications(
    db, developer, integration, django_assert_max_num_queries
):
    client = _client(developer)
    client.get("/")  # warm up per-process caches
    unread_changed([developer.pk])  # both measured pages count the unread afresh
    with CaptureQueriesContext(connection) as before:
        client.get("/")
    Notification.objects.bulk_create(
        [
            Notification(
                recipient=developer,
                kind=NotificationKind.ALERT_FIRED,
                title=f"Alert {i}",
                integration=integration,
            )
            for i in range(50)
        ]
    )
    # Written behind notify()'s back (bulk_create sends no signal): say so, as notify does.
    unread_changed([developer.pk])
    with django_assert_max_num_queries(len(before)):
        response = client.get("/")
    assert "Notifications, 50 unread" in response.content.decode()
    bell_queries = [q for q in before.captured_queries if "runs_notification" in q["sql"]]
    assert len(bell_queries) == 1


def test_the_bell_counts_once_and_then_from_the_cache_until_the_notifications_change(db, developer):
    client = _client(developer)

    def bell_reads() -> tuple[int, str]:
        with CaptureQueriesContext(connection) as queries:
            html = client.get("/").content.decode()
        reads = sum(1 for q in queries if "runs_notification" in q["sql"])
        return reads, html

    assert bell_reads()[0] == 1
    assert bell_reads()[0] == 0
    (one,) = _notify([developer], email=False)
    reads, html = bell_reads()
    assert reads == 1 and "Notifications, 1 unread" in html
    mark_read(developer, [one.pk])
    assert "Notifications, none unread" in bell_reads()[1]
    _notify([developer], email=False)
    assert "Notifications, 1 unread" in bell_reads()[1]
    Notification.objects.filter(recipient=developer).delete()  # as a cascade would
    assert "Notifications, none unread" in bell_reads()[1]


def test_a_notification_saved_directly_counts_at_once(db, developer, integration):
    assert unread_count(developer) == 0
    Notification.objects.create(
        recipient=developer, kind=NotificationKind.ALERT_FIRED, title="x", integration=integration
    )
    assert unread_count(developer) == 1
    integration.delete()  # its notifications go with it
    assert unread_count(developer) == 0


def test_the_notification_list_page_is_flat_in_queries(
    db, developer, integration, django_assert_max_num_queries
):
    client = _client(developer)
    _notify([developer], integration=integration, email=False)
    with CaptureQueriesContext(connection) as few:
        client.get(LIST)
    for i in range(25):
        _notify([developer], title=f"Alert {i}", integration=integration, email=False)
    with django_assert_max_num_queries(len(few)):
        client.get(LIST)


# The list page -------------------------------------------------------------------------


@pytest.mark.parametrize("role", [r.value for r in Role])
def test_the_list_renders_for_every_role(db, role):
    user = UserFactory(username=f"u-{role}", role=role)
    _notify([user], body="Success rate 40 % over 10 runs.", url="/", email=False)
    response = _client(user).get(LIST)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Orders → ERP: 3 failed runs in a row" in html
    assert "Success rate 40 % over 10 runs." in html
    assert "Mark all read" in html


def test_the_list_is_newest_first_with_unread_marked(db, developer):
    (old,) = _notify([developer], title="Older alert", email=False)
    (new,) = _notify([developer], title="Newer alert", email=False)
    mark_read(developer, [old.pk])
    html = _client(developer).get(LIST).content.decode()
    assert html.index("Newer alert") < html.index("Older alert")
    assert f'id="notification-{new.pk}" class="notification unread' in html
    assert f'id="notification-{old.pk}" class="notification kind' in html


def test_the_list_shows_only_the_users_own(db, developer, approver):
    _notify([approver], title="For April only", email=False)
    html = _client(developer).get(LIST).content.decode()
    assert "For April only" not in html
    assert "No notifications yet" in html


def test_the_unread_filter_leaves_out_read_ones(db, developer):
    (read,) = _notify([developer], title="Already seen", email=False)
    _notify([developer], title="Still new", email=False)
    mark_read(developer, [read.pk])
    html = _client(developer).get(LIST + "?show=unread").content.decode()
    assert "Still new" in html and "Already seen" not in html


def test_the_list_needs_a_signed_in_user(db, developer):
    _notify([developer], email=False)
    response = Client().get(LIST)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_following_a_notification_marks_it_read_and_leads_to_its_url(db, developer, integration):
    url = f"/integrations/{integration.pk}/"
    (n,) = _notify([developer], url=url, email=False)
    response = _client(developer).get(f"/notifications/{n.pk}/")
    assert response.status_code == 302
    assert response["Location"] == url
    n.refresh_from_db()
    assert n.read_at is not None


def test_following_a_notification_without_a_url_leads_back_to_the_list(db, developer):
    (n,) = _notify([developer], email=False)
    response = _client(developer).get(f"/notifications/{n.pk}/")
    assert response["Location"] == LIST


def test_another_users_notification_is_a_404_and_stays_unread(db, developer, approver):
    (theirs,) = _notify([approver], url="/", email=False)
    client = _client(developer)
    assert client.get(f"/notifications/{theirs.pk}/").status_code == 404
    assert client.post(f"/notifications/{theirs.pk}/read/").status_code == 404
    assert client.get("/notifications/999999/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_mark_one_read_without_js_returns_to_the_list(db, developer):
    (n,) = _notify([developer], email=False)
    response = _client(developer).post(
        f"/notifications/{n.pk}/read/", {"show": "unread", "page": "2"}
    )
    assert response.status_code == 302
    assert response["Location"] == LIST + "?page=2&show=unread"
    n.refresh_from_db()
    assert n.read_at is not None


def test_mark_one_read_with_htmx_swaps_the_item_and_the_bell(db, developer):
    (n,) = _notify([developer], title="Swap me", email=False)
    _notify([developer], email=False)
    response = _client(developer).post(
        f"/notifications/{n.pk}/read/",
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET=f"notification-{n.pk}",
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert f'id="notification-{n.pk}" class="notification kind' in html  # no longer unread
    assert "<html" not in html
    assert 'hx-swap-oob="true"' in html
    assert "Notifications, 1 unread" in html


def test_mark_all_read_without_js(db, developer, approver):
    _notify([developer, approver], email=False)
    _notify([developer], email=False)
    response = _client(developer).post("/notifications/read-all/")
    assert response.status_code == 302
    assert response["Location"] == LIST
    assert unread_count(developer) == 0
    assert unread_count(approver) == 1


def test_mark_all_read_with_htmx_swaps_the_list_and_the_bell(db, developer):
    _notify([developer], title="One", email=False)
    response = _client(developer).post(
        "/notifications/read-all/", {"show": "all"}, HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert 'id="notification-list"' in html
    assert "Notifications, none unread" in html
    assert "<html" not in html
    assert "Mark read</button>" not in html


def test_marking_read_needs_post(db, developer):
    (n,) = _notify([developer], email=False)
    client = _client(developer)
    assert client.get(f"/notifications/{n.pk}/read/").status_code == 405
    assert client.get("/notifications/read-all/").status_code == 405
    assert unread_count(developer) == 1


def test_the_list_fragment_for_htmx_is_the_region_only(db, developer):
    _notify([developer], title="Fragment", email=False)
    response = _client(developer).get(
        LIST + "?show=unread", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="notification-list"
    )
    html = response.content.decode()
    assert "Fragment" in html and "<html" not in html
    assert "HX-Request" in response["Vary"]


# Mail settings ---------------------------------------------------------------------------


def _settings_of(module: str, **env: str) -> str:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("EMAIL_URL", "ILM_SITE_URL", "DJANGO_SETTINGS_MODULE")
    }
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from django.conf import settings; "
            "print(settings.MAILERS['default'], settings.ILM_SITE_URL)",
        ],
        env={
            **base,
            "DJANGO_SETTINGS_MODULE": module,
            "SECRET_KEY": "x" * 50,
            "ALLOWED_HOSTS": "ilm.example.com,.example.org",
            "ILM_AUDIT_KEY": "test-only-audit-key-0123456789abcdefghijklmnop",
            "ILM_SECRET_KEYS": "ZGV2LW9ubHktaWxtLWtleS1ub3QtZm9yLXByb2R1Y3Q=",
            **env,
        },
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_make_run_prints_mails_on_the_console():
    out = _settings_of("ilm_site.settings.local")
    assert "console.EmailBackend" in out


def test_production_mails_through_the_server_email_url_names_with_links_to_its_host():
    out = _settings_of(
        "ilm_site.settings.production", EMAIL_URL="smtp+tls://ilm:s3cret@mail.example.com:587"
    )
    assert "smtp.EmailBackend" in out
    assert "'host': 'mail.example.com', 'port': 587" in out
    assert "'use_tls': True" in out
    assert out.strip().endswith("https://ilm.example.com")
