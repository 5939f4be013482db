"""Checkpoints of the audit chain's head, kept outside the event table.

The keyed chain shows any event that was changed, inserted or removed from the middle,
but not events removed from the end (a shorter chain is still a valid chain), nor an
emptied table. So every so often (the `audit-checkpoint` beat entry, and after each
`audit_verify` and `audit_export`) the head is written down somewhere the database
cannot reach: a JSON line appended to `ILM_AUDIT_CHECKPOINT_FILE` and the same JSON on
logger `ilm.audit.checkpoint` (route it to syslog or a log service in production).
`audit_verify --checkpoint FILE` then holds the log against every line of FILE: each
recorded head must still be there, at the same position, with the same hash.

A line looks like
`{"at": "2026-12-02T16:00:00+00:00", "count": 41, "last_id": 57, "head": "9f…",
"key_id": "1a2b…", "mac": "c3…"}`; `mac` is an HMAC of the other fields under the named
ILM_AUDIT_KEY key, so a line cannot be forged or edited without the key either.
"""

from __future__ import annotations

import hmac
import logging
import os
from pathlib import Path
from typing import Any

import orjson
from django.conf import settings
from django.db.models import Count, Max

from .chain import AuditKey, Checkpoint, UnknownKeyError, key_named, now_text, signing_key
from .models import Event

logger = logging.getLogger("ilm.audit.checkpoint")

_SIGNED = ("at", "count", "last_id", "head")


class CheckpointFileError(ValueError):
    """A checkpoint file that cannot be read, or holds a line that is not a checkpoint."""


def _mac(key: AuditKey, values: dict[str, Any]) -> str:
    message = orjson.dumps({k: values[k] for k in _SIGNED}, option=orjson.OPT_SORT_KEYS)
    return key.mac(b"ilm-audit-checkpoint\n" + message)


def checkpoint_take() -> Checkpoint:
    """The head of the log as it is now (count and last id from one snapshot: appends
    commit in id order under the chain's lock, so what is visible is a prefix)."""
    totals = Event.objects.aggregate(count=Count("id"), last_id=Max("id"))
    head = ""
    if totals["last_id"] is not None:
        head = Event.objects.values_list("hash", flat=True).get(pk=totals["last_id"])
    return Checkpoint(now_text(), totals["count"], totals["last_id"], head)


def checkpoint_line(checkpoint: Checkpoint) -> bytes:
    """The signed JSON line that stands for a checkpoint."""
    key = signing_key()
    values: dict[str, Any] = {
        "at": checkpoint.at,
        "count": checkpoint.count,
        "last_id": checkpoint.last_id,
        "head": checkpoint.head,
    }
    values["key_id"] = key.id
    values["mac"] = _mac(key, values)
    return orjson.dumps(values)


def checkpoint_record(checkpoint: Checkpoint) -> Checkpoint:
    """Write a checkpoint to the log line and, when ILM_AUDIT_CHECKPOINT_FILE is set, to
    that file (appended and synced; an unwritable file raises OSError)."""
    line = checkpoint_line(checkpoint)
    logger.info("audit checkpoint %s", line.decode())
    path = settings.ILM_AUDIT_CHECKPOINT_FILE
    if path:
        with open(path, "ab") as sink:
            sink.write(line + b"\n")
            sink.flush()
            os.fsync(sink.fileno())
    return checkpoint


def _parse(number: int, text: str) -> Checkpoint:
    where = f"line {number}"
    try:
        values = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise CheckpointFileError(f"{where} is not JSON") from None
    if not isinstance(values, dict) or not {*_SIGNED, "key_id", "mac"} <= values.keys():
        raise CheckpointFileError(
            f"{where} is not a checkpoint (it needs at, count, last_id, head, key_id, mac)"
        )
    count, last_id = values["count"], values["last_id"]
    if (
        not isinstance(count, int)
        or count < 0
        or not (last_id is None if count == 0 else isinstance(last_id, int))
        or not isinstance(values["head"], str)
        or not isinstance(values["mac"], str)
    ):
        raise CheckpointFileError(f"{where} has a count, last_id, head or mac of the wrong kind")
    try:
        key = key_named(str(values["key_id"]))
    except UnknownKeyError as exc:
        raise CheckpointFileError(f"{where} cannot be checked: {exc}") from None
    if not hmac.compare_digest(values["mac"].encode(), _mac(key, values).encode()):
        raise CheckpointFileError(
            f"{where} does not match its signature (the checkpoint was edited or forged)"
        )
    return Checkpoint(str(values["at"]), count, last_id, values["head"])


def checkpoints_read(path: str | Path) -> list[Checkpoint]:
    """Every checkpoint in a file of JSON lines; raises CheckpointFileError naming the
    first line that is not a genuine checkpoint, or when the file holds none."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointFileError(f"cannot read {path}: {exc}") from None
    found = [
        _parse(number, line)
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]
    if not found:
        raise CheckpointFileError(f"{path} holds no checkpoint")
    return found
