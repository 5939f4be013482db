"""Per-mapping merges through the services: choices are stored per target and kept across a
refresh; everything else of the mapping list merges by itself (issue 17)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from integrations.services import resource_update
from revisions import services
from revisions.models import Resolution, RevisionStatus

from .conftest import _twin


def _mappings(step, *pairs):
    resource_update(
        instance=step,
        data={
            "config": {
                **step.config,
                "mappings": [{"source": s, "target": t, "lookup_cache": None} for s, t in pairs],
            }
        },
    )


AMOUNT = 'config.mappings[target="amount"]'


@pytest.fixture
def mapping_pull(stocked, sandbox, integration, make_pull, run_on_commit):
    """Into the sandbox: production changed `amount` one way and added `tax`; the sandbox
    changed `amount` another way and added `currency`."""
    _mappings(stocked["step"], ("total_gross", "amount"), ("vat", "tax"))
    mine = _twin(type(stocked["step"]), sandbox, stocked["step"])
    _mappings(mine, ("total_net", "amount"), ("ccy", "currency"))
    return make_pull(target=sandbox, source=integration), mine


def test_a_choice_per_mapping_is_stored_kept_across_a_refresh_and_merged(
    mapping_pull, developer, run_on_commit
):
    pull, mine = mapping_pull
    changes = services.changes_of(pull)
    [step] = [r for r in changes["resources"] if r["type"] == "step"]
    assert {(f["path"], f["conflict"]) for f in step["fields"]} == {
        (AMOUNT + ".source", True),
        ('config.mappings[target="tax"]', False),
    }
    summary = services.resolution_set(
        revision=pull, user=developer, lineage_id=step["lineage_id"], path=AMOUNT, choose="ours"
    )
    assert summary["unresolved"] == 0
    assert list(Resolution.objects.filter(revision=pull).values_list("path", flat=True)) == [AMOUNT]
    run_on_commit(services.pull_refresh, revision=pull, user=developer)
    pull.refresh_from_db()
    assert pull.status == RevisionStatus.READY and pull.summary["unresolved"] == 0
    assert Resolution.objects.filter(revision=pull, path=AMOUNT).exists()

    run_on_commit(services.merge_start, revision=pull, user=developer)
    pull.refresh_from_db()
    assert pull.status == RevisionStatus.COMPLETED, pull.error
    mine.refresh_from_db()
    assert [(m["source"], m["target"]) for m in mine.config["mappings"]] == [
        ("total_net", "amount"),
        ("ccy", "currency"),
        ("vat", "tax"),
    ]


def test_a_choice_for_a_mapping_without_a_conflict_is_refused(mapping_pull, developer):
    pull, _mine = mapping_pull
    step = next(r for r in services.changes_of(pull)["resources"] if r["type"] == "step")
    for path in ('config.mappings[target="tax"]', 'config.mappings[target="nowhere"]'):
        with pytest.raises(ValidationError):
            services.resolution_set(
                revision=pull,
                user=developer,
                lineage_id=step["lineage_id"],
                path=path,
                choose="theirs",
            )
    assert not Resolution.objects.filter(revision=pull).exists()
