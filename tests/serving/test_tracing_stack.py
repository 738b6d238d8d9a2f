"""Traces on the real stack (simulated engine, traced to the session's local OTLP/HTTP
receiver): a request with a ``traceparent`` is found in the gateway's spans under that
trace id, with every phase, and its captured record keeps the trace id."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from serving.store import Store
from tests.conftest import STORE_URL
from tests.otlp_receiver import OtlpReceiver

pytestmark = pytest.mark.stack

TRACE = "0af7651916cd43dd8448eb211c80319c"


def test_the_gateway_s_spans_join_the_client_s_trace(
    stack: str, api_key: str, otlp: OtlpReceiver
) -> None:
    r = httpx.post(
        f"{stack}/chat/completions", timeout=60,
        headers={"Authorization": f"Bearer {api_key}",
                 "traceparent": f"00-{TRACE}-b7ad6b7169203331-01"},
        json={"model": "app-model", "max_tokens": 6, "stream": True,
              "messages": [{"role": "user", "content": "Name three colours."}]},
    )  # fmt: skip
    assert r.status_code == 200
    rid = next(line for line in r.text.splitlines() if line.startswith("data: {"))
    deadline, mine = time.monotonic() + 30, []
    while time.monotonic() < deadline:  # the replica exports its batch every second
        mine = [(res, s) for res, s in otlp.spans() if s.trace_id.hex() == TRACE]
        if {"chat app-model", "gavel.capture"} <= {s.name for _, s in mine}:
            break
        time.sleep(0.5)
    names = {s.name for _, s in mine}
    assert {"POST /v1/chat/completions", "gavel.auth", "gavel.admission", "chat app-model",
            "gavel.tap", "gavel.capture"} <= names, names  # fmt: skip
    root = next(s for _, s in mine if s.name == "POST /v1/chat/completions")
    assert root.parent_span_id.hex() == "b7ad6b7169203331"
    engine = next(s for _, s in mine if s.name == "chat app-model")
    assert [e.name for e in engine.events] == ["gen_ai.first_token"]
    attrs = {a.key for a in engine.attributes}
    assert {"gen_ai.request.model", "gen_ai.usage.output_tokens"} <= attrs
    assert {res["service.name"] for res, _ in mine} == {"gavel-gateway"}
    # The captured record keeps the trace id.
    request_id = json.loads(rid[6:])["id"]
    deadline, rows = time.monotonic() + 30, []
    while not rows and time.monotonic() < deadline:
        rows = Store(STORE_URL).traffic_by_ids([request_id])
        time.sleep(0.3)
    assert rows and rows[0].trace_id == TRACE
