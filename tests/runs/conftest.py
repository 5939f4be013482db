"""A flow that runs for real: storefront orders (export, paged) → mapping → ERP (import).

The HTTP systems are `httpx.MockTransport` handlers (`Systems`), so a test says what the
storefront answers and reads what the ERP received. Base URLs are loopback addresses
(allowed by the test settings' SSRF guard); no socket is opened.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from werkzeug import Request, Response

from integrations.models import AccessLevel, Environment, StepKind
from runs.services import run_execute, run_start
from tests.api.conftest import (  # noqa: F401  (the API tests' token clients, shared here)
    admin_api,
    approver_api,
    dev_api,
    monitor_api,
    outsider,
    outsider_api,
)
from tests.factories import (
    ConnectionFactory,
    FlowFactory,
    GrantFactory,
    IntegrationFactory,
    StepFactory,
)

SHOP = "http://127.0.0.1:8101"
ERP = "http://127.0.0.1:8102"
ERP_TOKEN = "erp-live-token-7f3a9c"


def orders(n: int, start: int = 1) -> list[dict[str, Any]]:
    return [
        {"id": i, "total": 10 * i, "customer": {"email": f"c{i}@example.com", "password": f"pw{i}"}}
        for i in range(start, start + n)
    ]


@dataclass
class Systems:
    """The storefront's pages of orders and the ERP's answers, as one mock transport."""

    pages: list[list[dict[str, Any]]] = field(default_factory=list)
    reject_ids: set[int] = field(default_factory=set)
    received: list[Any] = field(default_factory=list)
    auth_seen: list[str] = field(default_factory=list)
    calls: int = 0
    on_page: Any = None  # called with the page number when the storefront serves a page

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        url = str(request.url)
        if url.startswith(SHOP):
            page = int(request.url.params.get("page", "1"))
            if self.on_page is not None:
                self.on_page(page)
            body: dict[str, Any] = {
                "orders": self.pages[page - 1] if page <= len(self.pages) else []
            }
            if page < len(self.pages):
                body["next"] = f"{SHOP}/orders?page={page + 1}"
            return httpx.Response(200, json=body)
        if url.startswith(ERP):
            self.auth_seen.append(request.headers.get("authorization", ""))
            record = json.loads(request.content)
            if record.get("order_id") in self.reject_ids:
                return httpx.Response(
                    422,
                    json={
                        "error": f"order {record['order_id']} has no customer account",
                        "echo": request.headers.get("authorization"),
                    },
                )
            self.received.append(record)
            return httpx.Response(201, json={"ok": True})
        return httpx.Response(404)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)


@pytest.fixture
def systems() -> Systems:
    return Systems(pages=[orders(3), orders(2, start=4)])


@pytest.fixture
def sandbox(db, developer, monitor):
    integration = IntegrationFactory(name="Shop → ERP", environment=Environment.SANDBOX)
    GrantFactory(integration=integration, user=developer, level=AccessLevel.MANAGE)
    GrantFactory(integration=integration, user=monitor, level=AccessLevel.MONITOR)
    return integration


def build_flow(
    integration,
    *,
    schedule: str = "",
    enabled: bool = True,
    shop_url: str = SHOP,
    erp_url: str = ERP,
):
    """Storefront orders (paged by `next`) → map → ERP sales orders, one per request."""
    shop = ConnectionFactory(
        integration=integration,
        name="Storefront",
        config={"base_url": shop_url, "retry": {"max_attempts": 1}},
        credentials={},
    )
    erp = ConnectionFactory(
        integration=integration,
        name="ERP",
        config={"base_url": erp_url, "auth": {"type": "bearer"}, "retry": {"max_attempts": 1}},
        credentials={"token": ERP_TOKEN},
    )
    flow = FlowFactory(
        integration=integration, name="Orders to ERP", schedule=schedule, enabled=enabled
    )
    StepFactory(
        flow=flow,
        name="Read orders",
        position=1,
        kind=StepKind.EXPORT,
        connection=shop,
        config={
            "path": "/orders",
            "records_path": "orders",
            "paging": {"type": "next_url", "path": "next"},
        },
    )
    StepFactory(
        flow=flow,
        name="Map",
        position=2,
        kind=StepKind.TRANSFORM,
        config={
            "mappings": [
                {"source": "id", "target": "order_id"},
                {"source": "total", "target": "amount"},
                {"source": "customer.email", "target": "email"},
                {"source": "customer.password", "target": "password"},
            ]
        },
    )
    StepFactory(
        flow=flow,
        name="Send to ERP",
        position=3,
        kind=StepKind.IMPORT,
        connection=erp,
        config={"path": "/sales-orders", "batch_size": 1},
    )
    return flow


@pytest.fixture
def flow(sandbox):
    return build_flow(sandbox)


# Error management: the ERP over real HTTP (pytest-httpserver) --------------------------


class Erp:
    """The ERP: refuses orders of the ids in `reject` with 422, takes the rest."""

    def __init__(self) -> None:
        self.reject: set[int] = set()
        self.received: list[dict] = []

    def handle(self, request: Request) -> Response:
        record = request.get_json()
        if "order_id" not in record:
            body = {"error": "order_id is required"}
            return Response(json.dumps(body), status=422, content_type="application/json")
        if record.get("order_id") in self.reject:
            body = {"error": f"order {record['order_id']} has no customer account"}
            return Response(json.dumps(body), status=422, content_type="application/json")
        self.received.append(record)
        return Response("{}", status=201, content_type="application/json")


@pytest.fixture
def erp(httpserver):
    erp = Erp()
    shop_orders = orders(5)
    httpserver.expect_request("/shop/orders").respond_with_json({"orders": shop_orders})
    httpserver.expect_request("/erp/sales-orders", method="POST").respond_with_handler(erp.handle)
    return erp


@pytest.fixture
def live_flow(sandbox, httpserver):
    return build_flow(
        sandbox,
        shop_url=httpserver.url_for("/shop").rstrip("/"),
        erp_url=httpserver.url_for("/erp").rstrip("/"),
    )


def run_once(flow):
    return run_execute(run_id=run_start(flow=flow, user=None).pk)
