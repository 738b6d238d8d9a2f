"""The limiter's journal: what it charged, durable in Ray's GCS key-value store (where
Serve's controller checkpoints itself), so that a limiter restarted after its actor was
killed starts from the same windows.

Every charge (an admission, a lease granted, returned or settled) is added to the
journal and written before the limiter answers: the writes are *group-committed* (one
write carries every event that arrived while the previous one was in flight), keyed by
the second they were written in, and deleted once they can no longer matter
(``HORIZON_S``). A new limiter replays them through the same
:class:`~._windows.SlidingWindows` methods, in time order.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any, Literal, Protocol

from serving._base import GavelModel
from serving.gateway._windows import LEASE_GRACE_S, LEASE_TERM_S, WINDOW_S, SlidingWindows

HORIZON_S = WINDOW_S + LEASE_TERM_S + LEASE_GRACE_S + 5.0
"""Events older than this cannot change a window any more (their charges have left it)."""


class WindowEvent(GavelModel):
    """One charge of the rate windows (``t``: wall-clock seconds)."""

    kind: Literal["admit", "lease", "return", "settle"]
    t: float
    key: str
    id: str | None = None
    """The reservation (admit, settle) or the lease (lease, return)."""
    requests: int = 0
    tokens: int = 0
    term_s: float = 0.0


class JournalBatch(GavelModel):
    """What one write of the journal holds."""

    events: list[WindowEvent]


def apply(windows: SlidingWindows, event: WindowEvent, now: float) -> None:
    """Replay one event into ``windows`` at monotonic time ``now``."""
    if event.kind == "admit":
        windows.record(event.key, now, reserve=event.tokens, reservation=event.id)
    elif event.kind == "lease":
        windows.hold(
            event.key,
            event.id or "",
            now,
            requests=event.requests,
            tokens=event.tokens,
            term_s=event.term_s,
        )
    elif event.kind == "return":
        windows.give_back(
            event.key,
            event.id or "",
            now,
            used_requests=event.requests,
            used_tokens=event.tokens,
        )
    else:
        windows.settle(event.id, event.key, now, event.tokens)


class KeyValue(Protocol):
    """The few key-value operations the journal needs (blocking calls)."""

    async def put(self, key: str, value: bytes) -> None:
        """Write ``value`` under ``key``."""

    def items(self, prefix: str) -> list[tuple[str, bytes]]:
        """Every key under ``prefix`` with its value (blocking: at start only)."""

    async def delete_prefix(self, prefix: str) -> None:
        """Delete every key under ``prefix``."""


class GcsKeyValue:
    """Ray's GCS internal key-value store, under one namespace."""

    def __init__(self, namespace: str) -> None:
        self._ns = namespace

    def _gcs(self) -> Any:
        from ray.experimental import internal_kv

        gcs: Any = internal_kv.global_gcs_client
        if gcs is None:
            raise RuntimeError("Ray is not initialised in this process")
        return gcs

    async def put(self, key: str, value: bytes) -> None:
        """Write ``value`` under ``key`` (on the event loop: no thread)."""
        await self._gcs().async_internal_kv_put(key.encode(), value, True, self._ns.encode())

    def items(self, prefix: str) -> list[tuple[str, bytes]]:
        """Every key under ``prefix`` with its value."""
        gcs = self._gcs()
        ns = self._ns.encode()
        keys = gcs.internal_kv_keys(prefix.encode(), ns)
        out: list[tuple[str, bytes]] = []
        for i in range(0, len(keys), 500):
            got = gcs.internal_kv_multi_get(keys[i : i + 500], ns)
            out.extend((k.decode(), v) for k, v in got.items() if v is not None)
        return out

    async def delete_prefix(self, prefix: str) -> None:
        """Delete every key under ``prefix``."""
        await self._gcs().async_internal_kv_del(prefix.encode(), True, self._ns.encode())


def _consume(done: asyncio.Future[None]) -> None:
    """Retrieve a background write's error (its events stay for the next write)."""
    if not done.cancelled():
        done.exception()


def _bucket(t: float) -> str:
    return f"{int(t):012d}/"


class Journal:
    """Durable, group-committed events of one limiter (see the module's docstring)."""

    def __init__(self, kv: KeyValue, *, clock: Callable[[], float] = time.time) -> None:
        self._kv = kv
        self._clock = clock
        self._writer = uuid.uuid4().hex[:8]
        self._n = 0
        self._buffer: list[WindowEvent] = []
        self._added = 0
        self._written = 0
        self._flushing: asyncio.Future[None] | None = None
        self._buckets: set[str] = set()
        self.writes = 0
        """Writes made (each one holds every event of one group commit)."""

    def load(self) -> list[WindowEvent]:
        """Every event still within ``HORIZON_S``, oldest first (older ones are deleted
        with the next write)."""
        cutoff = _bucket(self._clock() - HORIZON_S)
        events: list[WindowEvent] = []
        for name, value in self._kv.items(""):
            bucket = name[:13]
            if bucket < cutoff:
                self._buckets.add(bucket)
                continue
            self._buckets.add(bucket)
            events.extend(JournalBatch.model_validate_json(value).events)
        events.sort(key=lambda e: e.t)
        return events

    def add(self, event: WindowEvent) -> None:
        """Add an event to the next write."""
        self._buffer.append(event)
        self._added += 1

    def kick(self) -> None:
        """Write what was added soon, without waiting for it (a settlement: losing it
        would only leave a charge too high)."""
        if self._flushing is None and self._buffer:
            self._flushing = asyncio.ensure_future(self._flush())
            self._flushing.add_done_callback(_consume)

    async def durable(self) -> None:
        """Return once every event added so far is written."""
        target = self._added
        while self._written < target:
            if self._flushing is None:
                self._flushing = asyncio.ensure_future(self._flush())
            await asyncio.shield(self._flushing)

    async def _flush(self) -> None:
        batch, self._buffer = self._buffer, []
        upto = self._added
        try:
            if batch:
                bucket = _bucket(self._clock())
                self._n += 1
                name = f"{bucket}{self._writer}-{self._n:010d}"
                value = JournalBatch(events=batch).model_dump_json().encode()
                await self._kv.put(name, value)
                self.writes += 1
                self._buckets.add(bucket)
                if min(self._buckets) < _bucket(self._clock() - HORIZON_S):
                    await self._sweep()
            self._written = upto
        except BaseException:
            self._buffer = batch + self._buffer  # written by the next flush
            raise
        finally:
            self._flushing = None

    async def _sweep(self) -> None:
        cutoff = _bucket(self._clock() - HORIZON_S)
        for bucket in sorted(b for b in self._buckets if b < cutoff):
            await self._kv.delete_prefix(bucket)
            self._buckets.discard(bucket)
