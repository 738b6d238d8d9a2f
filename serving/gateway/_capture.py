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
import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from serving._wire import TrafficRecord
from serving.gateway._metrics import GatewayMetrics
from serving.store import Store

log = logging.getLogger("gavel.capture")

_STORE_DOWN = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout, OSError)
"""Errors that mean the store is unreachable (retry later), not that a row is bad."""
RETRY_STORE_S = 2.0


def _line(record: TrafficRecord) -> bytes:
    # ensure_ascii: a lone surrogate or any odd character is written as an escape, so a
    # spool line can always be written (and quarantined later if the store refuses it).
    return (json.dumps(record.model_dump(mode="json"), ensure_ascii=True) + "\n").encode()


def _append_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def insert_or_quarantine(
    store: Store, records: list[TrafficRecord], quarantine: Callable[[list[TrafficRecord]], None]
) -> int:
    """Insert a batch; if the store refuses it for its content, insert row by row and
    quarantine the rows it refuses. Raises only when the store is unreachable."""
    try:
        store.insert_traffic(records)
        return len(records)
    except _STORE_DOWN:
        raise
    except Exception:
        log.warning("the store refused a batch of %d; inserting one by one", len(records))
    bad: list[TrafficRecord] = []
    for r in records:
        try:
            store.insert_traffic([r])
        except _STORE_DOWN:
            raise
        except Exception as exc:
            log.error("quarantining record %s: %s", r.request_id, type(exc).__name__)
            bad.append(r)
    if bad:
        quarantine(bad)
    return len(records) - len(bad)


class Spool:
    """JSONL files of records that could not be written yet, shared by all writers on a node.

    Each writer appends to its own file. Replay claims a file by renaming it, so two
    writers never replay the same file; a claimed file left by a dead writer is
    reclaimed on start-up.
    """

    def __init__(self, directory: Path, tag: str) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.quarantine_dir = self.dir / "quarantine"
        self.tag = tag
        self._lock = threading.Lock()
        self._seq = 0
        self.pending = sum(self._count(p) for p in self.dir.glob("*.jsonl*"))
        self.quarantined = 0

    @staticmethod
    def _count(path: Path) -> int:
        try:
            with path.open("rb") as f:
                return sum(1 for line in f if line.strip())
        except OSError:
            return 0

    def append(self, records: list[TrafficRecord]) -> None:
        """Append records durably (fsync); raises ``OSError`` if the disk refuses."""
        if not records:
            return
        data = b"".join(_line(r) for r in records)
        with self._lock:
            _append_private(self.dir / f"{self.tag}-{self._seq:06d}.jsonl", data)
            self.pending += len(records)

    def quarantine(self, records: list[TrafficRecord]) -> None:
        """Set records the store refused aside, for a person to look at."""
        self.quarantine_dir.mkdir(exist_ok=True, mode=0o700)
        _append_private(self.quarantine_dir / f"{self.tag}.jsonl", b"".join(map(_line, records)))
        self.quarantined += len(records)

    def replay(self, store: Store, *, batch_size: int) -> int:
        """Write every spooled file to the store; returns records written.

        Stops (raising) only when the store is unreachable; rows the store refuses are
        quarantined and the replay goes on.
        """
        with self._lock:
            self._seq += 1  # new appends go to a new file; the old ones can be claimed
        written = 0
        for path in sorted(self.dir.glob("*.jsonl")) + sorted(self.dir.glob("*.replaying-*")):
            theirs = ".replaying-" in path.name and not path.name.endswith(self.tag)
            if theirs and not _stale(path):
                continue
            claimed = path.with_name(path.name.split(".replaying-")[0] + f".replaying-{self.tag}")
            try:
                path.rename(claimed)
            except FileNotFoundError:
                continue  # another writer claimed it
            records = self._read(claimed)
            try:
                for i in range(0, len(records), batch_size):
                    written += insert_or_quarantine(
                        store, records[i : i + batch_size], self.quarantine
                    )
            except _STORE_DOWN:
                claimed.rename(path)  # give it back; retry later
                raise
            claimed.unlink()
            with self._lock:
                self.pending = max(0, self.pending - len(records))
        return written

    def _read(self, path: Path) -> list[TrafficRecord]:
        out = []
        with path.open("rb") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    out.append(TrafficRecord.model_validate(json.loads(line)))
                except (ValidationError, ValueError):
                    log.error("quarantining an unreadable spool line in %s", path)
                    self.quarantine_dir.mkdir(exist_ok=True, mode=0o700)
                    _append_private(self.quarantine_dir / f"{self.tag}.unreadable", line)
                    self.quarantined += 1
        return out


def _stale(path: Path, *, age_s: float = 60) -> bool:
    try:
        return time.time() - path.stat().st_mtime > age_s
    except OSError:
        return False


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
            except _STORE_DOWN as exc:
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
        except _STORE_DOWN as exc:
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
