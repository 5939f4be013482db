"""Encrypt the credentials stored in plaintext before they were encrypted at rest.

Raw SQL on the column: the model field of this state would try to decrypt the plaintext.
A value that already decrypts (a token) is left as it is, so the migration can run twice.
"""

import json

from cryptography.fernet import InvalidToken
from django.db import migrations


def _rows(schema_editor):
    table = "integrations_connection"
    quote = schema_editor.quote_name
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"SELECT id, {quote('credentials')} FROM {quote(table)}")
        return table, list(cursor.fetchall())


def _write(schema_editor, table, updates):
    quote = schema_editor.quote_name
    with schema_editor.connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {quote(table)} SET {quote('credentials')} = %s WHERE id = %s",
            [(value, pk) for pk, value in updates],
        )


def encrypt_plaintext(apps, schema_editor):
    from integrations.credentials import encrypt, fernet

    table, rows = _rows(schema_editor)
    updates = []
    for pk, stored in rows:
        text = stored if isinstance(stored, str) else json.dumps(stored or {})
        try:
            fernet().decrypt(text.encode())
            continue  # already a token
        except InvalidToken:
            pass
        value = json.loads(text) if text.strip() else {}
        updates.append((pk, encrypt(value)))
    _write(schema_editor, table, updates)


def decrypt_to_plaintext(apps, schema_editor):
    from integrations.credentials import decrypt

    table, rows = _rows(schema_editor)
    updates = [(pk, json.dumps(decrypt(text) if text else {})) for pk, text in rows]
    _write(schema_editor, table, updates)


class Migration(migrations.Migration):
    dependencies = [("integrations", "0002_connection_credentials_encrypted")]

    operations = [migrations.RunPython(encrypt_plaintext, decrypt_to_plaintext)]
