"""Secrets at rest: the signing secrets of node webhooks and subscriptions, encrypted.

A database file or backup that leaks must not let anyone sign messages as this
service. Secrets are stored as ``fernet:<token>`` (``cryptography``'s Fernet:
AES-128-CBC with an HMAC-SHA256, authenticated), under the keys in
``DOM_SECRET_KEYS`` (comma-separated Fernet keys; the first encrypts, every one
decrypts). Without that setting a key is made once and kept beside the SQLite file
(``<database>.key``, readable by its owner only), so a laptop needs no setup.

Rotation: put a new key first in ``DOM_SECRET_KEYS`` and keep the old ones after it,
run ``dom secrets rotate`` (every stored secret is encrypted again under the new key),
then drop the old keys. Secrets stored in clear by earlier versions are read as they
are and encrypted by the same command.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from app.platform.db import is_postgres

MARK = "fernet:"


class SecretUnreadable(RuntimeError):
    """A stored secret was encrypted under a key that is no longer configured."""


class Vault:
    """Encrypts and decrypts stored secrets with the configured keys."""

    def __init__(self, keys: list[bytes]):
        if not keys:
            raise ValueError("the vault needs at least one key")
        self._fernet = MultiFernet([Fernet(key) for key in keys])
        # Links the service hands out (a customer's tracking page) are signed with a key
        # derived from each vault key: never the key itself, which encrypts.
        self._signing = [hashlib.sha256(b"dom-link-signing:" + key).digest() for key in keys]

    def sign(self, message: str) -> str:
        """An HMAC-SHA256 of ``message`` under the first key, URL-safe base64."""
        return _mac(self._signing[0], message)

    def verify(self, message: str, signature: str) -> bool:
        """Whether ``signature`` is ``message``'s under any configured key (a rotation
        keeps old links working while the old key is listed)."""
        return any(hmac.compare_digest(_mac(key, message), signature) for key in self._signing)

    def seal(self, secret: str | None) -> str | None:
        if secret is None:
            return None
        return MARK + self._fernet.encrypt(secret.encode()).decode()

    def unseal(self, stored: str | None) -> str | None:
        if stored is None or not stored.startswith(MARK):
            return stored  # absent, or stored in clear before encryption existed
        try:
            return self._fernet.decrypt(stored[len(MARK) :].encode()).decode()
        except InvalidToken:
            raise SecretUnreadable(
                "a stored secret was encrypted under a key missing from DOM_SECRET_KEYS"
            ) from None

    def rotate(self, stored: str | None) -> str | None:
        """The same secret, encrypted under the first key."""
        if stored is None:
            return None
        if not stored.startswith(MARK):
            return self.seal(stored)
        return MARK + self._fernet.rotate(stored[len(MARK) :].encode()).decode()


def _mac(key: bytes, message: str) -> str:
    digest = hmac.new(key, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def from_config(config) -> Vault:
    """The vault of a service's settings: ``SECRET_KEYS``, else the key file by the database."""
    listed = [part.strip() for part in (config["SECRET_KEYS"] or "").split(",") if part.strip()]
    if listed:
        return Vault([key.encode() for key in listed])
    if is_postgres(config["DATABASE"]):
        # Every server must read what any server sealed: the key cannot be a local file.
        raise ValueError(
            "DOM_SECRET_KEYS must be set when DOM_DATABASE is a PostgreSQL URL"
            " (make one with: dom secrets new-key)"
        )
    return Vault([_key_file(Path(config["DATABASE"] + ".key"))])


def _key_file(path: Path) -> bytes:
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        key = Fernet.generate_key()
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            return path.read_bytes().strip()
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(key)
        return key
