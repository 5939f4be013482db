"""The history manager of every tracked model: bulk history rows are audited too.

simple-history writes bulk history rows (`bulk_create_with_history`,
`bulk_update_with_history`) through `bulk_history_create` and sends no signal for them;
this manager passes the rows it wrote to `audit.capture.record_history_rows`, in the same
transaction, so the audit log has no silent gap. Integrations' models use it through
`integrations.models._history()`.
"""

from simple_history.manager import HistoryManager


class AuditedHistoryManager(HistoryManager):
    def bulk_history_create(self, objs, *args, **kwargs):
        rows = super().bulk_history_create(objs, *args, **kwargs)
        if rows:
            from .capture import record_history_rows

            record_history_rows(rows, fresh=True)
        return rows
