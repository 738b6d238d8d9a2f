"""Storage at scale: fill a store with N captured records of realistic sizes and time
what runs over it every day.

Rows follow the replay set's shape (``judges/data/replay.jsonl``: its prompts, and
answers of 30-100% of each prompt's ``max_tokens`` at 4 characters a token), spread over
30 days, 85% production, 10% judge, 5% eval, 50 keys. For each store and size it reports
bytes per record (table, indexes and TOAST) and the median [min-max] of 3 runs of: the
daily sample's query, one day's ``traffic export``, the label queue's record lookups (50
by id), and the purge of one day (text, then rows), plus PostgreSQL's plan of each hot
query (the real planner).

    python -m serving.bench.storage --records 1000000 5000000 [--stores sqlite postgresql]

PostgreSQL runs in a database of its own (``gavel_bench_storage``, dropped at the end) on
the server of ``--pg``; SQLite in a file under ``--work``.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from serving._gateway_config import RetentionConfig
from serving.bench.provenance import write_report
from serving.store import Store, TrafficQuery, purge, tables
from serving.store._lifecycle import hot_queries

ROOT = Path(__file__).resolve().parents[2]
REPLAY = ROOT / "judges/data/replay.jsonl"
DAYS = 30
SEARCH = "capital Chile"
"""The explorer's full-text search: two words of one of the replay set's prompts."""
LAST_DAY = date(2026, 11, 29)
COLUMNS = [c.name for c in tables.traffic.columns]


def _shapes() -> list[tuple[str, int]]:
    """(request JSON, answer length in characters) of each replay prompt."""
    out = []
    for line in REPLAY.read_text().splitlines():
        p = json.loads(line)
        req = {"model": "app-model", "messages": p["messages"], "max_tokens": p["max_tokens"]}
        out.append((json.dumps(req, sort_keys=True), 4 * int(p["max_tokens"])))
    return out


def rows(
    n: int, seed: int = 0, *, on: date | None = None, last_day: date = LAST_DAY
) -> Iterator[dict[str, Any]]:
    """``n`` traffic rows (every column) over the :data:`DAYS` days to ``last_day``, oldest
    first; all on day ``on`` (and all production traffic) if it is given."""
    rng = random.Random(seed)
    shapes = _shapes()
    first = last_day - timedelta(days=DAYS - 1)
    for i in range(n):
        day = on or first + timedelta(days=i * DAYS // n)
        req, answer_chars = shapes[rng.randrange(len(shapes))]
        answer = "".join(
            rng.choices(
                "abcdefgh ijklmnop qrstuv wxyz.,", k=int(answer_chars * rng.uniform(0.3, 1.0))
            )
        )
        mix = rng.choices(["production", "judge", "eval"], [85, 10, 5])[0]
        source = "production" if on else mix
        ts = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
            seconds=rng.randrange(86400)
        )
        yield {
            "request_id": uuid.UUID(int=rng.getrandbits(128)).hex, "ts": ts, "day": day.isoformat(),
            "key_name": f"key-{rng.randrange(50)}", "model": "app-model", "role": "app",
            "endpoint": "chat", "stream": rng.random() < 0.5, "request_json": req,
            "response_text": answer, "finish_reason": "stop", "status": 200, "error": None,
            "prompt_tokens": len(req) // 4, "completion_tokens": len(answer) // 4,
            "ttft_ms": rng.uniform(20, 400), "e2e_ms": rng.uniform(200, 4000),
            "cost_usd": len(answer) / 4 * 7e-7, "metadata_only": False, "metadata_json": None,
            "source": source, "client_request_id": None, "text_removed": None, "kept": None,
            "arm": None, "twin_id": None, "trace_id": None,
        }  # fmt: skip


def fill(
    store: Store, n: int, *, seed: int = 0, on: date | None = None, last_day: date = LAST_DAY
) -> float:
    """Insert ``n`` rows (see :func:`rows`) the fastest way each store has; returns
    seconds."""
    store.ensure_schema()
    t0 = time.perf_counter()
    raw = store._engine.raw_connection()
    try:
        cur = raw.cursor()
        if store.dialect == "postgresql":
            batch = io.StringIO()
            for i, r in enumerate(rows(n, seed, on=on, last_day=last_day), 1):
                batch.write("\t".join(_copy_value(r[c]) for c in COLUMNS) + "\n")
                if i % 100_000 == 0 or i == n:
                    with cur.copy(f"COPY gavel_traffic ({', '.join(COLUMNS)}) FROM STDIN") as cp:
                        cp.write(batch.getvalue())
                    batch = io.StringIO()
        else:
            marks = ", ".join("?" for _ in COLUMNS)
            sql = f"INSERT INTO gavel_traffic ({', '.join(COLUMNS)}) VALUES ({marks})"
            chunk: list[tuple[Any, ...]] = []
            for i, r in enumerate(rows(n, seed, on=on, last_day=last_day), 1):
                chunk.append(tuple(_sqlite_value(r[c]) for c in COLUMNS))
                if i % 100_000 == 0 or i == n:
                    cur.executemany(sql, chunk)
                    chunk = []
        raw.commit()
    finally:
        raw.close()
    return time.perf_counter() - t0


def _copy_value(v: Any) -> str:
    if v is None:
        return "\\N"
    if isinstance(v, bool):
        return "t" if v else "f"
    if isinstance(v, datetime):
        return v.isoformat()
    return str(v).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def _sqlite_value(v: Any) -> Any:
    return v.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, datetime) else v


def bytes_per_record(store: Store, n: int) -> float:
    """The table with its indexes and TOAST (PostgreSQL), or the database file (SQLite)."""
    with store.transaction() as conn:
        if store.dialect == "postgresql":
            conn.execute(
                text("VACUUM (ANALYZE) gavel_traffic") if False else text("ANALYZE gavel_traffic")
            )
            size = conn.execute(text("SELECT pg_total_relation_size('gavel_traffic')")).scalar_one()
        else:
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
            pages = conn.execute(text("PRAGMA page_count")).scalar_one()
            size = pages * conn.execute(text("PRAGMA page_size")).scalar_one()
    return float(size) / n


def _timed(fn: Callable[[], object], runs: int = 3) -> dict[str, float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times)}


def measure(store: Store, n: int, work: Path) -> dict[str, Any]:
    """Every figure of one store at one size."""
    day = LAST_DAY - timedelta(days=1)
    ids = [r["request_id"] for r in store.fetch(hot_queries(day)["export_day"].limit(50))]
    out_file = work / "export.jsonl"

    def export() -> None:
        with out_file.open("w") as fh:
            for rec in store.traffic_for_day(day):
                fh.write(rec.model_dump_json() + "\n")

    purged: list[dict[str, Any]] = []

    def purge_one_day() -> None:
        # Each run purges the oldest day still held: text first, then rows.
        k = len(purged)
        oldest = LAST_DAY - timedelta(days=DAYS - 1 - k)
        days = (LAST_DAY - oldest).days - 1  # due: the days before oldest + 1
        keep = {"text_days": days, "row_days": days}
        retention = RetentionConfig.model_validate(
            {"production": keep, "judge": keep, "eval": keep}
        )
        report = purge(store, retention, today=LAST_DAY, dry_run=False)
        purged.append({ln.source + "_" + ln.what: ln.removed for ln in report.lines})

    figures: dict[str, Any] = {
        "records": n,
        "bytes_per_record": bytes_per_record(store, n),
        "records_per_day": n // DAYS,
        "daily_sample_query": _timed(lambda: store.traffic_for_day(day, production_only=True)),
        "export_one_day": _timed(export),
        "label_queue_50_records": _timed(lambda: store.traffic_by_ids(ids)),
        "search_text_page": _timed(lambda: store.search_traffic(TrafficQuery(text=SEARCH))),
        "purge_one_day": _timed(purge_one_day),
        "purged": purged,
    }
    if store.dialect == "postgresql":
        plans = {}
        with store.transaction() as conn:
            oldest = LAST_DAY - timedelta(days=DAYS - 1 - len(purged))
            for name, q in hot_queries(day, purge_before=oldest + timedelta(days=1)).items():
                sql = q.compile(conn, compile_kwargs={"literal_binds": True})
                plan = [r[0] for r in conn.execute(text(f"EXPLAIN {sql}"))]
                plans[name] = [ln.strip() for ln in plan if "Scan" in ln or "Index" in ln][:2]
        figures["plans"] = plans
    return figures


def table(data: dict[str, Any]) -> str:
    """The page's table from this benchmark's JSON (pure)."""

    def t(x: dict[str, float] | None) -> str:
        if x is None:
            return "–"
        if x["median_s"] < 0.1:
            return f"{x['median_s'] * 1000:.0f} ms"
        return f"{x['median_s']:.2f} s [{x['min_s']:.2f}–{x['max_s']:.2f}]"

    rows = ["| store | records (per day) | bytes/record | fill | daily sample query "
            "| export one day | label queue (50 records) | text search (one page) "
            "| purge one day (text, then rows) |",
            "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for f in data["results"]:
        name = "SQLite" if f["store"] == "sqlite" else "PostgreSQL"
        rows.append(f"| {name} | {f['records'] / 1e6:g}M ({f['records_per_day'] / 1000:.0f}k) "
                    f"| {f['bytes_per_record']:.0f} | {f['fill_s']:.0f} s "
                    f"| {t(f['daily_sample_query'])} | {t(f['export_one_day'])} "
                    f"| {t(f['label_queue_50_records'])} | {t(f.get('search_text_page'))} "
                    f"| {t(f['purge_one_day'])} |")  # fmt: skip
    rows.append(f"\nRecords over {data['days']} days; each operation timed 3 times, median "
                "[min–max]; bytes per record include the indexes (full-text search "
                "included).")  # fmt: skip
    return "\n".join(rows)


def _pg_database(server: str, name: str, *, drop: bool) -> str:
    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        if not drop:
            c.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return f"{server}/{name}"


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark; print a table and write JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--records", type=int, nargs="+", default=[1_000_000])
    ap.add_argument(
        "--stores", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite", "postgresql"]
    )
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432")
    ap.add_argument("--work", type=Path, default=ROOT / ".gavel/bench-storage")
    ap.add_argument("--out", type=Path, default=ROOT / "reports/bench/storage.json")
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    results = []
    for n in args.records:
        for kind in args.stores:
            if kind == "sqlite":
                path = args.work / f"storage-{n}.db"
                for f in args.work.glob(f"storage-{n}.db*"):
                    f.unlink()
                url = f"sqlite:///{path}"
            else:
                url = _pg_database(args.pg, "gavel_bench_storage", drop=False)
            store = Store(url)
            try:
                fill_s = fill(store, n)
                figures = {"store": kind, "fill_s": fill_s, **measure(store, n, args.work)}
            finally:
                store.close()
                if kind == "postgresql":
                    _pg_database(args.pg, "gavel_bench_storage", drop=True)
                else:
                    for f in args.work.glob(f"storage-{n}.db*"):
                        f.unlink()
            results.append(figures)
            _print(figures)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_report(args.out, {"results": results, "days": DAYS}, config="no stack")
    print(f"wrote {args.out}")


def _fmt(t: dict[str, float]) -> str:
    return f"{t['median_s']:.3f} s [{t['min_s']:.3f}-{t['max_s']:.3f}]"


def _print(f: dict[str, Any]) -> None:
    head = f"{f['store']:<10} {f['records']:>9,} records ({f['records_per_day']:,}/day)"
    print(
        f"{head}: {f['bytes_per_record']:.0f} B/record, filled in {f['fill_s']:.0f} s\n"
        f"  daily sample query {_fmt(f['daily_sample_query'])}; "
        f"export one day {_fmt(f['export_one_day'])}\n"
        f"  label queue (50 records) {_fmt(f['label_queue_50_records'])}; "
        f"purge one day {_fmt(f['purge_one_day'])}",
        flush=True,
    )
    for name, plan in f.get("plans", {}).items():
        print(f"  plan {name}: {' / '.join(plan)}")


if __name__ == "__main__":
    main()
