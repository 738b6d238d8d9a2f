"""A property-based fuzz of the gateway (hypothesis), against the real stack on 127.0.0.1.

Generated bodies (valid, half-valid and garbage; with odd types, odd numbers, lone
surrogates and NULs) with a valid key: every answer is a 2xx or a 4xx with an
OpenAI-style error, never a 5xx; every 2xx is captured exactly once.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text

from serving.store import Store
from tests.conftest import STORE_URL, run_gavel

pytestmark = pytest.mark.stack

ODD_TEXT = st.text(
    st.characters(categories=["Lu", "Ll", "Nd", "Zs", "Cc", "Cs", "So"]), max_size=40
)
SCALAR = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 10), st.floats(allow_nan=False, width=32),
    ODD_TEXT,
)  # fmt: skip
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "assistant", "tool", "bogus"])},
    optional={"content": st.one_of(ODD_TEXT, SCALAR, st.lists(SCALAR, max_size=2))},
)
PARAMS = {
    "temperature": st.one_of(st.floats(-5, 5, allow_nan=False), SCALAR),
    "top_p": st.one_of(st.floats(-1, 2, allow_nan=False), SCALAR),
    "n": st.one_of(st.integers(-2, 12), SCALAR),
    "stream": st.booleans(),
    "stream_options": st.one_of(st.just({"include_usage": True}), SCALAR),
    "stop": st.one_of(ODD_TEXT, st.lists(ODD_TEXT, max_size=3)),
    "seed": st.one_of(st.integers(-(2**70), 2**70), SCALAR),
    "logprobs": st.booleans(),
    "top_logprobs": st.integers(-3, 30),
    "presence_penalty": st.floats(-5, 5, allow_nan=False),
    "user": ODD_TEXT,
    "request_id": ODD_TEXT,
    "response_format": st.one_of(st.just({"type": "json_object"}), SCALAR),
    "bogus_field": SCALAR,
}
CHAT = st.fixed_dictionaries(
    {
        "model": st.one_of(st.sampled_from(["app-model", "judge-model", "app-model:x"]), SCALAR),
        "messages": st.one_of(st.lists(MESSAGE, min_size=1, max_size=3), SCALAR),
        # Always small: a valid body without it would generate up to the context length.
        "max_tokens": st.one_of(st.integers(-2, 3), st.just("3")),
    },
    optional=PARAMS,
)
COMPLETION = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["app-model", "judge-model", "nope"]),
        "prompt": st.one_of(ODD_TEXT, st.lists(ODD_TEXT, max_size=10), st.lists(
            st.integers(-5, 60000), max_size=5)),
        "max_tokens": st.integers(-1, 3),
    },
    optional=PARAMS,
)  # fmt: skip
GARBAGE = st.one_of(
    st.binary(max_size=64),
    st.just(b"[" * 5000),
    st.just(b'{"model": "app-model", "messages": [{"role": "user", "content": "\\ud83d"}]}'),
    st.recursive(SCALAR, lambda c: st.lists(c, max_size=3), max_leaves=8).map(
        lambda v: json.dumps(v).encode()
    ),
)


def _encode(body: Any) -> bytes:
    # ensure_ascii writes lone surrogates as \\uXXXX escapes, as a hostile client would.
    return body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=True).encode()


@pytest.fixture(scope="module")
def fuzz_key(stack: str) -> str:
    proc = run_gavel("keys", "create", f"fuzz-{uuid.uuid4().hex[:8]}", "--scopes", "infer,judge")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


SERVED: list[str] = []
"""Response ids of every 2xx."""
TAGGED: list[str] = []
"""The ``X-Request-Id`` of every 2xx whose body named no ``request_id`` of its own: the
capture of these is counted by what was sent, not by the store's primary key."""


@settings(
    max_examples=70,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
@given(
    path_and_body=st.one_of(
        st.tuples(st.just("/chat/completions"), CHAT),
        st.tuples(st.just("/completions"), COMPLETION),
        st.tuples(st.sampled_from(["/chat/completions", "/completions"]), GARBAGE),
    )
)
def test_every_answer_is_2xx_or_an_openai_4xx(
    stack: str, fuzz_key: str, path_and_body: tuple[str, Any]
) -> None:
    path, body = path_and_body
    tag = f"fuzz-{uuid.uuid4().hex}"
    headers = {"Authorization": f"Bearer {fuzz_key}", "content-type": "application/json"}
    headers["X-Request-Id"] = tag
    with httpx.stream(
        "POST", f"{stack}{path}", content=_encode(body), headers=headers, timeout=120
    ) as r:
        raw = r.read()
        status = r.status_code
    assert status < 500, (status, raw[:500], body)
    if status >= 400:
        err = json.loads(raw)["error"]
        assert err["message"] and err["type"], raw[:300]
        return
    own = isinstance(body, dict) and isinstance(body.get("request_id"), str) and body["request_id"]
    if not own:
        TAGGED.append(tag)
    text = raw.decode()
    if text.startswith("data:"):
        first = next(line for line in text.splitlines() if line.startswith("data: {"))
        SERVED.append(json.loads(first[6:])["id"])
    else:
        SERVED.append(json.loads(text)["id"])


def test_every_fuzzed_2xx_was_captured_exactly_once(stack: str) -> None:
    assert SERVED, "the fuzz run produced no 2xx at all"
    store = Store(STORE_URL)
    deadline = time.monotonic() + 30
    while store.count_traffic(SERVED) < len(set(SERVED)) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert len(set(SERVED)) == len(SERVED)  # no two answers share an id
    assert store.count_traffic(SERVED) == len(SERVED)
    assert TAGGED, "no 2xx without a body request_id"
    engine = create_engine(STORE_URL)
    with engine.connect() as c:
        query = "SELECT client_request_id, count(*) FROM gavel_traffic"
        rows = c.execute(text(query + " WHERE client_request_id LIKE 'fuzz-%' GROUP BY 1")).all()
    engine.dispose()
    captured = {str(r[0]): int(r[1]) for r in rows}
    assert {t: captured.get(t, 0) for t in TAGGED} == dict.fromkeys(TAGGED, 1)
