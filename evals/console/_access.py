"""Who may see what in the console: sign-in with a gateway key, server-side sessions,
CSRF on every state change, and the scopes.

- ``view`` reads everything except keys; ``admin`` sees keys too; ``label`` sees the
  labelling views and the records it labelled.
- The session cookie holds a random id, never the key; the session keeps the key's
  hash, so a revoked key loses its sessions at the next request.
- CSRF: a random token in a cookie of its own, repeated in every form's hidden field
  (double submit); a POST whose two copies differ is refused, before anything changes.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime

from fastapi import HTTPException, Request

from serving import hash_key
from serving._wire import ApiKey
from serving.store import Store

SESSION = "gavel_console_session"
CSRF = "gavel_console_csrf"
SESSION_TTL_S = 8 * 3600.0


class Sessions:
    """The console's sessions, in this process (a restart signs everyone out)."""

    def __init__(self, ttl_s: float = SESSION_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._open: dict[str, tuple[str, float]] = {}

    def open(self, key_hash: str) -> str:
        """A new session for the key; returns its id."""
        now = time.monotonic()
        self._open = {k: v for k, v in self._open.items() if v[1] > now}
        sid = secrets.token_urlsafe(32)
        self._open[sid] = (key_hash, now + self.ttl_s)
        return sid

    def key_hash(self, sid: str | None) -> str | None:
        """The key hash of a live session."""
        found = self._open.get(sid or "")
        return found[0] if found is not None and found[1] > time.monotonic() else None

    def close(self, sid: str | None) -> None:
        """End a session."""
        self._open.pop(sid or "", None)


def key_for_secret(store: Store, secret: str) -> tuple[ApiKey, str]:
    """The valid key with this secret (401 otherwise), and the hash presented (a session
    keeps it: an old secret's session ends with its rotation's grace)."""
    presented = hash_key(secret)
    return _valid(store.key_by_hash(presented), presented), presented


def _valid(key: ApiKey | None, presented: str) -> ApiKey:
    if key is None:
        raise HTTPException(401, "The key is not valid.")
    refusal = key.refusal(presented, datetime.now(UTC))
    if refusal is not None:
        raise HTTPException(401, f"The key {key.name!r} cannot sign in: {refusal}.")
    if not (key.allows("view") or key.allows("label")):
        raise HTTPException(
            403, f"The key {key.name!r} has neither the 'view' nor the 'label' scope."
        )
    return key


def signed_in(request: Request) -> ApiKey | None:
    """The signed-in key, or ``None``."""
    sessions: Sessions = request.app.state.sessions
    key_hash = sessions.key_hash(request.cookies.get(SESSION))
    if key_hash is None:
        return None
    try:
        return _valid(request.app.state.store.key_by_hash(key_hash), key_hash)
    except HTTPException:
        return None


def require(request: Request, scope: str) -> ApiKey:
    """The signed-in key if it has ``scope`` (``admin`` has every scope); else 401/403."""
    key = signed_in(request)
    if key is None:
        raise HTTPException(401, "Sign in with a key that has the 'view' scope.")
    if not key.allows(scope):  # type: ignore[arg-type]
        raise HTTPException(403, f"The key {key.name!r} lacks the {scope!r} scope.")
    return key


def csrf_token(request: Request) -> str:
    """The token the page's forms repeat (the cookie's, or a new one set on the response)."""
    token = request.cookies.get(CSRF)
    if not token or len(token) > 100:
        token = request.state.new_csrf = secrets.token_urlsafe(24)
    return token


async def check_csrf(request: Request) -> None:
    """Refuse a POST whose form does not repeat the CSRF cookie (403)."""
    form = await request.form()
    sent, kept = form.get("csrf"), request.cookies.get(CSRF)
    if (
        not isinstance(sent, str)
        or not kept
        or not secrets.compare_digest(sent.encode(), kept.encode())
    ):
        raise HTTPException(403, "The form's CSRF token is missing or wrong; reload the page.")
