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
from typing import Any, TypeVar

from serving._keys import KEY_PREFIX, bearer_token, hash_key
from serving._wire import ROLE_SCOPE, ApiKey
from serving.gateway._context import RequestContext
from serving.gateway._refusal import Refusal
from serving.store import Store

log = logging.getLogger("gavel.gateway")

KEY_CACHE_TTL_S = 2.0
OUTAGE_GRACE_S = 60.0
LOOKUP_TIMEOUT_S = 2.0
STORE_RETRY_S = 1.0
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
    created meanwhile works once that passes).

    **During a store outage** (one policy): a lookup waits at most ``lookup_timeout_s``;
    after a failure the store is not asked again for ``retry_s`` (so a blackholed store
    costs one waiting lookup per ``retry_s``, not one per request); a key validated less
    than ``outage_grace_s`` ago keeps being served, and after that the replica fails
    closed (503) until the store answers again. So a key revoked during an outage stops
    working within ``outage_grace_s`` of its last validation.
    """

    def __init__(
        self,
        store: Store,
        *,
        ttl_s: float = KEY_CACHE_TTL_S,
        max_entries: int = KEY_CACHE_MAX,
        negative_ttl_s: float = NEGATIVE_TTL_S,
        outage_grace_s: float = OUTAGE_GRACE_S,
        lookup_timeout_s: float = LOOKUP_TIMEOUT_S,
        retry_s: float = STORE_RETRY_S,
    ) -> None:
        self._store = store
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.negative_ttl_s = negative_ttl_s
        self.outage_grace_s = outage_grace_s
        self.lookup_timeout_s = lookup_timeout_s
        self.retry_s = retry_s
        self._entries: OrderedDict[str, tuple[float, ApiKey]] = OrderedDict()
        self._unknown: OrderedDict[str, float] = OrderedDict()
        self._touched: dict[str, float] = {}
        self._down_until = 0.0
        self._inflight: dict[str, asyncio.Task[ApiKey | None]] = {}
        self.store_lookups = 0
        """Lookups that went to the store (a test and a benchmark read it)."""
        self.store_ok: bool | None = None
        """Whether the last lookup that went to the store reached it (``None``: none yet)."""

    def __len__(self) -> int:
        return len(self._entries)

    async def lookup(self, key_hash: str) -> ApiKey | None:
        """The key with this hash (revoked or not), or ``None``; raises
        :class:`StoreUnavailable` when the store cannot answer and no recent validation
        of this key may stand in for it.

        A key cached for more than half its TTL is served from the cache while one lookup
        in the background refreshes it, so that a busy key never waits on the store; one
        past its TTL waits for the store, and concurrent requests for one hash share one
        lookup."""
        now = time.monotonic()
        hit = self._entries.get(key_hash)
        if hit is not None and now - hit[0] < self.ttl_s:
            self._entries.move_to_end(key_hash)
            if now - hit[0] >= self.ttl_s / 2 and now >= self._down_until:
                self._fetch(key_hash)  # refresh ahead; its failure is the next lookup's
            return hit[1]
        unknown_at = self._unknown.get(key_hash)
        if unknown_at is not None and now - unknown_at < self.negative_ttl_s:
            return None
        return await asyncio.shield(self._fetch(key_hash))

    def _fetch(self, key_hash: str) -> asyncio.Task[ApiKey | None]:
        """The one store lookup of ``key_hash`` in flight (started if none is)."""
        task = self._inflight.get(key_hash)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._from_store(key_hash))
            self._inflight[key_hash] = task
            task.add_done_callback(lambda t: self._done(key_hash, t))
        return task

    def _done(self, key_hash: str, task: asyncio.Task[ApiKey | None]) -> None:
        if self._inflight.get(key_hash) is task:
            del self._inflight[key_hash]
        if not task.cancelled():
            task.exception()  # retrieved: a refresh nobody awaited fails quietly

    async def _from_store(self, key_hash: str) -> ApiKey | None:
        hit = self._entries.get(key_hash)
        try:
            if time.monotonic() < self._down_until:
                raise StoreUnavailable("the key store failed a moment ago")
            self.store_lookups += 1
            started = time.monotonic()  # the entry's age counts from the read's start
            key = await asyncio.wait_for(
                asyncio.to_thread(self._store.key_by_hash, key_hash), self.lookup_timeout_s
            )
        except Exception:
            self.store_ok = False
            self._down_until = max(self._down_until, time.monotonic() + self.retry_s)
            if hit is None or time.monotonic() - hit[0] >= self.outage_grace_s:
                raise StoreUnavailable("the key store is unreachable") from None
            # Store down: keep serving a key validated recently (captures are spooled).
            log.warning("key store unreachable; using the cached key")
            return hit[1]
        self.store_ok = True
        self._down_until = 0.0
        if key is None:
            self._entries.pop(key_hash, None)
            _bounded_put(self._unknown, key_hash, started, self.max_entries)
            return None
        _bounded_put(self._entries, key_hash, (started, key), self.max_entries)
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


class StoreUnavailable(Exception):
    """The key store cannot answer, and no recent validation may stand in for it."""


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


def _invalid(what: str) -> Refusal:
    return Refusal(
        401,
        f"The API key is {what}.",
        type_="invalid_request_error",
        code="invalid_api_key",
        reason="invalid_key",
    )


def client_address(
    peer: str | None, forwarded_for: str | None, trusted: frozenset[str] = frozenset()
) -> str:
    """The client's address for the wrong-token guard: the peer's, unless the peer is a
    trusted proxy, in which case the nearest untrusted address of ``X-Forwarded-For``
    (as uvicorn's ``forwarded_allow_ips`` does; ``*`` trusts every peer)."""
    peer = peer or ""
    if not forwarded_for or not (peer in trusted or "*" in trusted):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if hop not in trusted:
            return hop[:64]
    return hops[0][:64] if hops else peer


async def authenticate(
    authorization: str | None,
    cache: KeyCache,
    *,
    guard: WrongTokenGuard | None = None,
    client: str = "",
) -> ApiKey:
    """The valid key of ``authorization``, or raise a :class:`Refusal` (401, 429, 503).

    Only tokens that are no key at all count as wrong tokens for ``client``: a revoked,
    expired or rotated-out secret was a real key, and says nothing of a guesser.
    """
    token = bearer_token(authorization)
    if token is None:
        raise Refusal(
            401,
            "Missing API key: send 'Authorization: Bearer <key>'.",
            type_="invalid_request_error",
            code="invalid_api_key",
            reason="missing_key",
        )
    now = time.monotonic()
    key_hash = hash_key(token)
    # A client in backoff is still served with keys this replica knows to be real.
    wait = guard.wait_s(client, now) if guard is not None else None
    if wait is not None and not cache.known(key_hash):
        raise Refusal(
            429,
            f"Too many invalid API keys from this client; retry in {wait:.0f} s.",
            type_="rate_limit_error",
            code="invalid_api_key_backoff",
            reason="wrong_key_backoff",
            headers={"Retry-After": str(max(1, round(wait)))},
        )
    try:
        key = await cache.lookup(key_hash) if KEY_SHAPE.match(token) else None
    except StoreUnavailable:
        log.warning("key store unreachable")
        raise Refusal(
            503,
            "The key store is unreachable; retry shortly.",
            type_="server_error",
            reason="key_store_unavailable",
        ) from None
    if key is None:
        if guard is not None:
            guard.failed(client, now)
        raise _invalid("invalid")
    refusal = key.refusal(key_hash, datetime.now(UTC))
    if refusal is not None:
        raise _invalid(refusal)
    cache.touch(key)
    return key


def check_scope(key: ApiKey, model: str, role: str) -> None:
    """Raise a 403 if ``key`` may not call the model of ``role`` (a ``label``-only key
    never gets generation)."""
    scope = ROLE_SCOPE.get(role, "admin")
    if key.allows(scope):
        return
    raise Refusal(
        403,
        f"The key {key.name!r} lacks the '{scope}' scope needed for model {model!r}.",
        type_="permission_error",
        code="insufficient_scope",
        reason="scope",
    )


class AuthHook:
    """The key of the ``Authorization`` header (before the body is read), with the
    wrong-token guard keyed on the client's address (``X-Forwarded-For`` only from
    ``auth.trusted_proxies``)."""

    name = "auth"

    def __init__(
        self, keys: KeyCache, guard: WrongTokenGuard | None, trusted_proxies: list[str]
    ) -> None:
        self._keys = keys
        self._guard = guard
        self._trusted = frozenset(trusted_proxies)

    async def before(self, ctx: RequestContext) -> None:
        ctx.key = await authenticate_request(ctx.request, self._keys, self._guard, self._trusted)

    def end(self, ctx: RequestContext) -> None:
        """Nothing is held."""


async def authenticate_request(
    request: Any, keys: KeyCache, guard: WrongTokenGuard | None, trusted: frozenset[str]
) -> ApiKey:
    """:func:`authenticate` an HTTP request (raises a Refusal)."""
    peer = request.client.host if request.client is not None else ""
    client = client_address(peer, request.headers.get("x-forwarded-for"), trusted)
    return await authenticate(
        request.headers.get("authorization"), keys, guard=guard, client=client
    )


class ScopeHook:
    """The key must carry the scope of the model's role (403)."""

    name = "scope"

    async def before(self, ctx: RequestContext) -> None:
        if ctx.key is not None and ctx.role is not None:
            check_scope(ctx.key, ctx.asked or ctx.model, ctx.role)

    def end(self, ctx: RequestContext) -> None:
        """Nothing is held."""
