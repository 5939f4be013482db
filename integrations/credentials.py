"""Connection credentials, encrypted at rest.

The column holds a Fernet token of the credentials' JSON; Python code sees a dict. Keys
come from `settings.ILM_SECRET_KEYS` (a list; the first encrypts, all decrypt), so a key
is rotated by putting a new one first and running `manage.py credentials_reencrypt`,
then dropping the old one. Plaintext never reaches the database, a document, a history
row or the audit (those exclude the field; see `integrations.resources`).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.db import models


@lru_cache(maxsize=1)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("ILM_SECRET_KEYS is empty: set at least one Fernet key.")
    try:
        return MultiFernet([Fernet(k.strip().encode()) for k in keys])
    except ValueError:
        raise ImproperlyConfigured(
            "ILM_SECRET_KEYS holds a value that is not a Fernet key (32 url-safe base64 "
            "bytes; make one with `python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'`)."
        ) from None


def fernet() -> MultiFernet:
    keys = settings.ILM_SECRET_KEYS
    if isinstance(keys, str):
        keys = [k for k in keys.split(",") if k.strip()]
    return _fernet(tuple(keys))


def _forget_keys(setting: str, **kwargs: Any) -> None:
    if setting == "ILM_SECRET_KEYS":
        _fernet.cache_clear()


setting_changed.connect(_forget_keys, dispatch_uid="ilm-credentials-keys")


def encrypt(value: Any) -> str:
    """A Fernet token of the value's JSON, made with the first key."""
    return fernet().encrypt(json.dumps(value, sort_keys=True).encode()).decode()


def decrypt(token: str) -> Any:
    try:
        return json.loads(fernet().decrypt(token.encode()))
    except InvalidToken:
        raise ImproperlyConfigured(
            "Stored credentials cannot be decrypted with ILM_SECRET_KEYS: the key they were "
            "encrypted with is missing (keep old keys listed until credentials_reencrypt ran)."
        ) from None


def rotate(token: str) -> str:
    """The same secret encrypted again with the first key (for key rotation)."""
    return fernet().rotate(token.encode()).decode()


class EncryptedJSONField(models.TextField):
    """A JSON object stored as a Fernet token; reads give the object back."""

    description = "JSON encrypted at rest"

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if value is None or value == "":
            return {}
        return decrypt(value)

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else {}
        return {} if value is None else value

    def get_prep_value(self, value: Any) -> Any:
        if value is None:
            value = {}
        return encrypt(value)

    def value_to_string(self, obj: Any) -> str:
        # Serialization (dumpdata) writes the token, never the plaintext.
        return self.get_prep_value(self.value_from_object(obj))
