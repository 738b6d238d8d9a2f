"""Hardening of the gateway's parts, on real stores (SQLite and PostgreSQL): limits that
hold under concurrency and aborts, body checks, the key cache, capture that loses nothing
and quarantines what a store refuses, private files, redaction, metadata-only records."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from serving import new_key
from serving._config import GatewayConfig, LimitsConfig
from serving._wire import ApiKey, TrafficRecord
from serving.gateway import CaptureWriter, GatewayMetrics, KeyCache, SlidingWindows, Spool, redact
from serving.gateway._body import Refusal, check_request, parse_body, token_reserve
from serving.gateway._context import RequestContext
from serving.gateway._headers import parse_extras
from serving.gateway._record import GatewaySettings, prepare_for_storage, to_record
from serving.gateway._windows import Lease
from serving.store import Store

ROLES = {"app-model": "app", "judge-model": "judge"}


def record(i: int, tag: str, text: str = "fine") -> TrafficRecord:
    return TrafficRecord(
        request_id=f"req-{tag}-{i}",
        ts=datetime.now(UTC),
        key_name="k",
        model="app-model",
        role="app",
        endpoint="chat",
        stream=False,
        request={"messages": [{"role": "user", "content": f"q{i}"}]},
        response_text=text,
        status=200,
    )


# --- limits -------------------------------------------------------------------


def test_reserved_tokens_hold_the_tpm_under_concurrency() -> None:
    w = SlidingWindows()
    # Four requests arrive together, each may use 60 tokens; the key may use 100 a minute.
    admitted = [
        w.admit("k", 0.0, rpm=None, tpm=100, reserve=60, reservation=f"r{i}") is None
        for i in range(4)
    ]
    assert admitted == [True, False, False, False]
    w.settle("r0", "k", 1.0, 25)  # it used 25: the rest of its reservation comes back
    assert w.admit("k", 1.5, rpm=None, tpm=100, reserve=60, reservation="r4") is None
    assert w.windows["k"].token_sum == 85
    assert w.admit("k", 1.6, rpm=None, tpm=100, reserve=60, reservation="r5") is not None


def test_an_aborted_stream_is_charged_what_it_generated() -> None:
    call = RequestContext("chat", model="app-model", stream=True, prompt_estimate=30)
    call.engine_called = True
    call.pieces = 200  # 200 deltas streamed, then the client went away: no usage chunk
    call.settle_usage()
    assert (call.prompt_tokens, call.completion_tokens) == (30, 200)
    w = SlidingWindows()
    assert w.admit("k", 0.0, rpm=None, tpm=1000, reserve=300, reservation="a") is None
    w.settle("a", "k", 1.0, (call.prompt_tokens or 0) + call.completion_tokens)
    assert w.windows["k"].token_sum == 230


def test_token_reserve_covers_prompt_and_max_tokens() -> None:
    est, reserve = token_reserve(
        {"messages": [{"role": "user", "content": "x" * 300}], "max_tokens": 50, "n": 2},
        default_completion=256,
    )
    assert est >= 100 and reserve == est + 100
    _, default = token_reserve({"messages": []}, default_completion=256)
    assert default >= 256


async def test_the_limiter_is_awaited_with_a_timeout_and_fails_closed() -> None:
    from serving.gateway._admission import Admitter

    released: list[tuple[Any, ...]] = []

    class Stuck:  # a limiter handle that never answers
        class admit:
            @staticmethod
            def remote(*_a: Any) -> Any:
                return asyncio.sleep(3600)

        class release:
            @staticmethod
            def remote(*a: Any) -> None:
                released.append(a)

    def fake(on: str) -> Any:
        cfg = GatewayConfig(limits=LimitsConfig(limiter_timeout_s=0.2, on_limiter_unavailable=on))  # type: ignore[arg-type]
        return Admitter(Stuck(), cfg.limits, GatewayMetrics())  # type: ignore[arg-type]

    _, key = new_key("k", ["infer"], rpm=10)
    t0 = time.monotonic()
    with pytest.raises(Refusal) as refused:
        await fake("reject").admit(key, 10, "r", None)
    assert refused.value.status == 503 and time.monotonic() - t0 < 2
    assert released == [("r", "k")]  # a late admission must not stay charged
    t0 = time.monotonic()
    await fake("allow").admit(key, 10, "r2", None)  # fails open: admitted, no Refusal
    assert time.monotonic() - t0 < 2 and released[-1] == ("r2", "k")  # and released


# --- bodies and headers -----------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status", "says"),
    [
        (b'{"model": "app-model", "user": "\\ud800"}', 400, "user"),
        (b'{"model": "app-model", "messages": [{"content": "a\\u0000b"}]}', 400, "messages[0]"),
        (b'\xff\xfe{"model": 1}', 400, "UTF-8"),
        (b"[1, 2]", 400, "JSON object"),
        (b"{" * 100000, 400, "not valid JSON"),
    ],
)
def test_bodies_a_store_cannot_hold_are_refused(raw: bytes, status: int, says: str) -> None:
    with pytest.raises(Refusal) as err:
        parse_body(raw)
    assert err.value.status == status and says in err.value.message


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model": "app-model", "bad\ud800key": 1}',
        b'{"model": "app-model", "metadata": {"\udfff": "x"}}',
        b'{"model": "app-model", "k\u0000' + b"x" * 500 + b'": 1}',
    ],
    ids=["surrogate-key", "nested-surrogate-key", "long-nul-key"],
)
def test_a_bad_key_is_named_in_a_message_that_can_be_sent(raw: bytes) -> None:
    with pytest.raises(Refusal) as err:
        parse_body(raw)
    message = err.value.message
    assert err.value.status == 400 and "UTF-16" in message
    message.encode("utf-8")  # a lone surrogate echoed here was the 500 (issue 19)
    assert "\\" in message and len(message) < 200, message  # escaped and cut


def test_only_exactly_configured_models_and_capped_requests_pass() -> None:
    limits = LimitsConfig()
    ok = {"model": "app-model", "messages": []}
    assert check_request(ok, endpoint="chat", roles=ROLES, limits=limits) == ("app-model", "app")
    for model in ("app-model:anything", "APP-MODEL", "judge-model/x", ""):
        with pytest.raises(Refusal) as err:
            check_request({"model": model}, endpoint="chat", roles=ROLES, limits=limits)
        assert err.value.status in (400, 404)
    with pytest.raises(Refusal, match="n: at most 8"):
        check_request({**ok, "n": 9}, endpoint="chat", roles=ROLES, limits=limits)
    many = {"model": "app-model", "prompt": [f"p{i}" for i in range(9)]}
    with pytest.raises(Refusal, match="at most 8 prompts"):
        check_request(many, endpoint="completions", roles=ROLES, limits=limits)
    raised = LimitsConfig(max_n=16, max_prompts=16)
    assert check_request(many, endpoint="completions", roles=ROLES, limits=raised)


def test_metadata_must_be_strings_and_steering_keys_need_admin() -> None:
    _, infer = new_key("app", ["infer"])
    _, admin = new_key("ops", ["admin"])
    steer = ("expected", "pair")
    for bad in ('{"a": 1}', '{"a": {"b": "c"}}', '["a"]', "{" * 5000, "not json"):
        with pytest.raises(Refusal) as refused:
            parse_extras({"x-gavel-metadata": bad}, infer, steering=steer)
        assert refused.value.status == 400 and refused.value.reason == "header"
    with pytest.raises(Refusal) as refused:
        parse_extras({"x-gavel-metadata": '{"expected": "4"}'}, infer, steering=steer)
    assert refused.value.status == 403
    extras = parse_extras({"x-gavel-metadata": '{"expected": "4"}'}, admin, steering=steer)
    assert extras.metadata == {"expected": "4"}


def test_only_judge_and_eval_keys_may_name_gavels_own_sources() -> None:
    """Issue 30, defect 4: an infer-only key's ``X-Gavel-Source: judge`` is ignored."""
    _, infer = new_key("app", ["infer"])
    _, judge = new_key("judge", ["judge"])
    _, evals = new_key("evals", ["infer", "eval"])
    headers = {"x-gavel-source": "judge"}
    assert parse_extras(headers, infer).source == "production"
    assert parse_extras(headers, judge).source == "judge"
    assert parse_extras({"x-gavel-source": "eval"}, evals).source == "eval"
    assert parse_extras({"x-gavel-source": "eval"}, None).source == "eval"  # auth off


# --- keys ---------------------------------------------------------------------------


async def test_the_key_cache_holds_only_valid_keys_and_is_bounded(store_url: str) -> None:
    store = Store(store_url)
    cache = KeyCache(store, ttl_s=60, max_entries=3)
    for _ in range(50):  # random bearer tokens
        assert await cache.lookup(uuid.uuid4().hex * 2) is None
    assert len(cache) == 0
    keys: list[ApiKey] = []
    for _ in range(5):
        _, rec = new_key(f"lru-{uuid.uuid4().hex[:8]}", ["infer"])
        store.add_key(rec)
        keys.append(rec)
        assert await cache.lookup(rec.key_hash) is not None
    assert len(cache) == 3  # least recently used went first


# --- capture -----------------------------------------------------------------------


async def test_a_row_the_store_refuses_is_quarantined_and_never_blocks_its_batch(
    store_url: str, tmp_path: Path
) -> None:
    store = Store(store_url)
    metrics = GatewayMetrics()
    w = CaptureWriter(store, spool_dir=tmp_path / "spool", metrics=metrics)  # no cleaning
    tag = uuid.uuid4().hex
    for i in range(10):
        w.submit(record(i, tag, text="bad\x00text\ud800" if i == 3 else "fine"))
    await w.flush()
    ids = [f"req-{tag}-{i}" for i in range(10)]
    stored = {r.request_id for r in store.traffic_by_ids(ids)}
    assert stored == set(ids) - {f"req-{tag}-3"}
    assert w.spool.quarantined == 1 and w.queued == 0 and w.spool.pending == 0
    assert "gavel_capture_quarantined_records_total 1.0" in metrics.render().decode()
    (q,) = (tmp_path / "spool" / "quarantine").iterdir()
    assert json.loads(q.read_text())["request_id"] == f"req-{tag}-3"


def test_a_bad_row_in_the_spool_does_not_stop_its_replay(store_url: str, tmp_path: Path) -> None:
    store = Store(store_url)
    tag = uuid.uuid4().hex
    spool = Spool(tmp_path / "spool", tag="w")
    spool.append([record(0, tag), record(1, tag, text="lone \ud800 surrogate"), record(2, tag)])
    (tmp_path / "spool" / "zz-other.jsonl").write_text("not json\n")
    spool.append([record(3, tag)])
    spool.adopt_orphans()  # a file with no owner (an older Gavel's) is adopted
    assert spool.replay(store, batch_size=10) == 3
    assert store.count_traffic([f"req-{tag}-{i}" for i in range(4)]) == 3
    assert spool.quarantined == 2 and spool.pending == 0


def test_cleaning_makes_any_record_storable(store_url: str) -> None:
    store = Store(store_url)
    tag = uuid.uuid4().hex
    raw = record(0, tag, text="model said \x00 and \udc80")
    raw = raw.model_copy(update={"request": {"user": "\ud800", "messages": []}})
    clean = prepare_for_storage(raw, redacting=False, max_chars=1000)
    assert store.insert_traffic([clean]) == 1
    (got,) = store.traffic_by_ids([raw.request_id])
    assert got.response_text == "model said \ufffd and \ufffd" and got.request["user"] == "\ufffd"


async def test_a_failing_spool_write_keeps_its_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    down = Store("postgresql+psycopg://postgres@127.0.0.1:1/none", connect_timeout_s=1)
    w = CaptureWriter(down, spool_dir=tmp_path / "spool")
    tag = uuid.uuid4().hex
    for i in range(5):
        w.submit(record(i, tag))

    def disk_full(_records: list[TrafficRecord]) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(w.spool, "append", disk_full)
    await w.flush()
    assert w.queued == 5  # neither store nor spool took them: still held
    monkeypatch.undo()
    await w.flush()
    assert w.queued == 0 and w.spool.pending == 5


async def test_the_first_store_error_spools_the_whole_queue(tmp_path: Path) -> None:
    down = Store("postgresql+psycopg://postgres@127.0.0.1:1/none", connect_timeout_s=1)
    w = CaptureWriter(down, spool_dir=tmp_path / "spool", batch_size=10, queue_max=10_000)
    tag = uuid.uuid4().hex
    for i in range(500):
        w.submit(record(i, tag))
    t0 = time.monotonic()
    await w.flush()  # one failed connection, then everything to disk
    assert w.queued == 0 and w.spool.pending == 500 and w.store_down
    assert time.monotonic() - t0 < 5  # not one connect timeout per batch of 10


def test_database_and_spool_files_are_private(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db' / 'gavel.db'}")
    store.ensure_schema()
    assert stat.S_IMODE(os.stat(tmp_path / "db" / "gavel.db").st_mode) == 0o600
    spool = Spool(tmp_path / "spool", tag="t")
    spool.append([record(0, "p")])
    spool.quarantine([record(1, "p")])
    assert stat.S_IMODE(os.stat(tmp_path / "spool").st_mode) == 0o700
    for f in (tmp_path / "spool").rglob("*.jsonl"):
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600, f


# --- privacy ---------------------------------------------------------------------------


def test_metadata_only_keys_store_an_allow_list_and_no_text() -> None:
    _, key = new_key("private", ["infer"], metadata_only=True)
    body = {
        "model": "app-model",
        "messages": [{"role": "user", "content": "my secret plan"}],
        "user": "alice@example.com",
        "stop": ["SECRET-STOP"],
        "tools": [{"type": "function", "function": {"name": "leak", "description": "x"}}],
        "unknown_field": "SECRET-EXTRA",
        "temperature": 0.5,
        "max_tokens": 4,
    }
    call = RequestContext("chat", request_id="rid", key=key, model="app-model", role="app",
                          body=body, metadata={"k": "SECRET-META"})  # fmt: skip
    call.text = ["the answer"]
    call.client_request_id = "SECRET-ID"
    settings = GatewaySettings(
        config=GatewayConfig(), store_url="sqlite://", spool_dir="/tmp", roles=ROLES, prices={}
    )
    rec = to_record(call, settings, cost=0.0, e2e_s=0.1)
    dumped = rec.model_dump_json()
    for secret in ("secret plan", "alice", "SECRET", "leak", "the answer"):
        assert secret not in dumped, secret
    assert rec.request["temperature"] == 0.5 and rec.request["sizes"]["messages"] == 1


def test_redaction_masks_provider_keys_and_pem_but_not_dates_or_ips() -> None:
    text = (
        "keys sk-proj-abcdefghijklmnopqrstuv, sk_live_abcdefghijklmnop12, "
        "github_pat_11ABCDEFG0123456789_abcdefghij, AIzaSyA1234567890abcdefghijklmnopqrstuv; "
        "-----BEGIN PRIVATE KEY-----\nMIIabc\n-----END PRIVATE KEY----- "
        "call +1 (415) 555-0132; on 2026-11-23 from 10.0.12.250, version 1.2.3"
    )
    out = redact(text)
    assert out.count("[SECRET]") == 4 and "[PEM]" in out and "[PHONE]" in out
    assert "2026-11-23" in out and "10.0.12.250" in out and "1.2.3" in out
    cut = redact("a" * 5000, max_chars=1000)
    assert len(cut) < 1100 and cut.endswith("[CUT]")


@pytest.mark.parametrize(
    "adversarial",
    ["1 " * 100_000, "-----BEGIN A-----" * 12_000, "a.a@a" * 40_000, "+(" * 100_000],
    ids=["digits", "pem", "email", "phone"],
)
def test_redaction_is_linear_on_adversarial_text(adversarial: str) -> None:
    # A quadratic pattern takes minutes on 200 kB; a linear one well under a second.
    t0 = time.perf_counter()
    redact(adversarial, max_chars=1_000_000)
    assert time.perf_counter() - t0 < 5


def test_a_request_without_max_tokens_is_capped_at_what_was_reserved() -> None:
    from serving.gateway._body import completion_cap

    cap = completion_cap
    assert cap({"messages": []}, default=256, context_len=None, prompt_est=40) == 256
    assert cap({"messages": []}, default=256, context_len=2048, prompt_est=40) == 256
    assert cap({"messages": []}, default=256, context_len=200, prompt_est=40) == 160
    assert cap({"messages": []}, default=256, context_len=30, prompt_est=40) == 1
    assert cap({"max_tokens": 9}, default=256, context_len=None, prompt_est=1) is None
    assert cap({"max_completion_tokens": 9}, default=256, context_len=None, prompt_est=1) is None


def test_open_reservations_are_bounded_and_a_release_before_admission_charges_nothing() -> None:
    from serving.gateway._limits import WINDOW_S, SlidingWindows
    from serving.gateway._windows import OPEN_MAX_S

    w = SlidingWindows()
    for i in range(50):  # admitted, never settled (their ingress died, say)
        assert w.admit("k", float(i), rpm=None, tpm=10_000, reserve=10, reservation=f"r{i}") is None
    assert w.open_reservations(49.0) == 50
    assert w.open_reservations(49.0 + WINDOW_S) == 50  # a long request keeps its reservation
    assert w.open_reservations(49.0 + OPEN_MAX_S) == 0  # forgotten at last
    w.windows["k"].expire(49.0 + OPEN_MAX_S + WINDOW_S)
    assert w.windows["k"].token_sum == 0  # and aged out like any charge

    w.settle("late", "k2", 200.0, 0)  # the ingress gave up and released it first
    assert w.admit("k2", 201.0, rpm=None, tpm=100, reserve=100, reservation="late") is None
    assert "k2" not in w.windows and w.open_reservations(201.0) == 0  # nothing counted
    assert w.admit("k2", 202.0, rpm=None, tpm=100, reserve=100, reservation="next") is None
    assert w.windows["k2"].token_sum == 100  # released once only: the next one is charged


def test_budget_reservations_released_early_or_never_settled() -> None:
    from datetime import UTC, datetime, timedelta

    from serving.gateway._limits import OPEN_BUDGET_MAX_S, BudgetAsk, Budgets

    now = datetime(2026, 11, 29, 12, tzinfo=UTC)
    b = Budgets()
    b.load("k", now, day_usd=0.0, month_usd=0.0)
    ask = BudgetAsk(day_usd=1.0, month_usd=None, reserve_usd=0.4)
    b.settle("gone", 0.0)  # released before its admission arrives
    assert b.reserve("k", now, ask, "gone").over_budget is None
    assert b.spent[("k", "2026-11-29")] == 0.0 and b.open_reservations() == 0
    b.reserve("k", now, ask, "stuck")
    later = now + timedelta(seconds=OPEN_BUDGET_MAX_S + 1)
    b.reserve("k", later, ask, "fresh")
    assert b.open_reservations() == 1  # "stuck" forgotten, and still charged (safe side)
    assert b.spent[("k", "2026-11-29")] == pytest.approx(0.8)


def test_an_engine_4xx_message_loses_ray_s_internals() -> None:
    from serving.gateway._gateway import engine_message as _engine_message

    raw = (
        "Message: min_tokens must be less than or equal to max_tokens=1, got 8. (Request ID:"
        " promote-25), Internal exception: ray.llm._internal.serve.core.configs."
        "openai_api_models.OpenAIHTTPException (Request ID: promote-25), original exception: "
    )
    assert _engine_message(raw) == "min_tokens must be less than or equal to max_tokens=1, got 8."
    assert _engine_message("plain") == "plain"


def test_store_passwords_and_backups_are_not_readable_by_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 30, defect 12: pg_dump's password was on its command line (``ps`` shows it),
    and a SQLite backup was 0644 until it succeeded."""
    import sqlite3
    from types import SimpleNamespace

    from serving.store import _backup

    url, env = _backup._libpq(SimpleNamespace(url="postgresql+psycopg://u:S3CRET@h:5432/db"))  # type: ignore[arg-type]
    assert "S3CRET" not in url and env["PGPASSWORD"] == "S3CRET"
    src = tmp_path / "gavel.db"
    sqlite3.connect(src).execute("create table t (x)").connection.commit()
    modes: list[int] = []
    real = sqlite3.Connection.backup

    class Spy(sqlite3.Connection):
        def backup(self, target: sqlite3.Connection, **kw: Any) -> None:  # type: ignore[override]
            modes.append(stat.S_IMODE(os.stat(tmp_path / "b.db").st_mode))
            real(self, target, **kw)

    connect = sqlite3.connect
    monkeypatch.setattr(_backup.sqlite3, "connect", lambda p, **kw: connect(p, factory=Spy, **kw))
    _backup.backup(SimpleNamespace(dialect="sqlite", url=f"sqlite:///{src}"), tmp_path / "b.db")  # type: ignore[arg-type]
    assert modes == [0o600]


def test_a_traffic_export_is_the_users_alone(tmp_path: Path) -> None:
    """Issue 30, defect 12: ``gavel traffic export`` wrote world-readable files."""
    from serving.cli import main

    url = f"sqlite:///{tmp_path / 'gavel.db'}"
    Store(url).insert_traffic([record(0, uuid.uuid4().hex, "secret text")])
    cfg = tmp_path / "stack.yaml"
    cfg.write_text(
        f'gateway: {{store: {{url: "{url}"}}}}\n'
        "models: [{role: app, model_id: app-model, source: {path: m}}]\n"
    )
    out = tmp_path / "day.jsonl"
    day = datetime.now(UTC).date().isoformat()
    assert main(["traffic", "export", "--date", day, "--out", str(out), "--config", str(cfg)]) == 0
    assert "secret text" in out.read_text()
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600


async def test_settlements_are_not_children_of_the_request_ray_cancels() -> None:
    """Ray Serve cancels a request's child calls when its client goes away, which is
    exactly when an aborted stream is settled: the limiter's bookkeeping calls must be
    sent outside the request's context, or the reservation stays charged for good."""
    from ray.serve import context as serve_context

    from serving.gateway._admission import Admitter

    seen: dict[str, str] = {}

    def recorder(name: str) -> Any:
        def remote(*_a: Any) -> None:
            seen[name] = serve_context._get_serve_request_context()._internal_request_id

        return type(name, (), {"remote": staticmethod(remote)})

    limiter = type("Limiter", (), {n: recorder(n) for n in ("settle", "release", "give_back")})
    cfg = GatewayConfig(limits=LimitsConfig(limiter_timeout_s=0.2))  # type: ignore[arg-type]
    admitter = Admitter(limiter(), cfg.limits, GatewayMetrics())  # type: ignore[arg-type]
    _, key = new_key("k", ["infer"], tpm=1000)
    serve_context._set_request_context(_internal_request_id="the-clients-request")
    try:
        admitter.settle(key, "r", 10, None)
        admitter.leases.add(
            "k", Lease(id="l", requests=None, tokens=100, term_s=0.0), 0.0, (None, 1000)
        )
        admitter.return_due(time.monotonic() + 1)
    finally:
        serve_context._unset_request_context()
    assert set(seen) == {"settle", "give_back"}
    assert "the-clients-request" not in seen.values(), seen
