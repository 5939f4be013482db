"""The history manager of every tracked model: bulk history rows are audited too.

simple-history writes bulk history rows (`bulk_create_with_history`,
`bulk_update_with_history`) through `bulk_history_create` and sends no signal for them;
this manager passes the rows it wrote to `audit.capture.record_history_rows`, in the same
transaction, so the audit log has no silent gap. `audited_history()` is what the domain's
tracked models declare (`integrations.models`).
"""

from typing import Any

from simple_history.manager import HistoryManager
from simple_history.models import HistoricalRecords

from .context import history_user


class AuditedHistoryManager(HistoryManager):
    def bulk_history_create(self, objs, *args, **kwargs):
        rows = super().bulk_history_create(objs, *args, **kwargs)
        if rows:
            from .capture import record_history_rows

            record_history_rows(rows, fresh=True)
        return rows


def audited_history(**kwargs: Any) -> HistoricalRecords:
    """The history of a tracked model: who from the audit context, bulk rows audited too.

    The audit context knows the user behind a Celery task or a token request as well as a
    page's; the audited manager records bulk-written history rows in the audit log.
    """
    return HistoricalRecords(get_user=history_user, history_manager=AuditedHistoryManager, **kwargs)
