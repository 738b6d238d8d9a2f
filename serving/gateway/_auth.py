"""API-key authentication of the gateway, with a small cache of validated keys.

Wrong tokens are cheap to refuse: a token that is not shaped like a Gavel key never
reaches the store, a hash the store just did not know is remembered for a while (the
negative cache), and a client that keeps sending wrong tokens is told to back off before
its tokens are even hashed (:class:`WrongTokenGuard`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict, deque
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

from serving._errors import openai_error
from serving._keys import KEY_PREFIX, bearer_token, hash_key
from serving._wire import ROLE_SCOPE, ApiKey
from serving.gateway._metrics import GatewayMetrics
from serving.store import Store

if TYPE_CHECKING:
    from fastapi.responses import JSONResponse

log = logging.getLogger("gavel.gateway")

KEY_CACHE_TTL_S = 2.0
KEY_CACHE_MAX = 4096
NEGATIVE_TTL_S = 30.0
TOUCH_EVERY_S = 60.0
KEY_SHAPE = re.compile(rf"^{KEY_PREFIX}[A-Za-z0-9_-]{{43}}$")
"""What :func:`serving._keys.new_key` makes: the prefix and 32 random bytes, base64url."""


class KeyCache:
    """Keys looked up by hash, cached for ``ttl_s`` (so a revocation lands within it).

    Only keys found in the store are cached, at most ``max_entries`` of them (least
    recently used go first), so random bearer tokens cannot grow memory. Hashes the store
    did not know are remembered for ``negative_ttl_s`` in a table of the same bound (a key
    created meanwhile works once that passes). While the store is down, a key validated
    before keeps being served.
    """

    def __init__(
        self,
        store: Store,
        *,
        ttl_s: float = KEY_CACHE_TTL_S,
        max_entries: int = KEY_CACHE_MAX,
        negative_ttl_s: float = NEGATIVE_TTL_S,
    ) -> None:
        self._store = store
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.negative_ttl_s = negative_ttl_s
        self._entries: OrderedDict[str, tuple[float, ApiKey]] = OrderedDict()
        self._unknown: OrderedDict[str, float] = OrderedDict()
        self._touched: dict[str, float] = {}
        self.store_lookups = 0
        """Lookups that went to the store (a test and a benchmark read it)."""
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
        unknown_at = self._unknown.get(key_hash)
        if unknown_at is not None and now - unknown_at < self.negative_ttl_s:
            return None
        try:
            self.store_lookups += 1
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
            _bounded_put(self._unknown, key_hash, now, self.max_entries)
            return None
        _bounded_put(self._entries, key_hash, (now, key), self.max_entries)
        return key

    def known(self, key_hash: str) -> bool:
        """True if this hash was a stored key when last looked up (however long ago)."""
        return key_hash in self._entries

    def touch(self, key: ApiKey) -> None:
        """Record the key's use in the store, at most once per ``TOUCH_EVERY_S`` per key
        (in the background; a failure is logged, never the request's)."""
        now = time.monotonic()
        if now - self._touched.get(key.name, -TOUCH_EVERY_S) < TOUCH_EVERY_S:
            return
        self._touched[key.name] = now
        if len(self._touched) > self.max_entries:
            self._touched.clear()
        task = asyncio.get_running_loop().create_task(
            asyncio.to_thread(self._store.touch_key, key.name, datetime.now(UTC))
        )
        task.add_done_callback(_log_failure)


V = TypeVar("V")


def _bounded_put(table: OrderedDict[str, V], k: str, v: V, bound: int) -> None:
    table[k] = v
    table.move_to_end(k)
    while len(table) > bound:
        table.popitem(last=False)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("could not record a key's last use: %s", task.exception())


class WrongTokenGuard:
    """Per-client backoff after wrong tokens: a client that sent ``limit`` wrong tokens in
    the last ``window_s`` seconds gets 429 for any token the replica has not seen as a real
    key, until the oldest of them leaves the window, without a lookup (so clients behind
    one address keep working with their real keys). Clients are remembered in a bounded
    table (oldest go first)."""

    def __init__(self, *, limit: int = 20, window_s: float = 10.0, max_clients: int = 4096):
        self.limit = limit
        self.window_s = window_s
        self.max_clients = max_clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def wait_s(self, client: str, now: float) -> float | None:
        """Seconds ``client`` must wait before its next try, or ``None``."""
        seen = self._failures.get(client)
        if seen is None:
            return None
        while seen and seen[0] <= now - self.window_s:
            seen.popleft()
        if len(seen) < self.limit:
            return None
        return seen[0] + self.window_s - now

    def failed(self, client: str, now: float) -> None:
        """Count one wrong token from ``client``."""
        seen = self._failures.pop(client, None) or deque(maxlen=self.limit)
        seen.append(now)
        _bounded_put(self._failures, client, seen, self.max_clients)


def _invalid(what: str) -> JSONResponse:
    return openai_error(
        401, f"The API key is {what}.", type_="invalid_request_error", code="invalid_api_key"
    )


async def authenticate(
    authorization: str | None,
    cache: KeyCache,
    metrics: GatewayMetrics,
    *,
    guard: WrongTokenGuard | None = None,
    client: str = "",
) -> tuple[JSONResponse | None, ApiKey | None]:
    """(an OpenAI-style 401/429/503 response, None) or (None, the valid key)."""
    token = bearer_token(authorization)
    if token is None:
        metrics.rejected.labels("missing_key").inc()
        return openai_error(
            401,
            "Missing API key: send 'Authorization: Bearer <key>'.",
            type_="invalid_request_error",
            code="invalid_api_key",
        ), None
    now = time.monotonic()
    key_hash = hash_key(token)
    # A client in backoff is still served with keys this replica knows to be real.
    wait = guard.wait_s(client, now) if guard is not None else None
    if wait is not None and not cache.known(key_hash):
        metrics.rejected.labels("wrong_key_backoff").inc()
        return openai_error(
            429,
            f"Too many invalid API keys from this client; retry in {wait:.0f} s.",
            type_="rate_limit_error",
            code="invalid_api_key_backoff",
            headers={"Retry-After": str(max(1, round(wait)))},
        ), None
    try:
        key = await cache.lookup(key_hash) if KEY_SHAPE.match(token) else None
    except Exception:
        log.exception("key store unreachable")
        return openai_error(
            503, "The key store is unreachable; retry shortly.", type_="server_error"
        ), None
    refusal = "invalid" if key is None else key.refusal(key_hash, datetime.now(UTC))
    if key is None or refusal is not None:
        metrics.rejected.labels("invalid_key").inc()
        if guard is not None:
            guard.failed(client, now)
        return _invalid(refusal or "invalid"), None
    cache.touch(key)
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
