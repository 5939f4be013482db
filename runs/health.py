"""The health of a flow: healthy / degraded / failing / idle, with the thresholds declared
once. The Monitoring page, the integration's Health panel, the API and the alert task
read this module; none of them has a rule of its own.

Pure: it takes figures already added up (from the hourly rollups) and answers a
`Health` with the status and the sentence that says why, written next to the light.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum


class Status(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    FAILING = "failing"
    IDLE = "idle"


# The thresholds (declared once). The success rate counts succeeded runs among those
# that ended succeeded, partial or failed; canceled runs are a person's decision.
WINDOW = timedelta(hours=24)  # the health of a flow is that of its last 24 hours
FAILING_BELOW = 80.0  # % success rate under which a flow is failing
DEGRADED_BELOW = 98.0  # % success rate under which a flow is degraded

RULES: tuple[tuple[Status, str], ...] = (
    (Status.IDLE, "no live run in the last 24 h"),
    (Status.FAILING, f"last run failed, or success rate below {FAILING_BELOW:g} % in 24 h"),
    (
        Status.DEGRADED,
        f"last run partial, or success rate below {DEGRADED_BELOW:g} % in 24 h",
    ),
    (Status.HEALTHY, f"success rate {DEGRADED_BELOW:g} % or more in 24 h, last run succeeded"),
)
RULE_OF: dict[Status, str] = dict(RULES)


@dataclass(frozen=True)
class Health:
    status: Status
    reason: str  # why, with the figures: shown next to the light

    @property
    def rule(self) -> str:
        return RULE_OF[self.status]


def success_rate(succeeded: int, partial: int, failed: int) -> float | None:
    """Succeeded runs as a % of the runs that ended succeeded, partial or failed."""
    ended = succeeded + partial + failed
    return None if ended == 0 else 100.0 * succeeded / ended


def flow_health(
    *, succeeded: int, partial: int, failed: int, canceled: int = 0, last_status: str | None
) -> Health:
    """The status of a flow from its run counts over `WINDOW` and its last run's status
    (the last live run, whenever it was)."""
    rate = success_rate(succeeded, partial, failed)
    if rate is None:
        if canceled:
            return Health(Status.IDLE, f"only canceled runs in the last 24 h ({canceled})")
        return Health(Status.IDLE, "no live run in the last 24 h")
    shown = f"{rate:.1f} % of {succeeded + partial + failed} run(s) succeeded in 24 h"
    if last_status == "failed":
        return Health(Status.FAILING, f"the last run failed; {shown}")
    if rate < FAILING_BELOW:
        return Health(Status.FAILING, f"{shown} (below {FAILING_BELOW:g} %)")
    if last_status == "partial":
        return Health(Status.DEGRADED, f"the last run was partial; {shown}")
    if rate < DEGRADED_BELOW:
        return Health(Status.DEGRADED, f"{shown} (below {DEGRADED_BELOW:g} %)")
    return Health(Status.HEALTHY, shown)
