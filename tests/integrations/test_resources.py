"""The resource registry answers every per-type question, and hides secrets by one rule."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from integrations.resources import (
    PARENT_FIELDS,
    RESOURCE_TYPES,
    field_meaning,
    hide_secrets,
    is_code_field,
)
from integrations.value_diff import as_text

VALUE = {
    "name": "ERP",
    "credentials": {"token": "s3cret"},
    "nested": [{"credentials": "also", "url": "https://erp"}],
}


def test_a_shown_value_drops_secret_keys_at_any_depth():
    assert hide_secrets(VALUE) == {"name": "ERP", "nested": [{"url": "https://erp"}]}
    assert "s3cret" not in as_text(VALUE) and "also" not in as_text(VALUE)


def test_the_audit_keeps_the_key_and_masks_its_value_by_the_same_rule():
    assert hide_secrets(VALUE, mask="***") == {
        "name": "ERP",
        "credentials": "***",
        "nested": [{"credentials": "***", "url": "https://erp"}],
    }
    assert VALUE["credentials"] == {"token": "s3cret"}  # the original is left alone


def test_per_type_questions_read_the_registry():
    assert is_code_field("script", "code") and not is_code_field("script", "name")
    assert not is_code_field("flow", "code") and not is_code_field("unknown", "code")
    assert field_meaning("flow", "schedule", "*/15 * * * *") == "every 15 minutes"
    assert field_meaning("flow", "name", "*/15 * * * *") == ""
    assert field_meaning("flow", "schedule", None) == ""
    assert PARENT_FIELDS == {"step": "flow"}


def test_a_steps_validate_hook_names_the_config_field():
    validate = RESOURCE_TYPES["step"].validate
    validate({"config": {"mappings": [{"source": "a", "target": "b"}]}})
    with pytest.raises(ValidationError) as refused:
        validate({"config": {"mappings": "nope"}})
    assert refused.value.message_dict == {"config": ["mappings must be a list."]}
