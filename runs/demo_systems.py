"""Small demo systems under `/demo-systems/`, so `make run` shows flows running for real.

Served only when the setting `ILM_DEMO_SYSTEMS` is true (`make run` sets it): a storefront
with paginated orders and refunds, an ERP that accepts sales orders and credit memos
(rejecting some with 422, rate-limiting now and then with 429 + Retry-After, slow for
some orders), carrier tracking events, a CRM and a marketing audience.

Everything is deterministic: the data comes from fixed seeds, and which request is
rate-limited, rejected or slow depends only on the request (or on how many requests the
ERP has seen since `reset()`), never on the clock or a global random state. So tests and
the demo's first runs show the same figures every time.
"""

from __future__ import annotations

import json
import random
import threading
import time
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

# The catalogue the demo integrations' lookup caches know, and one SKU they do not.
SKUS = ("TENT-2P-GRN", "TENT-4P-GRY", "BAG-20L-BLK", "BAG-35L-RED", "STOVE-MINI", "FUEL-230G")
UNKNOWN_SKU = "TENT-6P-ORG"
PRICES = {
    "TENT-2P-GRN": 189.0,
    "TENT-4P-GRY": 329.0,
    "BAG-20L-BLK": 59.0,
    "BAG-35L-RED": 89.0,
    "STOVE-MINI": 45.0,
    "FUEL-230G": 6.5,
    UNKNOWN_SKU: 449.0,
}
SHIPPING = ("standard", "standard", "express", "pickup")
COUNTRIES = ("US", "US", "CA", "DE", "FR", "JP", "US", "DE")
LEAD_SOURCES = ("Web", "Web", "Trade show", "Web", "Trade show", "Web", "Web", "Partner")
FIRST = ("Ana", "Ben", "Chloé", "Dev", "Emil", "Fatima", "Gus", "Hana", "Ivo", "Jun", "Kai")
LAST = ("Okafor", "Lindqvist", "Moreau", "Patel", "Schmidt", "Tanaka", "Silva", "Novak")
CARRIER_CODES = ("AF", "X6", "X6", "OO", "D1", "D1", "A7")

ORDER_COUNT = 60
REFUND_COUNT = 9
CONTACT_COUNT = 45
EVENT_COUNT = 40
PAGE_SIZE = 25

# The ERP's behaviour, by rule rather than by chance:
RATE_LIMIT_EVERY = 20  # every 20th write since reset() is answered 429 once
RETRY_AFTER_S = 1
SLOW_EVERY = 9  # orders whose number is a multiple of 9 take SLOW_MS to accept
SLOW_MS = 150
CREDIT_HOLD = frozenset({"chloe.moreau@example.com", "jun.novak@example.com"})


def _email(first: str, last: str) -> str:
    plain = first.lower().replace("é", "e")
    return f"{plain}.{last.lower()}@example.com"


def _orders() -> list[dict[str, Any]]:
    rng = random.Random(1001)
    orders = []
    for i in range(ORDER_COUNT):
        number = 1001 + i
        first, last = rng.choice(FIRST), rng.choice(LAST)
        sku = UNKNOWN_SKU if number % 23 == 0 else rng.choice(SKUS)
        quantity = rng.randint(1, 3)
        lines = [{"sku": sku, "quantity": quantity, "price": PRICES[sku], "gift_card": False}]
        if number % 11 == 0:
            lines.append({"sku": "GIFT-25", "quantity": 1, "price": 25.0, "gift_card": True})
        orders.append(
            {
                "id": 5_000_000 + number,
                "name": f"#{number}",
                "number": number,
                "financial_status": "paid" if number % 7 else "pending",
                "test": number % 19 == 0,
                "created_at": f"2026-11-{1 + i % 28:02d}T{8 + i % 12:02d}:{(i * 7) % 60:02d}:00Z",
                "customer": {"first_name": first, "last_name": last, "email": _email(first, last)},
                "sku": sku,
                "quantity": quantity,
                "total_price": round(sum(x["price"] * x["quantity"] for x in lines), 2),
                "shipping": {"code": rng.choice(SHIPPING)},
                "line_items": lines,
            }
        )
    return orders


def _refunds() -> list[dict[str, Any]]:
    paid = [o for o in ORDERS if o["financial_status"] == "paid"]
    rng = random.Random(2002)
    refunds = []
    for i, order in enumerate(rng.sample(paid, REFUND_COUNT)):
        refunds.append(
            {
                "id": 700 + i,
                "order_id": order["id"],
                "order_name": order["name"],
                "sku": order["sku"],
                "quantity": 1,
                "amount": order["line_items"][0]["price"],
                "reason": rng.choice(("damaged", "too small", "changed mind")),
            }
        )
    return refunds


def _contacts() -> list[dict[str, Any]]:
    rng = random.Random(3003)
    contacts = []
    for i in range(CONTACT_COUNT):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        # Every 13th contact was typed in by hand, badly: the audience refuses it.
        email = f"{first.lower()}.{last.lower()}(at)example" if i % 13 == 7 else _email(first, last)
        contacts.append(
            {
                "Id": f"003DEMO{i:05d}",
                "FirstName": first,
                "LastName": last,
                "Email": email,
                "MailingCountryCode": rng.choice(COUNTRIES),
                "LeadSource": rng.choice(LEAD_SOURCES),
                "HasOptedOutOfEmail": i % 10 == 4,
            }
        )
    return contacts


def _events() -> list[dict[str, Any]]:
    rng = random.Random(4004)
    events = []
    for i in range(EVENT_COUNT):
        order = ORDERS[rng.randrange(ORDER_COUNT)]
        events.append(
            {
                "id": f"EV{9000 + i}",
                "tracking_number": f"1Z999AA1{10_000_000 + i * 7919:08d}",
                "order_id": order["id"],
                "code": rng.choice(CARRIER_CODES),
                "at": f"2026-11-{1 + i % 28:02d}T{6 + i % 14:02d}:15:00Z",
            }
        )
    return events


ORDERS = _orders()
REFUNDS = _refunds()
CONTACTS = _contacts()
EVENTS = _events()
UNSUBSCRIBED = [
    {"email_address": c["Email"], "status": "unsubscribed", "merge_fields": {"SFID": c["Id"]}}
    for c in CONTACTS
    if c["HasOptedOutOfEmail"]
]


class _Counter:
    """How many writes the ERP has seen: every RATE_LIMIT_EVERY-th is refused with 429."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def next(self) -> int:
        with self._lock:
            self.value += 1
            return self.value

    def reset(self) -> None:
        with self._lock:
            self.value = 0


ERP_WRITES = _Counter()
# What the demo systems received, newest last (kept short): tests and curious users.
RECEIVED: list[dict[str, Any]] = []
RECEIVED_LIMIT = 500


def reset() -> None:
    """Back to the first request: the 429 rhythm restarts and the received list empties."""
    ERP_WRITES.reset()
    RECEIVED.clear()


def _receive(system: str, path: str, body: Any) -> None:
    RECEIVED.append({"system": system, "path": path, "body": body})
    del RECEIVED[:-RECEIVED_LIMIT]


def demo_system(view):
    """Served only when `ILM_DEMO_SYSTEMS` is on; other sites answer 404. No login, no CSRF:
    these stand in for other companies' APIs."""

    @csrf_exempt
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not getattr(settings, "ILM_DEMO_SYSTEMS", False):
            raise Http404("Demo systems are off (set ILM_DEMO_SYSTEMS=1).")
        return view(request, *args, **kwargs)

    return wrapper


def _error(status: int, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def _body(request: HttpRequest) -> Any:
    try:
        return json.loads(request.body or b"null")
    except ValueError:
        return None


def _int(request: HttpRequest, name: str, default: int, *, low: int = 1, high: int = 500) -> int:
    try:
        value = int(request.GET.get(name, default))
    except ValueError:
        return default
    return max(low, min(high, value))


def _next_url_page(request: HttpRequest, items: list, key: str) -> JsonResponse:
    """A page and, while more remain, `next`: the URL of the following page."""
    page = _int(request, "page", 1, high=10_000)
    limit = _int(request, "limit", PAGE_SIZE, high=100)
    chunk = items[(page - 1) * limit : page * limit]
    body: dict[str, Any] = {key: chunk, "page": page, "next": None}
    if page * limit < len(items):
        query = request.GET.copy()
        query["page"] = str(page + 1)
        # Absolute, as real APIs give it: a client follows it as it is.
        body["next"] = request.build_absolute_uri(
            f"{request.path}?{urlencode(sorted(query.items()))}"
        )
    return JsonResponse(body)


def _numbered_page(request: HttpRequest, items: list, key: str) -> JsonResponse:
    """`?page=n`: the n-th page, empty past the end (the caller stops at an empty page)."""
    page = _int(request, "page", 1, high=10_000)
    limit = _int(request, "limit", PAGE_SIZE, high=100)
    return JsonResponse({key: items[(page - 1) * limit : page * limit], "page": page})


def _method(request: HttpRequest, *allowed: str) -> HttpResponse | None:
    if request.method not in allowed:
        return _error(405, f"Use {' or '.join(allowed)}.")
    return None


# Storefront --------------------------------------------------------------------------


@demo_system
def storefront_orders(request: HttpRequest) -> HttpResponse:
    if refused := _method(request, "GET"):
        return refused
    orders = ORDERS
    status = request.GET.get("financial_status")
    if status:
        orders = [o for o in orders if o["financial_status"] == status]
    return _next_url_page(request, orders, "orders")


@demo_system
def storefront_refunds(request: HttpRequest) -> HttpResponse:
    if refused := _method(request, "GET"):
        return refused
    return _numbered_page(request, REFUNDS, "refunds")


@demo_system
def storefront_fulfillment_events(request: HttpRequest) -> HttpResponse:
    if refused := _method(request, "POST"):
        return refused
    body = _body(request)
    events = body if isinstance(body, list) else [body]
    for event in events:
        if not isinstance(event, dict) or not event.get("tracking_number"):
            return _error(422, "Every fulfilment event needs a tracking_number.")
        if not event.get("status"):
            return _error(422, f"Unknown carrier status for {event['tracking_number']}.")
    _receive("storefront", request.path, body)
    return JsonResponse({"created": len(events)}, status=201)


@demo_system
def storefront_inventory(request: HttpRequest, sku: str) -> HttpResponse:
    if refused := _method(request, "PUT", "POST"):
        return refused
    body = _body(request)
    if sku not in PRICES or not isinstance(body, dict):
        return _error(404, f"No product with SKU {sku}.")
    _receive("storefront", request.path, body)
    return JsonResponse({"sku": sku, "available": body.get("available")})


# ERP ---------------------------------------------------------------------------------


def _erp_rate_limited() -> JsonResponse | None:
    if ERP_WRITES.next() % RATE_LIMIT_EVERY == 0:
        response = _error(429, "Too many requests: slow down.")
        response["Retry-After"] = str(RETRY_AFTER_S)
        return response
    return None


def _sales_order_problem(order: Any) -> str | None:
    if not isinstance(order, dict):
        return "A sales order is a JSON object."
    if not order.get("external_id"):
        return "external_id is required."
    entity = order.get("entity") or {}
    if not isinstance(entity, dict) or not entity.get("email"):
        return "entity.email is required."
    if entity["email"] in CREDIT_HOLD:
        return f"Customer {entity['email']} is on credit hold."
    item = order.get("item") or {}
    if not isinstance(item, dict) or not item.get("erp_item"):
        return "item.erp_item is required: the SKU has no ERP item."
    return None


@demo_system
def erp_sales_orders(request: HttpRequest) -> HttpResponse:
    """One sales order per request (or a JSON array of them, accepted or refused whole)."""
    if refused := _method(request, "POST"):
        return refused
    if limited := _erp_rate_limited():
        return limited
    body = _body(request)
    orders = body if isinstance(body, list) else [body]
    for order in orders:
        if problem := _sales_order_problem(order):
            ref = order.get("external_id") if isinstance(order, dict) else None
            return _error(422, problem, external_id=ref)
    if any(_order_number(o) % SLOW_EVERY == 0 for o in orders):
        time.sleep(SLOW_MS / 1000)
    _receive("erp", request.path, body)
    ids = [f"SO{_order_number(o):06d}" for o in orders]
    return JsonResponse({"ids": ids} if isinstance(body, list) else {"id": ids[0]}, status=201)


def _order_number(order: dict[str, Any]) -> int:
    digits = "".join(ch for ch in str(order.get("external_id", "")) if ch.isdigit())
    return int(digits) if digits else 0


@demo_system
def erp_credit_memos(request: HttpRequest) -> HttpResponse:
    if refused := _method(request, "POST"):
        return refused
    if limited := _erp_rate_limited():
        return limited
    body = _body(request)
    memos = body if isinstance(body, list) else [body]
    for memo in memos:
        if not isinstance(memo, dict) or not memo.get("created_from"):
            return _error(422, "created_from (the order) is required.")
        if not memo.get("item"):
            return _error(422, f"Refund of order {memo['created_from']}: item is required.")
    _receive("erp", request.path, body)
    return JsonResponse({"created": len(memos)}, status=201)


@demo_system
def erp_inventory(request: HttpRequest) -> HttpResponse:
    if refused := _method(request, "GET"):
        return refused
    rng = random.Random(5005)
    levels = [{"sku": sku, "quantityavailable": rng.randint(0, 40)} for sku in SKUS]
    return JsonResponse({"items": levels})


# Carrier -----------------------------------------------------------------------------


@demo_system
def carrier_events(request: HttpRequest) -> HttpResponse:
    if refused := _method(request, "GET"):
        return refused
    return _next_url_page(request, EVENTS, "events")


@demo_system
def carrier_exceptions(request: HttpRequest) -> HttpResponse:
    if refused := _method(request, "GET"):
        return refused
    failures = [e for e in EVENTS if e["code"] == "A7"]
    return JsonResponse({"exceptions": failures})


# CRM and marketing -------------------------------------------------------------------


@demo_system
def crm_contacts(request: HttpRequest) -> HttpResponse:
    if refused := _method(request, "GET"):
        return refused
    return _numbered_page(request, CONTACTS, "records")


@demo_system
def crm_contact(request: HttpRequest, contact_id: str) -> HttpResponse:
    if refused := _method(request, "PATCH", "PUT"):
        return refused
    if not any(c["Id"] == contact_id for c in CONTACTS):
        return _error(404, f"No contact {contact_id}.")
    body = _body(request)
    if not isinstance(body, dict):
        return _error(400, "The body is a JSON object of fields to change.")
    _receive("crm", request.path, body)
    return JsonResponse({"id": contact_id, "success": True})


@demo_system
def marketing_members(request: HttpRequest) -> HttpResponse:
    if refused := _method(request, "PUT", "POST"):
        return refused
    body = _body(request)
    members = body if isinstance(body, list) else [body]
    for member in members:
        email = member.get("email_address", "") if isinstance(member, dict) else ""
        if "@" not in email:
            return _error(
                400, "Invalid Resource", detail=f"{email or 'An empty address'} looks fake."
            )
    _receive("marketing", request.path, body)
    return JsonResponse({"updated": len(members)})


@demo_system
def marketing_unsubscribes(request: HttpRequest) -> HttpResponse:
    if refused := _method(request, "GET"):
        return refused
    return JsonResponse({"members": UNSUBSCRIBED})


@demo_system
def index(request: HttpRequest) -> HttpResponse:
    """What is here: a map for people poking at the demo."""
    return JsonResponse(
        {
            "storefront": ["GET orders/", "GET refunds/", "POST fulfillment-events/"],
            "erp": ["POST sales-orders/", "POST credit-memos/", "GET inventory/"],
            "carrier": ["GET events/", "GET exceptions/"],
            "crm": ["GET contacts/", "PATCH contacts/<id>/"],
            "marketing": ["PUT members/", "GET unsubscribes/"],
            "received": len(RECEIVED),
        }
    )


# Included by ilm_site/urls.py under /demo-systems/ (each view answers 404 unless on).
app_name = "demo"
urlpatterns = [
    path("", index, name="index"),
    path("storefront/orders/", storefront_orders, name="orders"),
    path("storefront/refunds/", storefront_refunds, name="refunds"),
    path("storefront/fulfillment-events/", storefront_fulfillment_events, name="fulfillments"),
    path("storefront/inventory-levels/<str:sku>/", storefront_inventory, name="inventory_level"),
    path("erp/sales-orders/", erp_sales_orders, name="sales_orders"),
    path("erp/credit-memos/", erp_credit_memos, name="credit_memos"),
    path("erp/inventory/", erp_inventory, name="inventory"),
    path("carrier/events/", carrier_events, name="events"),
    path("carrier/exceptions/", carrier_exceptions, name="exceptions"),
    path("crm/contacts/", crm_contacts, name="contacts"),
    path("crm/contacts/<str:contact_id>/", crm_contact, name="contact"),
    path("marketing/members/", marketing_members, name="members"),
    path("marketing/unsubscribes/", marketing_unsubscribes, name="unsubscribes"),
]
