"""Every hot query over ``gavel_traffic`` has an index on PostgreSQL (litellm #35766: a
missing index made PostgreSQL scan the whole table on the request path).

With sequential scans priced out (``enable_seqscan = off``), PostgreSQL still scans
the table when no index can serve a query, so a ``Seq Scan on gavel_traffic`` in the plan
means a missing index whatever the table's size."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import text

from serving._wire import TrafficRecord
from serving.store import Store
from serving.store._lifecycle import hot_queries

DAY = date(2026, 11, 29)


@pytest.mark.parametrize("scratch_store_url", ["postgresql"], indirect=True)
def test_no_hot_query_scans_the_traffic_table(scratch_store_url: str) -> None:
    store = Store(scratch_store_url)
    store.insert_traffic(
        TrafficRecord(
            request_id=f"r{i}", ts=datetime(2026, 11, 1, tzinfo=UTC) + timedelta(hours=i),
            key_name=f"k{i % 7}", model="app-model", endpoint="chat", stream=False,
            request={"messages": []}, response_text="x", status=200, cost_usd=0.001,
        )
        for i in range(2000)
    )  # fmt: skip
    queries = hot_queries(DAY)
    plans = {}
    with store.transaction() as conn:
        conn.execute(text("ANALYZE gavel_traffic"))
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        for name, query in queries.items():
            sql = query.compile(conn, compile_kwargs={"literal_binds": True})
            plans[name] = "\n".join(r[0] for r in conn.execute(text(f"EXPLAIN {sql}")))
    scans = {n: p for n, p in plans.items() if "Seq Scan on gavel_traffic" in p}
    assert not scans, f"hot queries without an index: {scans}"
    assert "ix_gavel_traffic_text_day" in plans["purge_text"]
    assert "ix_gavel_traffic_key_day" in plans["erase"]


@pytest.mark.parametrize("scratch_store_url", ["postgresql"], indirect=True)
def test_full_text_search_is_served_by_its_index(scratch_store_url: str) -> None:
    """The explorer's text search matches the GIN index's expression verbatim (a copy
    that differed by one character would scan the table)."""
    from serving.store import TrafficQuery
    from serving.store._search import statement

    store = Store(scratch_store_url)
    store.ensure_schema()
    stmt = statement(TrafficQuery(text="zebra crossing"), "postgresql")
    with store.transaction() as conn:
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        sql = stmt.compile(conn, compile_kwargs={"literal_binds": True})
        plan = "\n".join(r[0] for r in conn.execute(text(f"EXPLAIN {sql}")))
    assert "ix_gavel_traffic_fts" in plan, plan
