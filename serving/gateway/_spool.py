"""The capture spool: JSONL files on local disk of records not yet in the store, each
file owned by one writer (see :class:`Spool`), and the insert that quarantines the rows
a store refuses."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from serving._wire import TrafficRecord
from serving.store import Store

log = logging.getLogger("gavel.capture")

STORE_DOWN = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout, OSError)
"""Errors that mean the store is unreachable (retry later), not that a row is bad."""


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
    except STORE_DOWN:
        raise
    except Exception:
        log.warning("the store refused a batch of %d; inserting one by one", len(records))
    bad: list[TrafficRecord] = []
    for r in records:
        try:
            store.insert_traffic([r])
        except STORE_DOWN:
            raise
        except Exception as exc:
            log.error("quarantining record %s: %s", r.request_id, type(exc).__name__)
            bad.append(r)
    if bad:
        quarantine(bad)
    return len(records) - len(bad)


def _locked_owner(owner: Path) -> int:
    """The owner file of a new writer, locked before any adopter can see it: it is
    created and locked under a private name, then renamed into place (an adopter that
    finds ``owner`` finds it locked, never between its creation and its lock)."""
    tmp = owner.with_name(f".{owner.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.rename(tmp, owner)
    return fd


class Spool:
    """JSONL files of records that could not be written yet; every file has one owner.

    A writer appends to and replays only its own files (``TAG-NNNNNN.jsonl``), so no
    reader races a writer. It holds a lock (flock) on ``TAG.owner`` for its whole life; the
    kernel drops the lock when the process dies, however it dies. A writer that can take
    another tag's owner lock knows that writer is gone and, holding the lock, renames the
    orphan's files to its own tag (it adopts them) before removing the owner file. Files
    of a tag with no owner file (an older Gavel's) are adopted the same way; a rename is
    atomic, so two survivors never both take a file.
    """

    def __init__(self, directory: Path, tag: str) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.quarantine_dir = self.dir / "quarantine"
        self.tag = tag
        self._lock = threading.Lock()
        self._seq = 0
        self._owner = self.dir / f"{tag}.owner"
        self._owner_fd: int | None = _locked_owner(self._owner)
        self.pending = 0
        self.quarantined = 0
        self.adopt_orphans()

    @staticmethod
    def _count(path: Path) -> int:
        try:
            with path.open("rb") as f:
                return sum(1 for line in f if line.strip())
        except OSError:
            return 0

    def _next_file(self) -> Path:
        return self.dir / f"{self.tag}-{self._seq:06d}.jsonl"

    def append(self, records: list[TrafficRecord]) -> None:
        """Append records durably (fsync); raises ``OSError`` if the disk refuses."""
        if not records:
            return
        data = b"".join(_line(r) for r in records)
        with self._lock:
            _append_private(self._next_file(), data)
            self.pending += len(records)

    def quarantine(self, records: list[TrafficRecord]) -> None:
        """Set records the store refused aside, for a person to look at."""
        self.quarantine_dir.mkdir(exist_ok=True, mode=0o700)
        _append_private(self.quarantine_dir / f"{self.tag}.jsonl", b"".join(map(_line, records)))
        self.quarantined += len(records)

    def adopt_orphans(self) -> int:
        """Take over the files of writers that are gone; returns the records adopted."""
        adopted = 0
        owners = {p.name.removesuffix(".owner") for p in self.dir.glob("*.owner")}
        tags = {p.name.rsplit("-", 1)[0] for p in self.dir.glob("*-*.jsonl")} | owners
        for tag in sorted(tags - {self.tag}):
            if tag in owners:
                adopted += self._adopt_locked(tag)
            else:
                adopted += self._adopt_files(tag)
        return adopted

    def _adopt_locked(self, tag: str) -> int:
        owner = self.dir / f"{tag}.owner"
        try:
            fd = os.open(owner, os.O_RDWR)
        except FileNotFoundError:
            return 0
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return 0  # its writer is alive
        try:
            n = self._adopt_files(tag)
            owner.unlink(missing_ok=True)
            return n
        finally:
            os.close(fd)

    def _adopt_files(self, tag: str) -> int:
        n = 0
        for path in sorted(self.dir.glob(f"{tag}-*.jsonl")):
            with self._lock:
                self._seq += 1
                mine = self._next_file()
                self._seq += 1  # appends never go to an adopted file
            try:
                path.rename(mine)
            except FileNotFoundError:
                continue  # another survivor took it
            count = self._count(mine)
            with self._lock:
                self.pending += count
            n += count
            log.info("adopted %d spooled records of a gone writer (%s)", count, tag)
        return n

    def replay(self, store: Store, *, batch_size: int) -> int:
        """Write every file of this writer's but the one being appended to; returns records
        written. Stops (raising) only when the store is unreachable; rows the store refuses
        are quarantined and the replay goes on."""
        with self._lock:
            self._seq += 1  # new appends go to a new file
            current = self._next_file()
        written = 0
        for path in sorted(self.dir.glob(f"{self.tag}-*.jsonl")):
            if path == current:
                continue
            records, lines = self._read(path)
            for i in range(0, len(records), batch_size):
                written += insert_or_quarantine(store, records[i : i + batch_size], self.quarantine)
            path.unlink()  # only now: an outage above leaves the file to replay again
            with self._lock:
                self.pending = max(0, self.pending - lines)
        return written

    def close(self) -> None:
        """Give up ownership: with nothing left, the owner file goes; else a survivor (or
        the next writer on this spool) adopts the files."""
        if self._owner_fd is None:
            return
        if not any(self.dir.glob(f"{self.tag}-*.jsonl")):
            self._owner.unlink(missing_ok=True)
        os.close(self._owner_fd)
        self._owner_fd = None

    def _read(self, path: Path) -> tuple[list[TrafficRecord], int]:
        """The file's records, and how many lines it had (unreadable ones quarantined)."""
        out = []
        lines = 0
        with path.open("rb") as f:
            for line in f:
                if not line.strip():
                    continue
                lines += 1
                try:
                    out.append(TrafficRecord.model_validate(json.loads(line)))
                except (ValidationError, ValueError):
                    log.error("quarantining an unreadable spool line in %s", path)
                    self.quarantine_dir.mkdir(exist_ok=True, mode=0o700)
                    _append_private(self.quarantine_dir / f"{self.tag}.unreadable", line)
                    self.quarantined += 1
        return out, lines
