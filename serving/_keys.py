"""API keys: generated once, shown once, stored as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from serving._wire import ApiKey, Scope

KEY_PREFIX = "gvl_"


def hash_key(plaintext: str) -> str:
    """SHA-256 hex digest of a key (keys are 256-bit random, so a fast hash is enough)."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


def new_secret() -> str:
    """A fresh plaintext key: the prefix and 32 random bytes (base64url)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def new_key(
    name: str,
    scopes: list[Scope],
    *,
    rpm: int | None = None,
    tpm: int | None = None,
    metadata_only: bool = False,
) -> tuple[str, ApiKey]:
    """A fresh key: (plaintext to show once, record to store)."""
    plaintext = new_secret()
    record = ApiKey(
        name=name,
        key_hash=hash_key(plaintext),
        scopes=scopes,
        rpm=rpm,
        tpm=tpm,
        metadata_only=metadata_only,
        created_at=datetime.now(UTC),
    )
    return plaintext, record


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if well-formed."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
