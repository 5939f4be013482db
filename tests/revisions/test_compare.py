"""Compare any two states of an integration, and what a snapshot page holds (issue 17)."""

from __future__ import annotations

from django.urls import reverse

from revisions import services
from tests.factories import FlowFactory, StepFactory


def compare_url(revision, other="now"):
    return reverse("revisions:compare", args=[revision.pk]) + f"?with={other}"


def test_compare_a_snapshot_with_now_and_with_a_later_snapshot(dev_client, integration, developer):
    first = services.snapshot_create(integration=integration, user=developer, description="One")
    flow = FlowFactory(integration=integration, name="Refunds", schedule="*/30 * * * *")
    StepFactory(
        flow=flow,
        name="Shape",
        config={"mappings": [{"source": "a", "target": "b", "lookup_cache": None}]},
    )
    second = services.snapshot_create(integration=integration, user=developer, description="Two")

    page = dev_client.get(compare_url(first)).content.decode()
    assert "Compare #1 One with the integration now" in page
    assert "Refunds" in page and "Shape" in page
    assert "Revert" not in page.split("<main", 1)[1].split("Compare #1", 1)[0]

    page = dev_client.get(compare_url(first, second.pk)).content.decode()
    assert "#2 Two" in page and "Refunds" in page
    # The same state on both sides: nothing to show.
    page = dev_client.get(compare_url(second)).content.decode()
    assert "The same" in page

    step_lid = str(flow.steps.get().lineage_id)
    diff = dev_client.get(
        reverse("revisions:compare_resource", args=[first.pk, step_lid]) + "?with=now"
    ).content.decode()
    assert "Mappings" in diff and "1 added" in diff


def test_compare_refuses_a_revision_of_another_integration_or_without_a_state(
    dev_client, integration, sandbox, developer
):
    mine = services.snapshot_create(integration=integration, user=developer, description="Mine")
    other = services.snapshot_create(integration=sandbox, user=developer, description="Theirs")
    assert dev_client.get(compare_url(mine, other.pk)).status_code == 404
    assert dev_client.get(compare_url(mine, "nonsense")).status_code == 404


def test_two_picked_rows_compare_older_with_newer(dev_client, integration, developer):
    first = services.snapshot_create(integration=integration, user=developer, description="One")
    FlowFactory(integration=integration, name="Refunds")
    second = services.snapshot_create(integration=integration, user=developer, description="Two")
    url = reverse("revisions:compare_pick", args=[integration.pk])
    response = dev_client.get(url, {"r": [second.pk, first.pk]})
    assert response.status_code == 302
    assert response["Location"] == compare_url(first, second.pk)
    response = dev_client.get(url, {"r": [first.pk]}, follow=True)
    assert "Choose two completed revisions to compare." in response.content.decode()


def test_a_snapshot_page_shows_what_it_holds_grouped_like_the_tabs(
    dev_client, integration, developer
):
    flow = FlowFactory(integration=integration, name="Refunds", schedule="*/30 * * * *")
    StepFactory(
        flow=flow,
        name="Shape",
        config={"mappings": [{"source": "order.id", "target": "memo", "lookup_cache": None}]},
    )
    snapshot = services.snapshot_create(integration=integration, user=developer, description="")
    page = dev_client.get(reverse("revisions:detail", args=[snapshot.pk])).content.decode()
    assert "What this snapshot holds" in page
    for text in ("Flows", "Connections", "Lookup caches", "Scripts", "Refunds", "Shape"):
        assert text in page
    assert "every 30 minutes" in page and "order.id" in page and "memo" in page
    # The title says "Snapshot" once.
    header = page.split('<header class="rv-header">', 1)[1].split("</header>", 1)[0]
    assert header.count("Snapshot") == 1
