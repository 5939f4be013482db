"""`manage.py load_demo`: demo users for each role and three realistic integrations.

Idempotent: users are brought to their demo role and password, an integration that
already exists (by name) is left as it is, and the sandbox clone is made once. Every
write goes through the services, so versions, history and the audit log are what the UI
would have produced. With the demo systems on (`ILM_DEMO_SYSTEMS`, as `make run` sets),
every enabled demo flow then runs a few times against them, in-process.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from django.conf import settings
from django.core import signals
from django.core.management.base import BaseCommand
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction

from audit.context import acting
from integrations import services
from integrations.models import (
    Environment,
    Flow,
    FlowStep,
    Integration,
    Role,
    Script,
    StepKind,
    User,
)
from revisions import services as revision_services
from runs import services as run_services
from runs.models import RunTrigger

DEMO_USERS: tuple[tuple[str, str, str], ...] = (
    ("admin", Role.ADMINISTRATOR, "ilm-demo-admin"),
    ("approver", Role.APPROVER, "ilm-demo-approver"),
    ("developer", Role.DEVELOPER, "ilm-demo-developer"),
    ("monitor", Role.MONITOR, "ilm-demo-monitor"),
)

CLONE_NAME = "Storefront orders → ERP (sandbox)"
# Each enabled demo flow runs this often on load: by the schedule, then once by hand.
DEMO_RUN_TRIGGERS = (RunTrigger.SCHEDULE, RunTrigger.SCHEDULE, RunTrigger.MANUAL)


def _m(source: str, target: str, cache: str | None = None) -> dict[str, Any]:
    return {"source": source, "target": target, "cache": cache}


# The demo systems (runs/demo_systems.py) that `make run` serves next to the site.
DEMO_SYSTEMS_URL = "http://127.0.0.1:8000/demo-systems"


def _http(system: str, *, auth: dict, timeout_s: int = 10, max_attempts: int = 3) -> dict:
    """An HTTP connection's config (docs/api.md, "Flow runs") aimed at one demo system."""
    return {
        "base_url": f"{DEMO_SYSTEMS_URL}/{system}",
        "headers": {"Accept": "application/json"},
        "timeout_s": timeout_s,
        "auth": auth,
        "retry": {"max_attempts": max_attempts},
    }


# Each integration: connections, lookup caches (with entries), scripts, flows with steps.
# A step's connection and a mapping's cache are named here and resolved on load.
DEMO: tuple[dict[str, Any], ...] = (
    {
        "name": "Storefront orders → ERP",
        "description": "Paid Shopify orders become NetSuite sales orders; refunds become credit "
        "memos; ERP stock levels flow back to the storefront.",
        "documentation": (
            "# Storefront orders → ERP\n\n"
            "Owner: **Commerce ops** (ops@acme-outdoor.example)\n\n"
            "## What it does\n"
            "- Every 15 minutes, paid orders are exported from Shopify and created as sales "
            "orders in NetSuite.\n"
            "- SKUs are translated to ERP item ids through the *SKU → ERP item* cache.\n\n"
            "## When it fails\n"
            "1. Check the *Orders to sales orders* flow's last run.\n"
            "2. A missing SKU means the cache needs a new row: upload the product export CSV.\n"
        ),
        "connections": [
            {
                "name": "Shopify storefront",
                "kind": "http",
                "config": _http("storefront", auth={"type": "bearer"}),
                "credentials": {"token": "shpat_demo_not_a_real_token"},
            },
            {
                "name": "NetSuite ERP",
                "kind": "http",
                "config": _http("erp", auth={"type": "basic"}, timeout_s=5, max_attempts=4),
                "credentials": {"username": "integration", "password": "demo-erp"},
            },
        ],
        "caches": [
            {
                "name": "SKU → ERP item",
                "key_path": "sku",
                "settings": {"ttl_days": 30, "on_miss": "fail"},
                "entries": [
                    ("TENT-2P-GRN", {"erp_item": "10042", "uom": "EA"}),
                    ("TENT-4P-GRY", {"erp_item": "10043", "uom": "EA"}),
                    ("BAG-20L-BLK", {"erp_item": "20117", "uom": "EA"}),
                    ("BAG-35L-RED", {"erp_item": "20118", "uom": "EA"}),
                    ("STOVE-MINI", {"erp_item": "30005", "uom": "EA"}),
                    ("FUEL-230G", {"erp_item": "30011", "uom": "CAN"}),
                ],
            },
            {
                "name": "Shipping method map",
                "key_path": "code",
                "settings": {"ttl_days": 365},
                "entries": [
                    ("standard", {"erp_ship_method": "UPS Ground"}),
                    ("express", {"erp_ship_method": "UPS 2nd Day Air"}),
                    ("pickup", {"erp_ship_method": "Will Call"}),
                ],
            },
        ],
        "scripts": [
            {
                "name": "Normalise order",
                "function": "preSavePage",
                "code": (
                    "function preSavePage(options) {\n"
                    "  // Drop test orders and gift cards before they reach the ERP.\n"
                    "  const data = options.data.filter((order) => !order.test);\n"
                    "  data.forEach((order) => {\n"
                    "    order.line_items = order.line_items.filter((l) => !l.gift_card);\n"
                    "  });\n"
                    "  return { data, errors: options.errors };\n"
                    "}\n"
                ),
            },
            {
                "name": "Split bundles",
                "function": "transformBundles",
                "code": (
                    "function transformBundles(options) {\n"
                    "  // A bundle SKU becomes one line per component.\n"
                    "  return options.record.line_items.flatMap((line) =>\n"
                    "    line.components ? line.components : [line]);\n"
                    "}\n"
                ),
            },
        ],
        "flows": [
            {
                "name": "Orders to sales orders",
                "description": "Paid orders from the storefront become ERP sales orders.",
                "schedule": "*/15 * * * *",
                "steps": [
                    {
                        "name": "Export paid orders",
                        "kind": StepKind.EXPORT,
                        "connection": "Shopify storefront",
                        "options": {
                            "path": "/orders/",
                            "query": {"financial_status": "paid", "limit": 25},
                            "records_path": "orders",
                            "paging": {"type": "next_url", "path": "next"},
                            "hooks": {"preSavePage": "Normalise order"},
                        },
                        "mappings": [],
                    },
                    {
                        "name": "Look up ERP items",
                        "kind": StepKind.LOOKUP,
                        "connection": None,
                        "options": {},
                        "mappings": [_m("sku", "item", "SKU → ERP item")],
                    },
                    {
                        "name": "Shape the sales order",
                        "kind": StepKind.TRANSFORM,
                        "connection": None,
                        "options": {},
                        "mappings": [
                            _m("name", "external_id"),
                            _m("customer.email", "entity.email"),
                            _m("item", "item"),
                            _m("quantity", "quantity"),
                            _m("total_price", "total"),
                            _m("shipping.code", "ship_method", "Shipping method map"),
                            _m("name", "other_ref_num"),
                        ],
                    },
                    {
                        "name": "Create sales order",
                        "kind": StepKind.IMPORT,
                        "connection": "NetSuite ERP",
                        "options": {"method": "POST", "path": "/sales-orders/", "batch_size": 1},
                        "mappings": [],
                    },
                ],
            },
            {
                "name": "Refunds to credit memos",
                "description": "Storefront refunds become ERP credit memos.",
                "schedule": "0 * * * *",
                "steps": [
                    {
                        "name": "Export refunds",
                        "kind": StepKind.EXPORT,
                        "connection": "Shopify storefront",
                        "options": {
                            "path": "/refunds/",
                            "query": {"limit": 5},
                            "records_path": "refunds",
                            "paging": {"type": "page", "param": "page", "start": 1},
                        },
                        "mappings": [],
                    },
                    {
                        "name": "Shape the credit memo",
                        "kind": StepKind.TRANSFORM,
                        "connection": None,
                        "options": {},
                        "mappings": [
                            _m("sku", "item", "SKU → ERP item"),
                            _m("order_id", "created_from"),
                            _m("amount", "amount"),
                            _m("reason", "memo"),
                        ],
                    },
                    {
                        "name": "Create credit memo",
                        "kind": StepKind.IMPORT,
                        "connection": "NetSuite ERP",
                        "options": {"method": "POST", "path": "/credit-memos/", "batch_size": 5},
                        "mappings": [],
                    },
                ],
            },
            {
                "name": "Stock levels to storefront",
                "description": "ERP quantities on hand update storefront inventory.",
                "schedule": "0 */2 * * *",
                "enabled": False,
                "steps": [
                    {
                        "name": "Export quantities",
                        "kind": StepKind.EXPORT,
                        "connection": "NetSuite ERP",
                        "options": {"path": "/inventory/", "records_path": "items"},
                        "mappings": [],
                    },
                    {
                        "name": "Update inventory",
                        "kind": StepKind.IMPORT,
                        "connection": "Shopify storefront",
                        "options": {
                            "method": "PUT",
                            "path": "/inventory-levels/{record.sku}/",
                            "batch_size": 1,
                        },
                        "mappings": [],
                    },
                ],
            },
        ],
    },
    {
        "name": "CRM contacts → marketing",
        "description": "New and changed Salesforce contacts join the right Mailchimp audience; "
        "unsubscribes go back to the CRM.",
        "documentation": (
            "# CRM contacts → marketing\n\nOwner: **Marketing ops**.\n\n"
            "Only contacts with marketing consent are sent. Regions come from the *Country → "
            "region* cache.\n"
        ),
        "connections": [
            {
                "name": "Salesforce CRM",
                "kind": "http",
                "config": _http("crm", auth={"type": "bearer"}),
                "credentials": {"token": "demo-crm-token"},
            },
            {
                "name": "Mailchimp",
                "kind": "http",
                "config": _http("marketing", auth={"type": "header", "header": "X-Api-Key"}),
                "credentials": {"value": "demo-us21"},
            },
        ],
        "caches": [
            {
                "name": "Country → region",
                "key_path": "country_code",
                "settings": {},
                "entries": [
                    ("US", {"region": "NA"}),
                    ("CA", {"region": "NA"}),
                    ("DE", {"region": "EMEA"}),
                    ("FR", {"region": "EMEA"}),
                    ("JP", {"region": "APAC"}),
                ],
            },
            {
                "name": "Lead source → audience",
                "key_path": "source",
                "settings": {"default": "General"},
                "entries": [
                    ("Web", {"audience_id": "a1b2c3"}),
                    ("Trade show", {"audience_id": "d4e5f6"}),
                ],
            },
        ],
        "scripts": [
            {
                "name": "Consent filter",
                "function": "filterConsent",
                "code": (
                    "function filterConsent(options) {\n"
                    "  return options.record.HasOptedOutOfEmail === false;\n"
                    "}\n"
                ),
            },
        ],
        "flows": [
            {
                "name": "New contacts to audience",
                "description": "Contacts changed since the last run, with consent.",
                "schedule": "*/30 * * * *",
                "steps": [
                    {
                        "name": "Export changed contacts",
                        "kind": StepKind.EXPORT,
                        "connection": "Salesforce CRM",
                        "options": {
                            "path": "/contacts/",
                            "query": {"limit": 20},
                            "records_path": "records",
                            "paging": {"type": "page", "param": "page", "start": 1},
                        },
                        "mappings": [],
                    },
                    {
                        "name": "Region and audience",
                        "kind": StepKind.LOOKUP,
                        "connection": None,
                        "options": {},
                        "mappings": [
                            _m("MailingCountryCode", "region", "Country → region"),
                            _m("LeadSource", "audience", "Lead source → audience"),
                        ],
                    },
                    {
                        "name": "Shape the member",
                        "kind": StepKind.TRANSFORM,
                        "connection": None,
                        "options": {},
                        "mappings": [
                            _m("Email", "email_address"),
                            _m("Id", "merge_fields.SFID"),
                            _m("FirstName", "merge_fields.FNAME"),
                            _m("region.region", "merge_fields.REGION"),
                            _m("audience.audience_id", "list_id"),
                        ],
                    },
                    {
                        "name": "Upsert members",
                        "kind": StepKind.IMPORT,
                        "connection": "Mailchimp",
                        "options": {"method": "PUT", "path": "/members/", "batch_size": 1},
                        "mappings": [],
                    },
                ],
            },
            {
                "name": "Unsubscribes back to CRM",
                "description": "Mailchimp unsubscribes set the CRM opt-out flag.",
                "schedule": "0 * * * *",
                "steps": [
                    {
                        "name": "Export unsubscribes",
                        "kind": StepKind.EXPORT,
                        "connection": "Mailchimp",
                        "options": {"path": "/unsubscribes/", "records_path": "members"},
                        "mappings": [],
                    },
                    {
                        "name": "Update contacts",
                        "kind": StepKind.IMPORT,
                        "connection": "Salesforce CRM",
                        "options": {
                            "method": "PATCH",
                            "path": "/contacts/{record.merge_fields.SFID}/",
                            "batch_size": 1,
                        },
                        "mappings": [],
                    },
                ],
            },
        ],
    },
    {
        "name": "Carrier tracking → storefront",
        "description": "Carrier EDI 214 status messages become storefront fulfilment events.",
        "documentation": "# Carrier tracking\n\nEDI 214 files arrive over AS2 every 10 minutes.\n",
        "connections": [
            {
                "name": "Carrier AS2",
                "kind": "http",
                "config": _http("carrier", auth={"type": "none"}),
                "credentials": {},
            },
            {
                "name": "Shopify storefront",
                "kind": "http",
                "config": _http("storefront", auth={"type": "bearer"}),
                "credentials": {"token": "shpat_demo_not_a_real_token"},
            },
        ],
        "caches": [
            {
                "name": "Carrier status codes",
                "key_path": "code",
                "settings": {},
                "entries": [
                    ("AF", {"event": "picked_up"}),
                    ("X6", {"event": "in_transit"}),
                    ("OO", {"event": "out_for_delivery"}),
                    ("D1", {"event": "delivered"}),
                    ("A7", {"event": "failure"}),
                ],
            },
        ],
        "scripts": [
            {
                "name": "Parse EDI 214",
                "function": "parseEdi214",
                "code": (
                    "function parseEdi214(options) {\n"
                    "  const segments = options.raw.split('~');\n"
                    "  const at7 = segments.find((s) => s.startsWith('AT7'));\n"
                    "  return { code: at7 ? at7.split('*')[1] : null };\n"
                    "}\n"
                ),
            },
        ],
        "flows": [
            {
                "name": "Tracking events to fulfilments",
                "description": "Status messages become fulfilment events on the order.",
                "schedule": "*/10 * * * *",
                "steps": [
                    {
                        "name": "Receive 214 messages",
                        "kind": StepKind.EXPORT,
                        "connection": "Carrier AS2",
                        "options": {
                            "path": "/events/",
                            "records_path": "events",
                            "paging": {"type": "next_url", "path": "next"},
                        },
                        "mappings": [],
                    },
                    {
                        "name": "Translate status",
                        "kind": StepKind.LOOKUP,
                        "connection": None,
                        "options": {},
                        "mappings": [_m("code", "status", "Carrier status codes")],
                    },
                    {
                        "name": "Create fulfilment event",
                        "kind": StepKind.IMPORT,
                        "connection": "Shopify storefront",
                        "options": {
                            "method": "POST",
                            "path": "/fulfillment-events/",
                            "batch_size": 20,
                        },
                        "mappings": [],
                    },
                ],
            },
            {
                "name": "Delivery exceptions to support",
                "description": "Failed deliveries open a support ticket.",
                "schedule": "5 * * * *",
                "steps": [
                    {
                        "name": "Read exceptions",
                        "kind": StepKind.EXPORT,
                        "connection": "Carrier AS2",
                        "options": {"path": "/exceptions/", "records_path": "exceptions"},
                        "mappings": [],
                    },
                    {
                        "name": "Find exceptions",
                        "kind": StepKind.TRANSFORM,
                        "connection": None,
                        "options": {},
                        "mappings": [
                            _m("order_id", "ticket.external_id"),
                            _m("tracking_number", "ticket.tracking_number"),
                        ],
                    },
                ],
            },
        ],
    },
)

# username → {integration name: level}
DEMO_GRANTS: dict[str, dict[str, str]] = {
    "Storefront orders → ERP": {"developer": "manage", "monitor": "monitor"},
    "CRM contacts → marketing": {"developer": "monitor", "monitor": "monitor"},
    "Carrier tracking → storefront": {"developer": "manage", "monitor": "monitor"},
}


class Command(BaseCommand):
    help = "Load demo users and integrations (safe to run again: nothing is duplicated)."

    def handle(self, *args: Any, **options: Any) -> None:
        users = self._users()
        for spec in DEMO:
            # The audit log shows the demo as the developer's work, one operation each.
            with acting(users["developer"]):
                self._integration(spec, users["developer"])
        with acting(users["developer"]):
            self._clone(users["developer"], admin=users["admin"])
        self._run_flows(users["approver"])
        self.stdout.write("")
        self.stdout.write("Demo users (demo data only):")
        for username, role, password in DEMO_USERS:
            self.stdout.write(f"  {username:<10} {password:<20} {role}")
        self.stdout.write("Sign in at http://127.0.0.1:8000/login/")

    def _users(self) -> dict[str, User]:
        users = {}
        for username, role, password in DEMO_USERS:
            user, created = services.user_create_or_update(
                username=username,
                role=role,
                password=password,
                email=f"{username}@ilm-demo.example",
            )
            users[username] = user
            self.stdout.write(f"{'Created' if created else 'Updated'} user {username} ({role}).")
        return users

    def _integration(self, spec: dict[str, Any], owner: User) -> None:
        name = spec["name"]
        if Integration.objects.filter(name=name, cloned_from__isnull=True).exists():
            self.stdout.write(f"{name}: already there, left as it is.")
            return
        with transaction.atomic():
            integration = services.integration_create(
                name=name,
                user=owner,
                description=spec["description"],
                environment=Environment.PRODUCTION,
                documentation=spec["documentation"],
            )
            connections = {
                c["name"]: services.resource_create(
                    integration=integration, type_key="connection", data=c
                )
                for c in spec["connections"]
            }
            caches = {}
            for c in spec["caches"]:
                cache = services.resource_create(
                    integration=integration,
                    type_key="lookup_cache",
                    data={k: c[k] for k in ("name", "key_path", "settings")},
                )
                services.cache_entries_add(
                    cache=cache, entries=[{"key": k, "value": v} for k, v in c["entries"]]
                )
                caches[c["name"]] = str(cache.lineage_id)
            scripts = {
                s["name"]: str(
                    services.resource_create(
                        integration=integration, type_key="script", data=s
                    ).lineage_id
                )
                for s in spec["scripts"]
            }
            for f in spec["flows"]:
                flow = services.resource_create(
                    integration=integration,
                    type_key="flow",
                    data={
                        "name": f["name"],
                        "description": f["description"],
                        "schedule": f["schedule"],
                        "enabled": f.get("enabled", True),
                    },
                )
                for position, step in enumerate(f["steps"], start=1):
                    mappings = [
                        {
                            "source": m["source"],
                            "target": m["target"],
                            "lookup_cache": caches[m["cache"]] if m["cache"] else None,
                        }
                        for m in step["mappings"]
                    ]
                    options = dict(step["options"])
                    if "hooks" in options:  # named here, written as script lineage ids
                        options["hooks"] = {k: scripts[v] for k, v in options["hooks"].items()}
                    services.resource_create(
                        integration=integration,
                        type_key="step",
                        data={
                            "name": step["name"],
                            "flow": flow,
                            "position": position,
                            "kind": step["kind"],
                            "connection": connections.get(step["connection"] or ""),
                            "config": {**options, "mappings": mappings},
                        },
                    )
            services.access_set(
                integration=integration,
                grants=[
                    {"user": username, "level": level}
                    for username, level in DEMO_GRANTS.get(name, {}).items()
                ],
            )
        self.stdout.write(f"{name}: created.")

    def _clone(self, developer: User, *, admin: User) -> None:
        source = Integration.objects.filter(
            name="Storefront orders → ERP", cloned_from__isnull=True
        ).first()
        if source is None or Integration.objects.filter(name=CLONE_NAME).exists():
            self.stdout.write(f"{CLONE_NAME}: already there, left as it is.")
            return
        clone = revision_services.integration_clone(
            source=source,
            user=developer,
            name=CLONE_NAME,
            environment=Environment.SANDBOX,
            copy_cache_data=True,
        )
        if not clone.flows.exists():  # a real broker: the copy is a task
            self.stdout.write(f"{CLONE_NAME}: clone queued; a Celery worker copies it.")
            return
        self.stdout.write(f"{CLONE_NAME}: cloned from {source.name}.")
        self._open_pull(source, clone, developer, admin=admin)

    def _open_pull(
        self, production: Integration, sandbox: Integration, developer: User, *, admin: User
    ) -> None:
        """Work in the sandbox, one clashing edit in production, and a pull ready to review."""

        def twin(model, name: str, integration: Integration):
            return model.objects.get(integration=integration, name=name)

        script = twin(Script, "Normalise order", sandbox)
        services.resource_update(
            instance=script,
            data={
                "code": script.code.replace(
                    "  return { data, errors: options.errors };",
                    "  data.forEach((order) => {\n"
                    "    order.total_price = Math.round(order.total_price * 100) / 100;\n"
                    "  });\n"
                    "  return { data, errors: options.errors };",
                )
            },
        )
        shape = FlowStep.objects.get(flow__integration=sandbox, name="Shape the sales order")
        config = dict(shape.config)
        config["mappings"] = [
            *config["mappings"],
            {"source": "po_number", "target": "other_ref_num_po", "lookup_cache": None},
        ]
        services.resource_update(instance=shape, data={"config": config})
        # Both sides move the refunds schedule, differently: the review shows a conflict.
        services.resource_update(
            instance=twin(Flow, "Refunds to credit memos", sandbox),
            data={"schedule": "*/30 * * * *"},
        )
        # Production is protected: its side is an administrator's hotfix, made with
        # protection turned off for it (with a reason, in the history) and back on after.
        with acting(admin):
            services.integration_protection_set(
                integration=production,
                protected=False,
                user=admin,
                reason="Hotfix: the ERP rejects refunds on the hour",
            )
            services.resource_update(
                instance=twin(Flow, "Refunds to credit memos", production),
                data={"schedule": "15 * * * *"},
            )
            # A different mapping added to the same step in production: mappings merge
            # one by one, so this and the sandbox's new mapping both land, no conflict.
            prod_shape = FlowStep.objects.get(
                flow__integration=production, name="Shape the sales order"
            )
            prod_config = dict(prod_shape.config)
            prod_config["mappings"] = [
                *prod_config["mappings"],
                {"source": "customer.phone", "target": "entity.phone", "lookup_cache": None},
            ]
            services.resource_update(instance=prod_shape, data={"config": prod_config})
            services.integration_protection_set(integration=production, protected=True, user=admin)
        pull = revision_services.pull_create(
            target=production,
            source=sandbox,
            user=developer,
            description="Round order totals and map the customer PO number",
        )
        self.stdout.write(
            f"{production.name}: pull #{pull.number} from the sandbox opened for review."
        )

    def _run_flows(self, approver: User) -> None:
        """Run every enabled demo flow a few times for real, so the Runs tab has content.

        The site is not serving yet: httpx's WSGI transport reaches the demo systems
        in-process. Integrations that have runs already are left alone.
        """
        if not settings.ILM_DEMO_SYSTEMS:
            self.stdout.write("Demo runs skipped: the demo systems are off (ILM_DEMO_SYSTEMS=1).")
            return
        transport = httpx.WSGITransport(app=get_wsgi_application())
        for spec in DEMO:
            integration = Integration.objects.filter(
                name=spec["name"], cloned_from__isnull=True
            ).first()
            if integration is None or integration.runs.exists():
                continue
            flows = integration.flows.filter(enabled=True).order_by("name", "pk")
            for flow in flows:
                for trigger in DEMO_RUN_TRIGGERS:
                    run = self._run_once(flow, approver, trigger, transport)
                self.stdout.write(
                    f"{integration.name} · {flow.name}: ran {len(DEMO_RUN_TRIGGERS)} times, "
                    f"last {run.status} ({run.records_in} in, {run.records_out} out, "
                    f"{run.errors} errors)."
                )

    def _run_once(self, flow: Flow, approver: User, trigger: str, transport) -> Any:
        user = approver if trigger == RunTrigger.MANUAL else None
        # Executed before the commit: the task that run_start enqueues on commit then
        # finds the run final and leaves it (a run never runs twice).
        with _in_process_requests(), transaction.atomic():
            run = run_services.run_start(flow=flow, user=user, trigger=trigger)
            return run_services.run_execute(run_id=run.pk, transport=transport)


@contextmanager
def _in_process_requests() -> Iterator[None]:
    """Requests served in this thread must not close its database connection (Django
    closes it at each request's end, which would break the open transaction), as in
    Django's own test client. The demo systems' planned 422s and 429s are not logged as
    warnings here: the run records them."""
    request_log = logging.getLogger("django.request")
    level = request_log.level
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    request_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        request_log.setLevel(level)
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
