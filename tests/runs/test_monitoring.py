"""Monitoring: the page, the API, /metrics and the CSV exports read the rollups, scoped to
what each user may see, with query counts that do not grow with runs."""

from __future__ import annotations

import csv
import io
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import reduce

import pytest
from django.urls import reverse
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from integrations.models import AccessLevel, Integration
from runs import health, histogram, monitoring
from runs.models import Run, RunStep
from runs.rollups import hour_of
from runs.templatetags.runs_ui import time_tag
from tests.factories import (
    ConnectionFactory,
    FlowFactory,
    GrantFactory,
    IntegrationFactory,
    UserFactory,
)
from tests.runs.monitoring_data import make_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def teams(developer, monitor):
    """Two teams' integrations: the developer and the monitor see only 'ours'."""
    ours = IntegrationFactory(name="Ours")
    theirs = IntegrationFactory(name="Theirs")
    GrantFactory(integration=ours, user=developer, level=AccessLevel.MANAGE)
    GrantFactory(integration=ours, user=monitor, level=AccessLevel.MONITOR)
    now = timezone.now()
    out = {}
    for integration, name in ((ours, "Ours flow"), (theirs, "Secret flow")):
        flow = FlowFactory(integration=integration, name=name, schedule="*/15 * * * *")
        conn = ConnectionFactory(integration=integration, name=f"{name} API")
        step = uuid.uuid4()
        for i in range(4):
            make_run(
                integration,
                flow.lineage_id,
                flow_name=name,
                created_at=now - timedelta(hours=i * 3, minutes=5),
                status="failed" if i == 0 else "succeeded",
                records_in=10,
                records_out=9,
                retries=1,
                steps=[(conn.lineage_id, [0] * 10 + [3] + [0] * 14)],
                errors=[("http", 422, f"{name} rejected the order")],
                error_step=step,
            )
        out[name] = (integration, flow)
    return out


def test_the_page_shows_each_flow_with_its_light_rates_and_payload_issues(client, developer, teams):
    client.force_login(developer)
    response = client.get(reverse("runs:monitoring"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Ours flow" in html and "Secret flow" not in html
    assert "Ours flow rejected the order" in html and "Secret flow rejected" not in html
    rows = response.context["rows"]
    assert len(rows) == 1
    row = rows[0]
    assert row["runs"] == 4 and row["failed"] == 1 and row["success_rate_24h"] == 75.0
    assert row["health"].status == health.Status.FAILING  # the last run failed
    assert row["next_run_at"] is not None
    assert health.RULE_OF[health.Status.FAILING] in html  # the rule is written on the page
    group = response.context["groups"][0]
    assert group["count"] == 4
    assert reverse("runs:detail", args=[group["example_run"]]) in html
    assert 'id="monitoring-data"' in html and "uPlot" in html


@pytest.mark.parametrize("user", ["admin_user", "approver", "developer", "monitor"])
def test_every_role_has_monitoring_in_the_nav(client, user, request):
    client.force_login(request.getfixturevalue(user))
    html = client.get(reverse("integrations:home")).content.decode()
    assert reverse("runs:monitoring") in html


def test_a_bad_custom_range_says_why_and_shows_the_last_24_h(client, developer, teams):
    client.force_login(developer)
    response = client.get(
        reverse("runs:monitoring"),
        {"range": "custom", "since": "2026-11-05", "until": "2026-11-01"},
    )
    assert response.status_code == 200
    assert "The From date is after the To date." in response.content.decode()
    assert response.context["range_key"] == "24h"


def test_a_custom_range_with_no_runs_shows_no_runs(client, developer, teams):
    client.force_login(developer)
    response = client.get(
        reverse("runs:monitoring"),
        {"range": "custom", "since": "2020-01-01", "until": "2020-01-02"},
    )
    assert response.context["rows"][0]["runs"] == 0
    assert "No live runs in this range." in response.content.decode()


@pytest.mark.parametrize("range_key", ["24h", "7d", "30d"])
def test_the_page_costs_the_same_queries_for_more_runs(
    client, developer, teams, django_assert_max_num_queries, range_key
):
    client.force_login(developer)
    integration, flow = teams["Ours flow"]
    with django_assert_max_num_queries(30) as before:
        client.get(reverse("runs:monitoring"), {"range": range_key})
    n = len(before.captured_queries)
    now = timezone.now()
    for i in range(40):
        make_run(
            integration,
            flow.lineage_id,
            created_at=now - timedelta(hours=i * 17),
            status="partial",
            errors=[("mapping", None, f"sku {i % 3} unknown")],
        )
    with django_assert_max_num_queries(n):
        client.get(reverse("runs:monitoring"), {"range": range_key})


def test_every_range_adds_up_to_what_the_raw_runs_in_it_say(developer, teams):
    """Whole days come from the day rows, the ends from hour rows: the sums are still
    those of the runs created from the range's first hour on."""
    integration, flow = teams["Ours flow"]
    now = timezone.now()
    step = uuid.uuid4()
    for i in range(60):
        make_run(
            integration,
            flow.lineage_id,
            created_at=now - timedelta(hours=i * 13, minutes=7),
            status="failed" if i % 4 == 0 else "succeeded",
            records_in=i,
            errors=[("http", 500, f"down {i % 2}")] if i % 4 == 0 else [],
            error_step=step,
        )
    ranges = [
        (now - timedelta(hours=24), now),
        (now - timedelta(days=7), now),
        (now - timedelta(days=30), now),
        (now - timedelta(days=20, hours=5), now - timedelta(days=3, hours=2)),
        (hour_of(now) - timedelta(days=9), hour_of(now) - timedelta(days=2)),
    ]
    for since, until in ranges:
        scope = monitoring.scope_for(developer, since=since, until=until)
        runs = Run.objects.filter(
            integration=integration, created_at__gte=hour_of(since), created_at__lt=until
        )
        [row] = [r for r in monitoring.flow_rows(scope, now=now) if r["flow"] == flow]
        assert row["runs"] == runs.count()
        assert row["records_in"] == sum(r.records_in for r in runs)
        assert row["failed"] == runs.filter(status="failed").count()
        series = monitoring.series(scope)
        assert sum(series["runs"]) == runs.count()
        groups = monitoring.error_groups(scope)
        assert sum(g["count"] for g in groups) == runs.filter(errors__gt=0).count()
        for g in groups:
            mine = runs.filter(error_records__message=g["message"])
            assert g["count"] == mine.count()
            assert g["example_run"] == max(r.pk for r in mine)


def test_the_api_answers_per_flow_the_user_can_see(dev_api, teams):
    response = dev_api.get("/api/v1/monitoring/flows")
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["flow_name"] for r in results] == ["Ours flow"]
    r = results[0]
    assert (r["runs"], r["succeeded"], r["failed"], r["success_rate"]) == (4, 3, 1, 75.0)
    assert r["records"] == 40 and r["errors"] == 4 and r["retries"] == 4
    assert r["errors_by_kind"]["http"] == 4 and r["status"] == "failing"
    assert 80 <= r["p50_ms"] <= 130 and r["last_run"]
    assert response.json()["next"] is None


def test_the_api_range_narrows_and_a_bad_range_is_a_400(dev_api, teams):
    since = (timezone.now() - timedelta(hours=4)).isoformat()
    r = dev_api.get("/api/v1/monitoring/flows", {"since": since}).json()["results"][0]
    assert r["runs"] == 2
    bad = dev_api.get("/api/v1/monitoring/flows", {"since": "2026-11-02", "until": "2026-11-01"})
    assert bad.status_code == 400 and "since" in bad.json()["errors"]


def test_metrics_parse_and_count_only_what_the_monitor_may_see(monitor_api, teams):
    response = monitor_api.get("/api/v1/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.content.decode())}
    runs = {
        (s.labels["flow"], s.labels["status"]): s.value
        for s in families["ilm_flow_runs"].samples
        if s.name == "ilm_flow_runs_total"
    }
    assert runs[("Ours flow", "succeeded")] == 3 and runs[("Ours flow", "failed")] == 1
    assert not any(flow == "Secret flow" for flow, _ in runs)
    latency = families["ilm_connection_response_seconds"]
    total = [s for s in latency.samples if s.labels.get("le") == "+Inf"]
    assert [s.value for s in total] == [12.0]  # four runs, three calls each
    assert "Secret" not in response.content.decode()


def test_metrics_need_an_administrator_or_monitor_token(dev_api, admin_api, client, teams):
    assert dev_api.get("/api/v1/metrics").status_code == 403
    assert client.get("/api/v1/metrics").status_code in (401, 403)
    body = admin_api.get("/api/v1/metrics").content.decode()
    assert "Secret flow" in body and "Ours flow" in body


def test_the_csv_exports_follow_the_filters_and_the_users_scope(
    client, developer, admin_user, teams
):
    client.force_login(developer)
    rows = list(
        csv.reader(
            io.StringIO(
                b"".join(
                    client.get(reverse("runs:monitoring_flows_csv")).streaming_content
                ).decode()
            )
        )
    )
    assert rows[0][:4] == ["integration", "flow", "flow_lineage_id", "status"]
    assert [r[1] for r in rows[1:]] == ["Ours flow"] and rows[1][3] == "failing"
    errors = list(
        csv.reader(
            io.StringIO(
                b"".join(
                    client.get(reverse("runs:monitoring_errors_csv")).streaming_content
                ).decode()
            )
        )
    )
    assert errors[1][4] == "Ours flow rejected the order" and errors[1][5] == "4"
    client.force_login(admin_user)
    _, theirs = teams["Secret flow"]
    body = b"".join(
        client.get(
            reverse("runs:monitoring_flows_csv"), {"flow": str(theirs.lineage_id)}
        ).streaming_content
    ).decode()
    assert "Secret flow" in body and "Ours flow" not in body


def test_a_user_without_grants_sees_no_flow_anywhere(client, teams):
    loner = UserFactory(username="loner", role="developer")
    client.force_login(loner)
    response = client.get(reverse("runs:monitoring"))
    assert response.context["rows"] == [] and response.context["groups"] == []
    assert not response.context["series"]["any_runs"]


def test_the_health_rules():
    assert health.flow_health(succeeded=0, partial=0, failed=0, last_status=None).status == "idle"
    assert (
        health.flow_health(succeeded=99, partial=0, failed=1, last_status="succeeded").status
        == "healthy"
    )
    assert (
        health.flow_health(succeeded=95, partial=0, failed=5, last_status="succeeded").status
        == "degraded"
    )
    assert (
        health.flow_health(succeeded=7, partial=0, failed=3, last_status="succeeded").status
        == "failing"
    )
    assert (
        health.flow_health(succeeded=99, partial=0, failed=1, last_status="failed").status
        == "failing"
    )
    assert (
        health.flow_health(succeeded=99, partial=1, failed=0, last_status="partial").status
        == "degraded"
    )


def test_the_integration_page_has_a_health_panel_and_its_tile_a_sparkline(client, developer, teams):
    integration, _ = teams["Ours flow"]
    client.force_login(developer)
    page = client.get(reverse("integrations:detail", args=[integration.pk])).content.decode()
    assert 'data-testid="health-panel"' in page and "Ours flow" in page
    assert "The last run failed" in page
    home = client.get(reverse("integrations:home")).content.decode()
    assert 'data-testid="tile-sparkline"' in home
    # One bar per UTC day: the fixture's four runs (3 h apart) may straddle midnight.
    per_day = Counter(
        at.astimezone(UTC).date()
        for at in Run.objects.filter(integration=integration).values_list("created_at", flat=True)
    )
    for day, n in per_day.items():
        assert f"{day:%b %d}: {n} run(s)" in home
    assert sum(per_day.values()) == 4


def _bucketed(ms: int, n: int) -> list[int]:
    """A histogram of `n` calls that took about `ms` (the bucket holding it)."""
    hist = histogram.empty()
    for _ in range(n):
        histogram.observe(hist, ms)
    return hist


@pytest.fixture
def busy(teams):
    """Our flow calls four more connections, each a different number of times and speed,
    on two days of the last week."""
    integration, flow = teams["Ours flow"]
    conns = {
        name: ConnectionFactory(integration=integration, name=name)
        for name in ("Shop", "ERP", "Tax", "Mail")
    }
    calls = {"Shop": (40, 30), "ERP": (20, 300), "Tax": (6, 900), "Mail": (4, 5000)}
    now = timezone.now()
    for day in (1, 3):
        make_run(
            integration,
            flow.lineage_id,
            flow_name="Ours flow",
            created_at=now - timedelta(days=day),
            steps=[
                (conns[name].lineage_id, _bucketed(ms + day, n)) for name, (n, ms) in calls.items()
            ],
        )
    return calls


def test_the_latency_chart_draws_the_most_called_connections_and_the_others_as_one_line(
    developer, busy, monkeypatch
):
    monkeypatch.setattr(monitoring, "CHART_CONNECTIONS", 2)
    now = timezone.now()
    scope = monitoring.scope_for(developer, since=now - timedelta(days=30), until=now)
    data = monitoring.series(scope)
    # The table: every connection the developer may see, most called first.
    table = data["connection_table"]
    assert [c["name"] for c in table] == ["Shop", "ERP", "Ours flow API", "Tax", "Mail"]
    assert [c["calls"] for c in table] == [80, 40, 12, 12, 8]
    shop = table[0]
    assert (shop["p50_ms"], shop["p95_ms"]) == monitoring._percentiles(
        histogram.merge(_bucketed(31, 40), _bucketed(33, 40))
    )
    # The chart: the two most called, then one line for the three others merged.
    lines = data["connections"]
    assert [c["name"] for c in lines] == ["Shop", "ERP", "3 other connections"]
    assert lines[-1]["others"] and lines[-1]["calls"] == 12 + 12 + 8
    # Each day's "others" point: the percentiles of the other connections' calls that day,
    # recounted from the raw step records.
    top = {(c["integration_id"], c["lineage_id"]) for c in table[:2]}
    for i, at in enumerate(data["times"]):
        start = datetime.fromisoformat(at)
        steps = RunStep.objects.filter(
            run__integration__in=scope.integrations,
            run__created_at__gte=start,
            run__created_at__lt=start + timedelta(days=1),
            connection_lineage_id__isnull=False,
        ).select_related("run")
        rest = [
            s.histogram
            for s in steps
            if (s.run.integration_id, str(s.connection_lineage_id)) not in top
        ]
        expected = monitoring._percentiles(reduce(histogram.merge, rest)) if rest else (None, None)
        assert (lines[-1]["p50"][i], lines[-1]["p95"][i]) == expected
    assert sum(p is not None for p in lines[-1]["p95"]) >= 2  # the two busy days at least


def test_a_few_connections_are_all_drawn_without_an_others_line(developer, busy):
    now = timezone.now()
    scope = monitoring.scope_for(developer, since=now - timedelta(days=7), until=now)
    data = monitoring.series(scope)
    assert [c["name"] for c in data["connections"]] == [c["name"] for c in data["connection_table"]]
    assert not any(c.get("others") for c in data["connections"])


def test_the_page_lists_every_connection_under_the_chart_but_sends_only_the_lines(
    client, developer, busy, monkeypatch
):
    monkeypatch.setattr(monitoring, "CHART_CONNECTIONS", 2)
    client.force_login(developer)
    response = client.get(reverse("runs:monitoring"), {"range": "30d"})
    html = response.content.decode()
    table = html[html.index('data-testid="connection-table"') :]
    table = table[: table.index("</table>")]
    for name in ("Shop", "ERP", "Tax", "Mail", "Ours flow API"):
        assert f"<td>{name}</td>" in table
    assert "Secret flow API" not in html  # another team's connection
    assert "the 2 most called, the others as one line" in html
    chart = response.context["chart_data"]
    assert "connection_table" not in chart
    assert [c["name"] for c in chart["connections"]][-1] == "3 other connections"


def test_the_grid_writes_its_times_as_time_elements(client, developer, teams):
    client.force_login(developer)
    response = client.get(reverse("runs:monitoring"))
    row = response.context["rows"][0]
    at = timezone.localtime(row["last_run_at"])
    assert (
        f'<time datetime="{at.isoformat()}" class="relative small">'
        f"{at:%Y-%m-%d %H:%M}</time>" in response.content.decode()
    )
    assert time_tag(None, empty="Never") == "Never"


def test_a_scope_of_no_integrations_reads_nothing(teams):
    """A user without a role may see no integration (`Integration.objects.none()`): every
    reader answers empty rather than failing."""
    now = timezone.now()
    scope = monitoring.Scope(
        integrations=Integration.objects.none(),
        flow=None,
        since=now - timedelta(days=30),
        until=now,
    )
    assert monitoring.flow_rows(scope, now=now) == []
    data = monitoring.series(scope)
    assert not data["any_runs"] and data["connection_table"] == [] and data["connections"] == []
