"""Checkpoints outside the table catch what a valid chain cannot show: events removed from
its end, an emptied table, a log rewritten by someone holding the key. Runs on SQLite and
PostgreSQL (tampering as the owner, see tests.audit.tamper)."""

from __future__ import annotations

import json
import logging

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command

from audit.chain import seal
from audit.models import Event
from tests.audit.tamper import TABLE, as_owner, rewrite_and_rechain
from tests.factories import FlowFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def sink(tmp_path, settings):
    path = tmp_path / "checkpoints.jsonl"
    settings.ILM_AUDIT_CHECKPOINT_FILE = str(path)
    return path


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_beat_writes_checkpoints_periodically():
    from ilm_site.celery import app

    entry = django_settings.CELERY_BEAT_SCHEDULE["audit-checkpoint"]
    app.loader.import_default_modules()
    assert entry["task"] in app.tasks
    assert entry["schedule"] == django_settings.ILM_AUDIT_CHECKPOINT_SECONDS > 0


def test_checkpoint_task_writes_the_head_to_the_file_and_the_log(events, sink, caplog):
    from audit.tasks import audit_checkpoint

    with caplog.at_level(logging.INFO, logger="ilm.audit.checkpoint"):
        assert audit_checkpoint.delay().get() == len(events)
    [line] = _lines(sink)
    assert (line["count"], line["last_id"], line["head"]) == (
        len(events),
        events[-1].pk,
        events[-1].hash,
    )
    assert line["key_id"] and line["mac"]
    [record] = [r for r in caplog.records if r.name == "ilm.audit.checkpoint"]
    assert json.loads(record.getMessage().split(" ", 2)[2]) == line


def test_verify_and_export_each_leave_a_checkpoint(events, sink, tmp_path):
    call_command("audit_verify")
    call_command("audit_export", "--until", "2999-12-31", "--output", str(tmp_path / "a.jsonl"))
    assert [(c["count"], c["head"]) for c in _lines(sink)] == [(len(events), events[-1].hash)] * 2


def test_a_log_that_only_grew_matches_its_checkpoints(events, integration, sink, capsys):
    call_command("audit_verify")
    FlowFactory(integration=integration)
    call_command("audit_verify", "--checkpoint", str(sink))
    FlowFactory(integration=integration)
    call_command("audit_verify", "--checkpoint", str(sink))
    out = capsys.readouterr().out
    assert "Matches 2 checkpoint(s)" in out
    assert len(_lines(sink)) == 3


def test_events_deleted_from_the_end_are_caught(events, sink):
    call_command("audit_verify")
    as_owner(f"DELETE FROM {TABLE} WHERE id >= %s", [events[-2].pk])
    call_command("audit_verify")  # the chain alone cannot tell (and checkpoints it)...
    written = len(_lines(sink))
    with pytest.raises(CommandError, match=f"event {events[-1].pk}: .*it is missing") as caught:
        call_command("audit_verify", "--checkpoint", str(sink))  # ...the earlier one can
    assert f"recorded {len(events)} event(s)" in str(caught.value)
    assert len(_lines(sink)) == written  # a broken log is not checkpointed


def test_a_tail_deleted_then_written_over_is_caught(events, integration, sink):
    call_command("audit_verify")
    as_owner(f"DELETE FROM {TABLE} WHERE id = %s", [events[-1].pk])
    FlowFactory(integration=integration)  # new events chain on from the shortened log
    with pytest.raises(CommandError, match=f"event {events[-1].pk}: .*it is missing"):
        call_command("audit_verify", "--checkpoint", str(sink))


def test_an_emptied_table_is_caught(events, sink):
    call_command("audit_verify")
    as_owner(f"DELETE FROM {TABLE}")
    call_command("audit_verify")  # 0 events: a chain, trivially
    with pytest.raises(CommandError, match="the log is empty \\(it was truncated\\)"):
        call_command("audit_verify", "--checkpoint", str(sink))


def test_a_log_rewritten_with_the_key_itself_is_caught(events, sink):
    # An insider holding the key re-signs everything after the change: the chain is
    # valid again, but the recorded head is not in it any more.
    call_command("audit_verify")
    rewrite_and_rechain(events[1].pk, "innocent", seal)
    call_command("audit_verify")
    with pytest.raises(CommandError, match=f"event {events[-1].pk}: the checkpoint of"):
        call_command("audit_verify", "--checkpoint", str(sink))


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        (lambda c: {**c, "count": c["count"] - 1}, "line 1 does not match its signature"),
        (lambda c: {**c, "mac": "é" * 64}, "line 1 does not match its signature"),
        (lambda c: {**c, "key_id": "0123456789ab"}, "line 1 cannot be checked: it is signed"),
        (lambda c: {k: v for k, v in c.items() if k != "mac"}, "line 1 is not a checkpoint"),
        (lambda c: {**c, "count": "3"}, "line 1 has a count, last_id, head or mac"),
    ],
)
def test_an_edited_or_forged_checkpoint_is_refused(events, sink, edit, why):
    call_command("audit_verify")
    [line] = _lines(sink)
    sink.write_text(json.dumps(edit(line)) + "\n")
    with pytest.raises(CommandError, match=why):
        call_command("audit_verify", "--checkpoint", str(sink))


def test_an_unreadable_checkpoint_file_is_refused(events, sink, tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        call_command("audit_verify", "--checkpoint", str(tmp_path / "absent.jsonl"))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(CommandError, match="holds no checkpoint"):
        call_command("audit_verify", "--checkpoint", str(empty))
    call_command("audit_verify")
    with sink.open("a") as f:
        f.write("not json\n")
    with pytest.raises(CommandError, match="line 2 is not JSON"):
        call_command("audit_verify", "--checkpoint", str(sink))


def test_verify_fails_when_its_checkpoint_cannot_be_written(events, settings, tmp_path):
    settings.ILM_AUDIT_CHECKPOINT_FILE = str(tmp_path)  # a directory
    with pytest.raises(CommandError, match="intact .* but its checkpoint could not be written"):
        call_command("audit_verify")


def test_checkpoints_of_an_empty_log_hold_nothing_back(sink):
    assert not Event.objects.exists()
    call_command("audit_verify")
    assert _lines(sink)[0]["count"] == 0
    call_command("audit_verify", "--checkpoint", str(sink))
