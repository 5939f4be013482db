"""The demo systems: deterministic stand-ins for the storefront, ERP, carrier and CRM."""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from integrations.models import Flow
from runs import demo_systems
from runs.models import Run, RunError, RunMode, RunStatus

pytestmark = pytest.mark.django_db

BASE = "/demo-systems"


@pytest.fixture
def demo(settings):
    settings.ILM_DEMO_SYSTEMS = True
    demo_systems.reset()
    yield Client()
    demo_systems.reset()


def post(client, path, body, method="post"):
    return getattr(client, method)(path, json.dumps(body), content_type="application/json")


def good_order(number=1001, email="ana.patel@example.com"):
    return {
        "external_id": f"#{number}",
        "entity": {"email": email},
        "item": {"erp_item": "10042", "uom": "EA"},
        "quantity": 1,
    }


def test_demo_systems_are_not_served_unless_turned_on(settings):
    settings.ILM_DEMO_SYSTEMS = False
    assert Client().get(f"{BASE}/storefront/orders/").status_code == 404
    assert post(Client(), f"{BASE}/erp/sales-orders/", good_order()).status_code == 404


def test_storefront_pages_orders_with_next_links_without_losing_or_repeating_one(demo):
    seen, url, pages = [], f"{BASE}/storefront/orders/?financial_status=paid", 0
    while url:
        body = demo.get(url).json()
        seen += [o["id"] for o in body["orders"]]
        url, pages = body["next"], pages + 1
    paid = [o["id"] for o in demo_systems.ORDERS if o["financial_status"] == "paid"]
    assert seen == paid and len(set(seen)) == len(seen)
    assert pages == -(-len(paid) // demo_systems.PAGE_SIZE)


def test_the_same_request_gives_the_same_orders_every_time(demo):
    first = demo.get(f"{BASE}/storefront/orders/?page=2").json()
    again = demo.get(f"{BASE}/storefront/orders/?page=2").json()
    assert first == again and len(first["orders"]) == demo_systems.PAGE_SIZE


def test_numbered_pages_end_with_an_empty_page(demo):
    count, page = 0, 1
    while records := demo.get(f"{BASE}/crm/contacts/?page={page}").json()["records"]:
        count, page = count + len(records), page + 1
    assert count == demo_systems.CONTACT_COUNT


def test_erp_accepts_a_good_sales_order(demo):
    response = post(demo, f"{BASE}/erp/sales-orders/", good_order(1002))
    assert response.status_code == 201
    assert response.json() == {"id": "SO001002"}
    assert demo_systems.RECEIVED[-1]["body"]["external_id"] == "#1002"


def test_erp_rejects_an_order_on_credit_hold_and_one_without_an_erp_item(demo):
    hold = post(demo, f"{BASE}/erp/sales-orders/", good_order(email="jun.novak@example.com"))
    assert hold.status_code == 422
    assert "credit hold" in hold.json()["error"]
    no_item = {**good_order(1003), "item": None}
    missing = post(demo, f"{BASE}/erp/sales-orders/", no_item)
    assert missing.status_code == 422 and "no ERP item" in missing.json()["error"]
    assert demo_systems.RECEIVED == []


def test_erp_rate_limits_every_nth_write_with_retry_after_and_accepts_the_retry(demo):
    statuses = [
        post(demo, f"{BASE}/erp/sales-orders/", good_order(1001 + i)).status_code
        for i in range(demo_systems.RATE_LIMIT_EVERY)
    ]
    assert statuses == [201] * (demo_systems.RATE_LIMIT_EVERY - 1) + [429]
    # Answered with the wait, and the same order gets through when sent again.
    demo_systems.reset()
    for _ in range(demo_systems.RATE_LIMIT_EVERY - 1):
        demo_systems.ERP_WRITES.next()
    limited = post(demo, f"{BASE}/erp/sales-orders/", good_order(1001))
    assert limited.status_code == 429
    assert limited["Retry-After"] == str(demo_systems.RETRY_AFTER_S)
    assert post(demo, f"{BASE}/erp/sales-orders/", good_order(1001)).status_code == 201


def test_erp_takes_a_batch_whole_or_refuses_it_whole(demo):
    batch = [good_order(1004), good_order(1005, email="chloe.moreau@example.com")]
    assert post(demo, f"{BASE}/erp/sales-orders/", batch).status_code == 422
    assert demo_systems.RECEIVED == []
    ok = post(demo, f"{BASE}/erp/sales-orders/", [good_order(1004), good_order(1006)])
    assert ok.status_code == 201 and ok.json() == {"ids": ["SO001004", "SO001006"]}


def test_erp_refuses_a_body_that_is_not_json(demo):
    response = demo.post(f"{BASE}/erp/sales-orders/", "not json", content_type="text/plain")
    assert response.status_code == 422


def test_wrong_method_is_refused_with_405(demo):
    assert demo.get(f"{BASE}/erp/sales-orders/").status_code == 405
    assert post(demo, f"{BASE}/storefront/orders/", {}).status_code == 405


def test_carrier_events_and_fulfilments(demo):
    events = demo.get(f"{BASE}/carrier/events/").json()
    assert len(events["events"]) == demo_systems.PAGE_SIZE and events["next"]
    event = {**events["events"][0], "status": {"event": "in_transit"}}
    assert post(demo, f"{BASE}/storefront/fulfillment-events/", [event]).status_code == 201
    unknown = {**events["events"][1], "status": None}
    assert post(demo, f"{BASE}/storefront/fulfillment-events/", [unknown]).status_code == 422


def test_marketing_refuses_a_fake_address_and_crm_updates_a_known_contact(demo):
    bad = next(c for c in demo_systems.CONTACTS if "@" not in c["Email"])
    refused = post(demo, f"{BASE}/marketing/members/", {"email_address": bad["Email"]}, "put")
    assert refused.status_code == 400 and "looks fake" in refused.json()["detail"]
    contact = demo_systems.UNSUBSCRIBED[0]["merge_fields"]["SFID"]
    body = {"HasOptedOutOfEmail": True}
    assert post(demo, f"{BASE}/crm/contacts/{contact}/", body, "patch").status_code == 200
    assert post(demo, f"{BASE}/crm/contacts/003NOPE/", body, "patch").status_code == 404


def test_load_demo_runs_every_enabled_demo_flow_for_real(settings):
    """The Runs tab has content on first start: runs with errors, retries and samples."""
    settings.ILM_DEMO_SYSTEMS = True
    demo_systems.reset()
    out = StringIO()
    call_command("load_demo", stdout=out)
    flows = Flow.objects.filter(integration__cloned_from__isnull=True)
    for flow in flows.filter(enabled=True):
        runs = Run.objects.filter(flow_lineage_id=flow.lineage_id)
        assert runs.count() == 3, flow.name
        assert all(r.mode == RunMode.LIVE and not r.is_open for r in runs), flow.name
        assert all(r.records_in > 0 for r in runs), (flow.name, [r.message for r in runs])
    assert not Run.objects.filter(flow__enabled=False).exists()
    orders = Run.objects.filter(flow_name="Orders to sales orders").order_by("pk")
    last = orders.last()
    assert last.status == RunStatus.PARTIAL and last.records_out > 0
    kinds = set(RunError.objects.filter(run=last).values_list("kind", "http_status"))
    assert ("http", 422) in kinds and ("mapping", None) in kinds
    assert sum(r.retries for r in orders) > 0  # the ERP's 429s were retried
    assert "ran 3 times" in out.getvalue()
    # Loading again adds no runs.
    before = Run.objects.count()
    call_command("load_demo", stdout=StringIO())
    assert Run.objects.count() == before


def test_load_demo_without_the_demo_systems_runs_nothing(settings):
    settings.ILM_DEMO_SYSTEMS = False
    out = StringIO()
    call_command("load_demo", stdout=out)
    assert not Run.objects.exists()
    assert "Demo runs skipped" in out.getvalue()
