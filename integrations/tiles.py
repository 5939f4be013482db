"""The home tiles' HTML that changes only when the integration changes, cached per version.

Rendering 26 tiles was most of the home page's time (make bench, fig 7), yet a tile's
name, badges, counts, clone line and "changed" footer change only with its integration:
every change to it or its resources raises `version` and `updated_at`
(integrations/versioning.py), and a change of the source it was cloned from raises the
source's. So a tile's parts are kept under a key made of those and of whether this user
may see the source (it is named only to users who may): a write makes a new key, never a
stale hit. The run health between the parts changes with each run and is not kept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from functools import cache as once
from typing import Any

from django.core.cache import cache
from django.template.loader import get_template, render_to_string
from django.utils.safestring import SafeString, mark_safe

from .models import Integration
from .permissions import can_see
from .selectors import with_counts

TEMPLATE = "integrations/_tile.html"
# Kept a day: an integration nobody changes keeps its tiles; old versions' keys age out.
TIMEOUT_S = 24 * 3600


@once
def _template_hash() -> str:
    """A new release's tile template never meets the HTML the old one left in the cache."""
    source = get_template(TEMPLATE).template.source
    return hashlib.blake2b(source.encode(), digest_size=8).hexdigest()


def _key(integration: Integration, user: Any) -> str:
    source = integration.cloned_from
    source_part = (
        f"{source.pk}.{source.version}.{int(can_see(user, source))}" if source is not None else "-"
    )
    return (
        f"ilm:tile:{_template_hash()}:{integration.pk}:{integration.version}:"
        f"{integration.updated_at.timestamp()}:{source_part}"
    )


def home_tiles(
    integrations: Iterable[Integration], user: Any
) -> list[tuple[Integration, SafeString, SafeString]]:
    """(integration, head HTML, foot HTML) per tile, in order (`cloned_from` selected
    with them). The resource counts are read only for the tiles the cache does not hold:
    read after the version they are kept under, they are never older than it."""
    rows = list(integrations)
    keys = [_key(i, user) for i in rows]
    found = cache.get_many(keys)
    missing = {}
    tiles = []
    to_count = [i.pk for i, key in zip(rows, keys, strict=True) if key not in found]
    counts = {}
    if to_count:
        counts = {
            c["pk"]: c
            for c in with_counts(Integration.objects.filter(pk__in=to_count)).values(
                "pk", "flow_count", "connection_count", "cache_count"
            )
        }
    for integration, key in zip(rows, keys, strict=True):
        parts = found.get(key)
        if parts is None:
            for name, n in counts.get(integration.pk, {}).items():
                if name != "pk":
                    setattr(integration, name, n)
            context = {"i": integration, "user": user}
            parts = (
                render_to_string(f"{TEMPLATE}#head", context),
                render_to_string(f"{TEMPLATE}#foot", context),
            )
            missing[key] = parts
        tiles.append((integration, mark_safe(parts[0]), mark_safe(parts[1])))
    if missing:
        cache.set_many(missing, TIMEOUT_S)
    return tiles
