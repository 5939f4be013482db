"""The sync badge other pages include, in each state a sync point can be in."""

from types import SimpleNamespace

import pytest
from django.template.loader import render_to_string

SOURCE = SimpleNamespace(name="Orders (production)")


@pytest.mark.parametrize(
    ("state", "text", "css"),
    [
        ("up_to_date", "Up to date with Orders (production)", "badge-success"),
        ("local_changes", "Local changes", "badge-info"),
        ("behind", "Behind Orders (production)", "badge-warning"),
        ("diverged", "Diverged from Orders (production)", "badge-danger"),
    ],
)
def test_sync_badge_names_the_state_and_the_source(state, text, css):
    html = render_to_string(
        "revisions/_sync_badge.html", {"sync": {"state": state, "source": SOURCE}}
    )
    assert text in html and css in html


def test_sync_badge_accepts_the_status_name_too():
    html = render_to_string(
        "revisions/_sync_badge.html", {"status": {"state": "behind", "source": SOURCE}}
    )
    assert "Behind Orders (production)" in html


def test_no_badge_for_an_integration_without_a_source():
    assert render_to_string("revisions/_sync_badge.html", {"sync": None}).strip() == ""
