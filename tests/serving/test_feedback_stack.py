"""End users' feedback on the real stack (simulated engine): the key that made the
request or a ``feedback`` key sends it by the id the client saw, even before the capture
is flushed; anything else gets an OpenAI-style 4xx, never a 5xx, and nothing is kept."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from serving.feedback import history
from serving.store import Store, tables
from tests.conftest import STORE_URL, run_gavel
from tests.serving.test_lifecycle_acceptance import _metric_at_least

pytestmark = pytest.mark.stack


def _key(*args: str, name: str | None = None) -> str:
    proc = run_gavel("keys", "create", name or f"fb-{uuid.uuid4().hex[:8]}", *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def _send(stack: str, key: str | None, body: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers["content-type"] = "application/json"
    return httpx.post(f"{stack}/feedback", content=content, headers=headers, timeout=30)


def _openai_4xx(r: httpx.Response, status: int) -> None:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and "Traceback" not in r.text


def test_feedback_by_the_id_the_client_saw(stack: str) -> None:
    name = f"fb-{uuid.uuid4().hex[:8]}"
    mine, other, backend = _key(name=name), _key(), _key("--scopes", "feedback")
    chat = {"model": "app-model", "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": 4}  # fmt: skip
    r = httpx.post(f"{stack}/chat/completions", json=chat, timeout=60,
                   headers={"Authorization": f"Bearer {mine}"})  # fmt: skip
    rid = r.json()["id"]
    # Sent at once: the record may still be on its way to the store (the route waits).
    ok = _send(stack, mine, {"id": rid, "name": "thumbs", "value": False, "comment": "wrong"})
    assert ok.status_code == 200, ok.text
    assert ok.json()["revision"] == 1 and ok.json()["positive"] is False
    _openai_4xx(_send(stack, other, {"id": rid, "name": "thumbs", "value": True}), 403)
    _openai_4xx(_send(stack, None, {"id": rid, "name": "thumbs", "value": True}), 401)
    _openai_4xx(_send(stack, mine, {"id": rid, "name": "nope", "value": True}), 400)
    _openai_4xx(_send(stack, mine, {"id": rid, "name": "thumbs", "value": 3}), 400)
    huge = {"id": rid, "name": "thumbs", "value": True, "comment": "x" * 1_000_000}
    _openai_4xx(_send(stack, mine, huge), 413)
    _openai_4xx(_send(stack, mine, {"id": "chatcmpl-unknown", "name": "thumbs",
                                    "value": True}), 404)  # fmt: skip
    by_backend = _send(stack, backend, {"id": rid, "name": "thumbs", "value": True,
                                        "user": "end-user-7"})  # fmt: skip
    assert by_backend.status_code == 200 and by_backend.json()["revision"] == 1
    again = _send(stack, mine, {"id": rid, "name": "thumbs", "value": True})
    assert again.json()["revision"] == 2
    store = Store(STORE_URL)
    kept = store.fetch(select(tables.feedback).where(tables.feedback.c.request_id == rid))
    assert sorted((k["user_id"], k["value"]) for k in kept) == [("", 1.0), ("end-user-7", 1.0)]
    assert [h["value"] for h in history(store, rid)] == [0.0, 1.0, 1.0]
    # Erasure by key takes the users' words about the key's requests (the votes stay).
    erased = run_gavel("store", "erase", "--key", name, "--by", "tests")
    assert erased.returncode == 0, erased.stderr
    assert [h["comment"] for h in history(store, rid)] == [None, None, None]
    refused = _metric_at_least(stack, "gavel_feedback_requests_total", 1, status="403")
    assert refused >= 1 and _metric_at_least(stack, "gavel_feedback_requests_total", 3,
                                             status="200") >= 3  # fmt: skip


BODY = st.one_of(
    st.binary(max_size=64),
    st.dictionaries(
        st.sampled_from(["id", "name", "value", "comment", "user", "x"]),
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20)),
        max_size=6,
    ),
)


@pytest.fixture(scope="module")
def store() -> Iterator[Store]:
    """One store for the module's examples (a new one per example cost a second each)."""
    opened = Store(STORE_URL)
    yield opened
    opened.close()


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=BODY)
def test_every_feedback_answer_is_2xx_or_an_openai_4xx(
    stack: str, store: Store, body: object
) -> None:
    if "key" not in _FUZZ_KEY:  # one key for every example (creating one takes a second)
        _FUZZ_KEY["key"] = _key()
    key = _FUZZ_KEY["key"]
    if isinstance(body, dict) and "id" in body:
        body["id"] = f"chatcmpl-fuzz-{uuid.uuid4().hex}"[: 10 + len(str(body["id"]))]
    before = _kept(store)
    r = _send(stack, key, body)
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        _openai_4xx(r, r.status_code)
    assert _kept(store) == before  # none of these names a request of this key


_FUZZ_KEY: dict[str, str] = {}


def _kept(store: Store) -> int:
    return int(store.scalar(select(func.count()).select_from(tables.feedback)))
