"""The unified audit event table: append-only, hash-chained, indexed for browsing.

Rows are only ever inserted (through `audit.chain.append`). On PostgreSQL, plain SQL
triggers made by migration 0003 refuse UPDATE, DELETE and TRUNCATE whatever the session
sets (unlike pgtrigger's, which honour `pgtrigger.ignore`), and the site's runtime role
holds no UPDATE, DELETE or TRUNCATE privilege on the table (`audit_harden_role`), so not
even a bug, a careless admin action or an injected statement can rewrite the past.
References to users, integrations and revisions carry no database constraint and are
never cascaded: the names are copied in, so an event outlives what it talks about (and a
cascade would have to UPDATE or DELETE it).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from .context import Source


class Action(models.TextChoices):
    """Actions on resources; ILM verbs and sign-in events are listed as well."""

    CREATED = "created", "Created"
    UPDATED = "updated", "Updated"
    DELETED = "deleted", "Deleted"
    SNAPSHOT = "snapshot", "Snapshot"
    CLONE = "clone", "Clone"
    PULL = "pull", "Pull"
    MERGE = "merge", "Merge"
    REVERT = "revert", "Revert"
    CANCEL = "cancel", "Cancel"
    FAIL = "fail", "Operation failed"
    APPROVAL_REQUESTED = "approval_requested", "Approval requested"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    APPROVAL_LAPSED = "approval_lapsed", "Approval lapsed"
    RUN_STARTED = "run_started", "Run started"
    RUN_SCHEDULED = "run_scheduled", "Scheduled run started"
    RUN_CANCELED = "run_canceled", "Run canceled"
    ERROR_RETRIED = "error_retried", "Errors retried"
    ERROR_RESOLVED = "error_resolved", "Error resolved"
    ERROR_ASSIGNED = "error_assigned", "Error assigned"
    ALERT_FIRED = "alert_fired", "Alert fired"
    ALERT_RESOLVED = "alert_resolved", "Alert resolved"
    SIGNED_IN = "signed_in", "Signed in"
    SIGNED_OUT = "signed_out", "Signed out"
    SIGN_IN_FAILED = "sign_in_failed", "Sign-in failed"


SOURCE_CHOICES = [
    (Source.UI.value, "UI"),
    (Source.API.value, "API"),
    (Source.ILM.value, "ILM operation"),
    (Source.SYSTEM.value, "System"),
]


def _loose_fk(to: str) -> models.ForeignKey:
    # No database constraint, never cascaded: deleting a user or an integration must not
    # touch (UPDATE/DELETE) the events that mention it.
    return models.ForeignKey(
        to,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )


class Event(models.Model):
    at = models.DateTimeField(default=timezone.now)
    user = _loose_fk(settings.AUTH_USER_MODEL)
    username = models.CharField(max_length=150, blank=True)
    source = models.CharField(max_length=10, choices=SOURCE_CHOICES, default=Source.SYSTEM.value)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    integration = _loose_fk("integrations.Integration")
    integration_name = models.CharField(max_length=200, blank=True)
    revision = _loose_fk("revisions.Revision")
    resource_type = models.CharField(max_length=40)
    resource_id = models.BigIntegerField(null=True, blank=True)
    resource_name = models.CharField(max_length=500, blank=True)
    action = models.CharField(max_length=30, choices=Action.choices)
    # [{"field", "old", "new"}]; secrets are masked before they get here.
    changes = models.JSONField(default=list, blank=True)
    # Groups the events of one request or one ILM operation.
    operation_id = models.UUIDField(default=uuid.uuid4)
    # The id of the ILM_AUDIT_KEY key the hash is signed with; empty for the unkeyed
    # events written before keys existed.
    key_id = models.CharField(max_length=16, blank=True, default="")
    prev_hash = models.CharField(max_length=64, blank=True)
    hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            # Keyset pagination walks (at, id) downwards; each filter has its own prefix.
            models.Index(fields=["-at", "-id"], name="audit_event_at_id"),
            models.Index(fields=["integration", "-at", "-id"], name="audit_event_integration"),
            models.Index(fields=["username", "-at", "-id"], name="audit_event_username"),
            models.Index(fields=["resource_type", "-at", "-id"], name="audit_event_type"),
            models.Index(fields=["action", "-at", "-id"], name="audit_event_action"),
            models.Index(fields=["source", "-at", "-id"], name="audit_event_source"),
            models.Index(fields=["operation_id"], name="audit_event_operation"),
        ]

    def __str__(self) -> str:
        who = self.username or "system"
        return f"{self.at:%Y-%m-%d %H:%M:%S} {who} {self.action} {self.resource_name}"
