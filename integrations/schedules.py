"""Flow schedules: the one cron validator (croniter), used by forms, serializers and models.

A schedule is five cron fields (minute hour day-of-month month day-of-week) or one of
the usual macros (`@hourly`, `@daily`, …); empty means "not scheduled". croniter decides
what is valid; when it refuses, the message names the field that is wrong.
"""

from __future__ import annotations

import re
from datetime import datetime

from cron_descriptor import Options, get_description
from croniter import croniter
from django.core.exceptions import ValidationError

MACROS = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)

# (label, low, high) per field, for the message that names the wrong one.
_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)


def normalize_cron(value: str | None) -> str:
    """Whitespace collapsed, macros lower-cased: the form a schedule is stored in."""
    value = " ".join((value or "").split())
    return value.lower() if value.startswith("@") else value


def validate_cron(value: str | None) -> str:
    """The schedule, normalized; ValidationError naming the wrong field otherwise."""
    value = normalize_cron(value)
    if not value:
        return value
    if value.startswith("@"):
        if value in MACROS:
            return value
        raise ValidationError(
            f"{value!r} is not a schedule macro; use one of {', '.join(sorted(MACROS))}."
        )
    parts = value.split(" ")
    if len(parts) != 5:
        raise ValidationError(
            "A schedule has 5 fields (minute hour day-of-month month day-of-week), e.g. "
            f"*/15 * * * *; this one has {len(parts)}."
        )
    if croniter.is_valid(value):
        return value
    for i, (text, (label, low, high)) in enumerate(zip(parts, _FIELDS, strict=True)):
        alone = " ".join(text if j == i else "*" for j in range(5))
        if croniter.is_valid(alone):
            continue
        if re.search(r"/0+(,|$)", text):
            raise ValidationError(f"The {label} field has a step of 0.")
        numbers = re.split(r"[,\-/]", text)
        if all(n.isdigit() for n in numbers if n != "*") and any(
            n.isdigit() and not low <= int(n) <= high for n in numbers
        ):
            raise ValidationError(f"The {label} field {text!r} is out of range ({low}–{high}).")
        raise ValidationError(f"The {label} field {text!r} is not valid cron.")
    raise ValidationError(f"{value!r} is not a valid cron schedule.")


def validate_schedule_field(value: str) -> None:
    """Model-field validator form of `validate_cron` (full_clean runs it in every service)."""
    validate_cron(value)


def next_fire(schedule: str, after: datetime) -> datetime | None:
    """The first time strictly after `after` that the schedule fires (None: no schedule)."""
    schedule = normalize_cron(schedule)
    if not schedule:
        return None
    return croniter(schedule, after).get_next(datetime)


_MACRO_CRON = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def describe_schedule(value: str | None) -> str:
    """A schedule in words ("every 30 minutes"), by cron-descriptor; "" when there is none
    or it is not valid cron (the cron line is shown as it is)."""
    value = normalize_cron(value)
    if not value:
        return ""
    cron = _MACRO_CRON.get(value, value)
    if not croniter.is_valid(cron):
        return ""
    options = Options()
    options.use_24hour_time_format = True
    options.verbose = False
    try:
        text = get_description(cron, options)
    except Exception:  # the describer refuses some valid cron (e.g. L, W): show the line alone
        return ""
    return text[:1].lower() + text[1:] if text else ""
