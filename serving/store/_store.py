"""The gateway's tables through the database: API keys and captured traffic.

Inserts of traffic are idempotent on the request id, so replaying a spool never
writes a record twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Select, delete, func, or_, select, update

from serving._wire import ApiKey, Figure, FigureJob, TrafficRecord
from serving.store._db import Database, Row, as_utc
from serving.store._rollup import forget_late_days
from serving.store._schema import api_keys, figures, traffic
from serving.store._search import TrafficPage, TrafficQuery, cursor_of
from serving.store._search import statement as search_statement


class Store(Database):
    """Keys and traffic (and, through their own modules, verdicts, labels, eval runs)."""

    # --- keys -----------------------------------------------------------------

    def add_key(self, key: ApiKey) -> str | None:
        """Insert a key. A revoked key of the same name is kept under an archived name
        (``NAME.revoked-YYYYmmddTHHMMSS``), which is returned; nothing is deleted.
        Raises ``ValueError`` if an active key has the name."""
        archived = None
        with self.transaction() as conn:
            found = conn.execute(
                select(api_keys.c.revoked_at).where(api_keys.c.name == key.name)
            ).first()
            if found is not None and found.revoked_at is None:
                raise ValueError(f"an active key named {key.name!r} already exists")
            if found is not None:
                when = as_utc(found.revoked_at)
                archived = f"{key.name[:100]}.revoked-{when:%Y%m%dT%H%M%S}"
                conn.execute(
                    update(api_keys).where(api_keys.c.name == key.name).values(name=archived)
                )
            conn.execute(api_keys.insert().values(**_key_row(key)))
        return archived

    def key_by_hash(self, key_hash: str) -> ApiKey | None:
        """The key whose current (or, within a rotation's grace, previous) secret has this
        hash, revoked or not; :meth:`ApiKey.refusal` says whether it is valid."""
        rows = self.fetch(
            select(api_keys).where(
                or_(api_keys.c.key_hash == key_hash, api_keys.c.previous_key_hash == key_hash)
            )
        )
        return _key_from_row(rows[0]) if rows else None

    def key(self, name: str) -> ApiKey | None:
        """The key named ``name``, if any."""
        rows = self.fetch(select(api_keys).where(api_keys.c.name == name))
        return _key_from_row(rows[0]) if rows else None

    def rotate_key(self, name: str, new_hash: str, *, previous_valid_until: datetime) -> bool:
        """Give an active key a new secret; the current one stays valid until
        ``previous_valid_until``. False if there is no such active key."""
        n = self.execute(
            update(api_keys)
            .where(api_keys.c.name == name, api_keys.c.revoked_at.is_(None))
            .values(
                previous_key_hash=api_keys.c.key_hash,
                previous_valid_until=previous_valid_until,
                key_hash=new_hash,
            )
        )
        return bool(n)

    def update_key(self, name: str, changes: dict[str, Any]) -> ApiKey | None:
        """Change fields of an active key (checked as an :class:`ApiKey`); the key after,
        or ``None`` if there is no such active key."""
        with self.transaction() as conn:
            rows = conn.execute(
                select(api_keys).where(api_keys.c.name == name, api_keys.c.revoked_at.is_(None))
            ).all()
            if not rows:
                return None
            key = _key_from_row(dict(rows[0]._mapping))
            key = ApiKey.model_validate({**key.model_dump(), **changes})
            conn.execute(update(api_keys).where(api_keys.c.name == name).values(**changes))
        return key

    def key_spend(self, name: str, day: date) -> tuple[float, float]:
        """USD the key's captured requests cost on ``day`` and in its month so far."""
        first = day.replace(day=1).isoformat()
        rows = self.fetch(
            select(traffic.c.day, func.sum(traffic.c.cost_usd).label("usd"))
            .where(
                traffic.c.key_name == name, traffic.c.day >= first, traffic.c.day <= day.isoformat()
            )
            .group_by(traffic.c.day)
        )
        month = sum(float(r["usd"] or 0) for r in rows)
        today = sum(float(r["usd"] or 0) for r in rows if r["day"] == day.isoformat())
        return today, month

    def touch_key(self, name: str, when: datetime) -> None:
        """Record a key's use (``last_used_at``), never moving it back."""
        self.execute(
            update(api_keys)
            .where(
                api_keys.c.name == name,
                or_(api_keys.c.last_used_at.is_(None), api_keys.c.last_used_at < when),
            )
            .values(last_used_at=when)
        )

    def list_keys(self) -> list[ApiKey]:
        """Every key, by name."""
        return [_key_from_row(r) for r in self.fetch(select(api_keys).order_by(api_keys.c.name))]

    def revoke_key(self, name: str) -> bool:
        """Mark a key revoked; False if there is no such active key."""
        n = self.execute(
            update(api_keys)
            .where(api_keys.c.name == name, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        )
        return bool(n)

    # --- figures for Prometheus ------------------------------------------------

    def replace_figures(self, job: FigureJob, rows: Iterable[Figure]) -> int:
        """Replace every figure ``job`` published before with ``rows``, in one transaction."""
        now = datetime.now(UTC)
        batch = [
            {"job": job, "name": f.name, "labels": json.dumps(f.labels, sort_keys=True),
             "help": f.help, "value": f.value, "written_at": now}
            for f in rows
        ]  # fmt: skip
        with self.transaction() as conn:
            conn.execute(delete(figures).where(figures.c.job == job))
            return self.insert_ignore(figures, batch, conn=conn)

    def figures(self) -> list[Figure]:
        """Every job's latest figures, by name."""
        rows = self.fetch(select(figures).order_by(figures.c.name, figures.c.labels))
        return [
            Figure(name=r["name"], help=r["help"], labels=json.loads(r["labels"]), value=r["value"])
            for r in rows
        ]

    # --- traffic --------------------------------------------------------------

    def insert_traffic(self, records: Iterable[TrafficRecord]) -> int:
        """Insert records, skipping request ids already stored; returns rows inserted. A
        record of a day already closed drops that day's pre-aggregated figures."""
        rows = [_traffic_row(r) for r in records]
        n = self.insert_ignore(traffic, rows)
        if n:
            forget_late_days(self, {r["day"] for r in rows})
        return n

    def traffic_for_day(self, day: date, *, production_only: bool = False) -> list[TrafficRecord]:
        """Every record captured on ``day`` (UTC), oldest first.

        ``production_only`` leaves out the judge's and the evals' own calls.
        """
        return [_traffic_from_row(r) for r in self.fetch(day_query(day, production_only))]

    def traffic_by_ids(self, ids: Iterable[str]) -> list[TrafficRecord]:
        """The stored records with these request ids."""
        wanted = list(ids)
        if not wanted:
            return []
        rows = self.fetch(select(traffic).where(traffic.c.request_id.in_(wanted)))
        return [_traffic_from_row(r) for r in rows]

    def search_traffic(self, query: TrafficQuery) -> TrafficPage:
        """One page of the records matching ``query``, newest first (keyset-paged)."""
        rows = self.fetch(search_statement(query, self.dialect))
        records = [_traffic_from_row(r) for r in rows[: query.limit]]
        more = len(rows) > query.limit
        return TrafficPage(records=records, next=cursor_of(records[-1]) if more else None)

    def count_traffic(self, ids: Iterable[str] | None = None) -> int:
        """Number of captured records (of these request ids, if given)."""
        stmt = select(func.count()).select_from(traffic)
        if ids is not None:
            stmt = stmt.where(traffic.c.request_id.in_(list(ids)))
        return int(self.scalar(stmt))


def day_query(day: date, production_only: bool) -> Select[Any]:
    """One day's records, oldest first (export; with ``production_only``, the daily sample)."""
    stmt = select(traffic).where(traffic.c.day == day.isoformat())
    if production_only:
        stmt = stmt.where(or_(traffic.c.source.is_(None), traffic.c.source == "production"))
    return stmt.order_by(traffic.c.ts)


def spend_query(name: str, day: date) -> Select[Any]:
    """A key's cost per day, from the first of ``day``'s month to ``day`` (budgets)."""
    first = day.replace(day=1).isoformat()
    return (
        select(traffic.c.day, func.sum(traffic.c.cost_usd).label("usd"))
        .where(traffic.c.key_name == name, traffic.c.day >= first, traffic.c.day <= day.isoformat())
        .group_by(traffic.c.day)
    )


def _key_row(k: ApiKey) -> Row:
    row = k.model_dump()
    row["scopes"] = ",".join(k.scopes)
    return row


def _key_from_row(m: Row) -> ApiKey:
    d = dict(m)
    d["scopes"] = [s for s in str(d["scopes"]).split(",") if s]
    return ApiKey.model_validate(d)


def _traffic_row(r: TrafficRecord) -> Row:
    row: dict[str, Any] = r.model_dump(exclude={"request", "metadata"})
    row["request_json"] = json.dumps(r.request, sort_keys=True)
    row["metadata_json"] = json.dumps(r.metadata, sort_keys=True) if r.metadata else None
    row["day"] = r.ts.astimezone(UTC).date().isoformat()
    return row


def _traffic_from_row(m: Row) -> TrafficRecord:
    d = dict(m)
    d["request"] = json.loads(d.pop("request_json"))
    meta = d.pop("metadata_json", None)
    d["metadata"] = json.loads(meta) if meta else {}
    d.pop("day", None)
    d["source"] = d.get("source") or "production"
    return TrafficRecord.model_validate(d)
