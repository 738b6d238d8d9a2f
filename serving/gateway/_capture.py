"""Durable, batched capture of traffic records, off the request path.

Requests hand records to :meth:`CaptureWriter.submit` (no I/O). A background task
writes them to the store in batches every ``flush_interval_s``. When the store is
unreachable, or the in-memory queue is full, records go to a spool of JSONL files on
local disk (fsynced), which is replayed once the store answers again. Inserts are
idempotent on the request id, so a replay never writes a record twice.

What a ``kill -9`` can lose is what sat in memory: at most one flush interval's worth
of records (plus the batch being written).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import uuid
from collections import deque
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from serving._wire import TrafficRecord
from serving.gateway._metrics import GatewayMetrics
from serving.store import Store

log = logging.getLogger("gavel.capture")


class Spool:
    """JSONL files of records that could not be written yet, shared by all writers on a node.

    Each writer appends to its own file. Replay claims a file by renaming it, so two
    writers never replay the same file; a claimed file left by a dead writer is
    reclaimed on start-up.
    """

    def __init__(self, directory: Path, tag: str) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tag = tag
        self._lock = threading.Lock()
        self._seq = 0
        self.pending = sum(self._count(p) for p in self.dir.glob("*.jsonl*"))

    @staticmethod
    def _count(path: Path) -> int:
        try:
            with path.open("rb") as f:
                return sum(1 for line in f if line.strip())
        except OSError:
            return 0

    def append(self, records: list[TrafficRecord]) -> None:
        """Append records durably (flush + fsync)."""
        if not records:
            return
        data = "".join(r.model_dump_json() + "\n" for r in records).encode()
        with self._lock:
            path = self.dir / f"{self.tag}-{self._seq:06d}.jsonl"
            with path.open("ab") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            self.pending += len(records)

    def replay(self, store: Store, *, batch_size: int) -> int:
        """Write every spooled file to the store; returns records written. Stops on error."""
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
            records = _read_records(claimed)
            try:
                for i in range(0, len(records), batch_size):
                    store.insert_traffic(records[i : i + batch_size])
            except (SQLAlchemyError, OSError):
                claimed.rename(path)  # give it back; retry later
                raise
            claimed.unlink()
            written += len(records)
            with self._lock:
                self.pending = max(0, self.pending - len(records))
        return written


def _stale(path: Path, *, age_s: float = 60) -> bool:
    import time

    try:
        return time.time() - path.stat().st_mtime > age_s
    except OSError:
        return False


def _read_records(path: Path) -> list[TrafficRecord]:
    out = []
    with path.open("rb") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                out.append(TrafficRecord.model_validate_json(line))
            except ValidationError:
                log.error("dropping an unreadable spool line in %s", path)
    return out


class CaptureWriter:
    """Queue in memory, write in batches, spool on failure, replay on recovery."""

    def __init__(
        self,
        store: Store,
        *,
        spool_dir: Path,
        flush_interval_s: float = 0.5,
        batch_size: int = 256,
        queue_max: int = 2000,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self.store = store
        self.spool = Spool(spool_dir, tag=f"{os.getpid()}-{uuid.uuid4().hex[:8]}")
        self.flush_interval_s = flush_interval_s
        self.batch_size = batch_size
        self.queue_max = queue_max
        self.metrics = metrics
        self._queue: deque[TrafficRecord] = deque()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._flush_lock = asyncio.Lock()
        self._update_gauges()

    def _update_gauges(self) -> None:
        if self.metrics is not None:
            self.metrics.queue_depth.set(len(self._queue))
            self.metrics.spool_records.set(self.spool.pending)

    def start(self) -> None:
        """Start the background flush loop on the running event loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def submit(self, record: TrafficRecord) -> None:
        """Hand over a record. Never blocks on the store; a full queue spills to disk."""
        if len(self._queue) >= self.queue_max:
            self.spool.append([record])
        else:
            self._queue.append(record)
        self._update_gauges()

    @property
    def queued(self) -> int:
        """Records waiting in memory."""
        return len(self._queue)

    async def _run(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.flush_interval_s)
            try:
                await self.flush()
            except Exception:  # the loop must survive anything; records are spooled
                log.exception("capture flush failed")

    def _write(self, batch: list[TrafficRecord]) -> bool:
        try:
            self.store.insert_traffic(batch)
            return True
        except (SQLAlchemyError, OSError) as exc:
            log.warning(
                "store unreachable (%s); spooling %d records", type(exc).__name__, len(batch)
            )
            return False

    def _replay(self) -> None:
        try:
            n = self.spool.replay(self.store, batch_size=self.batch_size)
            if n and self.metrics is not None:
                self.metrics.capture_written.inc(n)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("spool replay deferred: %s", type(exc).__name__)

    async def flush(self) -> None:
        """Write everything queued now; spool what cannot be written; replay the spool."""
        async with self._flush_lock:
            healthy = True
            while self._queue:
                batch = [
                    self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))
                ]
                ok = await asyncio.to_thread(self._write, batch)
                if ok:
                    if self.metrics is not None:
                        self.metrics.capture_written.inc(len(batch))
                else:
                    await asyncio.to_thread(self.spool.append, batch)
                    healthy = False
            if healthy and self.spool.pending:
                await asyncio.to_thread(self._replay)
            self._update_gauges()

    async def close(self) -> None:
        """Stop the loop and flush what is left (to the store, or to the spool)."""
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
