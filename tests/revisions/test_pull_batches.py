# ruff: noqa: F811  (the API tests' token-client fixtures, imported by name)
"""Pulls into many: one pull into each chosen family member; refusals per target; "Merge all
clean" through each target's approval rule."""

from __future__ import annotations

import pytest

from integrations.models import AccessLevel, Environment, FlowStep
from integrations.services import resource_update
from revisions import services
from revisions.batches import BatchRow
from revisions.models import PullBatch, Revision, RevisionStatus
from tests.api.conftest import dev_api, monitor_api, outsider, outsider_api  # noqa: F401
from tests.factories import FlowFactory, GrantFactory, IntegrationFactory, StepFactory


def _set_target_path(integration, value):
    """The one mapping into `ref` reads `value`: mappings merge per target, so two sides
    changing this one differently is a conflict."""
    step = FlowStep.objects.get(integration=integration, name="Map")
    resource_update(
        instance=step,
        data={"config": {"mappings": [{"source": value, "target": "ref", "lookup_cache": None}]}},
    )


@pytest.fixture
def family(db, developer, run_on_commit):
    """A sandbox "Template" with four sandbox clones and one production clone; the template
    then changes its mapping; clone 3 changed the same mapping its own way (a conflict)."""
    template = IntegrationFactory(name="Template", environment=Environment.SANDBOX)
    GrantFactory(integration=template, user=developer, level=AccessLevel.MANAGE)
    flow = FlowFactory(integration=template, name="Orders")
    StepFactory(flow=flow, name="Map", kind="transform", config={"mappings": []})
    _set_target_path(template, "external_id")
    clones = []
    for n in range(1, 6):
        env = Environment.PRODUCTION if n == 5 else Environment.SANDBOX
        clone = run_on_commit(
            services.integration_clone,
            source=template,
            user=developer,
            name=f"Clone {n}",
            environment=env,
        )
        clones.append(clone)
    _set_target_path(template, "order_ref")
    _set_target_path(clones[2], "legacy_ref")
    return template, clones


def pulls_of(body):
    return {p["target_name"]: p for p in body["pulls"]}


def test_pull_into_opens_one_pull_per_target_and_reports_refusals(
    family, dev_api, developer, run_on_commit
):
    template, clones = family
    stranger = IntegrationFactory(name="Stranger", environment=Environment.SANDBOX)
    GrantFactory(integration=stranger, user=developer, level=AccessLevel.MANAGE)
    hidden = IntegrationFactory(name="Hidden", environment=Environment.SANDBOX)
    # clone 4 is busy: a pull from the template is already open on it
    busy = run_on_commit(services.pull_create, target=clones[3], source=template, user=developer)
    ids = [c.pk for c in clones] + [stranger.pk, hidden.pk]
    answer = run_on_commit(
        dev_api.post,
        f"/api/v1/integrations/{template.pk}/pull-into",
        {"targets": ids, "description": "Order reference"},
        content_type="application/json",
    )
    assert answer.status_code == 202
    body = answer.json()
    assert set(body) >= {"id", "pulls"}
    assert [set(p) >= {"target", "revision", "status", "summary"} for p in body["pulls"]]
    pulls = pulls_of(body)
    assert pulls["Stranger"]["status"] == "refused"
    assert "not of the same family" in pulls["Stranger"]["detail"]
    assert pulls[f"Integration {hidden.pk}"]["target"] is None  # its name is not told
    assert (
        pulls["Clone 4"]["status"] == "refused"
        and "already has an open" in pulls["Clone 4"]["detail"]
    )
    assert busy.pk not in [p["revision"] for p in body["pulls"]]
    # the others went on: their pulls are computed by their own tasks
    later = pulls_of(dev_api.get(f"/api/v1/pull-batches/{body['id']}").json())
    for name in ("Clone 1", "Clone 2", "Clone 3", "Clone 5"):
        assert later[name]["status"] == "ready", name
        assert Revision.objects.get(pk=later[name]["revision"]).description == "Order reference"
    assert later["Clone 1"]["summary"]["modified"] == 1
    assert later["Clone 3"]["summary"]["unresolved"] == 1


def test_merge_all_clean_takes_each_through_its_targets_rule(
    family, dev_api, developer, run_on_commit
):
    template, clones = family
    answer = run_on_commit(
        dev_api.post,
        f"/api/v1/integrations/{template.pk}/pull-into",
        {"targets": [c.pk for c in clones]},
        content_type="application/json",
    )
    batch_id = answer.json()["id"]
    merged = run_on_commit(dev_api.post, f"/api/v1/pull-batches/{batch_id}/merge-clean")
    assert merged.status_code == 200
    pulls = pulls_of(dev_api.get(f"/api/v1/pull-batches/{batch_id}").json())
    for name in ("Clone 1", "Clone 2", "Clone 4"):
        assert pulls[name]["status"] == "completed", name
    step = FlowStep.objects.get(integration=clones[0], name="Map")
    assert step.config["mappings"][0]["source"] == "order_ref"
    # the conflicting one waits, untouched, and says why
    assert pulls["Clone 3"]["status"] == "ready"
    assert "conflict" in pulls["Clone 3"]["merge_note"]
    assert (
        FlowStep.objects.get(integration=clones[2], name="Map").config["mappings"][0]["source"]
        == "legacy_ref"
    )
    # production waits for an approver, pinned to its own changeset
    assert pulls["Clone 5"]["status"] == "awaiting_approval"
    rev = Revision.objects.get(pk=pulls["Clone 5"]["revision"])
    assert rev.approvals.count() == 1


def test_bad_targets_are_refused_and_nothing_is_opened(family, dev_api):
    template, _ = family
    url = f"/api/v1/integrations/{template.pk}/pull-into"
    # An id beyond 64 bits is bad input too, not a database error (found by the schema fuzz).
    for body in ({"targets": []}, {"targets": ["x"]}, {}, {"targets": [1, 2**70]}):
        answer = dev_api.post(url, body, content_type="application/json")
        assert answer.status_code == 400
        assert any(key.startswith("targets") for key in answer.json()["errors"])
    assert not PullBatch.objects.exists()
    assert not Revision.objects.filter(type="pull").exists()


def test_a_monitor_may_not_pull_into_many(family, monitor_api, monitor):
    template, clones = family
    GrantFactory(integration=template, user=monitor, level=AccessLevel.MONITOR)
    answer = monitor_api.post(
        f"/api/v1/integrations/{template.pk}/pull-into",
        {"targets": [clones[0].pk]},
        content_type="application/json",
    )
    assert answer.status_code == 403
    assert not PullBatch.objects.exists()


def test_a_monitor_may_not_merge_a_batch(family, dev_api, monitor_api, monitor, run_on_commit):
    template, clones = family
    GrantFactory(integration=template, user=monitor, level=AccessLevel.MONITOR)
    batch_id = run_on_commit(
        dev_api.post,
        f"/api/v1/integrations/{template.pk}/pull-into",
        {"targets": [clones[0].pk]},
        content_type="application/json",
    ).json()["id"]
    assert monitor_api.get(f"/api/v1/pull-batches/{batch_id}").status_code == 200
    answer = monitor_api.post(f"/api/v1/pull-batches/{batch_id}/merge-clean")
    assert answer.status_code == 403
    assert Revision.objects.get(integration=clones[0], type="pull").status == "ready"


def test_someone_who_cannot_see_the_source_gets_404(family, outsider_api):
    template, clones = family
    answer = outsider_api.post(
        f"/api/v1/integrations/{template.pk}/pull-into",
        {"targets": [clones[0].pk]},
        content_type="application/json",
    )
    assert answer.status_code == 404


# Pages ------------------------------------------------------------------------------------


def test_the_pull_into_page_lists_the_family_with_sync_badges(
    family, dev_client, developer, run_on_commit
):
    template, clones = family
    run_on_commit(services.pull_create, target=clones[3], source=template, user=developer)
    html = dev_client.get(f"/integrations/{template.pk}/pull-into/").content.decode()
    for n in range(1, 6):
        assert f"Clone {n}" in html
    assert "Behind Template" in html and "Diverged from Template" in html
    assert "already has an open pull" in html  # clone 4: shown, not selectable


def test_the_pages_open_pulls_and_show_one_row_per_target(family, dev_client, run_on_commit):
    template, clones = family
    answer = run_on_commit(
        dev_client.post,
        f"/integrations/{template.pk}/pull-into/",
        {"targets": [c.pk for c in clones], "description": "Order ref"},
    )
    batch = PullBatch.objects.get()
    assert answer.status_code == 302 and answer["Location"] == f"/pull-batches/{batch.pk}/"
    html = dev_client.get(answer["Location"]).content.decode()
    assert html.count('data-testid="batch-row"') == 5
    assert "1 to resolve" in html and "4 clean pulls" in html
    run_on_commit(dev_client.post, f"/pull-batches/{batch.pk}/merge-clean/")
    html = dev_client.get(answer["Location"]).content.decode()
    assert html.count(">Completed<") == 4 - 1  # clone 5 is production: asked for approval
    assert "Waiting for approval" in html


def test_an_empty_choice_is_refused_on_the_page(family, dev_client):
    template, _ = family
    answer = dev_client.post(f"/integrations/{template.pk}/pull-into/", {})
    assert answer.status_code == 400
    assert "Choose at least one integration" in answer.content.decode()


def test_a_batch_row_drops_its_merge_note_once_the_pull_is_merged():
    assert BatchRow(None, RevisionStatus.COMPLETED, None).merged
    for status in (RevisionStatus.READY, RevisionStatus.AWAITING_APPROVAL, "refused"):
        assert not BatchRow(None, status, None).merged
