"""Durable, batched capture of traffic records, off the request path.

Requests hand records to :meth:`CaptureWriter.submit` (no I/O). A background task
prepares them (cleaning and redaction, in a thread) and writes them to the store in
batches every ``flush_interval_s``. On the first store error the writer spools: the
batch and everything queued go to a spool of JSONL files on local disk (fsynced), and
until the store answers again each flush spools what came in. The spool is replayed
once the store answers. Inserts are idempotent on the request id, so a replay never
writes a record twice.

A record the store refuses on its own (a value it cannot hold) is *quarantined*: set
aside in ``spool_dir/quarantine/`` and counted in ``gavel_capture_quarantined_records``;
it never blocks the rest of its batch, nor the replay of a spool file. A spool write that
fails keeps its records in memory, to be written or spooled again on the next flush.

What a ``kill -9`` can lose is what sat in memory. With the store up, that is the
records of at most one flush interval (plus the batch being written). With the store
down, each flush first spools what is queued and then tries to replay the spool (the
probe that ends the outage), which can wait up to the store's connect timeout (5 s): the
bound is then one flush interval plus that timeout. ``queue_max`` caps memory in any case
(beyond it, records are spooled as they arrive). Spool and quarantine files are created
readable by their owner only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from serving._wire import TrafficRecord
from serving.gateway._context import RequestContext
from serving.gateway._metrics import GatewayMetrics
from serving.gateway._record import to_record
from serving.gateway._spool import STORE_DOWN, Spool, insert_or_quarantine
from serving.store import Store

if TYPE_CHECKING:
    from serving.gateway._record import GatewaySettings

log = logging.getLogger("gavel.capture")

RETRY_STORE_S = 2.0
ADOPT_EVERY_S = 10.0
"""How often a writer looks for the spooled files of writers that are gone."""


class CaptureWriter:
    """Queue in memory, write in batches, spool on the first failure, replay on recovery."""

    def __init__(
        self,
        store: Store,
        *,
        spool_dir: Path,
        flush_interval_s: float = 0.5,
        batch_size: int = 256,
        queue_max: int = 2000,
        metrics: GatewayMetrics | None = None,
        prepare: Callable[[TrafficRecord], TrafficRecord] | None = None,
    ) -> None:
        self.store = store
        self.spool = Spool(spool_dir, tag=f"{os.getpid()}-{uuid.uuid4().hex[:8]}")
        self.flush_interval_s = flush_interval_s
        self.batch_size = batch_size
        self.queue_max = queue_max
        self.metrics = metrics
        self.prepare = prepare
        self._queue: deque[TrafficRecord] = deque()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._flush_lock = asyncio.Lock()
        self._down_until = 0.0
        """While the store is down, flushes spool without trying it until this time."""
        self._wake: asyncio.Event | None = None
        self._adopt_at = 0.0
        self._update_gauges()

    def _update_gauges(self) -> None:
        if self.metrics is not None:
            self.metrics.queue_depth.set(len(self._queue))
            self.metrics.spool_records.set(self.spool.pending)

    def start(self) -> None:
        """Start the background flush loop on the running event loop."""
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run())

    def submit(self, record: TrafficRecord) -> None:
        """Hand over a record; the next flush writes it, and a full queue wakes it early.

        Only in overload (``queue_max`` records already waiting) does a record go straight
        to the spool from here; if even that fails it stays queued.
        """
        if len(self._queue) >= self.queue_max:
            try:
                self.spool.append(self._prepared([record]))
                self._update_gauges()
                return
            except OSError:
                if self.metrics is not None:
                    self.metrics.spool_errors.inc()
        self._queue.append(record)
        if len(self._queue) >= self.queue_max and self._wake is not None:
            self._wake.set()
        self._update_gauges()

    @property
    def queued(self) -> int:
        """Records waiting in memory."""
        return len(self._queue)

    @property
    def store_down(self) -> bool:
        """True while the writer spools instead of trying the store."""
        return time.monotonic() < self._down_until

    async def _run(self) -> None:
        assert self._wake is not None
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_interval_s)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # the loop must survive anything; records stay queued
                log.exception("capture flush failed")

    def _prepared(self, batch: list[TrafficRecord]) -> list[TrafficRecord]:
        if self.prepare is None:
            return batch
        return [self.prepare(r) for r in batch]

    def _quarantine(self, records: list[TrafficRecord]) -> None:
        try:
            self.spool.quarantine(records)
        except OSError:
            log.exception("cannot write %d quarantined records", len(records))
        if self.metrics is not None:
            self.metrics.quarantined.inc(len(records))

    def _write(self, batch: list[TrafficRecord]) -> bool:
        """Prepare and write a batch to the store, else to the spool. False if neither
        took it (the caller keeps the records)."""
        batch = self._prepared(batch)
        if not self.store_down:
            try:
                n = insert_or_quarantine(self.store, batch, self._quarantine)
                if self.metrics is not None:
                    self.metrics.capture_written.inc(n)
                return True
            except STORE_DOWN as exc:
                log.warning("store unreachable (%s); spooling", type(exc).__name__)
                self._down_until = time.monotonic() + RETRY_STORE_S
        try:
            self.spool.append(batch)
            return True
        except OSError:
            log.exception("cannot spool %d records; keeping them in memory", len(batch))
            if self.metrics is not None:
                self.metrics.spool_errors.inc()
            return False

    def _replay(self) -> None:
        """Replay the spool; this is also the probe that ends a store outage."""
        try:
            n = self.spool.replay(self.store, batch_size=self.batch_size)
            self._down_until = 0.0
            if n and self.metrics is not None:
                self.metrics.capture_written.inc(n)
        except STORE_DOWN as exc:
            log.warning("spool replay deferred: %s", type(exc).__name__)
            self._down_until = time.monotonic() + RETRY_STORE_S

    async def flush(self) -> None:
        """Write everything queued now (to the store, or all to the spool once it fails);
        replay the spool when the store answers."""
        async with self._flush_lock:
            while self._queue:
                n = min(self.batch_size, len(self._queue))
                if self.store_down:
                    n = len(self._queue)  # spool everything at once
                batch = [self._queue.popleft() for _ in range(n)]
                if not await asyncio.to_thread(self._write, batch):
                    self._queue.extendleft(reversed(batch))  # nothing lost; retry next flush
                    break
            if time.monotonic() >= self._adopt_at:
                self._adopt_at = time.monotonic() + ADOPT_EVERY_S
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(self.spool.adopt_orphans)
            if self.spool.pending:
                await asyncio.to_thread(self._replay)
            self._update_gauges()

    async def close(self) -> None:
        """Stop the loop and flush what is left (to the store, or to the spool)."""
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._down_until = 0.0  # one last try of the store
        await self.flush()
        self.spool.close()


class CaptureHook:
    """Hands every request that reached a model to the capture writer when it ends
    (metadata only for a metadata-only key's, shadows included). A refusal served
    nothing and is not captured: it is counted by its reason (a hostile client could
    otherwise fill the store with refusals)."""

    name = "capture"

    def __init__(self, writer: CaptureWriter | None, settings: GatewaySettings) -> None:
        self._writer = writer
        self._settings = settings

    async def before(self, ctx: RequestContext) -> None:
        """Nothing to take (the gateway starts the writer)."""

    def end(self, ctx: RequestContext) -> None:
        if self._writer is not None and ctx.engine_called:
            self._writer.start()
            self._writer.submit(to_record(ctx, self._settings, cost=ctx.cost, e2e_s=ctx.e2e_s))
