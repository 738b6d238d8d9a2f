"""Erasure on request (``gavel store erase --key``): every place a key's text can be.

One erasure blanks, batch by batch (one short transaction each):

- the key's records: request, response, metadata and the client's request id;
- their shadows (by ``twin_id``; a shadow carries its twin's key too);
- the judge's own captured requests about them (they quote the conversation; the judge
  names the item it judges in its metadata, ``judged_item``);
- the judges' reasoning about them, pass/fail and pairwise (``twin|shadow``) alike;
- the labels' notes about them, and the notes of the labels' history;
- the comments of end users' feedback on them, and of its history; and the comments
  the key itself sent (an application's backend) about other keys' requests.

The erasure is recorded in ``gavel_erasures``. Records still on their way (spool files)
and set aside (quarantine files) are blanked where they lie (:func:`erase_files`). A
restore of an older backup would bring erased text back: :func:`reapply_erasures` puts
the log back and erases again, and ``gavel store restore`` runs it after every restore.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update

from serving.store._lifecycle import (
    BLANK_REQUEST,
    _batches,
    _count,
    _erasable,
    erase_query,
    feedback_removal,
)
from serving.store._schema import (
    erasures,
    feedback,
    feedback_history,
    label_history,
    labels,
    traffic,
    verdicts,
)
from serving.store._store import Store

LIKE_CHUNK = 100
"""Ids matched per statement where a LIKE is needed (judge records, pairwise items)."""


def _blank(where: ColumnElement[bool]) -> Any:
    return (
        update(traffic)
        .where(where)
        .values(
            request_json=BLANK_REQUEST,
            response_text=None,
            metadata_json=None,
            client_request_id=None,
            text_removed="erased",
            kept=None,
        )
    )


def _about(column: Any, ids: list[str], *, pairs: bool) -> ColumnElement[bool]:
    """Rows of ``column`` that name one of ``ids`` (as an item, or one side of a pair)."""
    clauses: list[ColumnElement[bool]] = [column.in_(ids)]
    if pairs:
        clauses += [column.like(f"{i}|%") for i in ids] + [column.like(f"%|{i}") for i in ids]
    return or_(*clauses)


def _erase_batch(conn: Any, ids: list[str]) -> None:
    """Blank every trace of the records ``ids`` (already the key's own, or its shadows)."""
    conn.execute(_blank(traffic.c.request_id.in_(ids)))
    conn.execute(_blank(traffic.c.twin_id.in_(ids)))
    for stmt in feedback_removal("text", ids):  # end users' comments on them
        conn.execute(stmt)
    for k in range(0, len(ids), LIKE_CHUNK):
        chunk = ids[k : k + LIKE_CHUNK]
        judged = or_(*[traffic.c.metadata_json.like(f"%{i}%") for i in chunk])
        conn.execute(_blank(and_(traffic.c.source == "judge", judged)))
        item = _about(verdicts.c.item_id, chunk, pairs=True)
        conn.execute(update(verdicts).where(item).values(reasoning=None))
        conn.execute(
            update(labels).where(_about(labels.c.item_id, chunk, pairs=True)).values(note=None)
        )
        hist = _about(label_history.c.item_id, chunk, pairs=True)
        conn.execute(update(label_history).where(hist).values(note=None))


def erase(
    store: Store,
    key_name: str,
    *,
    since: date | None,
    by: str,
    dry_run: bool,
    batch_size: int = 1000,
    record: bool = True,
) -> int:
    """Remove every trace of ``key_name``'s captured text (from ``since``, else all),
    labelled or golden alike (see the module); record the erasure unless ``record`` is
    False (a re-application). Returns the records whose text was (or would be) removed."""
    if dry_run:
        return _count(store, _erasable(key_name, since))
    n = 0
    for ids in _batches(store, erase_query(key_name, since, batch_size)):
        with store.transaction() as conn:
            _erase_batch(conn, ids)
        n += len(ids)
    with store.transaction() as conn:  # the comments the key sent about others' requests
        for table in (feedback, feedback_history):
            sent = table.c.sent_by == key_name
            if since is not None:
                sent = and_(sent, table.c.at >= datetime.combine(since, time(0), tzinfo=UTC))
            conn.execute(update(table).where(sent).values(comment=None))
    if record:
        store.execute(
            erasures.insert().values(
                key_name=key_name,
                since=since.isoformat() if since else None,
                records=n,
                erased_by=by,
                erased_at=datetime.now(UTC),
            )
        )
    return n


def erasure_log(store: Store) -> list[dict[str, Any]]:
    """Every recorded erasure, oldest first."""
    return store.fetch(select(erasures).order_by(erasures.c.id))


def reapply_erasures(store: Store, log: list[dict[str, Any]]) -> int:
    """After a restore: put back the erasures of ``log`` that the restored store does not
    hold, then apply every erasure again (text erased after the backup stays erased).
    Returns the records erased again."""
    held = {(e["key_name"], e["since"], e["erased_by"]) for e in erasure_log(store)}
    for e in log:
        if (e["key_name"], e["since"], e["erased_by"]) not in held:
            store.execute(erasures.insert().values({k: v for k, v in e.items() if k != "id"}))
    n = 0
    for e in erasure_log(store):
        since = date.fromisoformat(e["since"]) if e["since"] else None
        n += erase(store, e["key_name"], since=since, by=e["erased_by"], dry_run=False,
                   record=False)  # fmt: skip
    return n


def erase_files(folder: Path, key_name: str) -> int:
    """Blank ``key_name``'s records in the JSONL files under ``folder`` (a spool and its
    quarantine); returns the records blanked. Each file is rewritten whole, 0600, and
    renamed into place."""
    n = 0
    for path in sorted(folder.rglob("*.jsonl")) if folder.is_dir() else []:
        lines = path.read_bytes().splitlines()
        out, changed = [], 0
        for line in lines:
            rec = _json_or_none(line)
            if isinstance(rec, dict) and rec.get("key_name") == key_name:
                rec.update(request={}, response_text=None, metadata={}, client_request_id=None)
                line = json.dumps(rec, ensure_ascii=False).encode()
                changed += 1
            out.append(line)
        if changed:
            tmp = path.with_name(f".{path.name}.erasing")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(b"".join(x + b"\n" for x in out))
            os.replace(tmp, path)
            n += changed
    return n


def _json_or_none(line: bytes) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None
