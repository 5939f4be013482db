"""Figure: test before you merge (issue 15's benchmark).

- The behaviour of a pull touching 10 flows × 20 saved samples (goal ≤ 2 s): each flow is
  a transform with 20 mappings and an import; the pull changes one mapping of every flow.
  Timed end to end as the task does it (`behaviour_check_execute`: both documents, the
  merged result, 2 × 10 test runs, the record-by-record comparison, the stored result),
  and the pure `runs.behaviour.behaviour_diff` alone.
- Pulls into many (goal: a batch of 20 pulls opened in ≤ 20× one pull): one pull opened
  and computed (`pull_create`, its task run eagerly) against `pull_batch_create` into 20
  clones; the ratio is batch / (20 × one).

Self-contained: with no DATABASE_URL it migrates a fresh SQLite file in /tmp; Celery runs
eagerly, so each operation's time includes its task.

    .venv/bin/python -m tests.bench.fig_behaviour --runs 3
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from typing import Any

FLOWS = 10
SAMPLES = 20
MAPPINGS = 20
BATCH = 20


def _record(i: int) -> dict[str, Any]:
    return {"id": i, **{f"f{k}": f"value {i}-{k}" for k in range(MAPPINGS)}}


def _build(user: Any) -> Any:
    """An integration with FLOWS flows (transform with MAPPINGS mappings → import), each
    with SAMPLES saved samples."""
    from integrations.models import Connection, Environment, Flow, FlowStep, Integration
    from runs.models import FlowSample

    integration = Integration.objects.create(
        name=f"Bench behaviour {time.time_ns()}", environment=Environment.SANDBOX, created_by=user
    )
    erp = Connection.objects.create(
        integration=integration,
        name="ERP",
        kind="http",
        config={"base_url": "http://127.0.0.1:9"},
        credentials={},
    )
    for n in range(FLOWS):
        flow = Flow.objects.create(integration=integration, name=f"Flow {n:02d}", schedule="")
        FlowStep.objects.create(
            integration=integration,
            flow=flow,
            name="Map",
            position=1,
            kind="transform",
            config={
                "mappings": [
                    {"source": f"f{k}", "target": f"out.f{k}", "lookup_cache": None}
                    for k in range(MAPPINGS)
                ]
            },
        )
        FlowStep.objects.create(
            integration=integration,
            flow=flow,
            name="Send",
            position=2,
            kind="import",
            connection=erp,
            config={"path": "/orders", "batch_size": 10},
        )
        FlowSample.objects.create(
            integration=integration,
            flow_lineage_id=flow.lineage_id,
            records=[_record(i) for i in range(SAMPLES)],
        )
    return integration


def _clone(source: Any, user: Any, name: str) -> Any:
    from revisions.services import integration_clone

    clone = integration_clone(source=source, user=user, name=name)
    clone.refresh_from_db()
    return clone


def _change_every_flow(integration: Any) -> None:
    from integrations.models import FlowStep
    from integrations.services import resource_update

    for step in FlowStep.objects.filter(integration=integration, name="Map"):
        mappings = [dict(m) for m in step.config["mappings"]]
        mappings[0]["source"] = "id"
        resource_update(instance=step, data={"config": {"mappings": mappings}})


def measure(runs: int = 3) -> dict[str, Any]:
    from integrations.models import Role, User
    from revisions.batches import pull_batch_create
    from revisions.document import document_of
    from revisions.services import changes_of, pull_create
    from runs import behaviour
    from runs.behaviour_checks import behaviour_check_execute, behaviour_check_start
    from runs.models import FlowSample

    user, _ = User.objects.get_or_create(
        username="bench-behaviour", defaults={"role": Role.ADMINISTRATOR}
    )
    target = _build(user)
    source = _clone(target, user, "Bench behaviour source")
    _change_every_flow(source)
    pull = pull_create(target=target, source=source, user=user)
    pull.refresh_from_db()
    assert pull.status == "ready", pull.error

    end_to_end, pure = [], []
    result: dict[str, Any] = {}
    ours = document_of(target)
    from revisions.diff import apply_changes

    theirs = apply_changes(ours, changes_of(pull))
    changed = {r["lineage_id"] for r in changes_of(pull)["resources"]}
    samples = {
        str(s.flow_lineage_id): s.records for s in FlowSample.objects.filter(integration=target)
    }
    for _ in range(runs):
        check = behaviour_check_start(revision=pull, user=user, records=None)
        check.status = "queued"  # measure a fresh computation every run
        check.save(update_fields=["status"])
        started = time.perf_counter()
        done = behaviour_check_execute(check_id=check.pk)
        end_to_end.append(time.perf_counter() - started)
        assert done is not None and done.status == "succeeded", done and done.message
        result = done.result
        started = time.perf_counter()
        behaviour.behaviour_diff(
            ours, theirs, changed, lambda f: (samples.get(f, []), "target"), caches={}
        )
        pure.append(time.perf_counter() - started)

    one, batch, one_open, batch_open = [], [], [], []
    for r in range(runs):
        targets = [_clone(source, user, f"Bench batch {r}-{n}") for n in range(BATCH + 1)]
        _change_every_flow(source)  # something to pull
        # opened: what the request does before it answers 202 (rows, checks, enqueue);
        # a worker computes each pull afterwards, timed apart as "computed"
        with deferred_pull_tasks() as queued:
            started = time.perf_counter()
            single = pull_create(target=targets[0], source=source, user=user)
            one_open.append(time.perf_counter() - started)
        one.append(one_open[-1] + _run_tasks(queued))
        single.refresh_from_db()
        assert single.status == "ready", single.error
        with deferred_pull_tasks() as queued:
            started = time.perf_counter()
            made = pull_batch_create(source=source, targets=[t.pk for t in targets[1:]], user=user)
            batch_open.append(time.perf_counter() - started)
        batch.append(batch_open[-1] + _run_tasks(queued))
        statuses = {i.revision.status for i in made.items.select_related("revision")}
        assert statuses == {"ready"}, statuses
    totals = result["totals"]
    return {
        "end_to_end": end_to_end,
        "pure": pure,
        "totals": totals,
        "one": one,
        "batch": batch,
        "ratio": [b / (BATCH * o) for b, o in zip(batch, one, strict=True)],
        "one_open": one_open,
        "batch_open": batch_open,
        "ratio_open": [b / (BATCH * o) for b, o in zip(batch_open, one_open, strict=True)],
    }


@contextlib.contextmanager
def deferred_pull_tasks():
    """Collect the pull computations enqueued meanwhile instead of running them eagerly."""
    from unittest import mock

    from revisions import tasks

    queued: list[int] = []
    with mock.patch.object(tasks.pull_compute, "delay", side_effect=queued.append):
        yield queued


def _run_tasks(queued: list[int]) -> float:
    from revisions.tasks import pull_compute

    started = time.perf_counter()
    for revision_id in queued:
        pull_compute(revision_id)
    return time.perf_counter() - started


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ilm_site.settings.local")
    os.environ["DEBUG"] = "false"
    os.environ.pop("CELERY_BROKER_URL", None)
    fresh = not os.environ.get("DATABASE_URL")
    if fresh:
        path = os.path.join(tempfile.mkdtemp(prefix="ilm-fig-behaviour-"), "db.sqlite3")
        os.environ["DATABASE_URL"] = f"sqlite:///{path}"
    import django

    django.setup()
    if fresh:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)


def fig10_behaviour(ctx: Any) -> None:
    """Test before you merge: the behaviour of a pull, and pulls into many (issue 15)"""
    from tests.bench import figures

    m = measure(max(1, min(ctx.runs, 3)))
    t = m["totals"]
    check = ctx.row(
        "10",
        f"behaviour check of a pull, {t['flows']} flows × {SAMPLES} samples, end to end",
        "s",
        samples=m["end_to_end"],
        goal="≤ 2 s",
        check=lambda v: v <= 2,
    )
    figures.profile_miss(ctx, check, "fig10-behaviour", lambda: measure(1))
    ctx.row("10", "… behaviour_diff alone (pure)", "s", samples=m["pure"])
    ctx.row("10", "one pull opened (until the 202)", "s", samples=m["one_open"])
    opened = ctx.row(
        "10",
        f"batch of {BATCH} pulls opened ÷ ({BATCH} × one pull opened)",
        "×",
        samples=m["ratio_open"],
        goal="≤ 1×",
        check=lambda v: v <= 1,
    )
    figures.profile_miss(ctx, opened, "fig10-batch", lambda: measure(1))
    # The goal is on opening (what the user waits for); computing is each pull's
    # own diff, done by the workers afterwards, so it is reported without a goal.
    ctx.row(
        "10",
        f"… opened and computed by the workers ÷ ({BATCH} × one)",
        "×",
        samples=m["ratio"],
    )
    ctx.method.append(
        f"Behaviour: an integration of {FLOWS} flows (transform with {MAPPINGS} mappings → "
        f"import), {SAMPLES} saved samples each; the pull changes one mapping per flow. Timed "
        "as the task runs it (both documents, the merged result, 2 test runs per flow, the "
        f"record-by-record comparison, the stored result). Pulls into many: {BATCH} clones, "
        "the batch against one pull, each opened (until the 202) and computed (its task)."
    )


FIGURES = {"10": fig10_behaviour}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    _setup()
    m = measure(max(1, args.runs))

    def line(name: str, values: list[float], goal: str, ok: bool, unit: str = "s") -> str:
        med = statistics.median(values)
        return (
            f"{name:<58} median {med:8.3f} {unit}  min {min(values):.3f}  max {max(values):.3f}"
            f"  goal {goal:<8} {'PASS' if ok else 'MISS'}"
        )

    t = m["totals"]
    print(
        f"behaviour of a pull: {t['flows']} flows × {SAMPLES} samples, {t['outputs']} outputs "
        f"({t['same']} identical, {t['different']} differ, {t['new_errors']} new errors)"
    )
    print(
        line(
            "behaviour check, end to end (task)",
            m["end_to_end"],
            "≤ 2 s",
            statistics.median(m["end_to_end"]) <= 2,
        )
    )
    print(line("behaviour_diff alone (pure)", m["pure"], "", True))
    print(line("one pull opened (until the 202)", m["one_open"], "", True))
    print(line(f"batch of {BATCH} pulls opened (until the 202)", m["batch_open"], "", True))
    print(
        line(
            f"opened: batch / ({BATCH} × one pull)",
            m["ratio_open"],
            "≤ 1.0×",
            statistics.median(m["ratio_open"]) <= 1.0,
            unit="×",
        )
    )
    print(line("one pull opened and computed", m["one"], "", True))
    print(line(f"batch of {BATCH} pulls opened and computed", m["batch"], "", True))
    print(
        line(
            f"opened and computed: batch / ({BATCH} × one pull)",
            m["ratio"],
            "≤ 1.0×",
            statistics.median(m["ratio"]) <= 1.0,
            unit="×",
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
