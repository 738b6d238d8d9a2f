"""Traces of the request path (``gateway.tracing``), in-process: the real hook chain and
store, a fake engine at Ray's handler, spans in memory and, once, over real OTLP/HTTP to
a local receiver. Off by default: no hook, no trace id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import text

from serving._keys import new_key
from tests.otlp_receiver import OtlpReceiver
from tests.serving.gateway_harness import FakeEngine, gateway, http_request, read

TRACING = {"tracing": {"enabled": True, "endpoint": "http://127.0.0.1:1/v1/traces"}}
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{CLIENT_TRACE}-00f067aa0ba902b7-01"
SECRET = "MARKER-31 my plan"


def _token(store: Any) -> str:
    plain, rec = new_key("traced", ["infer"])
    store.add_key(rec.model_copy(update={"tpm": 100_000}))
    return plain


async def _serve(gw: Any, token: str, engine: FakeEngine, *, stream: bool,
                 headers: dict[str, str] | None = None) -> None:  # fmt: skip
    body = {"model": "app-model", "stream": stream, "max_tokens": 5,
            "messages": [{"role": "user", "content": SECRET}]}  # fmt: skip
    resp = await gw.serve(http_request(body, token=token, headers=headers), "chat", engine)
    assert resp.status_code == 200
    await read(resp)


async def test_a_request_s_spans_continue_the_client_s_trace_into_the_engine(
    tmp_path: Path,
) -> None:
    spans = InMemorySpanExporter()
    gw, store, _ = gateway(tmp_path, config=TRACING, span_exporter=spans)
    engine = FakeEngine(words=4)
    await _serve(gw, _token(store), engine, stream=True, headers={"traceparent": PARENT})
    await gw.close()  # flushes capture and the spans
    got = {s.name: s for s in spans.get_finished_spans()}
    assert {"POST /v1/chat/completions", "gavel.auth", "gavel.admission", "chat app-model",
            "gavel.tap", "gavel.capture"} <= set(got), sorted(got)  # fmt: skip
    root = got["POST /v1/chat/completions"]
    assert all(format(s.context.trace_id, "032x") == CLIENT_TRACE for s in got.values())
    assert root.parent is not None and format(root.parent.span_id, "016x") == "00f067aa0ba902b7"
    # The engine got the trace (Ray passes the request's headers to vLLM).
    sent = engine.headers[0]["traceparent"]
    assert sent.split("-")[1] == CLIENT_TRACE and sent.split("-")[2] == format(
        root.context.span_id, "016x"
    )  # fmt: skip
    call = got["chat app-model"]
    assert [e.name for e in call.events] == ["gen_ai.first_token"]
    assert call.attributes["gen_ai.usage.output_tokens"] == 4  # type: ignore[index]
    assert got["gavel.tap"].attributes["gavel.tap.pieces"] == 4  # type: ignore[index]
    assert root.start_time <= got["gavel.auth"].start_time <= call.start_time <= root.end_time
    # No prompt or response text in any span; the record keeps the trace id.
    assert SECRET not in str([dict(s.attributes or {}) for s in got.values()])
    (row,) = store.fetch(text("select trace_id from gavel_traffic"))
    assert row["trace_id"] == CLIENT_TRACE


async def test_off_by_default_no_hook_and_no_trace_id(tmp_path: Path) -> None:
    gw, store, _ = gateway(tmp_path)
    assert "trace" not in gw.chain.names
    engine = FakeEngine(words=2)
    await _serve(gw, _token(store), engine, stream=False, headers={"traceparent": PARENT})
    await gw.close()
    (row,) = store.fetch(text("select trace_id from gavel_traffic"))
    assert row["trace_id"] is None
    assert engine.headers[0]["traceparent"] == PARENT  # passed on untouched


async def test_spans_are_exported_over_otlp_http(tmp_path: Path) -> None:
    receiver = OtlpReceiver()
    try:
        config = {"tracing": {"enabled": True, "endpoint": receiver.url}}
        gw, store, _ = gateway(tmp_path, config=config)
        await _serve(gw, _token(store), FakeEngine(words=2), stream=False)
        await gw.close()  # the provider's shutdown exports what is batched
    finally:
        receiver.stop()
    got = receiver.spans()
    assert {r["service.name"] for r, _ in got} == {"gavel-gateway"}
    assert {"POST /v1/chat/completions", "chat app-model", "gavel.auth"} <= {s.name for _, s in got}


async def test_a_refused_request_has_its_refusing_hook_s_span_and_unsampled_costs_nothing(
    tmp_path: Path,
) -> None:
    spans = InMemorySpanExporter()
    gw, store, _ = gateway(tmp_path, config=TRACING, span_exporter=spans)
    body = {"model": "app-model", "messages": [{"role": "user", "content": "hi"}]}
    resp = await gw.serve(http_request(body, token="gvl_" + "x" * 40), "chat", FakeEngine())
    assert resp.status_code == 401
    await gw.close()
    got = {s.name: s for s in spans.get_finished_spans()}
    assert set(got) == {"POST /v1/chat/completions", "gavel.auth"}
    assert got["gavel.auth"].status.status_code.name == "ERROR"
    # Ratio 0: a new trace is not sampled; the request passes an unsampled traceparent on.
    quiet = InMemorySpanExporter()
    unsampled = {"tracing": {**TRACING["tracing"], "sample_ratio": 0.0}}
    gw, store, _ = gateway(tmp_path / "q", config=unsampled, span_exporter=quiet)
    engine = FakeEngine(words=2)
    await _serve(gw, _token(store), engine, stream=False)
    await gw.close()
    assert quiet.get_finished_spans() == ()
    flags = int(engine.headers[0]["traceparent"].rsplit("-", 1)[1], 16)
    assert flags & 1 == 0  # passed on, with the sampled flag off
