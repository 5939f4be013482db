"""What a merge records as the pair's sync point: what both sides hold alike afterwards.

A change left out of a merge (modified, added or deleted), or a conflict decided "ours",
stays pending in both directions: a new forward pull offers it again, and a pull the other
way does not take the source's change for something to undo.
"""

from __future__ import annotations

import pytest

from integrations.models import Environment, Flow, Script
from integrations.services import resource_create, resource_delete, resource_update
from revisions import selectors, services
from revisions.models import RevisionStatus, SyncPoint
from tests.factories import ConnectionFactory, FlowFactory, ScriptFactory, StepFactory
from tests.revisions.conftest import document_of_tree

pytestmark = pytest.mark.django_db
S = RevisionStatus


@pytest.fixture
def run(django_capture_on_commit_callbacks):
    def call(fn, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            result = fn(**kwargs)
        if hasattr(result, "refresh_from_db"):
            result.refresh_from_db()
        return result

    return call


@pytest.fixture
def family(integration, developer, run):
    """A (as a sandbox, so merges need no approval) with a flow and a script; C its clone."""
    integration.environment = Environment.SANDBOX
    integration.save()
    conn = ConnectionFactory(integration=integration, name="API")
    flow = FlowFactory(integration=integration, name="Orders", schedule="0 * * * *")
    StepFactory(flow=flow, name="Export", connection=conn)
    script = ScriptFactory(integration=integration, name="Tax", code="// old")
    clone = run(
        services.integration_clone,
        source=integration,
        user=developer,
        name="Orders sandbox",
        environment=Environment.SANDBOX,
    )
    a, c = integration, clone
    a.refresh_from_db()
    return {"a": a, "c": c, "flow": flow, "script": script}


def twin(obj, integration):
    return type(obj).objects.get(integration=integration, lineage_id=obj.lineage_id)


def pull(run, target, source, user):
    target.refresh_from_db()
    revision = run(services.pull_create, target=target, source=source, user=user)
    assert revision.status == S.READY, revision.error
    return revision


def changed(revision) -> dict[str, dict]:
    """The pull's changes by resource name."""
    return {r["name"]: r for r in selectors.changes_for_review(revision)["resources"]}


def leave_out(revision, user, *lineage_ids) -> None:
    services.resolutions_set(
        revision=revision,
        user=user,
        resolutions=[{"lineage_id": str(lid), "choose": "ours"} for lid in lineage_ids],
    )


def merge(run, revision, user):
    merged = run(services.merge_start, revision=revision, user=user)
    assert merged.status == S.COMPLETED, merged.error
    return merged


def test_a_left_out_change_stays_pending_in_both_directions(family, developer, run):
    a, c = family["a"], family["c"]
    resource_update(instance=twin(family["flow"], c), data={"schedule": "*/5 * * * *"})
    resource_update(instance=twin(family["script"], c), data={"code": "// new"})
    forward = pull(run, a, c, developer)
    assert set(changed(forward)) == {"Orders", "Tax"}
    leave_out(forward, developer, family["script"].lineage_id)
    merge(run, forward, developer)
    assert Flow.objects.get(pk=family["flow"].pk).schedule == "*/5 * * * *"
    assert Script.objects.get(pk=family["script"].pk).code == "// old"

    # The sandbox's script change is not A's to undo: the reverse pull leaves it alone.
    back = pull(run, c, a, developer)
    assert changed(back) == {}
    assert twin(family["script"], c).code == "// new"
    assert selectors.sync_status(c)["state"] == "local_changes"
    run(services.revision_cancel, revision=back, user=developer)

    # A new forward pull offers the script change again, and only that.
    again = pull(run, a, c, developer)
    [(name, entry)] = changed(again).items()
    assert name == "Tax" and entry["action"] == "modified"
    [field] = entry["fields"]
    assert (field["path"], field["ours"], field["theirs"], field["conflict"]) == (
        "code",
        "// old",
        "// new",
        False,
    )


def test_the_merged_part_is_agreed_and_not_offered_again(family, developer, run):
    a, c = family["a"], family["c"]
    resource_update(instance=twin(family["flow"], c), data={"schedule": "*/5 * * * *"})
    resource_update(instance=twin(family["script"], c), data={"code": "// new"})
    forward = pull(run, a, c, developer)
    leave_out(forward, developer, family["script"].lineage_id)
    merge(run, forward, developer)
    point = SyncPoint.objects.filter(integration=a, other=c).order_by("-pk").first()
    base = document_of_tree(point.tree)["resources"]
    assert base[str(family["flow"].lineage_id)]["schedule"] == "*/5 * * * *"
    assert base[str(family["script"].lineage_id)]["code"] == "// old"
    # The sandbox changes the flow once more: a plain change, not a conflict with itself.
    resource_update(instance=twin(family["flow"], c), data={"schedule": "*/10 * * * *"})
    again = pull(run, a, c, developer)
    flow = changed(again)["Orders"]
    assert [(f["path"], f["conflict"]) for f in flow["fields"]] == [("schedule", False)]


def test_a_left_out_added_resource_is_offered_again_and_kept_by_the_source(family, developer, run):
    a, c = family["a"], family["c"]
    added = resource_create(
        integration=c,
        type_key="script",
        data={"name": "Rounding", "function": "preMap", "code": "// r"},
    )
    resource_update(instance=twin(family["flow"], c), data={"schedule": "*/5 * * * *"})
    forward = pull(run, a, c, developer)
    leave_out(forward, developer, added.lineage_id)
    merge(run, forward, developer)
    assert not Script.objects.filter(integration=a, lineage_id=added.lineage_id).exists()

    back = pull(run, c, a, developer)
    assert changed(back) == {}
    run(services.revision_cancel, revision=back, user=developer)
    assert Script.objects.filter(integration=c, lineage_id=added.lineage_id).exists()

    again = pull(run, a, c, developer)
    assert {n: r["action"] for n, r in changed(again).items()} == {"Rounding": "added"}


def test_a_left_out_deletion_is_offered_again_and_not_undone(family, developer, run):
    a, c = family["a"], family["c"]
    resource_delete(instance=twin(family["script"], c))
    resource_update(instance=twin(family["flow"], c), data={"schedule": "*/5 * * * *"})
    forward = pull(run, a, c, developer)
    assert changed(forward)["Tax"]["action"] == "deleted"
    leave_out(forward, developer, family["script"].lineage_id)
    merge(run, forward, developer)
    assert Script.objects.filter(pk=family["script"].pk).exists()

    # Before the fix the reverse pull brought the deleted script back into the sandbox.
    back = pull(run, c, a, developer)
    assert changed(back) == {}
    run(services.revision_cancel, revision=back, user=developer)

    again = pull(run, a, c, developer)
    assert {n: r["action"] for n, r in changed(again).items()} == {"Tax": "deleted"}


def test_a_conflict_kept_ours_stays_a_conflict_both_ways(family, developer, run):
    a, c = family["a"], family["c"]
    resource_update(instance=family["script"], data={"code": "// a"})
    resource_update(instance=twin(family["script"], c), data={"code": "// c"})
    resource_update(instance=twin(family["flow"], c), data={"schedule": "*/5 * * * *"})
    forward = pull(run, a, c, developer)
    services.resolution_set(
        revision=forward,
        user=developer,
        lineage_id=family["script"].lineage_id,
        path="code",
        choose="ours",
    )
    merge(run, forward, developer)
    assert Script.objects.get(pk=family["script"].pk).code == "// a"

    # Neither side's code is silently taken for the other's: it is a conflict each way.
    back = pull(run, c, a, developer)
    [field] = changed(back)["Tax"]["fields"]
    assert (field["ours"], field["theirs"], field["conflict"]) == ("// c", "// a", True)
    assert "Orders" not in changed(back)
    assert selectors.sync_status(c)["state"] == "diverged"
    run(services.revision_cancel, revision=back, user=developer)

    again = pull(run, a, c, developer)
    [field] = changed(again)["Tax"]["fields"]
    assert (field["ours"], field["theirs"], field["conflict"]) == ("// a", "// c", True)


def test_a_change_of_the_target_it_kept_through_a_merge_still_reaches_the_source(
    family, developer, run
):
    a, c = family["a"], family["c"]
    # A changed a field of the script; the sandbox changed another field of it.
    resource_update(instance=family["script"], data={"code": "// a"})
    resource_update(instance=twin(family["script"], c), data={"function": "preMap"})
    forward = pull(run, a, c, developer)
    merge(run, forward, developer)
    script = Script.objects.get(pk=family["script"].pk)
    assert (script.code, script.function) == ("// a", "preMap")

    back = pull(run, c, a, developer)
    [field] = changed(back)["Tax"]["fields"]
    assert (field["path"], field["ours"], field["theirs"], field["conflict"]) == (
        "code",
        "// old",
        "// a",
        False,
    )
    # And the next forward pull does not offer to put the old code back into A.
    run(services.revision_cancel, revision=back, user=developer)
    assert changed(pull(run, a, c, developer)) == {}


def test_the_agreed_tree_read_by_hashes_equals_the_walk_of_every_resource(db):
    """The sync point compares body hashes and walks only resources that differ on all
    three sides: the tree it stores is the one `_agreed` gives resource by resource."""
    from revisions import diff as engine
    from revisions.document import document_hashes, documents_of_trees, tree_of_document

    def step(name, targets, **more):
        body = {"type": "step", "name": name, "flow": "f", "position": 1, "kind": "import"}
        body["config"] = {"mappings": [{"source": t, "target": t} for t in targets]}
        return {**body, **more}

    base = {
        "integration": {"description": "old", "documentation": ""},
        "resources": {
            "same": step("Same", ["a"]),
            "taken": step("Taken", ["a"]),
            "left-out": step("Left out", ["a"]),
            "partly": step("Partly", ["a", "b"]),
            "deleted-both": step("Deleted", ["a"]),
            "deleted-source": step("Deleted in source", ["a"]),
            "float": step("Float", ["a"], position=1),
        },
    }
    source = {
        "integration": {"description": "new", "documentation": "doc"},
        "resources": {
            "same": step("Same", ["a"]),
            "taken": step("Taken v2", ["a"]),
            "left-out": step("Left out v2", ["a"]),
            "partly": step("Partly v2", ["a2", "b"]),
            "added-source": step("Added", ["x"]),
            "float": step("Float", ["a"], position=1.0),  # equal, but not the same bytes
        },
    }
    merged = {
        "integration": {"description": "new", "documentation": ""},
        "resources": {
            "same": step("Same", ["a"]),
            "taken": step("Taken v2", ["a"]),
            "left-out": step("Left out", ["a"]),
            "partly": step("Partly v2", ["a", "b"]),  # the name taken, the mapping not
            "deleted-source": step("Deleted in source", ["a"]),
            "added-target": step("Own", ["y"]),
            "float": step("Float", ["a"], position=1),
        },
    }
    base_tree, source_tree = tree_of_document(base), tree_of_document(source)
    tree = services._agreed_tree(base_tree, merged, document_hashes(merged), source_tree)

    b, s = documents_of_trees(base_tree, source_tree)
    walked = {}
    for lid in b["resources"].keys() | merged["resources"].keys() | s["resources"].keys():
        body = services._agreed(
            b["resources"].get(lid, engine.MISSING),
            merged["resources"].get(lid, engine.MISSING),
            s["resources"].get(lid, engine.MISSING),
        )
        if body is not engine.MISSING:
            walked[lid] = body
    own = services._agreed(b["integration"], merged["integration"], s["integration"])
    (agreed,) = documents_of_trees(tree)
    assert agreed == {"integration": own, "resources": walked}
    assert agreed["resources"]["partly"]["name"] == "Partly v2"
    assert agreed["resources"]["partly"]["config"] == base["resources"]["partly"]["config"]
    assert agreed["resources"]["left-out"]["name"] == "Left out"
    # A deletion left out stays pending (base kept); the target's own addition is not agreed.
    assert set(agreed["resources"]) == {
        "same",
        "taken",
        "left-out",
        "partly",
        "deleted-source",
        "float",
    }
    assert agreed["integration"] == {"description": "new", "documentation": ""}
