"""What tracing costs the gateway: CPU per request with ``gateway.tracing`` off, on at a
sample ratio of 1.0, and on at 0.01, alternated in blocks.

One replica's gateway in this process (the real hook chain, key cache, admission, capture
to a SQLite store) in front of an engine stand-in that streams ``--chunks`` SSE chunks at
once (no model time: what is measured is the gateway's own work). Spans go to an
exporter that drops them after the batch processor hands them over (the OTLP encoding
and the network are the collector side's cost, off the request path). Reports the CPU
microseconds per request (process time) and requests per second, median and range over
the rounds. It does not measure the end-to-end effect under load on GPU token rates
(`make bench-scale` with tracing on): see the note in the JSON.

``python -m serving.bench.tracing [--rounds 5] [--requests 400] --out reports/bench/tracing.json``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from serving.bench.provenance import write_report

SETTINGS: dict[str, dict[str, Any]] = {
    "off": {"enabled": False},
    "on, ratio 1.0": {"enabled": True, "endpoint": "http://127.0.0.1:9/v1/traces"},
    "on, ratio 0.01": {"enabled": True, "endpoint": "http://127.0.0.1:9/v1/traces",
                       "sample_ratio": 0.01},
}  # fmt: skip


class _Drop:
    """A span exporter that keeps nothing (the batch processor's hand-off is measured)."""

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to flush."""

    def force_flush(self, timeout_millis: int = 0) -> bool:
        """Nothing to flush."""
        return True


def _gateway(folder: Path, tracing: dict[str, Any]) -> tuple[Any, str]:
    from serving._config import GatewayConfig, PriceConfig
    from serving._keys import new_key
    from serving.gateway._gateway import Gateway, make_parts
    from serving.gateway._record import GatewaySettings
    from serving.store import Store

    url = f"sqlite:///{folder / 'bench.db'}"
    store = Store(url)
    cfg = GatewayConfig.model_validate({"capture": {"flush_interval_s": 0.2}, "tracing": tracing})
    settings = GatewaySettings(config=cfg, store_url=url, spool_dir=str(folder / "spool"),
                               roles={"app-model": "app"},
                               prices={"app-model": PriceConfig(input_per_mtok=1,
                                                                output_per_mtok=1)})  # fmt: skip
    if cfg.tracing.enabled:
        settings = settings.model_copy(update={"hooks": ("metrics", "trace", *settings.hooks[1:])})
    parts = make_parts(settings, store=store, span_exporter=_Drop() if tracing["enabled"] else None)
    plain, key = new_key("bench", ["infer"])
    store.add_key(key)
    return Gateway(parts, store), plain


def _request(token: str, body: bytes) -> Any:
    from starlette.requests import Request

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    headers = [
        (b"content-type", b"application/json"),
        (b"authorization", f"Bearer {token}".encode()),
    ]
    scope = {
        "type": "http", "method": "POST", "path": "/v1/chat/completions", "query_string": b"",
        "headers": headers, "client": ("10.0.0.1", 5000), "server": ("127.0.0.1", 8000),
    }  # fmt: skip
    return Request(scope, receive)


def _engine(chunks: int) -> Any:
    from fastapi.responses import StreamingResponse

    async def handler(req: Any, raw: Any) -> Any:
        rid = f"chatcmpl-{req.request_id}"

        async def sse() -> AsyncIterator[str]:
            piece = json.dumps({"id": rid, "choices": [{"index": 0, "delta": {"content": "t "}}]})
            for _ in range(chunks):
                yield f"data: {piece}\n\n"
            usage = {"prompt_tokens": 12, "completion_tokens": chunks, "total_tokens": 12 + chunks}
            yield f"data: {json.dumps({'id': rid, 'choices': [], 'usage': usage})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(sse(), media_type="text/event-stream")

    return handler


async def _block(gw: Any, token: str, requests: int, chunks: int) -> dict[str, float]:
    body = json.dumps({"model": "app-model", "stream": True, "max_tokens": chunks,
                       "messages": [{"role": "user", "content": "Count."}]}).encode()  # fmt: skip
    engine = _engine(chunks)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(requests):
        resp = await gw.serve(_request(token, body), "chat", engine)
        async for _chunk in resp.body_iterator:
            pass
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"cpu_us_per_request": cpu / requests * 1e6, "requests_per_s": requests / wall}


async def _run(rounds: int, requests: int, chunks: int) -> dict[str, list[dict[str, float]]]:
    out: dict[str, list[dict[str, float]]] = {name: [] for name in SETTINGS}
    with tempfile.TemporaryDirectory() as tmp:
        gateways = {}
        for i, (name, tracing) in enumerate(SETTINGS.items()):
            folder = Path(tmp) / str(i)
            folder.mkdir()
            gateways[name] = _gateway(folder, tracing)
        for gw, token in gateways.values():  # warm-up: key cache, imports
            await _block(gw, token, 20, chunks)
        for r in range(rounds):  # blocks alternate, in a rotating order
            names = list(SETTINGS)[r % 3 :] + list(SETTINGS)[: r % 3]
            for name in names:
                gw, token = gateways[name]
                out[name].append(await _block(gw, token, requests, chunks))
        for gw, _ in gateways.values():
            await gw.close()
    return out


def summary(rounds: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, Any]]:
    """Median and range of each setting's figures, and the CPU added against ``off``."""
    base = statistics.median(r["cpu_us_per_request"] for r in rounds["off"])
    out = {}
    for name, rs in rounds.items():
        cpu = [r["cpu_us_per_request"] for r in rs]
        rps = [r["requests_per_s"] for r in rs]
        out[name] = {
            "cpu_us_per_request": _spread(cpu),
            "requests_per_s": _spread(rps),
            "cpu_added_us": statistics.median(cpu) - base,
        }
    return out


def _spread(xs: list[float]) -> dict[str, float]:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def main() -> None:
    """Run the blocks, print the summary, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=400, help="requests per block")
    parser.add_argument("--chunks", type=int, default=32, help="SSE chunks per response")
    parser.add_argument("--out", default="reports/bench/tracing.json")
    args = parser.parse_args()
    rounds = asyncio.run(_run(args.rounds, args.requests, args.chunks))
    result = summary(rounds)
    for name, s in result.items():
        c, q = s["cpu_us_per_request"], s["requests_per_s"]
        print(f"{name:<16} CPU {c['median']:7.0f} us/request [{c['min']:.0f}-{c['max']:.0f}] "
              f"(+{s['cpu_added_us']:.0f})  {q['median']:6.0f} req/s "
              f"[{q['min']:.0f}-{q['max']:.0f}]")  # fmt: skip
    report = {"rounds": rounds, "summary": result, "requests": args.requests,
              "chunks": args.chunks,
              "note": "the gateway's own CPU in-process (engine stand-in, spans dropped after "
                      "the batch processor); not bench-scale's end-to-end figures"}  # fmt: skip
    write_report(args.out, report, config="one in-process gateway replica, SQLite store")


def table(data: dict[str, Any]) -> str:
    """The page's table from this benchmark's JSON (pure)."""
    rows = ["| tracing | gateway CPU per request | added | requests/s (one replica, in-process) |",
            "|---|---|---|---|"]  # fmt: skip
    for name, s in data["summary"].items():
        c, q = s["cpu_us_per_request"], s["requests_per_s"]
        rows.append(f"| {name} | {c['median']:.0f} µs [{c['min']:.0f}–{c['max']:.0f}] "
                    f"| +{s['cpu_added_us']:.0f} µs | {q['median']:.0f} "
                    f"[{q['min']:.0f}–{q['max']:.0f}] |")  # fmt: skip
    n = len(next(iter(data["rounds"].values())))
    rows.append(f"\n{n} rounds of {data['requests']} streamed requests ({data['chunks']} chunks "
                "each) per setting, alternated; medians [min–max].")  # fmt: skip
    return "\n".join(rows)


if __name__ == "__main__":
    main()
