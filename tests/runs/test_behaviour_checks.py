"""A pull's behaviour check: pinned to the changeset, rerun when resolutions change,
served by the API, and writing nothing to either integration."""

from __future__ import annotations

import json

import httpx
import pytest

from integrations.models import FlowStep, Integration
from integrations.services import resource_update
from revisions import services as revision_services
from revisions.document import document_of
from revisions.models import Revision
from runs.behaviour_checks import behaviour_check_execute, behaviour_check_start
from runs.models import BehaviourCheck, FlowSample, Run
from tests.runs.conftest import build_flow, orders


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks):
    def run(fn, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return fn(*args, **kwargs)

    return run


def _map_step(integration):
    return FlowStep.objects.get(integration=integration, name="Map")


def _set_amount_source(integration, source):
    step = _map_step(integration)
    mappings = [dict(m) for m in step.config["mappings"]]
    mappings[1]["source"] = source
    resource_update(instance=step, data={"config": {**step.config, "mappings": mappings}})


@pytest.fixture
def pulled(sandbox, developer, on_commit):
    """Target "Shop → ERP" with 20 saved samples; a clone that maps amount from the id; the
    pull of the clone into the target, ready for review."""
    flow = build_flow(sandbox)
    FlowSample.objects.create(
        integration=sandbox, flow_lineage_id=flow.lineage_id, records=orders(20)
    )
    clone = on_commit(
        revision_services.integration_clone,
        source=sandbox,
        user=developer,
        name="Shop sandbox",
    )
    _set_amount_source(clone, "id")
    revision = on_commit(
        revision_services.pull_create, target=sandbox, source=clone, user=developer
    )
    revision.refresh_from_db()
    assert revision.status == "ready"
    return revision


def url(revision):
    return f"/api/v1/revisions/{revision.pk}/behaviour"


def test_the_api_tests_a_pull_and_shows_each_differing_record(pulled, dev_api, on_commit):
    first = on_commit(dev_api.get, url(pulled))
    assert first.status_code == 200
    assert first.json()["status"] in ("queued", "succeeded")
    body = dev_api.get(url(pulled)).json()
    assert body["status"] == "succeeded" and body["stale"] is False
    (flow,) = body["flows"]
    assert set(flow) >= {"lineage_id", "name", "samples", "same", "different", "errors"}
    assert (flow["name"], flow["samples"], flow["same"]) == ("Orders to ERP", 20, 0)
    assert len(flow["different"]) == 20
    record = flow["different"][2]
    assert record["record_index"] == 2
    assert [(f["path"], f["ours"], f["theirs"]) for f in record["fields"]] == [("amount", 30, 3)]
    assert flow["errors"] == {"ours": [], "theirs": []}
    assert body["totals"]["different"] == 20 and body["totals"]["new_errors"] == 0
    assert BehaviourCheck.objects.filter(revision=pulled).count() == 1  # no second check


def test_a_check_writes_nothing_to_either_integration_and_calls_no_import(pulled, on_commit):
    target, source = pulled.integration, pulled.source_integration
    before = {
        i.pk: (i.version, document_of(i))
        for i in Integration.objects.filter(pk__in=[target.pk, source.pk])
    }
    revisions_before = Revision.objects.count()
    check = behaviour_check_start(revision=pulled, user=None)
    calls = []
    done = behaviour_check_execute(
        check_id=check.pk,
        transport=httpx.MockTransport(lambda r: calls.append(r) or httpx.Response(500)),
    )
    assert done.status == "succeeded"
    assert calls == []
    after = {
        i.pk: (i.version, document_of(i))
        for i in Integration.objects.filter(pk__in=[target.pk, source.pk])
    }
    assert after == before
    assert Revision.objects.count() == revisions_before
    assert not Run.objects.exists()  # test runs of the check are not flow runs


def test_resolving_a_conflict_reruns_the_check_for_the_new_changeset(
    pulled, dev_api, developer, on_commit
):
    # the target changed the same mapping: a conflict, decided "theirs" until resolved
    _set_amount_source(pulled.integration, "customer.email")
    pulled = revision_services.pull_refresh(revision=pulled, user=developer)
    on_commit(dev_api.get, url(pulled))
    body = dev_api.get(url(pulled)).json()
    assert body["unresolved_as_theirs"] == 1
    assert body["flows"][0]["different"][0]["fields"][0]["theirs"] == 1
    step = _map_step(pulled.integration)
    on_commit(
        dev_api.post,
        f"/api/v1/revisions/{pulled.pk}/resolutions",
        {
            "resolutions": [
                {
                    "lineage_id": str(step.lineage_id),
                    # mappings merge per target: the conflict is on this one's source
                    "path": "config.mappings[target="
                    + json.dumps(step.config["mappings"][1]["target"])
                    + "].source",
                    "choose": "ours",
                }
            ]
        },
        content_type="application/json",
    )
    stale = BehaviourCheck.objects.filter(revision=pulled).order_by("-pk").first()
    first = on_commit(dev_api.get, url(pulled)).json()
    assert first["id"] != stale.pk  # a new check, pinned to the new changeset
    body = dev_api.get(url(pulled)).json()
    assert body["status"] == "succeeded" and body["unresolved_as_theirs"] == 0
    assert body["flows"][0]["same"] == 20 and body["flows"][0]["different"] == []


def test_secret_named_fields_are_masked_in_the_diff(pulled, dev_api, on_commit):
    step = _map_step(pulled.source_integration)
    mappings = [dict(m) for m in step.config["mappings"]]
    mappings[3]["source"] = "customer.email"  # what goes out as "password" changes
    resource_update(instance=step, data={"config": {**step.config, "mappings": mappings}})
    pulled = revision_services.pull_refresh(revision=pulled, user=None)
    on_commit(dev_api.get, url(pulled))
    record = dev_api.get(url(pulled)).json()["flows"][0]["different"][0]
    password = next(f for f in record["fields"] if f["path"] == "password")
    assert password["ours"] == password["theirs"] == "••••••"
    assert "pw1" not in str(record)


def test_given_records_run_through_every_touched_flow(pulled, dev_api, on_commit):
    records = [{"id": 7, "total": 70}, {"id": 8, "total": 80}]
    answer = on_commit(
        dev_api.post, url(pulled), {"records": records}, content_type="application/json"
    )
    assert answer.status_code == 202
    assert answer.json()["records_given"] is True
    body = dev_api.get(url(pulled)).json()
    assert body["flows"][0]["samples"] == 2
    assert body["flows"][0]["sample_source"] == "given"
    assert [r["fields"][0]["theirs"] for r in body["flows"][0]["different"]] == [7, 8]


def test_bad_records_are_refused_and_start_nothing(pulled, dev_api):
    answer = dev_api.post(url(pulled), {"records": [1, 2]}, content_type="application/json")
    assert answer.status_code == 400 and "records[0]" in answer.json()["errors"]
    assert not BehaviourCheck.objects.exists()


def test_a_monitor_sees_but_may_not_start_a_check(pulled, monitor_api):
    assert monitor_api.post(url(pulled), {}, content_type="application/json").status_code == 403
    body = monitor_api.get(url(pulled)).json()
    assert body["status"] == "not_run" and body["flows"] == []
    assert not BehaviourCheck.objects.exists()


def test_an_outsider_gets_404(pulled, outsider_api):
    assert outsider_api.get(url(pulled)).status_code == 404


def test_only_a_ready_pull_is_tested(pulled, dev_api, developer, on_commit):
    revision_services.revision_cancel(revision=pulled, user=developer)
    answer = dev_api.post(url(pulled), {}, content_type="application/json")
    assert answer.status_code == 409
    assert dev_api.get(url(pulled)).json()["status"] == "not_run"
    snapshot = revision_services.snapshot_create(integration=pulled.integration, user=developer)
    assert dev_api.get(f"/api/v1/revisions/{snapshot.pk}/behaviour").status_code == 400


def test_a_flow_the_target_never_ran_uses_the_sources_samples(pulled, dev_api, on_commit):
    sample = FlowSample.objects.get(integration=pulled.integration)
    FlowSample.objects.create(
        integration=pulled.source_integration,
        flow_lineage_id=sample.flow_lineage_id,
        records=orders(3),
    )
    sample.delete()
    on_commit(dev_api.get, url(pulled))
    flow = dev_api.get(url(pulled)).json()["flows"][0]
    assert (flow["samples"], flow["sample_source"]) == (3, "source")


# The review page's panel ----------------------------------------------------------------


def panel(revision):
    return f"/revisions/{revision.pk}/behaviour/"


def test_the_review_page_loads_the_panel_beside_the_merge_box(pulled, dev_client):
    page = dev_client.get(f"/revisions/{pulled.pk}/").content.decode()
    assert f'hx-get="{panel(pulled)}"' in page and 'id="behaviour"' in page


def test_the_panel_says_what_the_pull_does(pulled, dev_client, on_commit):
    on_commit(dev_client.get, panel(pulled), headers={"HX-Request": "true"})
    answer = dev_client.get(panel(pulled), headers={"HX-Request": "true"})
    assert answer.status_code == 286  # done: polling stops
    html = answer.content.decode()
    assert "<html" not in html
    assert "1 flow tested on 20 records:" in html
    assert "0 outputs identical" in html and "20 differ" in html and "0 new errors" in html
    assert "Record 3: what the import would send" in html
    assert "entries for both sides" in html
    # without htmx, the same URL is a page of its own
    assert "<html" in dev_client.get(panel(pulled)).content.decode()


def test_pasted_records_that_are_not_json_are_refused_on_the_panel(pulled, dev_client, on_commit):
    on_commit(dev_client.get, panel(pulled))
    answer = dev_client.post(panel(pulled), {"records": "[{"}, headers={"HX-Request": "true"})
    assert "not valid JSON" in answer.content.decode()
    assert BehaviourCheck.objects.count() == 1


def test_a_monitor_may_not_test_from_the_panel(pulled, monitor, on_commit):
    from django.test import Client

    client = Client()
    client.force_login(monitor)
    assert client.post(panel(pulled), {"records": ""}).status_code == 403
    assert "Not tested yet" in client.get(panel(pulled)).content.decode()
