"""API-key authentication of the gateway, with a small cache of validated keys."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import TYPE_CHECKING

from serving._errors import openai_error
from serving._keys import bearer_token, hash_key
from serving._wire import ROLE_SCOPE, ApiKey
from serving.gateway._metrics import GatewayMetrics
from serving.store import Store

if TYPE_CHECKING:
    from fastapi.responses import JSONResponse

log = logging.getLogger("gavel.gateway")

KEY_CACHE_TTL_S = 2.0
KEY_CACHE_MAX = 4096


class KeyCache:
    """Keys looked up by hash, cached for ``ttl_s`` (so a revocation lands within it).

    Only keys found in the store are cached, at most ``max_entries`` of them (least
    recently used go first), so random bearer tokens cannot grow memory. While the
    store is down, a key validated before keeps being served.
    """

    def __init__(
        self, store: Store, *, ttl_s: float = KEY_CACHE_TTL_S, max_entries: int = KEY_CACHE_MAX
    ) -> None:
        self._store = store
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, ApiKey]] = OrderedDict()
        self.store_ok: bool | None = None
        """Whether the last lookup that went to the store reached it (``None``: none yet)."""

    def __len__(self) -> int:
        return len(self._entries)

    async def lookup(self, key_hash: str) -> ApiKey | None:
        """The key with this hash (revoked or not), or ``None``; raises if the store is down
        and the key was never validated."""
        now = time.monotonic()
        hit = self._entries.get(key_hash)
        if hit is not None and now - hit[0] < self.ttl_s:
            self._entries.move_to_end(key_hash)
            return hit[1]
        try:
            key = await asyncio.to_thread(self._store.key_by_hash, key_hash)
        except Exception:
            self.store_ok = False
            if hit is None:
                raise
            # Store down: keep serving keys already validated (captures are spooled meanwhile).
            log.warning("key store unreachable; using the cached key")
            return hit[1]
        self.store_ok = True
        if key is None:
            self._entries.pop(key_hash, None)
            return None
        self._entries[key_hash] = (now, key)
        self._entries.move_to_end(key_hash)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return key


async def authenticate(
    authorization: str | None, cache: KeyCache, metrics: GatewayMetrics
) -> tuple[JSONResponse | None, ApiKey | None]:
    """(an OpenAI-style 401/503 response, None) or (None, the valid key)."""
    token = bearer_token(authorization)
    if token is None:
        metrics.rejected.labels("missing_key").inc()
        return openai_error(
            401,
            "Missing API key: send 'Authorization: Bearer <key>'.",
            type_="invalid_request_error",
            code="invalid_api_key",
        ), None
    try:
        key = await cache.lookup(hash_key(token))
    except Exception:
        log.exception("key store unreachable")
        return openai_error(
            503, "The key store is unreachable; retry shortly.", type_="server_error"
        ), None
    if key is None or key.revoked_at is not None:
        metrics.rejected.labels("invalid_key").inc()
        what = "revoked" if key is not None else "invalid"
        return openai_error(
            401, f"The API key is {what}.", type_="invalid_request_error", code="invalid_api_key"
        ), None
    return None, key


def check_scope(key: ApiKey, model: str, role: str, metrics: GatewayMetrics) -> JSONResponse | None:
    """A 403 if ``key`` may not call the model of ``role``, else ``None`` (a ``label``-only
    key never gets generation)."""
    scope = ROLE_SCOPE.get(role, "admin")
    if key.allows(scope):
        return None
    metrics.rejected.labels("scope").inc()
    return openai_error(
        403,
        f"The key {key.name!r} lacks the '{scope}' scope needed for model {model!r}.",
        type_="permission_error",
        code="insufficient_scope",
    )
