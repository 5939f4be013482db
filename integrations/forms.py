"""Forms of the integration pages: parse and check input, then views hand it to a service.

Forms never save. Each form's `service_data()` returns the dict a service takes; what the
service refuses comes back onto the form with `apply_service_errors()`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from .json_input import located, raw_depth_problem, value_problem
from .models import (
    AccessLevel,
    Connection,
    ConnectionKind,
    Environment,
    Flow,
    Integration,
    LookupCache,
    SnapshotSchedule,
    StepKind,
    User,
)
from .reference_names import names_for
from .resources import RESOURCE_TYPES, validate_ignore_fields

MAX_UPLOAD_BYTES = 10 * 1024 * 1024


def apply_service_errors(form: forms.Form, exc: ValidationError) -> None:
    """Put a service's ValidationError on the form: per field where the form has it."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            target = field if field in form.fields else None
            for error in errors:
                for message in error.messages:
                    form.add_error(target, message if target else f"{field}: {message}")
    else:
        for message in exc.messages:
            form.add_error(None, message)


# Text as typed --------------------------------------------------------------------------
#
# A browser cannot send back exactly the text a page showed: the HTML parser turns CRLF
# into LF, a text input loses its newlines, and the submission turns every newline into
# CRLF. So an edit form that re-parses its input would rewrite stored text nobody touched
# (issue #10). `StoredValuesForm` keeps the stored value of every text field submitted as
# it was shown; a changed text area keeps the stored text's line endings.


def _lf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def text_with_line_endings_of(text: str, stored: str) -> str:
    """`text` with LF line ends, or CRLF where the stored text mostly used CRLF."""
    text = _lf(text)
    crlf = stored.count("\r\n")
    if crlf and crlf * 2 >= _lf(stored).count("\n"):
        return text.replace("\n", "\r\n")
    return text


class VerbatimTextField(forms.CharField):
    """Free text (code, descriptions, documentation) kept exactly as typed: no stripping."""

    widget = forms.Textarea

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(strip=False, **kwargs)


class StoredValuesForm(forms.Form):
    """An edit form whose text fields, submitted as they were shown, keep the stored value.

    Such a field is not parsed or re-validated: the stored value comes back byte for byte,
    whatever the browser did to its line endings. A changed text area gets the stored
    text's line endings (the browser sends CRLF for every newline it shows as LF). Fields
    without an initial value (a create form) are cleaned as usual.
    """

    def submitted_unchanged(self, name: str) -> bool:
        bf = self[name]
        field = bf.field
        if name not in self.initial or field.disabled or not self.is_bound:
            return False
        widget = field.widget
        if not isinstance(widget, forms.TextInput | forms.Textarea):
            return False
        submitted = bf.data
        if not isinstance(submitted, str):
            return False
        shown = widget.format_value(field.prepare_value(bf.initial))
        shown = "" if shown is None else str(shown)
        if isinstance(widget, forms.Textarea):
            return _lf(submitted) == _lf(shown)
        return _lf(submitted).replace("\n", "") == _lf(shown).replace("\n", "")

    def _clean_fields(self) -> None:
        for name, bf in self._bound_items():
            if self.submitted_unchanged(name):
                self.cleaned_data[name] = bf.initial
                continue
            field = bf.field
            try:
                value = field._clean_bound_field(bf)
                if isinstance(field, VerbatimTextField):
                    stored = bf.initial if isinstance(bf.initial, str) else ""
                    value = text_with_line_endings_of(value, stored)
                self.cleaned_data[name] = value
                if hasattr(self, f"clean_{name}"):
                    self.cleaned_data[name] = getattr(self, f"clean_{name}")()
            except ValidationError as exc:
                self.add_error(name, exc)


class JSONObjectField(forms.CharField):
    """A JSON object typed into a monospace textarea; errors say where the JSON breaks."""

    widget = forms.Textarea

    def __init__(self, *, what: str = "This", **kwargs: Any) -> None:
        self.what = what
        kwargs.setdefault("required", False)
        super().__init__(strip=True, **kwargs)
        self.widget.attrs.update({"class": "code code-sm", "spellcheck": "false", "rows": 6})

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, (dict, list)):
            return json.dumps(value, indent=2, ensure_ascii=False)
        return value

    def to_python(self, value: Any) -> dict[str, Any]:
        text = super().to_python(value)
        if not text:
            return {}
        # Depth first, on the raw text: a deep enough value would crash the parser.
        problem = raw_depth_problem(text)
        if problem is None:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValidationError(
                    f"{self.what} is not valid JSON: {exc.msg} "
                    f"(line {exc.lineno}, column {exc.colno})."
                ) from None
            problem = value_problem(data)
        if problem is not None:
            where, message = problem
            raise ValidationError(f"{self.what}: {located(message, where)}")
        if not isinstance(data, dict):
            raise ValidationError(f'{self.what} must be a JSON object, like {{"key": "value"}}.')
        return data


# Integrations ----------------------------------------------------------------------------


class IntegrationCreateForm(StoredValuesForm):
    name = forms.CharField(max_length=200)
    description = VerbatimTextField(widget=forms.Textarea(attrs={"rows": 3}))
    environment = forms.ChoiceField(
        choices=Environment.choices, initial=Environment.SANDBOX, required=False
    )

    def __init__(self, *args: Any, may_choose_environment: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not may_choose_environment:
            self.fields["environment"].disabled = True
            self.fields["environment"].help_text = (
                "New integrations start in the sandbox; approvers and administrators can "
                "create production ones."
            )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise ValidationError("Give the integration a name.")
        return name

    def clean_environment(self) -> str:
        return self.cleaned_data.get("environment") or Environment.SANDBOX

    def service_data(self) -> dict[str, Any]:
        return dict(self.cleaned_data)


def _ignore_field_name(type_key: str) -> str:
    return f"ignore_{type_key}"


IGNORE_TYPES: tuple[tuple[str, str], ...] = (("integration", "Integration"),) + tuple(
    (key, rt.label) for key, rt in RESOURCE_TYPES.items()
)


IGNORE_EXAMPLES = {
    "integration": "description",
    "connection": "config.base_url",
    "lookup_cache": "settings.ttl_days",
    "script": "code",
    "flow": "schedule, enabled",
    "step": "config.batch_size",
}


class IntegrationSettingsForm(StoredValuesForm):
    name = forms.CharField(max_length=200)
    description = VerbatimTextField(widget=forms.Textarea(attrs={"rows": 3}))
    environment = forms.ChoiceField(choices=Environment.choices)
    documentation = VerbatimTextField(
        widget=forms.Textarea(attrs={"rows": 12, "class": "code-light"}),
        help_text="Markdown: # headings, **bold**, lists, links, tables, `code`.",
    )
    snapshot_schedule = forms.ChoiceField(
        choices=SnapshotSchedule.choices,
        help_text="Automatic snapshots of this integration.",
    )

    def __init__(
        self, *args: Any, integration: Integration, may_change_environment: bool, **kwargs: Any
    ) -> None:
        initial = {
            "name": integration.name,
            "description": integration.description,
            "environment": integration.environment,
            "documentation": integration.documentation,
            "snapshot_schedule": integration.snapshot_schedule,
        }
        for key, _label in IGNORE_TYPES:
            initial[_ignore_field_name(key)] = ", ".join(
                (integration.ignore_fields or {}).get(key, [])
            )
        kwargs.setdefault("initial", initial)
        super().__init__(*args, **kwargs)
        self.integration = integration
        for key, label in IGNORE_TYPES:
            self.fields[_ignore_field_name(key)] = forms.CharField(
                label=label,
                required=False,
                help_text=f"e.g. {IGNORE_EXAMPLES.get(key, 'name')}",
                widget=forms.TextInput(attrs={"class": "mono"}),
            )
        if not may_change_environment:
            self.fields["environment"].disabled = True
            self.fields["environment"].help_text = "Only administrators change the environment."

    def ignore_rows(self) -> list[forms.BoundField]:
        return [self[_ignore_field_name(key)] for key, _label in IGNORE_TYPES]

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise ValidationError("Give the integration a name.")
        return name

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        ignore: dict[str, list[str]] = {}
        stored = self.integration.ignore_fields or {}
        for key, _label in IGNORE_TYPES:
            field_name = _ignore_field_name(key)
            raw = data.pop(field_name, "") or ""
            if self.submitted_unchanged(field_name):
                if key in stored:
                    ignore[key] = stored[key]
                continue
            paths = [p.strip() for p in re.split(r"[,\n]", raw) if p.strip()]
            if paths:
                ignore[key] = paths
        try:
            data["ignore_fields"] = validate_ignore_fields(ignore)
        except ValidationError as exc:
            self.add_error(None, exc)
        return data

    def service_data(self) -> dict[str, Any]:
        return {
            k: self.cleaned_data[k]
            for k in (
                "name",
                "description",
                "environment",
                "documentation",
                "snapshot_schedule",
                "ignore_fields",
            )
            if k in self.cleaned_data
        }


# Resources -----------------------------------------------------------------------------


class _NameMixin:
    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise ValidationError("A name is required.")
        return name


class ConnectionForm(_NameMixin, StoredValuesForm):
    name = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=ConnectionKind.choices)
    config = JSONObjectField(
        what="Config",
        help_text='Settings as a JSON object, e.g. {"base_url": "https://api.example.com"}.',
    )
    credentials = JSONObjectField(
        what="Credentials",
        help_text="Write-only: never shown again. Leave empty to keep what is stored.",
    )
    clear_credentials = forms.BooleanField(required=False, label="Remove the stored credentials")

    def __init__(self, *args: Any, instance: Connection | None = None, **kwargs: Any) -> None:
        if instance is not None:
            kwargs.setdefault(
                "initial", {"name": instance.name, "kind": instance.kind, "config": instance.config}
            )
        super().__init__(*args, **kwargs)
        self.instance = instance
        self.fields["credentials"].widget.attrs["placeholder"] = '{"api_key": "…"}'
        self.fields["credentials"].widget.attrs["autocomplete"] = "off"
        if instance is None:
            del self.fields["clear_credentials"]

    def service_data(self) -> dict[str, Any]:
        data = {k: self.cleaned_data[k] for k in ("name", "kind", "config")}
        if self.cleaned_data.get("clear_credentials"):
            data["credentials"] = {}
        elif self.cleaned_data.get("credentials"):
            data["credentials"] = self.cleaned_data["credentials"]
        return data


class FlowForm(_NameMixin, StoredValuesForm):
    name = forms.CharField(max_length=200)
    description = VerbatimTextField(widget=forms.Textarea(attrs={"rows": 3}))
    enabled = forms.BooleanField(required=False, initial=True)
    schedule = forms.CharField(
        max_length=100,
        required=False,
        help_text="Cron: minute hour day-of-month month day-of-week, e.g. */15 * * * *. "
        "Empty: runs only when started.",
    )

    def __init__(self, *args: Any, instance: Flow | None = None, **kwargs: Any) -> None:
        if instance is not None:
            kwargs.setdefault(
                "initial",
                {
                    "name": instance.name,
                    "description": instance.description,
                    "enabled": instance.enabled,
                    "schedule": instance.schedule,
                },
            )
        super().__init__(*args, **kwargs)
        self.fields["schedule"].widget.attrs.update(
            {"class": "mono", "placeholder": "*/15 * * * *"}
        )

    def service_data(self) -> dict[str, Any]:
        return {k: self.cleaned_data[k] for k in ("name", "description", "enabled", "schedule")}


class MappingForm(forms.Form):
    # Paths are kept as typed: a record's field may be named with spaces.
    source = forms.CharField(
        max_length=200, strip=False, widget=forms.TextInput(attrs={"class": "mono"})
    )
    target = forms.CharField(
        max_length=200, strip=False, widget=forms.TextInput(attrs={"class": "mono"})
    )
    lookup_cache = forms.ChoiceField(
        required=False,
        label="Through lookup cache",
        error_messages={"invalid_choice": "Pick one of this integration's lookup caches."},
    )

    def __init__(self, *args: Any, caches: list[tuple[str, str]] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["lookup_cache"].choices = [("", "—")] + list(caches)
        self.fields["source"].widget.attrs["placeholder"] = "order.sku"
        self.fields["target"].widget.attrs["placeholder"] = "item_id"
        # The rows sit in a table whose header names the columns, which a screen reader
        # does not tie to an input: each input carries its own name.
        row = self._row_number()
        for name, label in (
            ("source", "Source field"),
            ("target", "Target field"),
            ("lookup_cache", "Through lookup cache"),
        ):
            self.fields[name].widget.attrs["aria-label"] = f"{label}, mapping {row}"

    def _row_number(self) -> str:
        index = (self.prefix or "").rpartition("-")[2]
        return str(int(index) + 1) if index.isdigit() else "(new)"


class BaseMappingFormSet(forms.BaseFormSet):
    """The mapping rows of a step; `stored` are the step's mappings the rows were made from."""

    def add_fields(self, form: forms.Form, index: int | None) -> None:
        super().add_fields(form, index)
        if "DELETE" in form.fields:
            row = "(new)" if index is None else str(index + 1)
            form.fields["DELETE"].widget.attrs["aria-label"] = f"Remove mapping {row}"

    def __init__(self, *args: Any, stored: list[dict[str, Any]] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stored = list(stored)

    def mappings(self) -> list[dict[str, Any]]:
        """Every row kept, in order: an untouched row is its stored mapping, as it was."""
        rows = []
        known = min(len(self.stored), self.initial_form_count())
        for i, form in enumerate(self.forms):
            stored = self.stored[i] if i < known else None
            if self._should_delete_form(form):
                continue
            if not form.has_changed():
                if stored is not None:
                    rows.append(stored)
                continue  # an empty new row
            data = form.cleaned_data
            row = {**(stored or {}), "source": data["source"], "target": data["target"]}
            cache = data.get("lookup_cache") or None
            # A row that had no cache keeps its own way of saying so (null, "" or no key).
            if cache is not None or stored is None or (stored or {}).get("lookup_cache"):
                row["lookup_cache"] = cache
            rows.append(row)
        return rows


MappingFormSet = forms.formset_factory(
    MappingForm, formset=BaseMappingFormSet, extra=1, can_delete=True
)


class StepForm(_NameMixin, StoredValuesForm):
    name = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=StepKind.choices)
    connection = forms.ModelChoiceField(
        queryset=Connection.objects.none(),
        required=False,
        empty_label="— none —",
        help_text="One of this integration's connections.",
        error_messages={
            "invalid_choice": "That connection belongs to another integration (or is gone); "
            "pick one of this integration's connections."
        },
    )
    options = JSONObjectField(
        what="Options",
        label="Other settings",
        help_text='Step settings besides the mappings, as a JSON object, e.g. {"batch_size": 100}.',
    )

    def __init__(self, *args: Any, integration: Integration, instance=None, **kwargs: Any) -> None:
        if instance is not None:
            options = {k: v for k, v in (instance.config or {}).items() if k != "mappings"}
            kwargs.setdefault(
                "initial",
                {
                    "name": instance.name,
                    "kind": instance.kind,
                    "connection": instance.connection_id,
                    "options": options,
                },
            )
        super().__init__(*args, **kwargs)
        self.integration = integration
        self.instance = instance
        self.fields["connection"].queryset = Connection.objects.filter(integration=integration)
        caches = [
            (str(c.lineage_id), c.name)
            for c in LookupCache.objects.filter(integration=integration).only("lineage_id", "name")
        ]
        stored = []
        if instance is not None:
            stored = [m for m in (instance.config or {}).get("mappings", []) if isinstance(m, dict)]
        # A mapping through a cache since deleted shows it as missing rather than as no cache,
        # so saving the step does not quietly drop the reference (the service names it).
        known = {value for value, _name in caches}
        gone = {str(m["lookup_cache"]) for m in stored if m.get("lookup_cache")} - known
        names = names_for(gone, [integration.pk]) if gone else {}
        for cache in sorted(gone):
            ref = names.get(cache)
            caches.append((cache, f"missing cache: {ref}" if ref else "missing cache"))
        self.mappings = MappingFormSet(
            self.data if self.is_bound else None,
            initial=[
                {
                    "source": m.get("source", ""),
                    "target": m.get("target", ""),
                    "lookup_cache": m.get("lookup_cache") or "",
                }
                for m in stored
            ]
            or None,
            prefix="mappings",
            form_kwargs={"caches": caches},
            stored=stored,
        )

    def is_valid(self) -> bool:
        # Both run, so every error shows at once.
        form_ok = super().is_valid()
        mappings_ok = self.mappings.is_valid()
        return form_ok and mappings_ok

    def service_data(self) -> dict[str, Any]:
        config = dict(self.cleaned_data.get("options") or {})
        mappings = self.mappings.mappings()
        # A step saved without mappings does not gain an empty list it never had.
        if mappings or self.instance is None or "mappings" in (self.instance.config or {}):
            config["mappings"] = mappings
        return {
            "name": self.cleaned_data["name"],
            "kind": self.cleaned_data["kind"],
            "connection": self.cleaned_data.get("connection"),
            "config": config,
        }


class ScriptForm(_NameMixin, StoredValuesForm):
    name = forms.CharField(max_length=200)
    function = forms.CharField(
        max_length=200,
        help_text="The entry function the platform calls, e.g. preSavePage.",
        widget=forms.TextInput(attrs={"class": "mono"}),
    )
    code = VerbatimTextField(
        widget=forms.Textarea(
            attrs={"class": "code", "spellcheck": "false", "rows": 18, "wrap": "off"}
        ),
    )

    def __init__(self, *args: Any, instance=None, **kwargs: Any) -> None:
        if instance is not None:
            kwargs.setdefault(
                "initial",
                {"name": instance.name, "function": instance.function, "code": instance.code},
            )
        super().__init__(*args, **kwargs)

    def clean_function(self) -> str:
        function = self.cleaned_data["function"].strip()
        if not re.fullmatch(r"[A-Za-z_$][\w$]*", function):
            raise ValidationError(
                "A function name is letters, digits, _ or $, not starting with a digit."
            )
        return function

    def service_data(self) -> dict[str, Any]:
        return {k: self.cleaned_data[k] for k in ("name", "function", "code")}


class LookupCacheForm(_NameMixin, StoredValuesForm):
    name = forms.CharField(max_length=200)
    key_path = forms.CharField(
        max_length=200,
        strip=False,
        help_text="The field that holds each entry's key, e.g. sku. CSV uploads need a column "
        "with this name.",
        widget=forms.TextInput(attrs={"class": "mono"}),
    )
    settings = JSONObjectField(
        what="Settings", help_text='Cache settings as a JSON object, e.g. {"ttl_days": 30}.'
    )

    def __init__(self, *args: Any, instance=None, **kwargs: Any) -> None:
        if instance is not None:
            kwargs.setdefault(
                "initial",
                {
                    "name": instance.name,
                    "key_path": instance.key_path,
                    "settings": instance.settings,
                },
            )
        super().__init__(*args, **kwargs)

    def clean_key_path(self) -> str:
        # A path, kept as typed (a record's field may be named with spaces).
        key_path = self.cleaned_data["key_path"]
        if not key_path.strip():
            raise ValidationError("A key path is required.")
        return key_path

    def service_data(self) -> dict[str, Any]:
        return {k: self.cleaned_data[k] for k in ("name", "key_path", "settings")}


class CacheEntryForm(forms.Form):
    key = forms.CharField(max_length=500, widget=forms.TextInput(attrs={"class": "mono"}))
    value = JSONObjectField(what="The value", help_text='A JSON object, e.g. {"erp_item": "I-1"}.')

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["value"].widget.attrs["rows"] = 3

    def service_entries(self) -> list[dict[str, Any]]:
        return [{"key": self.cleaned_data["key"], "value": self.cleaned_data["value"]}]


class CacheUploadForm(forms.Form):
    file = forms.FileField(
        help_text="A .csv file with a column named like the key path, or a .json file: a list "
        'of objects, or {"key": value, …}. Entries with an existing key are replaced.',
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.json,text/csv,application/json"}),
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        name = (upload.name or "").lower()
        if not name.endswith((".csv", ".json")):
            raise ValidationError("Upload a .csv or .json file.")
        if upload.size > MAX_UPLOAD_BYTES:
            raise ValidationError(
                f"The file is {upload.size // 1024 // 1024} MB; uploads are limited to "
                f"{MAX_UPLOAD_BYTES // 1024 // 1024} MB."
            )
        return upload


# Access --------------------------------------------------------------------------------


class _UserChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: User) -> str:
        return f"{obj.username} ({obj.get_role_display().lower()})"


class GrantForm(forms.Form):
    user = _UserChoiceField(
        queryset=User.objects.none(), to_field_name="username", empty_label="— choose —"
    )
    # Initially what the select shows first, so an untouched new row is an unchanged one.
    level = forms.ChoiceField(choices=AccessLevel.choices, initial=AccessLevel.MANAGE)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Grants matter for developers and monitors (administrators and approvers see
        # everything), but any active user may hold one: creators get `manage`.
        self.fields["user"].queryset = User.objects.filter(is_active=True).order_by(
            "role", "username"
        )


class BaseGrantFormSet(forms.BaseFormSet):
    def clean(self) -> None:
        if any(self.errors):
            return
        seen: set[str] = set()
        for form in self.forms:
            if not form.has_changed() or self._should_delete_form(form):
                continue
            user = form.cleaned_data.get("user")
            if user is None:
                continue
            if user.username in seen:
                raise ValidationError(f"{user.username} is listed twice; keep one row.")
            seen.add(user.username)

    def grants(self) -> list[dict[str, str]]:
        rows = []
        for form in self.forms:
            if self._should_delete_form(form) or not form.cleaned_data.get("user"):
                continue
            rows.append(
                {"user": form.cleaned_data["user"].username, "level": form.cleaned_data["level"]}
            )
        return rows


GrantFormSet = forms.formset_factory(GrantForm, formset=BaseGrantFormSet, extra=1, can_delete=True)


class ConfirmDeleteForm(forms.Form):
    """Deleting an integration asks for its name, so it is never a slip of the mouse."""

    confirm_name = forms.CharField(label="Type the integration's name to confirm")

    def __init__(self, *args: Any, integration: Integration, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.integration = integration

    def clean_confirm_name(self) -> str:
        value = self.cleaned_data["confirm_name"].strip()
        if value != self.integration.name:
            raise ValidationError(f"Type {self.integration.name} exactly to delete it.")
        return value


class ProtectionForm(forms.Form):
    """Turn change control on, or off with a reason (kept in the integration's history)."""

    protected = forms.BooleanField(required=False, widget=forms.HiddenInput)
    reason = forms.CharField(
        required=False,
        max_length=1000,
        label="Why turn protection off?",
        help_text="Kept in the history, e.g. “Emergency fix for incident 1234”.",
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def service_data(self) -> dict[str, Any]:
        return {
            "protected": self.cleaned_data["protected"],
            "reason": self.cleaned_data["reason"].strip(),
        }
