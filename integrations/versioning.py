"""`Integration.version` goes up by exactly one per committed change.

One mechanism: saves and deletes of an integration or any of its resources (signals)
mark the integration as changed. Inside `versioned_change()` — the block every service
write runs in — the marks are collected and each touched integration is bumped once,
inside the same transaction, when the block ends; a block that raises bumps nothing
(it rolls back). A save outside any block (admin, shell) is its own change and bumps
at once. Bulk writes that send no signals call `mark_changed()` themselves.

The open blocks live in a context variable (as `audit.context` keeps the acting user), so
threads and async tasks each see only their own blocks.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import transaction
from django.db.models import F
from django.db.models.functions import Now
from django.db.models.signals import post_delete, post_save

# The integrations touched in each open block, outermost first (a tuple: each block sets
# a new one and resets it on leaving, so no context sees another's).
_blocks: contextvars.ContextVar[tuple[set[int], ...]] = contextvars.ContextVar(
    "ilm_versioned_blocks", default=()
)


@contextmanager
def versioned_change(using: str | None = None) -> Iterator[set[int]]:
    """An atomic block whose changes raise each touched integration's version once."""
    with transaction.atomic(using=using):
        touched: set[int] = set()
        outer = _blocks.get()
        token = _blocks.set((*outer, touched))
        try:
            yield touched
        finally:
            _blocks.reset(token)
        if touched:
            if outer:  # nested: the outer block bumps once for both
                outer[-1].update(touched)
            else:
                _bump(touched)


def mark_changed(integration_id: int | None) -> None:
    """Count a change of the integration: in the open block, or at once outside any."""
    if integration_id is None:
        return
    blocks = _blocks.get()
    if blocks:
        blocks[-1].add(integration_id)
    else:
        _bump({integration_id})


def _bump(ids: set[int]) -> None:
    from .models import Integration

    # updated_at too: a change to a resource is a change to the integration ("last change").
    Integration.objects.filter(pk__in=ids).update(version=F("version") + 1, updated_at=Now())


def _integration_id_of(instance) -> int | None:
    from .models import Integration, IntegrationAccess, LookupCacheEntry

    if isinstance(instance, Integration):
        return instance.pk
    if isinstance(instance, LookupCacheEntry):
        cache = instance.cache if instance.cache_id else None
        return cache.integration_id if cache else None
    if isinstance(instance, IntegrationAccess):
        return None  # who may see it is not a change to the integration
    return getattr(instance, "integration_id", None)


def _on_save(sender, instance, created, raw=False, **kwargs) -> None:
    if raw:
        return
    from .models import Integration

    if isinstance(instance, Integration) and created:
        return  # a new integration starts at version 1
    mark_changed(_integration_id_of(instance))


def _on_delete(sender, instance, **kwargs) -> None:
    from .models import Integration

    if isinstance(instance, Integration):
        return
    try:
        mark_changed(_integration_id_of(instance))
    except Exception:  # the parent is being deleted too
        return


def connect_signals() -> None:
    from .models import (
        Connection,
        Flow,
        FlowStep,
        Integration,
        LookupCache,
        LookupCacheEntry,
        Script,
    )

    for model in (Integration, Connection, Flow, FlowStep, Script, LookupCache, LookupCacheEntry):
        post_save.connect(_on_save, sender=model, dispatch_uid=f"ilm-version-save-{model.__name__}")
        post_delete.connect(
            _on_delete, sender=model, dispatch_uid=f"ilm-version-delete-{model.__name__}"
        )
