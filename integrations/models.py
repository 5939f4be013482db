"""The integration domain: an integration and the resources it is made of.

Every resource has a `lineage_id` that survives cloning; resources are matched across
integrations by it (docs/architecture.md, "The revision engine"). What is tracked per
resource type, what references what and what is secret is declared once in
`integrations.resources`.
"""

import uuid

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse

# The one import up a floor (named in import-linter): history is fixed when a model class is made.
from audit.history import audited_history

from .credentials import EncryptedJSONField
from .schedules import normalize_cron, validate_schedule_field

# History rows written by a revision operation (clone, merge, revert) carry a change
# reason starting with this (revisions.apply.change_reason), so pages of this app can tell
# what an operation brought into being without asking the revisions app.
OPERATION_REASON_PREFIX = "ILM "


class Role(models.TextChoices):
    ADMINISTRATOR = "administrator", "Administrator"
    APPROVER = "approver", "Approver"
    DEVELOPER = "developer", "Developer"
    MONITOR = "monitor", "Monitor"


class User(AbstractUser):
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.DEVELOPER)

    def __str__(self) -> str:
        return self.get_full_name() or self.username


class Environment(models.TextChoices):
    SANDBOX = "sandbox", "Sandbox"
    PRODUCTION = "production", "Production"


class SnapshotSchedule(models.TextChoices):
    NONE = "none", "None"
    DAILY = "daily", "Daily"
    WEEKLY = "weekly", "Weekly"


class Integration(models.Model):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    environment = models.CharField(
        max_length=20, choices=Environment.choices, default=Environment.SANDBOX
    )
    # Shared by an integration and every clone of it (and of its clones): the family.
    lineage_id = models.UUIDField(default=uuid.uuid4, db_index=True)
    cloned_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="clones"
    )
    # Raised by exactly one on every committed change (integrations.versioning); never
    # written by save().
    version = models.PositiveIntegerField(default=1, editable=False)
    documentation = models.TextField(blank=True, help_text="Markdown.")
    snapshot_schedule = models.CharField(
        max_length=10, choices=SnapshotSchedule.choices, default=SnapshotSchedule.NONE
    )
    # {resource_type: [field path, ...]}: values that pulls neither show nor carry.
    ignore_fields = models.JSONField(default=dict, blank=True)
    # Change control: a protected integration takes configuration changes only through
    # approved pulls (integrations.permissions). New production integrations start
    # protected (integrations.services); only an administrator turns it off, with a reason.
    protected = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = audited_history(excluded_fields=["version", "updated_at"])

    class Meta:
        ordering = ["name", "pk"]
        indexes = [models.Index(fields=["environment", "name"])]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        if self.pk and not self._state.adding and kwargs.get("update_fields") is None:
            kwargs["update_fields"] = [
                f.attname
                for f in self._meta.concrete_fields
                if not f.primary_key and f.attname != "version"
            ]
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        return reverse("integrations:detail", args=[self.pk])

    @property
    def is_production(self) -> bool:
        return self.environment == Environment.PRODUCTION


class AccessLevel(models.TextChoices):
    MANAGE = "manage", "Manage"
    MONITOR = "monitor", "Monitor"


class IntegrationAccess(models.Model):
    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="grants")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="grants"
    )
    level = models.CharField(max_length=10, choices=AccessLevel.choices)

    history = audited_history()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["integration", "user"], name="one_grant_per_user")
        ]
        ordering = ["user__username"]

    def __str__(self) -> str:
        return f"{self.user} {self.level} {self.integration}"


class Resource(models.Model):
    """A part of an integration that revisions track, matched across clones by lineage."""

    integration = models.ForeignKey(
        Integration, on_delete=models.CASCADE, related_name="%(class)ss"
    )
    lineage_id = models.UUIDField(default=uuid.uuid4, db_index=True)
    name = models.CharField(max_length=200)

    class Meta:
        abstract = True
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.name


def _unique_lineage(model: str) -> models.UniqueConstraint:
    return models.UniqueConstraint(
        fields=["integration", "lineage_id"], name=f"{model}_unique_lineage"
    )


class ConnectionKind(models.TextChoices):
    HTTP = "http", "HTTP / REST"
    FTP = "ftp", "FTP / SFTP"
    DATABASE = "database", "Database"
    SALESFORCE = "salesforce", "Salesforce"
    NETSUITE = "netsuite", "NetSuite"
    SHOPIFY = "shopify", "Shopify"
    AS2 = "as2", "AS2 / EDI"


class Connection(Resource):
    kind = models.CharField(max_length=20, choices=ConnectionKind.choices)
    config = models.JSONField(default=dict, blank=True)
    # Write-only: never shown back, never in a document, a history row or the audit.
    # Encrypted at rest (integrations.credentials); reads give the decrypted object.
    credentials = EncryptedJSONField(default=dict, blank=True)

    history = audited_history(excluded_fields=["credentials"])

    class Meta(Resource.Meta):
        constraints = [_unique_lineage("connection")]

    @property
    def has_credentials(self) -> bool:
        return bool(self.credentials)


class Flow(Resource):
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    schedule = models.CharField(
        max_length=100,
        blank=True,
        help_text="Cron expression, e.g. */15 * * * *",
        validators=[validate_schedule_field],
    )

    history = audited_history()

    class Meta(Resource.Meta):
        constraints = [_unique_lineage("flow")]

    def clean(self) -> None:
        # Stored in one form whoever writes it (the field's validator refused bad cron).
        self.schedule = normalize_cron(self.schedule)


class StepKind(models.TextChoices):
    EXPORT = "export", "Export"
    LOOKUP = "lookup", "Lookup"
    TRANSFORM = "transform", "Transform"
    IMPORT = "import", "Import"


class FlowStep(Resource):
    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveIntegerField(default=1)
    kind = models.CharField(max_length=20, choices=StepKind.choices)
    connection = models.ForeignKey(
        Connection, null=True, blank=True, on_delete=models.PROTECT, related_name="steps"
    )
    # {"mappings": [{"source", "target", "lookup_cache": lineage id or null}], ...}
    config = models.JSONField(default=dict, blank=True)

    history = audited_history()

    class Meta(Resource.Meta):
        ordering = ["flow", "position", "pk"]
        constraints = [_unique_lineage("flowstep")]

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        if self.flow_id and self.integration_id and self.flow.integration_id != self.integration_id:
            errors.setdefault("flow", []).append("The flow belongs to another integration.")
        if self.connection_id and self.connection.integration_id != self.integration_id:
            errors.setdefault("connection", []).append(
                "The connection belongs to another integration; pick one of this integration's."
            )
        from .resources import validate_step_config

        try:
            validate_step_config(self.config, integration_id=self.integration_id)
        except ValidationError as exc:
            errors.setdefault("config", []).extend(exc.messages)
        if errors:
            raise ValidationError(errors)


class Script(Resource):
    function = models.CharField(max_length=200, help_text="Entry function, e.g. preSavePage")
    code = models.TextField(blank=True)

    history = audited_history()

    class Meta(Resource.Meta):
        constraints = [_unique_lineage("script")]


class LookupCache(Resource):
    key_path = models.CharField(max_length=200, help_text="Field holding each entry's key")
    settings = models.JSONField(default=dict, blank=True)

    history = audited_history()

    class Meta(Resource.Meta):
        constraints = [_unique_lineage("lookupcache")]


class LookupCacheEntry(models.Model):
    cache = models.ForeignKey(LookupCache, on_delete=models.CASCADE, related_name="entries")
    key = models.CharField(max_length=500)
    value = models.JSONField(default=dict, blank=True)
    # Bytes of the entry's canonical JSON: what the 5 MB clone limit counts.
    size = models.PositiveIntegerField(default=0)

    history = audited_history()

    class Meta:
        ordering = ["key"]
        constraints = [models.UniqueConstraint(fields=["cache", "key"], name="one_entry_per_key")]
        verbose_name_plural = "lookup cache entries"

    def __str__(self) -> str:
        return self.key


class ApiToken(models.Model):
    """A named bearer token; only a hash is stored, the token is shown once."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
