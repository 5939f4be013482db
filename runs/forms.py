"""Forms of the run pages: the Runs tab's filters and a test run's records."""

from __future__ import annotations

import json
from typing import Any

from django import forms

from integrations.models import Integration

from .alerts import KINDS, PARAM_FIELDS

MAX_TEST_RECORDS = 1000


class TestRunForm(forms.Form):
    """Records pasted as JSON (a list of objects, or one object), or none: the flow's
    saved samples."""

    records = forms.CharField(
        required=False,
        label="Records (JSON)",
        widget=forms.Textarea(attrs={"class": "code-sm", "rows": 10, "spellcheck": "false"}),
        help_text="A JSON array of records, as the flow's export would read them. "
        "Leave empty to use the saved samples.",
    )

    def clean_records(self) -> list[dict[str, Any]] | None:
        text = self.cleaned_data["records"].strip()
        if not text:
            return None
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(
                f"This is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})."
            ) from None
        if isinstance(value, dict):
            value = [value]
        if not isinstance(value, list) or not value:
            raise forms.ValidationError("Give a JSON array with at least one record.")
        bad = next((i for i, r in enumerate(value, start=1) if not isinstance(r, dict)), None)
        if bad is not None:
            raise forms.ValidationError(f"Record {bad} is not a JSON object.")
        if len(value) > MAX_TEST_RECORDS:
            raise forms.ValidationError(
                f"{len(value)} records: a test run takes at most {MAX_TEST_RECORDS}."
            )
        return value


class BehaviourRecordsForm(TestRunForm):
    """Records to test a pull's behaviour with (every flow it touches), or none: each
    flow's saved samples."""

    records = forms.CharField(
        required=False,
        label="Records to test with (JSON)",
        widget=forms.Textarea(attrs={"class": "code-sm", "rows": 4, "spellcheck": "false"}),
        help_text="A JSON array of records, run through every flow the pull changes. Leave "
        "empty to use each flow's saved samples.",
    )


class MonitoringFilterForm(forms.Form):
    """The Monitoring page's filters (also read by its CSV exports): integration, flow,
    environment and range (24 h / 7 d / 30 d, or custom dates). Choices list only what
    the user may see."""

    RANGE_CHOICES = [("24h", "Last 24 h"), ("7d", "Last 7 days"), ("30d", "Last 30 days")]

    integration = forms.TypedChoiceField(
        required=False, coerce=int, empty_value=None, label="Integration"
    )
    flow = forms.ChoiceField(required=False, label="Flow")
    environment = forms.ChoiceField(required=False, label="Environment")
    range = forms.ChoiceField(
        required=False, choices=[*RANGE_CHOICES, ("custom", "Custom dates")], label="Range"
    )
    since = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args: Any, integrations: Any, **kwargs: Any) -> None:
        from integrations.models import Environment, Flow

        super().__init__(*args, **kwargs)
        visible = list(integrations.order_by("name", "pk").values_list("pk", "name"))
        self.fields["integration"].choices = [("", "All integrations")] + visible
        names = dict(visible)
        flows = (
            Flow.objects.filter(integration__in=[pk for pk, _ in visible])
            .order_by("name", "pk")
            .values_list("lineage_id", "name", "integration_id")
        )
        self.fields["flow"].choices = [("", "All flows")] + [
            (str(lineage), f"{name} · {names.get(integration, '')}")
            for lineage, name, integration in flows
        ]
        self.fields["environment"].choices = [("", "All environments"), *Environment.choices]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("range") == "custom":
            since, until = data.get("since"), data.get("until")
            if not since or not until:
                raise forms.ValidationError("A custom range needs a From and a To date.")
            if since > until:
                raise forms.ValidationError("The From date is after the To date.")
        return data


class AlertRuleForm(forms.Form):
    """A rule's kind, flow and parameters; `runs.alerts.alert_rule_clean` judges them (the
    bounds per kind are declared there). Each parameter field says which kinds use it, so
    the page shows only the ones the chosen kind needs."""

    kind = forms.ChoiceField(label="When")
    flow_lineage_id = forms.ChoiceField(required=False, label="Flow")
    threshold = forms.FloatField(required=False, label="Threshold")
    runs = forms.IntegerField(required=False, label="Runs (N)")
    hours = forms.IntegerField(required=False, label="Hours (H)")

    def __init__(self, *args: Any, integration: Integration, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = [(k, k.label) for k in KINDS]
        flows = integration.flows.order_by("name", "pk").values_list("lineage_id", "name")
        self.fields["flow_lineage_id"].choices = [("", "Any flow (all runs together)")] + [
            (str(i), n) for i, n in flows
        ]
        for name in PARAM_FIELDS:
            uses = [(k, p) for k, spec in KINDS.items() for p in spec.params if p.field == name]
            integer = all(p.integer for _, p in uses)
            field = self.fields[name]
            field.widget.attrs.update(
                {
                    "data-kinds": " ".join(kind for kind, _ in uses),
                    # The page names the parameter as the chosen kind does (alerts.js).
                    "data-labels": json.dumps({kind: p.label for kind, p in uses}),
                    "data-bounds": json.dumps({kind: p.bounds for kind, p in uses}),
                    "step": "1" if integer else "any",
                    "inputmode": "numeric" if integer else "decimal",
                }
            )
            field.help_text = "; ".join(f"{p.label} ({p.bounds})" for _, p in uses)

    def service_data(self) -> dict[str, Any]:
        return dict(self.cleaned_data)


class AlertMuteForm(forms.Form):
    muted_until = forms.DateTimeField(
        label="Mute until (UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
