"""The forms of the integration pages: parsing and messages a user can act on."""

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from integrations.forms import (
    CacheUploadForm,
    ConnectionForm,
    GrantFormSet,
    IntegrationSettingsForm,
    JSONObjectField,
    LookupCacheForm,
    ScriptForm,
    StepForm,
    apply_service_errors,
    text_with_line_endings_of,
)
from integrations.schedules import validate_cron
from tests.factories import (
    ConnectionFactory,
    IntegrationFactory,
    LookupCacheFactory,
    ScriptFactory,
    StepFactory,
    UserFactory,
)


@pytest.mark.parametrize(
    "value",
    ["*/15 * * * *", "0 6 * * 1-5", "30 2 1 jan,jul *", "0 0 * * SUN", "@hourly", "", "0  6 * * *"],
)
def test_valid_cron_schedules(value):
    validate_cron(value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("* * * *", "has 4"),
        ("60 * * * *", "minute field '60' is out of range (0–59)"),
        ("* 24 * * *", "hour field"),
        ("* * 0 * *", "day of month field"),
        ("* * * 13 *", "month field"),
        ("* * * * funday", "day of week field"),
        ("*/0 * * * *", "step of 0"),
        ("a b c d e", "minute field"),
    ],
)
def test_invalid_cron_schedules_say_which_field(value, message):
    with pytest.raises(ValidationError) as exc:
        validate_cron(value)
    assert message in exc.value.messages[0]


def test_json_object_field_reports_where_the_json_breaks():
    field = JSONObjectField(what="Config")
    assert field.clean('{"a": 1}') == {"a": 1}
    assert field.clean("") == {}
    with pytest.raises(ValidationError) as exc:
        field.clean('{"a": 1,\n "b": }')
    assert "line 2" in exc.value.messages[0]
    with pytest.raises(ValidationError, match="must be a JSON object"):
        field.clean('"text"')


def test_json_object_field_shows_objects_indented():
    assert JSONObjectField().prepare_value({"a": 1}) == '{\n  "a": 1\n}'


def test_connection_form_never_offers_stored_credentials():
    form = ConnectionForm(instance=ConnectionFactory.build(credentials={"token": "abc"}))
    assert "abc" not in str(form) and form["credentials"].value() in (None, "")


def test_connection_form_keeps_credentials_unless_given_or_cleared():
    base = {"name": "C", "kind": "http", "config": "{}"}
    form = ConnectionForm(base)
    assert form.is_valid() and "credentials" not in form.service_data()
    form = ConnectionForm({**base, "credentials": '{"k": "v"}'})
    assert form.is_valid() and form.service_data()["credentials"] == {"k": "v"}


@pytest.mark.django_db
def test_step_form_offers_only_this_integrations_connections_and_caches():
    integration = IntegrationFactory()
    mine = ConnectionFactory(integration=integration)
    ConnectionFactory()
    cache = LookupCacheFactory(integration=integration)
    LookupCacheFactory()
    form = StepForm(integration=integration)
    assert list(form.fields["connection"].queryset) == [mine]
    choices = form.mappings.forms[0].fields["lookup_cache"].choices
    assert choices == [("", "—"), (str(cache.lineage_id), cache.name)]


@pytest.mark.django_db
def test_step_form_builds_config_from_options_and_mapping_rows_kept_as_typed():
    integration = IntegrationFactory()
    form = StepForm(
        {
            "name": "S",
            "kind": "transform",
            "options": '{"batch_size": 10, "mappings": "ignored"}',
            "mappings-TOTAL_FORMS": "3",
            "mappings-INITIAL_FORMS": "0",
            "mappings-0-source": " a ",
            "mappings-0-target": "b",
            "mappings-1-source": "c",
            "mappings-1-target": "d",
            "mappings-1-DELETE": "on",
        },
        integration=integration,
    )
    assert form.is_valid(), form.errors
    assert form.service_data()["config"] == {
        "batch_size": 10,
        # Paths are stored as typed (issue #10): a field may be named with spaces.
        "mappings": [{"source": " a ", "target": "b", "lookup_cache": None}],
    }


@pytest.mark.django_db
def test_step_form_shows_existing_mappings_and_options():
    step = StepFactory(config={"retries": 2, "mappings": [{"source": "x", "target": "y"}]})
    form = StepForm(integration=step.integration, instance=step)
    assert form.initial["options"] == {"retries": 2}
    assert form.mappings.forms[0].initial == {"source": "x", "target": "y", "lookup_cache": ""}


@pytest.mark.django_db
def test_settings_form_turns_ignore_rows_into_the_ignore_fields_object():
    integration = IntegrationFactory(ignore_fields={"flow": ["schedule"]})
    form = IntegrationSettingsForm(integration=integration, may_change_environment=False)
    assert form.initial["ignore_flow"] == "schedule"
    assert form.fields["environment"].disabled
    form = IntegrationSettingsForm(
        {
            "name": "N",
            "environment": "sandbox",
            "snapshot_schedule": "weekly",
            "ignore_connection": "config.base_url,\nconfig.timeout",
            "ignore_flow": "",
        },
        integration=integration,
        may_change_environment=True,
    )
    assert form.is_valid(), form.errors
    assert form.service_data()["ignore_fields"] == {
        "connection": ["config.base_url", "config.timeout"]
    }


@pytest.mark.django_db
def test_grant_formset_refuses_a_user_twice():
    dev = UserFactory(username="dev1")
    data = {
        "grants-TOTAL_FORMS": "2",
        "grants-INITIAL_FORMS": "0",
        "grants-0-user": dev.username,
        "grants-0-level": "manage",
        "grants-1-user": dev.username,
        "grants-1-level": "monitor",
    }
    formset = GrantFormSet(data, prefix="grants")
    assert not formset.is_valid()
    assert "listed twice" in str(formset.non_form_errors())


@pytest.mark.parametrize(
    ("name", "ok"), [("a.csv", True), ("a.JSON", True), ("a.xlsx", False), ("csv", False)]
)
def test_upload_form_accepts_csv_and_json_only(name, ok):
    form = CacheUploadForm({}, {"file": SimpleUploadedFile(name, b"sku\nA\n")})
    assert form.is_valid() is ok


def test_service_errors_land_on_their_fields():
    form = ConnectionForm({"name": "C", "kind": "http", "config": "{}"})
    assert form.is_valid()
    apply_service_errors(form, ValidationError({"name": ["Taken."], "flow": ["Other."]}))
    assert form.errors["name"] == ["Taken."]
    assert form.non_field_errors() == ["flow: Other."]


# Untouched input keeps what is stored (issue #10) ----------------------------------------


@pytest.mark.parametrize(
    ("typed", "stored", "kept"),
    [
        ("a\r\nb\r\n", "", "a\nb\n"),  # a browser's CRLF for text shown with LF
        ("a\r\nb", "x\ny", "a\nb"),
        ("a\r\nb", "x\r\ny\r\n", "a\r\nb"),  # the stored text's CRLF is kept
        ("a\nb", "x\r\ny", "a\r\nb"),
        ("\t a \r", "", "\t a \n"),
    ],
)
def test_edited_text_takes_the_line_endings_of_the_stored_text(typed, stored, kept):
    assert text_with_line_endings_of(typed, stored) == kept


@pytest.mark.django_db
def test_untouched_json_text_keeps_the_stored_value_exactly():
    stored = {"b": 1.0, "a": "  spaced \t", "nested": {"z": [1, "\r\n"]}}
    conn = ConnectionFactory(config=stored)
    shown = ConnectionForm(instance=conn)["config"].value()
    # The browser sends the JSON text back with CRLF line ends.
    form = ConnectionForm(
        {"name": conn.name, "kind": conn.kind, "config": shown.replace("\n", "\r\n")},
        instance=conn,
    )
    assert form.is_valid(), form.errors
    assert form.service_data()["config"] is conn.config


@pytest.mark.django_db
def test_a_changed_value_is_still_checked_and_refused_with_its_message():
    script = ScriptFactory(function="preMap")
    form = ScriptForm(
        {"name": script.name, "function": "pre-map", "code": script.code}, instance=script
    )
    assert not form.is_valid()
    assert "letters, digits, _ or $" in form.errors["function"][0]


@pytest.mark.django_db
def test_a_whitespace_only_key_path_is_refused_but_a_spaced_one_is_kept():
    cache = LookupCacheFactory(key_path="sku")
    base = {"name": cache.name, "settings": "{}"}
    form = LookupCacheForm({**base, "key_path": " \t "}, instance=cache)
    assert not form.is_valid() and form.errors["key_path"] == ["A key path is required."]
    form = LookupCacheForm({**base, "key_path": " item sku "}, instance=cache)
    assert form.is_valid() and form.service_data()["key_path"] == " item sku "


def _step_data(step, **changes):
    data = {
        "name": step.name,
        "kind": step.kind,
        "connection": "",
        "options": ConnectionForm.base_fields["config"].prepare_value(
            {k: v for k, v in step.config.items() if k != "mappings"}
        ),
        "mappings-TOTAL_FORMS": str(len(step.config.get("mappings", [])) + 1),
        "mappings-INITIAL_FORMS": str(len(step.config.get("mappings", []))),
    }
    for i, m in enumerate(step.config.get("mappings", [])):
        data[f"mappings-{i}-source"] = m["source"]
        data[f"mappings-{i}-target"] = m["target"]
        data[f"mappings-{i}-lookup_cache"] = m.get("lookup_cache") or ""
    data.update(changes)
    return data


@pytest.mark.django_db
def test_mapping_rows_untouched_edited_deleted_and_added():
    step = StepFactory(
        config={
            "batch_size": 5,
            "mappings": [
                {"source": "a", "target": "b"},
                {"source": "c", "target": "d", "lookup_cache": None},
                {"source": "e", "target": "f", "lookup_cache": ""},
            ],
        }
    )
    form = StepForm(
        _step_data(
            step,
            **{
                "mappings-1-target": " d2 ",
                "mappings-2-DELETE": "on",
                "mappings-3-source": "g",
                "mappings-3-target": "h",
            },
        ),
        integration=step.integration,
        instance=step,
    )
    assert form.is_valid(), (form.errors, form.mappings.errors)
    assert form.service_data()["config"] == {
        "batch_size": 5,
        "mappings": [
            {"source": "a", "target": "b"},  # untouched: as stored, no key added
            {"source": "c", "target": " d2 ", "lookup_cache": None},
            {"source": "g", "target": "h", "lookup_cache": None},
        ],
    }


@pytest.mark.django_db
def test_a_step_without_mappings_does_not_gain_an_empty_list():
    step = StepFactory(config={"path": "/orders"})
    form = StepForm(_step_data(step), integration=step.integration, instance=step)
    assert form.is_valid(), form.errors
    assert form.service_data()["config"] == {"path": "/orders"}


@pytest.mark.django_db
def test_editing_one_kind_of_ignored_fields_keeps_the_others_as_stored():
    integration = IntegrationFactory(
        ignore_fields={"connection": ["config.base_url"], "flow": ["enabled", "schedule"]}
    )
    form = IntegrationSettingsForm(integration=integration, may_change_environment=True)
    data = {name: form[name].value() or "" for name in form.fields}
    data["ignore_script"] = "code"
    form = IntegrationSettingsForm(data, integration=integration, may_change_environment=True)
    assert form.is_valid(), form.errors
    assert form.service_data()["ignore_fields"] == {
        "connection": ["config.base_url"],
        "flow": ["enabled", "schedule"],
        "script": ["code"],
    }


def test_every_mapping_input_has_an_accessible_name():
    """The mapping table's header is not a label: each input names itself and its row."""
    from integrations.forms import MappingFormSet

    formset = MappingFormSet(
        prefix="mappings",
        initial=[{"source": "a", "target": "b"}],
        form_kwargs={"caches": []},
    )
    html = str(formset.forms[0]) + str(formset.forms[1]) + str(formset.empty_form)
    for label in ("Source field", "Target field", "Through lookup cache"):
        assert f'aria-label="{label}, mapping 1"' in html
        assert f'aria-label="{label}, mapping 2"' in html
        assert f'aria-label="{label}, mapping (new)"' in html
    assert 'aria-label="Remove mapping 1"' in html
