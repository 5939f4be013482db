"""Deterministic benchmark workloads: integrations of a given shape and edits to them.

Two layers. The pure layer (`generate`, `plan_changes`, `plan_resource_changes`) turns a
shape and a seed into plain rows and edits; the same seed always gives the same lineage
ids, names and values, so a workload is reproducible from its seed alone. The database
layer (`create_integration`, `apply_changes`) writes those rows quickly and the way the
engine expects: bulk inserts with history rows (simple-history's
`bulk_create_with_history` / `bulk_update_with_history`), lineage ids set, references
between resources resolved, and the integration's version raised once per edit batch.
"""

from __future__ import annotations

import copy
import random
import uuid
from dataclasses import dataclass
from typing import Any

from integrations.models import (
    Connection,
    ConnectionKind,
    Environment,
    Flow,
    FlowStep,
    Integration,
    LookupCache,
    Script,
    StepKind,
)
from integrations.resources import RESOURCE_TYPES


@dataclass(frozen=True)
class Shape:
    flows: int
    steps_per_flow: int
    connections: int
    scripts: int
    lookup_caches: int
    mappings_per_step: int

    @property
    def resource_count(self) -> int:
        return (
            self.flows * (1 + self.steps_per_flow)
            + self.connections
            + self.scripts
            + self.lookup_caches
        )


# The "typical" integration and its stress one (about 4,000 steps, a document of
# several MB: each step carries a dozen mappings).
TYPICAL = Shape(
    flows=50, steps_per_flow=10, connections=10, scripts=10, lookup_caches=5, mappings_per_step=8
)
STRESS = Shape(
    flows=200, steps_per_flow=20, connections=10, scripts=10, lookup_caches=5, mappings_per_step=12
)

# Creation order: a type only refers to types before it (as in RESOURCE_TYPES).
TYPE_ORDER = tuple(RESOURCE_TYPES)

_FIELDS_OF_RECORDS = (
    "order",
    "customer",
    "invoice",
    "shipment",
    "product",
    "contact",
    "payment",
    "refund",
)
_ATTRIBUTES = (
    "id",
    "external_id",
    "sku",
    "quantity",
    "unit_price",
    "currency",
    "email",
    "phone",
    "street",
    "city",
    "postal_code",
    "country",
    "status",
    "created_at",
    "updated_at",
    "tracking_number",
)
_SCHEDULES = ("*/5 * * * *", "*/15 * * * *", "0 * * * *", "30 2 * * *", "0 6 * * 1-5", "")


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _path(rng: random.Random) -> str:
    return f"{rng.choice(_FIELDS_OF_RECORDS)}.{rng.choice(_ATTRIBUTES)}"


def generate(shape: Shape, seed: int) -> dict[str, list[dict[str, Any]]]:
    """Rows of an integration of `shape`, per resource type key, references as lineage ids.

    Steps map 2/3 of their fields straight and 1/3 through a lookup cache.
    """
    rng = random.Random(seed)
    kinds = [k for k, _ in ConnectionKind.choices]
    connections = [
        {
            "lineage_id": _uuid(rng),
            "name": f"Connection {i + 1:03d} ({kinds[i % len(kinds)]})",
            "kind": kinds[i % len(kinds)],
            "config": {
                "base_url": f"https://api{i + 1}.example.com/v{rng.randint(1, 3)}",
                "timeout": rng.choice((10, 30, 60)),
                "retries": rng.randint(0, 5),
                "headers": {"Accept": "application/json", "X-Tenant": f"t{rng.randint(1, 99)}"},
            },
            "credentials": {"api_key": f"secret-{rng.getrandbits(64):016x}"},
        }
        for i in range(shape.connections)
    ]
    caches = [
        {
            "lineage_id": _uuid(rng),
            "name": f"Lookup {i + 1:02d} {rng.choice(_FIELDS_OF_RECORDS)} codes",
            "key_path": _path(rng),
            "settings": {
                "ttl_hours": rng.choice((1, 24, 168)),
                "case_sensitive": rng.random() < 0.5,
            },
        }
        for i in range(shape.lookup_caches)
    ]
    scripts = [
        {
            "lineage_id": _uuid(rng),
            "name": f"Script {i + 1:02d}",
            "function": rng.choice(("preSavePage", "postResponseMap", "preMap", "postSubmit")),
            "code": "\n".join(
                f"  record.{rng.choice(_ATTRIBUTES)} = normalise(record.{rng.choice(_ATTRIBUTES)});"
                for _ in range(rng.randint(5, 15))
            ),
        }
        for i in range(shape.scripts)
    ]
    flows: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    step_kinds = [k for k, _ in StepKind.choices]
    for f in range(shape.flows):
        flow = {
            "lineage_id": _uuid(rng),
            "name": f"Flow {f + 1:04d}: {rng.choice(_FIELDS_OF_RECORDS)}s to ERP",
            "description": f"Moves {rng.choice(_FIELDS_OF_RECORDS)} records every run.",
            "enabled": rng.random() < 0.9,
            "schedule": rng.choice(_SCHEDULES),
        }
        flows.append(flow)
        for s in range(shape.steps_per_flow):
            mappings = []
            for _ in range(shape.mappings_per_step):
                cache = caches and rng.random() < 1 / 3
                mappings.append(
                    {
                        "source": _path(rng),
                        "target": f"{rng.choice(_FIELDS_OF_RECORDS).title()}."
                        f"{rng.choice(_ATTRIBUTES)}",
                        "lookup_cache": rng.choice(caches)["lineage_id"] if cache else None,
                    }
                )
            steps.append(
                {
                    "lineage_id": _uuid(rng),
                    "name": f"Step {s + 1:02d} of flow {f + 1:04d}",
                    "flow": flow["lineage_id"],
                    "position": s + 1,
                    "kind": step_kinds[s % len(step_kinds)],
                    "connection": (rng.choice(connections)["lineage_id"] if connections else None),
                    "config": {
                        "mappings": mappings,
                        "batch_size": rng.choice((50, 100, 500)),
                        "on_error": rng.choice(("skip", "retry", "stop")),
                    },
                }
            )
    return {
        "connection": connections,
        "lookup_cache": caches,
        "script": scripts,
        "flow": flows,
        "step": steps,
    }


# --- edits -----------------------------------------------------------------------------

# An edit: {"type", "lineage_id", "field", "value"}; "field" is a model field, or
# "config.mappings[i].target" for one mapping of a step (the value is the new target).
Change = dict[str, Any]


def _units(rows: dict[str, list[dict[str, Any]]]) -> list[tuple[str, int, str]]:
    """Every changeable field of every resource: (type, row index, field)."""
    units: list[tuple[str, int, str]] = []
    per_type = {
        "connection": ("name", "config.timeout"),
        "lookup_cache": ("name", "key_path", "settings.ttl_hours"),
        "script": ("name", "function", "code"),
        "flow": ("name", "description", "enabled", "schedule"),
    }
    for type_key, fields in per_type.items():
        for i in range(len(rows[type_key])):
            units.extend((type_key, i, f) for f in fields)
    for i, step in enumerate(rows["step"]):
        units.extend(("step", i, f) for f in ("name", "kind", "connection"))
        units.extend(
            ("step", i, f"config.mappings[{m}].target")
            for m in range(len(step["config"]["mappings"]))
        )
    return units


def field_count(rows: dict[str, list[dict[str, Any]]]) -> int:
    return len(_units(rows))


def _new_value(
    rows: dict[str, list[dict[str, Any]]], unit: tuple[str, int, str], side: str, n: int
) -> Any:
    type_key, index, field = unit
    row = rows[type_key][index]
    if field == "enabled":
        return not row["enabled"]
    if field == "kind":
        kinds = [k for k, _ in StepKind.choices if k != row["kind"]]
        return kinds[n % len(kinds)]
    if field == "connection":
        others = [
            c["lineage_id"] for c in rows["connection"] if c["lineage_id"] != row["connection"]
        ]
        return others[n % len(others)] if others else row["connection"]
    if field == "config.timeout":
        # Side-specific ranges: an edit on both sides never lands on the same value.
        return row["config"]["timeout"] + (100_000 if side == "ours" else 200_000) + n
    if field == "settings.ttl_hours":
        return row["settings"]["ttl_hours"] + (100_000 if side == "ours" else 200_000) + n
    if field == "schedule":
        # A valid cron expression (flows are validated on merge); the day of the month
        # tells the sides apart, and no generated schedule names one.
        return f"{n % 60} {n // 60 % 24} {1 if side == 'ours' else 2} * *"
    if field.startswith("config.mappings["):
        m = int(field[len("config.mappings[") : field.index("]")])
        return f"{row['config']['mappings'][m]['target']}_{side}{n}"
    return f"{row[field]} ({side} edit {n})"


def plan_changes(
    rows: dict[str, list[dict[str, Any]]],
    fraction: float,
    seed: int,
    *,
    conflict_share: float = 0.1,
) -> tuple[list[Change], list[Change]]:
    """Edits of `fraction` of all fields on each side: (ours, theirs).

    `conflict_share` of ours' edits touch a field theirs also edits, with another value
    (a conflict); the rest of each side's edits are disjoint. Boolean and choice fields
    are never picked for conflicts (both sides could land on the same value).
    """
    rng = random.Random(seed)
    units = _units(rows)
    per_side = max(1, round(len(units) * fraction))
    picked = rng.sample(units, min(len(units), 2 * per_side))
    theirs_units = picked[:per_side]
    ours_units = picked[per_side:]
    conflictable = [u for u in theirs_units if u[2] not in ("enabled", "kind", "connection")]
    n_conflicts = min(len(conflictable), round(len(ours_units) * conflict_share))
    ours_units = conflictable[:n_conflicts] + ours_units[: len(ours_units) - n_conflicts]

    def to_changes(side: str, chosen: list[tuple[str, int, str]]) -> list[Change]:
        return [
            {
                "type": u[0],
                "lineage_id": rows[u[0]][u[1]]["lineage_id"],
                "field": u[2],
                "value": _new_value(rows, u, side, n),
            }
            for n, u in enumerate(chosen)
        ]

    return to_changes("ours", ours_units), to_changes("theirs", theirs_units)


def plan_resource_changes(
    rows: dict[str, list[dict[str, Any]]], count: int, seed: int, *, side: str = "theirs"
) -> list[Change]:
    """One edit in each of `count` distinct resources (a pull of exactly `count` changes)."""
    rng = random.Random(seed)
    by_resource: dict[tuple[str, int], list[tuple[str, int, str]]] = {}
    for unit in _units(rows):
        by_resource.setdefault(unit[:2], []).append(unit)
    if count > len(by_resource):
        raise ValueError(f"only {len(by_resource)} resources, cannot change {count}")
    chosen = rng.sample(sorted(by_resource), count)
    changes = []
    for n, key in enumerate(chosen):
        unit = rng.choice(
            [u for u in by_resource[key] if u[2] not in ("enabled", "kind", "connection")]
        )
        changes.append(
            {
                "type": unit[0],
                "lineage_id": rows[unit[0]][unit[1]]["lineage_id"],
                "field": unit[2],
                "value": _new_value(rows, unit, side, n),
            }
        )
    return changes


def apply_to_rows(
    rows: dict[str, list[dict[str, Any]]], changes: list[Change]
) -> dict[str, list[dict[str, Any]]]:
    """The rows after `changes` (pure; the input is not modified)."""
    out = copy.deepcopy(rows)
    index = {(t, r["lineage_id"]): r for t, lst in out.items() for r in lst}
    for change in changes:
        _set(index[(change["type"], change["lineage_id"])], change["field"], change["value"])
    return out


def _set(row: dict[str, Any], field: str, value: Any) -> None:
    if field.startswith("config.mappings["):
        m = int(field[len("config.mappings[") : field.index("]")])
        row["config"]["mappings"][m]["target"] = value
    elif "." in field:
        top, key = field.split(".", 1)
        row[top] = {**row[top], key: value}
    else:
        row[field] = value


# --- database layer --------------------------------------------------------------------

_MODELS = {
    "connection": Connection,
    "lookup_cache": LookupCache,
    "script": Script,
    "flow": Flow,
    "step": FlowStep,
}
BATCH = 1000


def create_integration(
    rows: dict[str, list[dict[str, Any]]],
    *,
    name: str,
    environment: str = Environment.SANDBOX,
    user: Any = None,
    lineage_id: uuid.UUID | None = None,
    cloned_from: Integration | None = None,
) -> Integration:
    """Write an integration and its resources with bulk inserts and their history rows."""
    from django.db import transaction
    from simple_history.utils import bulk_create_with_history

    with transaction.atomic():
        integration = Integration.objects.create(
            name=name,
            # The same for a workload's copies: integration fields are part of documents.
            description="Benchmark workload",
            environment=environment,
            created_by=user,
            cloned_from=cloned_from,
            **({"lineage_id": lineage_id} if lineage_id else {}),
        )
        pk_of: dict[str, dict[str, int]] = {}
        for type_key in TYPE_ORDER:
            model = _MODELS[type_key]
            objs = []
            for row in rows[type_key]:
                values = dict(row)
                if type_key == "step":
                    values["flow_id"] = pk_of["flow"][values.pop("flow")]
                    conn = values.pop("connection")
                    values["connection_id"] = pk_of["connection"][conn] if conn else None
                objs.append(model(integration=integration, **values))
            created = bulk_create_with_history(
                objs,
                model,
                batch_size=BATCH,
                default_user=user,
                default_change_reason="benchmark workload",
            )
            pk_of[type_key] = {str(o.lineage_id): o.pk for o in created}
    return integration


def apply_changes(integration: Integration, changes: list[Change], *, user: Any = None) -> int:
    """Write edits with bulk updates and history rows; the version goes up once.

    Returns the number of resource rows changed.
    """
    from simple_history.utils import bulk_update_with_history

    from integrations.versioning import mark_changed, versioned_change

    by_type: dict[str, list[Change]] = {}
    for change in changes:
        by_type.setdefault(change["type"], []).append(change)
    changed = 0
    with versioned_change():
        for type_key, type_changes in by_type.items():
            model = _MODELS[type_key]
            objs = {
                str(o.lineage_id): o
                for o in model.objects.filter(
                    integration=integration,
                    lineage_id__in={c["lineage_id"] for c in type_changes},
                )
            }
            conn_pk = {}
            if type_key == "step":
                conn_pk = {
                    str(lid): pk
                    for lid, pk in Connection.objects.filter(integration=integration).values_list(
                        "lineage_id", "pk"
                    )
                }
            fields: set[str] = set()
            for change in type_changes:
                obj = objs[change["lineage_id"]]
                field = change["field"]
                if field == "connection":
                    obj.connection_id = conn_pk[change["value"]]
                    fields.add("connection")
                    continue
                top = field.split(".", 1)[0].split("[", 1)[0]
                fake = {top: copy.deepcopy(getattr(obj, top))}
                _set(fake, field, change["value"])
                setattr(obj, top, fake[top])
                fields.add(top)
            bulk_update_with_history(
                list(objs.values()),
                model,
                sorted(fields),
                batch_size=BATCH,
                default_user=user,
                default_change_reason="benchmark edit",
            )
            changed += len(objs)
        mark_changed(integration.pk)
    return changed
