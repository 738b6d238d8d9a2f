"""Keys over their life, on real stores: expiry, rotation with a grace period, the last
use, and wrong tokens that must not reach the store."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from serving._keys import hash_key, new_key, new_secret
from serving.gateway._auth import KeyCache, WrongTokenGuard, authenticate
from serving.gateway._body import Refusal
from serving.store import Store
from tests.conftest import GAVEL, gavel_main


async def _status(token: str, cache: KeyCache, **kw: object) -> int:
    try:
        await authenticate(f"Bearer {token}", cache, **kw)  # type: ignore[arg-type]
    except Refusal as refused:
        return refused.status
    return 200


async def test_rotation_keeps_the_old_secret_until_the_grace_ends(store_url: str) -> None:
    store = Store(store_url)
    old, rec = new_key(f"rot-{uuid.uuid4().hex[:8]}", ["infer"])
    store.add_key(rec)
    cache = KeyCache(store, ttl_s=0)
    assert await _status(old, cache) == 200
    new = new_secret()
    until = datetime.now(UTC) + timedelta(seconds=1.5)
    assert store.rotate_key(rec.name, hash_key(new), previous_valid_until=until)
    assert await _status(new, cache) == 200
    assert await _status(old, cache) == 200  # within the grace
    await asyncio.sleep(1.6)
    assert await _status(old, cache) == 401
    assert await _status(new, cache) == 200
    cached = KeyCache(store, ttl_s=60)  # a cached key is checked again at every request
    assert await _status(old, cached) == 401
    assert not store.rotate_key("no-such-key", hash_key(new), previous_valid_until=until)


async def test_an_expired_key_gets_401_and_use_is_recorded(store_url: str) -> None:
    store = Store(store_url)
    plain, rec = new_key(f"exp-{uuid.uuid4().hex[:8]}", ["infer"])
    expires = datetime.now(UTC) + timedelta(seconds=3)  # room for a loaded machine
    store.add_key(rec.model_copy(update={"expires_at": expires}))
    cache = KeyCache(store, ttl_s=60)
    assert await _status(plain, cache) == 200
    for _ in range(50):  # last_used_at is written in the background
        used = store.key(rec.name)
        if used is not None and used.last_used_at is not None:
            break
        await asyncio.sleep(0.05)
    assert used is not None and used.last_used_at is not None
    await asyncio.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.1)
    assert await _status(plain, cache) == 401


async def test_wrong_tokens_do_not_reach_the_store(store_url: str) -> None:
    store = Store(store_url)
    plain, rec = new_key(f"real-{uuid.uuid4().hex[:8]}", ["infer"])
    store.add_key(rec)
    cache = KeyCache(store)
    for junk in ("x", "sk-" + "a" * 48, "gvl_short", "gvl_" + "!" * 43):
        assert await _status(junk, cache) == 401
    assert cache.store_lookups == 0  # not shaped like a Gavel key: no lookup
    wrong = new_secret()
    for _ in range(5):
        assert await _status(wrong, cache) == 401
    assert cache.store_lookups == 1  # the negative cache answers the repeats

    guard = WrongTokenGuard(limit=3, window_s=30)
    assert await _status(plain, cache, guard=guard, client="10.0.0.9") == 200
    for _ in range(3):
        assert await _status(new_secret(), cache, guard=guard, client="10.0.0.9") == 401
    lookups = cache.store_lookups
    assert await _status(new_secret(), cache, guard=guard, client="10.0.0.9") == 429
    assert cache.store_lookups == lookups  # backing off: no lookup at all
    assert await _status(plain, cache, guard=guard, client="10.0.0.9") == 200  # a real key
    assert await _status(new_secret(), cache, guard=guard, client="10.0.0.7") == 401


def test_keys_rotate_and_list_json_on_the_cli(tmp_path: Path) -> None:
    cfg = tmp_path / "stack.yaml"
    cfg.write_text(
        'gateway: {store: {url: "sqlite:///gavel.db"}}\n'
        "models: [{role: app, model_id: app-model, source: {path: m}}]\n"
    )

    def gavel(*args: str) -> subprocess.CompletedProcess[str]:
        return gavel_main("--config", str(cfg), *args)

    # The keys group's one subprocess test: the console script itself.
    argv = [GAVEL, "--config", str(cfg), "keys", "create", "svc", "--expires", "30d"]
    made = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert made.returncode == 0 and "expires" in made.stdout, made.stderr
    rotated = gavel("keys", "rotate", "svc", "--grace", "1h", "--save", str(tmp_path / "k"))
    assert rotated.returncode == 0, rotated.stderr
    assert rotated.stdout.splitlines()[-1] == (tmp_path / "k").read_text().strip()
    listed = json.loads(gavel("keys", "list", "--json").stdout)
    assert [k["name"] for k in listed] == ["svc"] and listed[0]["state"] == "rotating"
    assert "key_hash" not in listed[0] and "previous_key_hash" not in listed[0]
    assert listed[0]["expires_at"] is not None and listed[0]["last_used_at"] is None
    bad = gavel("keys", "rotate", "svc", "--grace", "soon")
    assert bad.returncode == 2 and "expected a duration such as 90s, 30m, 24h or 7d" in bad.stderr
    assert gavel("keys", "rotate", "nobody").returncode == 1
    past = gavel("keys", "create", "late", "--expires", "2020-01-01")
    assert past.returncode == 2 and "is in the past" in past.stderr
    bad = gavel("keys", "create", "b", "--budget-usd-day", "-1")
    assert bad.returncode == 2
    assert "--budget-usd-day: expected an amount of USD such as 5 or 0.50" in bad.stderr
    zero = gavel("keys", "create", "b", "--budget-usd-month", "0")
    assert (
        zero.returncode == 2 and "budget_usd_month: Input should be greater than 0" in zero.stderr
    )
    budgeted = gavel("keys", "create", "b", "--budget-usd-day", "2.5", "--tpm", "100")
    assert "limits tpm=100, USD/day=2.5" in budgeted.stdout, budgeted.stderr
    upd = gavel("keys", "update", "b", "--budget-usd-day", "0", "--budget-usd-month", "40")
    assert upd.returncode == 0 and "limits tpm=100, USD/month=40" in upd.stdout, upd.stderr
    assert gavel("keys", "update", "b").returncode == 2
    assert gavel("keys", "update", "nobody", "--rpm", "3").returncode == 1


def test_a_limit_beyond_the_stores_integer_is_a_usage_error(scratch_store_url: str) -> None:
    """Found by the capacity benchmark: tpm 10^10 went into PostgreSQL's 32-bit column and
    came back as a traceback; now the CLI refuses it with the bound."""
    import tempfile

    import yaml

    from tests.conftest import ROOT

    data = yaml.safe_load((ROOT / "config" / "cpu.yaml").read_text())
    data["gateway"]["store"] = {"url": scratch_store_url}
    stack = Path(tempfile.mkdtemp()) / "stack.yaml"
    stack.write_text(yaml.safe_dump(data))
    for args in (
        ["create", "big", "--tpm", "10000000000"],
        ["update", "big", "--rpm", "3000000000"],
    ):
        proc = gavel_main("keys", *args, "--config", str(stack))
        assert proc.returncode == 2, proc.stderr
        assert "2147483647" in proc.stderr and "Traceback" not in proc.stderr


class _SlowStore:
    """A store whose key lookups take ``delay`` seconds, counted."""

    def __init__(self, key: object, delay: float) -> None:
        self.key, self.delay, self.lookups = key, delay, 0

    def key_by_hash(self, key_hash: str) -> object:
        import time

        self.lookups += 1
        time.sleep(self.delay)
        return self.key


async def test_a_busy_key_never_waits_on_the_store_and_a_burst_makes_one_lookup() -> None:
    """Concurrent first requests share one lookup; past half the TTL the cached key is
    served at once while one lookup refreshes it; past the TTL it waits again."""
    import time

    _, rec = new_key("busy", ["infer"])
    store = _SlowStore(rec, delay=0.3)
    cache = KeyCache(store, ttl_s=1.0)  # type: ignore[arg-type]
    found = await asyncio.gather(*(cache.lookup("h") for _ in range(20)))
    assert all(k is rec for k in found) and store.lookups == 1
    await asyncio.sleep(0.6)  # past half the TTL
    started = time.monotonic()
    assert await cache.lookup("h") is rec and await cache.lookup("h") is rec
    assert time.monotonic() - started < 0.1  # served from the cache
    await asyncio.sleep(0.4)  # one refresh ran behind them: the key is fresh again
    assert await cache.lookup("h") is rec and store.lookups == 2
    await asyncio.sleep(1.1)  # past the TTL: the request waits for the store
    started = time.monotonic()
    assert await cache.lookup("h") is rec and time.monotonic() - started >= 0.25
    assert store.lookups == 3
