"""Signals the revision engine sends; the audit app listens.

`revision_event(sender=Revision, revision=..., verb=..., user=..., detail={...})` is sent on
commit after each ILM operation step a user would want in the audit log: verbs
`snapshot`, `clone`, `pull`, `merge`, `revert`, `cancel`, `fail`, `approval_requested`,
`approved`, `rejected`, `approval_lapsed`.
"""

from django.dispatch import Signal

revision_event = Signal()
