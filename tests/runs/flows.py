"""Canonical documents of small flows for the engine's tests (plain data, no Django)."""

from __future__ import annotations

from typing import Any

FLOW = "f0000000-0000-0000-0000-000000000001"
SHOP = "c0000000-0000-0000-0000-000000000001"
ERP = "c0000000-0000-0000-0000-000000000002"
CACHE = "lc000000-0000-0000-0000-000000000001"


def document(*steps: dict[str, Any], enabled: bool = True, **extra: Any) -> dict[str, Any]:
    """A document with one flow, a shop and an ERP connection, a cache and the given steps.

    Each step is `{"kind", "config", ...}`; lineage ids s1, s2, ... in the order given,
    positions likewise. `extra` adds resources (scripts) or overrides the connections.
    """
    resources: dict[str, Any] = {
        FLOW: {"type": "flow", "name": "Orders", "enabled": enabled, "schedule": ""},
        SHOP: connection("Shop", "http://shop.test/api"),
        ERP: connection("ERP", "http://erp.test"),
        CACHE: {"type": "lookup_cache", "name": "SKUs", "key_path": "sku", "settings": {}},
    }
    for n, step in enumerate(steps, start=1):
        resources[f"s{n}"] = {
            "type": "step",
            "name": step.get("name", f"step {n}"),
            "flow": FLOW,
            "position": n,
            "kind": step["kind"],
            "connection": step.get("connection"),
            "config": step.get("config", {}),
        }
    resources.update(extra)
    return {"integration": {"description": "", "documentation": ""}, "resources": resources}


def connection(name: str, base_url: str, **config: Any) -> dict[str, Any]:
    return {
        "type": "connection",
        "name": name,
        "kind": "http",
        "config": {"base_url": base_url, **config},
    }


def export(path: str = "/orders", **config: Any) -> dict[str, Any]:
    return {"kind": "export", "connection": SHOP, "config": {"path": path, **config}}


def importer(path: str = "/orders", **config: Any) -> dict[str, Any]:
    return {"kind": "import", "connection": ERP, "config": {"path": path, **config}}


def script(name: str, function: str, code: str) -> dict[str, Any]:
    return {"type": "script", "name": name, "function": function, "code": code}
