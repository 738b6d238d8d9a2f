"""Writers that share one spool directory (the same node, or a shared volume): each owns
its files; the files of a writer that died are adopted by a survivor, once."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from pathlib import Path

import pytest

from serving.gateway import Spool
from serving.store import Store
from tests.serving.test_gateway_units import record


def _writer(spool_dir: str, ready: mp.synchronize.Event, records: int) -> None:
    spool = Spool(Path(spool_dir), tag="other")
    spool.append([record(i, "other") for i in range(records)])
    ready.set()
    signal.pause()  # alive, holding its owner lock, until killed


def test_a_live_writers_files_are_neither_counted_nor_replayed_by_another(
    tmp_path: Path,
) -> None:
    ctx = mp.get_context("fork")
    ready = ctx.Event()
    other = ctx.Process(target=_writer, args=(str(tmp_path / "spool"), ready, 2))
    other.start()
    try:
        assert ready.wait(20)
        store = Store(f"sqlite:///{tmp_path / 'g.db'}")
        mine = Spool(tmp_path / "spool", tag="mine")
        mine.append([record(i, "mine") for i in range(3)])
        assert mine.pending == 3  # not 5: the other writer's records are its own
        assert mine.adopt_orphans() == 0  # it is alive
        assert mine.replay(store, batch_size=10) == 3
        assert len(list((tmp_path / "spool").glob("other-*.jsonl"))) == 1
    finally:
        os.kill(other.pid or 0, signal.SIGKILL)
        other.join(10)
    # killed: its lock is gone with it, and a survivor adopts its records exactly once
    assert mine.adopt_orphans() == 2
    again = Spool(tmp_path / "spool", tag="late")
    assert again.adopt_orphans() == 0
    assert mine.replay(store, batch_size=10) == 2
    assert store.count_traffic() == 5
    assert not list((tmp_path / "spool").glob("*.jsonl"))
    assert not (tmp_path / "spool" / "other.owner").exists()


def test_replay_never_reads_the_file_being_appended_to(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'g.db'}")
    spool = Spool(tmp_path / "spool", tag="w")
    spool.append([record(0, "w")])
    assert spool.replay(store, batch_size=10) == 1
    spool.append([record(1, "w")])  # goes to a new file, after the replay's cut
    assert spool.pending == 1
    assert spool.replay(store, batch_size=10) == 1
    assert store.count_traffic() == 2


def test_a_starting_writers_owner_file_is_never_seen_unlocked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 30, defect 13: the owner file was created before it was locked, so a replica
    adopting at that moment took a live writer's files (every replica adopts at start)."""
    import fcntl

    from serving.gateway import _spool

    adopter = Spool(tmp_path, tag="adopter")
    real_flock = fcntl.flock
    seen: list[int] = []

    def flock_after_an_adoption(fd: int, op: int) -> None:
        if not seen:  # the new writer is about to lock: another replica adopts now
            seen.append(adopter.adopt_orphans())
        real_flock(fd, op)

    monkeypatch.setattr(_spool.fcntl, "flock", flock_after_an_adoption)
    writer = Spool(tmp_path, tag="starting")
    monkeypatch.setattr(_spool.fcntl, "flock", real_flock)
    assert (tmp_path / "starting.owner").exists()  # still the writer's: not adopted
    writer.append([record(0, "starting")])
    assert adopter.adopt_orphans() == 0
