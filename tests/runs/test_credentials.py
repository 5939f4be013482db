"""Connection credentials are encrypted at rest and survive a key rotation."""

import importlib
import io
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection as db

from integrations.models import Connection
from integrations.services import resource_update
from tests.factories import ConnectionFactory

OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()


def stored(pk: int) -> str:
    with db.cursor() as cursor:
        cursor.execute("SELECT credentials FROM integrations_connection WHERE id = %s", [pk])
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_the_column_holds_no_plaintext_and_reads_give_the_object_back():
    conn = ConnectionFactory(credentials={"token": "sk-live-4242", "user": "erp-bot"})
    raw = stored(conn.pk)
    assert "sk-live-4242" not in raw and "erp-bot" not in raw and "token" not in raw
    assert Connection.objects.get(pk=conn.pk).credentials == {
        "token": "sk-live-4242",
        "user": "erp-bot",
    }
    assert Connection.objects.filter(pk=conn.pk).values_list("credentials", flat=True)[0] == {
        "token": "sk-live-4242",
        "user": "erp-bot",
    }


@pytest.mark.django_db
def test_updating_credentials_through_the_service_stores_them_encrypted():
    conn = ConnectionFactory(credentials={})
    resource_update(instance=conn, data={"credentials": {"password": "hunter2"}})
    assert "hunter2" not in stored(conn.pk)
    assert Connection.objects.get(pk=conn.pk).credentials == {"password": "hunter2"}
    assert Connection.objects.get(pk=conn.pk).has_credentials


@pytest.mark.django_db
def test_rotation_new_key_first_then_reencrypt_then_the_old_key_can_go(settings):
    settings.ILM_SECRET_KEYS = [OLD_KEY]
    conn = ConnectionFactory(credentials={"token": "abc"})
    under_old = stored(conn.pk)

    settings.ILM_SECRET_KEYS = [NEW_KEY, OLD_KEY]
    assert Connection.objects.get(pk=conn.pk).credentials == {"token": "abc"}
    out = io.StringIO()
    call_command("credentials_reencrypt", stdout=out)
    assert "1 connection" in out.getvalue()
    under_new = stored(conn.pk)
    assert under_new != under_old and "abc" not in under_new

    settings.ILM_SECRET_KEYS = [NEW_KEY]
    assert Connection.objects.get(pk=conn.pk).credentials == {"token": "abc"}


@pytest.mark.django_db
def test_dropping_a_key_before_reencrypting_says_what_is_missing(settings):
    settings.ILM_SECRET_KEYS = [OLD_KEY]
    conn = ConnectionFactory(credentials={"token": "abc"})
    settings.ILM_SECRET_KEYS = [NEW_KEY]
    with pytest.raises(ImproperlyConfigured, match="credentials_reencrypt"):
        Connection.objects.get(pk=conn.pk)


def test_a_key_that_is_not_a_fernet_key_is_refused_clearly(settings):
    from integrations.credentials import encrypt

    settings.ILM_SECRET_KEYS = ["not-a-key"]
    with pytest.raises(ImproperlyConfigured, match="not a Fernet key"):
        encrypt({"a": 1})


@pytest.mark.django_db
def test_the_data_migration_encrypts_rows_stored_in_plaintext_and_is_safe_to_rerun():
    conn = ConnectionFactory(credentials={"keep": "me"})
    plain_conn = ConnectionFactory(credentials={})
    with db.cursor() as cursor:
        cursor.execute(
            "UPDATE integrations_connection SET credentials = %s WHERE id = %s",
            ['{"api_key": "legacy-plain"}', plain_conn.pk],
        )
    migration = importlib.import_module("integrations.migrations.0003_encrypt_existing_credentials")
    editor = SimpleNamespace(connection=db, quote_name=db.ops.quote_name)
    migration.encrypt_plaintext(None, editor)
    migration.encrypt_plaintext(None, editor)  # a second run changes nothing

    assert "legacy-plain" not in stored(plain_conn.pk)
    assert Connection.objects.get(pk=plain_conn.pk).credentials == {"api_key": "legacy-plain"}
    assert Connection.objects.get(pk=conn.pk).credentials == {"keep": "me"}

    migration.decrypt_to_plaintext(None, editor)
    assert "legacy-plain" in stored(plain_conn.pk)


def _production_settings(**env: str) -> subprocess.CompletedProcess:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("ILM_SECRET_KEYS", "ILM_RUN_ALLOW_PRIVATE", "DJANGO_SETTINGS_MODULE")
    }
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from django.conf import settings; "
            "print(settings.ILM_SECRET_KEYS, settings.ILM_RUN_ALLOW_PRIVATE)",
        ],
        env={
            **base,
            "DJANGO_SETTINGS_MODULE": "ilm_site.settings.production",
            "SECRET_KEY": "x" * 50,
            "ALLOWED_HOSTS": "ilm.example.com",
            # The audit key is required too; this test is about the credential keys.
            "ILM_AUDIT_KEY": "test-only-audit-key-0123456789abcdefghijklmnop",
            **env,
        },
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=60,
    )


def test_production_refuses_to_start_without_keys_and_refuses_private_targets_by_default():
    missing = _production_settings()
    assert missing.returncode != 0 and "ILM_SECRET_KEYS" in missing.stderr
    ok = _production_settings(ILM_SECRET_KEYS=f"{NEW_KEY},{OLD_KEY}")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == f"{[NEW_KEY, OLD_KEY]} False"
