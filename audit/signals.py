"""The ILM operation event: audit defines what it records, the revision engine sends it.

Audit sits a floor below revisions (docs/architecture.md), so the signal lives here and
`revisions.services` / `revisions.approvals` send it; `audit.capture` records it, and
`runs` (on `merge`) offers to retry the touched flows' open errors.

`revision_event(sender=Revision, revision=..., verb=..., user=..., detail={...})` is sent on
commit after each ILM operation step a user would want in the audit log: verbs
`snapshot`, `clone`, `pull`, `merge`, `revert`, `cancel`, `fail`, `approval_requested`,
`approved`, `rejected`, `approval_lapsed`.
"""

from django.dispatch import Signal

revision_event = Signal()
