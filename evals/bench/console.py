"""The console at scale: render times of its views on a store of 1M records.

The storage benchmark's records (``serving.bench.storage``: 30 days, 33k a day, 50 keys)
ending today, a verdict on 1% of them and 300 labels; the console in this process
(FastAPI's test client: the routes, the queries and the templates, no network), signed
in with an admin key. Each view is asked ``--requests`` times: the overview (30 days;
its first call aggregates the closed days once, timed apart), a filtered explorer page,
a full-text search, a record's page, a day's failures on a criterion, and the judging
view. Reports p50 and p95 per view; the issue's target is p95 <= 300 ms.

``python -m evals.bench.console [--records 1000000] [--stores sqlite postgresql]
--out reports/bench/console.json``
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from serving.bench.provenance import ROOT, write_report

PG = "postgresql+psycopg://postgres@127.0.0.1:5432"
TARGET_P95_MS = 300.0


def _seed(store: Any, n: int, today: Any) -> list[str]:
    """The records, verdicts on 1% of them, 300 labels; returns some record ids."""
    from judges import Label, LabelStore, Verdict, VerdictStore
    from serving.bench.storage import fill, rows

    fill(store, n, last_day=today)
    ids = [(r["request_id"], r["day"]) for i, r in enumerate(rows(n, last_day=today))
           if i % 100 == 0]  # fmt: skip
    now = datetime.now(UTC)
    rng = random.Random(1)
    VerdictStore(store).insert([
        Verdict(item_id=rid, criterion="concise", criterion_version="1", kind="pass_fail",
                judge="pass_fail", judge_version="1", judge_model="judge-model", judge_args={},
                model="app-model", day=day, verdict=rng.choice(["pass", "fail"]),
                reasoning="short enough", created_at=now)
        for rid, day in ids
    ])  # fmt: skip
    LabelStore(store).upsert([
        Label(item_id=rid, criterion="concise", criterion_version="1", label="pass",
              labeller="alice", labelled_at=now)
        for rid, _ in ids[:300]
    ])  # fmt: skip
    return [rid for rid, _ in ids]


def _client(store: Any) -> Any:
    from fastapi.testclient import TestClient

    from evals.console import build_console_app
    from judges import load_judging
    from serving import load_config, new_key

    secret, key = new_key(f"bench-{random.randrange(10**6)}", ["admin"])
    store.add_key(key)
    app = build_console_app(store, load_config(ROOT / "config/cpu.yaml"),
                            load_judging(ROOT / "config/judging.yaml"))  # fmt: skip
    client = TestClient(app)
    client.get("/signin")
    client.post("/signin", data={"key": secret, "csrf": client.cookies.get("gavel_console_csrf")})
    return client


def _time(client: Any, paths: list[str]) -> dict[str, float]:
    ms = []
    for path in paths:
        t0 = time.perf_counter()
        resp = client.get(path)
        ms.append((time.perf_counter() - t0) * 1000)
        if resp.status_code != 200:
            raise SystemExit(f"{path}: {resp.status_code} {resp.text[:300]}")
    ordered = sorted(ms)
    return {"n": len(ms), "p50_ms": round(statistics.median(ms), 1),
            "p95_ms": round(ordered[max(0, round(0.95 * len(ms)) - 1)], 1),
            "max_ms": round(ordered[-1], 1)}  # fmt: skip


def _time_cold(client: Any, requests: int) -> dict[str, float]:
    """The overview when its open days' figures are read again (the first view after
    the console's minute): the cache emptied before each request."""
    from serving.store import DayCache

    out = []
    for _ in range(requests):
        client.app.state.days = DayCache()
        out.append(_time(client, ["/?window=30d"]))
    ms = sorted(o["p50_ms"] for o in out)
    return {"n": len(ms), "p50_ms": round(statistics.median(ms), 1),
            "p95_ms": ms[max(0, round(0.95 * len(ms)) - 1)], "max_ms": ms[-1]}  # fmt: skip


def measure(store: Any, n: int, requests: int) -> dict[str, Any]:
    """Every view's render times on one store."""
    today = datetime.now(UTC).date()
    t0 = time.perf_counter()
    ids = _seed(store, n, today)
    seed_s = time.perf_counter() - t0
    client = _client(store)
    week = (today - timedelta(days=6)).isoformat()
    yesterday = (today - timedelta(days=1)).isoformat()
    t0 = time.perf_counter()
    client.get("/?window=30d")
    first_overview_s = time.perf_counter() - t0
    rng = random.Random(2)
    views = {
        "overview (30 days)": ["/?window=30d"] * requests,
        "explorer: a key's week": [f"/traffic?key=key-{rng.randrange(50)}&first_day={week}"
                                   f"&last_day={today}" for _ in range(requests)],
        "search (two words)": ["/traffic?text=capital+Chile"] * requests,
        "a record": [f"/records/{rng.choice(ids)}" for _ in range(requests)],
        "a day's failures on a criterion": [
            f"/traffic?first_day={yesterday}&last_day={yesterday}&criterion=concise&verdict=fail"
        ] * requests,
        "judging (30 days)": ["/judging"] * requests,
    }  # fmt: skip
    figures = {name: _time(client, paths) for name, paths in views.items()}
    figures["overview, the open days read again"] = _time_cold(client, requests)
    return {"records": n, "seed_s": round(seed_s, 1),
            "overview_first_call_s": round(first_overview_s, 2), "views": figures}  # fmt: skip


def table(data: dict[str, Any]) -> str:
    """The page's table from this benchmark's JSON (pure)."""
    results = data["results"]
    names = list(results[0]["views"])
    head = ["view"] + [f"{r['store']}, p50 / p95" for r in results]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in names:
        cells = [f"{r['views'][name]['p50_ms']:.0f} / {r['views'][name]['p95_ms']:.0f} ms"
                 for r in results]  # fmt: skip
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    first = ", ".join(f"{r['store']} {r['overview_first_call_s']:.1f} s" for r in results)
    rows.append(
        f"\n{results[0]['records']:,} records over 30 days ending the day of the run; "
        f"{results[0]['views'][names[0]]['n']} requests per view; target p95 <= "
        f"{data['target_p95_ms']:.0f} ms. The overview's first call after the days closed, "
        f"which aggregates and keeps them: {first}."
    )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark on each store; print the figures and write JSON."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--stores", nargs="+", choices=["sqlite", "postgresql"],
                    default=["sqlite", "postgresql"])  # fmt: skip
    ap.add_argument("--work", type=Path, default=ROOT / ".gavel/bench-console")
    ap.add_argument("--out", type=Path, default=ROOT / "reports/bench/console.json")
    args = ap.parse_args(argv)
    from serving.bench.storage import _pg_database
    from serving.store import Store

    args.work.mkdir(parents=True, exist_ok=True)
    results = []
    for kind in args.stores:
        for f in args.work.glob("console.db*"):
            f.unlink()
        url = (f"sqlite:///{args.work / 'console.db'}" if kind == "sqlite"
               else _pg_database(PG, "gavel_bench_console", drop=False))  # fmt: skip
        store = Store(url)
        try:
            figures = {"store": kind, **measure(store, args.records, args.requests)}
        finally:
            store.close()
            if kind == "postgresql":
                _pg_database(PG, "gavel_bench_console", drop=True)
        results.append(figures)
        print(figures, flush=True)
    write_report(args.out, {"results": results, "target_p95_ms": TARGET_P95_MS},
                 config="no stack; the console in-process")  # fmt: skip
    print(table({"results": results, "target_p95_ms": TARGET_P95_MS}))


if __name__ == "__main__":
    main()
