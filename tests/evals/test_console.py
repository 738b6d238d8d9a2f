"""The console (``gavel console``): access by scope, CSRF, security headers, hostile
captured text escaped everywhere, text of metadata-only and erased records shown
nowhere, the explorer's search and pages, and the labelling views mounted in it."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from evals.console import build_console_app
from judges import Label, LabelStore, Verdict, VerdictStore, load_judging
from serving import load_config, new_key
from serving._wire import TrafficRecord
from serving.store import Store, erase

HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
NOW = datetime.now(UTC).replace(microsecond=0)


def _rec(rid: str, text: str, *, key: str = "app", minutes: int = 0, **kw: object) -> TrafficRecord:
    return TrafficRecord.model_validate(
        {"request_id": rid, "ts": NOW - timedelta(minutes=minutes), "key_name": key,
         "model": "app-model", "endpoint": "chat", "stream": False,
         "request": {"messages": [{"role": "user", "content": text}]},
         "response_text": f"reply to {text}", "status": 200, "ttft_ms": 50.0,
         "prompt_tokens": 10, "completion_tokens": 5, "cost_usd": 0.001, **kw}
    )  # fmt: skip


@pytest.fixture
def console(store_url: str) -> tuple[TestClient, Store, dict[str, str]]:
    store = Store(store_url)
    store.ensure_schema()
    secrets, tag = {}, uuid.uuid4().hex[:10]
    kinds = [("viewer", ["view"], False), ("boss", ["admin"], False),
             ("labeller", ["label"], False), ("quiet", ["infer"], True)]  # fmt: skip
    for name, scopes, meta in kinds:
        secret, key = new_key(f"{name}-{tag}", scopes, metadata_only=meta)  # type: ignore[arg-type]
        store.add_key(key)
        secrets[name] = secret
    store.insert_traffic(
        [_rec(f"h-{tag}", HOSTILE + " zebra" + tag, metadata={"note": HOSTILE})]
        + [_rec(f"p{i}-{tag}", f"plain {i} giraffe{tag}", minutes=i + 1) for i in range(5)]
        + [_rec(f"m-{tag}", "secret words quokka" + tag, key=f"quiet-{tag}", metadata_only=True)]
        + [_rec(f"e-{tag}", "erase me wombat" + tag, key=f"gone-{tag}")]
    )
    erase(store, f"gone-{tag}", since=None, by="test", dry_run=False)
    VerdictStore(store).insert([
        Verdict(item_id=f"h-{tag}", criterion="concise", criterion_version="1", kind="pass_fail",
                judge="pass_fail", judge_version="1", judge_model="judge-model", judge_args={},
                model="app-model", day=NOW.date().isoformat(), verdict="fail", reasoning=HOSTILE,
                created_at=NOW),
        Verdict(item_id=f"m-{tag}", criterion="concise", criterion_version="1", kind="pass_fail",
                judge="pass_fail", judge_version="1", judge_model="judge-model", judge_args={},
                model="app-model", day=NOW.date().isoformat(), verdict="fail",
                reasoning=f"it says quokka{tag}", created_at=NOW),
        Verdict(item_id=f"p0-{tag}", criterion="concise", criterion_version="1", kind="pass_fail",
                judge="pass_fail", judge_version="1", judge_model="judge-model", judge_args={},
                model="app-model", day=NOW.date().isoformat(), verdict="pass",
                reasoning="the judge's secret opinion", created_at=NOW)
    ])  # fmt: skip
    lname = f"labeller-{tag}"
    LabelStore(store).upsert([
        Label(item_id=f"p0-{tag}", criterion="concise", criterion_version="1", label="pass",
              note=HOSTILE, labeller=lname, labelled_at=NOW)
    ])  # fmt: skip
    app = build_console_app(
        store, load_config("config/sim.yaml"), load_judging("config/judging.yaml")
    )
    secrets["tag"] = tag
    return TestClient(app), store, secrets


def _sign_in(client: TestClient, secret: str) -> None:
    client.cookies.clear()
    form = client.get("/signin")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf, form.text
    resp = client.post("/signin", data={"csrf": csrf[1], "key": secret}, follow_redirects=False)
    assert resp.status_code == 303, resp.text


def test_sign_in_needs_the_csrf_token_and_a_view_key(console) -> None:  # type: ignore[no-untyped-def]
    client, _, s = console
    first = client.get("/")
    assert first.status_code == 401 and "Sign in" in first.text
    assert first.headers["content-security-policy"].startswith("default-src 'none'")
    assert first.headers["x-content-type-options"] == "nosniff"
    assert first.headers["referrer-policy"] == "no-referrer"
    forged = client.post("/signin", data={"key": s["viewer"]}, follow_redirects=False)
    assert forged.status_code == 403 and "CSRF" in forged.text
    client.get("/signin")
    wrong = client.post("/signin", data={"key": s["viewer"], "csrf": "x" * 32})
    assert wrong.status_code == 403
    client.cookies.clear()
    client.get("/signin")
    token = client.cookies.get("gavel_console_csrf")
    quiet = client.post("/signin", data={"key": s["quiet"], "csrf": token})
    assert quiet.status_code == 403 and "&#39;view&#39;" in quiet.text  # an 'infer' key: no console
    assert client.get("/").status_code == 401


def test_scopes_view_admin_and_label(console) -> None:  # type: ignore[no-untyped-def]
    client, store, s = console
    tag = s["tag"]
    _sign_in(client, s["viewer"])
    for path in ("/", "/?window=30d", "/traffic", "/judging", f"/records/p0-{tag}"):
        assert client.get(path).status_code == 200, path
    assert client.get("/keys").status_code == 403
    _sign_in(client, s["boss"])
    keys = client.get("/keys")
    assert keys.status_code == 200 and "viewer-" in keys.text
    for k in store.list_keys():  # never a secret or a hash
        assert k.key_hash not in keys.text
    assert not any(secret in keys.text for secret in s.values() if len(secret) > 20)
    _sign_in(client, s["labeller"])
    assert client.get("/").status_code == 403
    own = client.get(f"/records/p0-{tag}")
    assert own.status_code == 200  # it labelled this one, and sees its own label ...
    assert "secret opinion" not in own.text and "Not judged" in own.text  # ... blind
    assert client.get(f"/records/p1-{tag}").status_code == 403
    assert client.get("/label/").status_code == 200  # the labelling views, mounted
    assert client.get("/label/pairs").status_code == 200
    assert client.get("/label/common.js").status_code == 200


def test_hostile_text_is_escaped_on_every_page(console) -> None:  # type: ignore[no-untyped-def]
    client, _, s = console
    tag = s["tag"]
    _sign_in(client, s["boss"])
    pages = ["/", "/judging", f"/traffic?text=zebra{tag}", f"/records/h-{tag}",
             f"/records/p0-{tag}", "/keys"]  # fmt: skip
    for path in pages:
        body = client.get(path).text
        assert "<script>" not in body and "<img" not in body, path
    record = client.get(f"/records/h-{tag}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in record  # shown, as text
    assert "concise" in record and "judge-model" in record


def test_text_of_metadata_only_and_erased_records_is_shown_nowhere(console) -> None:  # type: ignore[no-untyped-def]
    client, _, s = console
    tag = s["tag"]
    _sign_in(client, s["viewer"])
    meta = client.get(f"/records/m-{tag}").text
    assert "quokka" not in meta and "metadata-only" in meta  # nor in the verdict's reasoning
    assert "concise" in meta  # the verdict itself is shown
    erased = client.get(f"/records/e-{tag}").text
    assert "wombat" not in erased and "erased" in erased
    listing = client.get(f"/traffic?key=quiet-{tag}").text + client.get("/traffic").text
    assert "quokka" not in listing and "wombat" not in listing
    assert f"m-{tag}" in client.get("/traffic?limit=200").text  # listed, without its text
    assert f"e-{tag}" not in client.get(f"/traffic?text=wombat{tag}").text  # not found


def test_the_explorer_searches_and_pages_by_keyset(console) -> None:  # type: ignore[no-untyped-def]
    client, _, s = console
    tag = s["tag"]
    _sign_in(client, s["viewer"])
    found = client.get(f"/traffic?text=giraffe{tag}&limit=2")
    ids = re.findall(rf"/records/(p\d-{tag})", found.text)
    assert ids == [f"p0-{tag}", f"p1-{tag}"]
    nxt = re.search(r'href="(/traffic\?[^"]+)">next page', found.text)
    assert nxt
    second = client.get(nxt[1].replace("&amp;", "&"))
    assert re.findall(rf"/records/(p\d-{tag})", second.text) == [f"p2-{tag}", f"p3-{tag}"]
    failed = client.get("/traffic?criterion=concise&verdict=fail&key=app")
    assert f"h-{tag}" in failed.text and f"p0-{tag}" not in failed.text
    bad = client.get("/traffic?status=9999")
    assert bad.status_code == 400 and "status" in bad.text
    assert client.get("/traffic?after=nonsense").status_code == 400
    assert client.get("/records/nope").status_code == 404


def test_sign_out_needs_csrf_and_ends_the_session(console) -> None:  # type: ignore[no-untyped-def]
    client, _, s = console
    _sign_in(client, s["viewer"])
    assert client.post("/signout", data={}).status_code == 403
    assert client.get("/").status_code == 200
    token = client.cookies.get("gavel_console_csrf")
    client.post("/signout", data={"csrf": token})
    assert client.get("/").status_code == 401


def _run(run_id: str, answers: dict[str, tuple[str, str]]) -> object:
    from evals import RunResult

    items = [{"id": i, "tags": [], "epochs": [{"epoch": 0, "response": text,
              "outcomes": {"exact": o}}]} for i, (text, o) in answers.items()]  # fmt: skip
    passes = sum(o == "pass" for _, o in answers.values())
    return RunResult.model_validate({
        "run_id": run_id, "suite": "s", "suite_hash": "h" * 16, "dataset_hash": "d" * 16,
        "git_commit": None, "created_at": NOW, "model": "app-model", "base_url": "x",
        "params": {}, "system": None, "epochs": 1, "items": items,
        "checks": [{"name": "exact", "gating": True, "passes": passes, "n": len(answers),
                    "rate": passes / len(answers), "ci_low": 0.0, "ci_high": 1.0}],
        "tags": {}, "flaky": {}, "model_calls": 1, "cached_answers": 0, "seconds": 1.0,
    })  # fmt: skip


def test_eval_runs_compared_with_the_flipped_items_side_by_side(console) -> None:  # type: ignore[no-untyped-def]
    from evals._run import save_run

    client, store, s = console
    tag = s["tag"]
    save_run(store, _run(f"a-{tag}", {"i1": ("fine", "pass"), "i2": ("ok", "pass")}))  # type: ignore[arg-type]
    save_run(store, _run(f"b-{tag}", {"i1": (HOSTILE, "fail"), "i2": ("ok", "pass")}))  # type: ignore[arg-type]
    _sign_in(client, s["viewer"])
    assert f"a-{tag}" in client.get("/evals").text
    run = client.get(f"/evals/b-{tag}")
    assert run.status_code == 200 and "<script>" not in run.text and "&lt;script&gt;" in run.text
    comp = client.get(f"/compare?baseline=a-{tag}&candidate=b-{tag}")
    assert comp.status_code == 200 and "1 pass→fail" in comp.text
    assert "fine" in comp.text and "&lt;script&gt;" in comp.text and "<script>" not in comp.text
    # A run is read from the store by id, never from a path a browser names.
    assert client.get("/evals/pyproject.toml").status_code == 404
    assert client.get("/compare?baseline=..%2Fpyproject.toml&candidate=x").status_code == 404
    assert client.get("/swap").status_code == 200


def test_gavel_console_serves_on_its_port(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The command itself (one subprocess test): the sign-in page and the labelling views."""
    import socket
    import subprocess
    import time

    import httpx

    from tests.conftest import GAVEL, ROOT

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "stack.yaml"
    text = (ROOT / "config/sim.yaml").read_text()
    cfg.write_text(text.replace("../.gavel", str(tmp_path)))  # a store of its own
    judging = str(ROOT / "config/judging.yaml")
    cmd = [GAVEL, "console", "--config", str(cfg), "--judging", judging, "--port", str(port)]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline, status = time.monotonic() + 60, 0
        while time.monotonic() < deadline and status != 200:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/signin").status_code
            except httpx.HTTPError:
                time.sleep(0.3)
        assert status == 200
        assert httpx.get(f"http://127.0.0.1:{port}/label/").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 401
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    assert "console: http://127.0.0.1" in out, out
    assert (tmp_path / "gavel.db").exists()


def test_hostile_requests_get_4xx_never_500(console) -> None:  # type: ignore[no-untyped-def]
    client, _, s = console
    client.get("/signin")
    client.cookies.set("gavel_console_csrf", "abc")
    assert client.post("/signin", data={"csrf": "é" * 10, "key": "x"}).status_code in (401, 403)
    _sign_in(client, s["viewer"])
    for path in ("/traffic?model=%00", "/traffic?text=a%00b", "/records/%00", "/evals/%00",
                 "/traffic?text=%22%22%22", "/traffic?text=NEAR(a%20b)", "/traffic?limit=0",
                 "/traffic?first_day=never", "/?window=../../etc"):  # fmt: skip
        assert client.get(path).status_code < 500, path
    label = client.get("/label/")
    assert "'sha256-" in label.headers["content-security-policy"]


def test_the_swap_view_shows_the_last_decision_and_its_sequence_by_day(console) -> None:  # type: ignore[no-untyped-def]
    from evals._compare import pairwise_report
    from evals.swap._report import SwapReport
    from evals.swap._sequence import SequencePoint
    from evals.swap._trial import SwapVerdict
    from serving import SwapConfig
    from serving.swap import record_swap_report

    _, store, s = console
    cand = f"cand-{s['tag']}"
    variant = {"model_id": cand, "base": "app-model", "max_tokens": 2}
    swap = SwapConfig.model_validate(
        {"production": "app-model", "candidate": cand, "variant": variant}
    )
    stack = load_config("config/sim.yaml").model_copy(update={"swap": swap})
    client = TestClient(build_console_app(store, stack, load_judging("config/judging.yaml")))
    _sign_in(client, s["viewer"])
    assert "No report yet" in client.get("/swap").text
    points = [SequencePoint(day=f"2026-12-0{d}", pairs=30 * d, win_rate=0.6, low=0.5 - 0.1 / d,
                            high=0.7 + 0.1 / d) for d in (1, 2, 3)]  # fmt: skip
    report = SwapReport(
        production="app-model", candidate=swap.candidate, days=[p.day for p in points],
        production_arm=0, candidate_arm=0, shadow_pairs=90, checks=[],
        pairwise=pairwise_report("preferred_response", []), sequence=points,
        judge_trusted=None, trust_reason=HOSTILE, seconds=1.0,
        verdict=SwapVerdict(decision="continue", reason="no check shows the candidate worse",
                            withheld=f"promote: the pairwise judge is not trusted ({HOSTILE})"),
    )  # fmt: skip
    record_swap_report(store, "app-model", swap.candidate, last_day="2026-12-03",
                       decision="continue", report=report.model_dump_json())  # fmt: skip
    page = client.get("/swap").text
    assert "Decision: <b>continue</b>" in page and "Withheld: promote" in page
    assert "<svg" in page and page.count("2026-12-0") >= 3  # the sequence, plotted and listed
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_the_keys_view_plots_spend_per_day(console) -> None:  # type: ignore[no-untyped-def]
    client, _, s = console
    _sign_in(client, s["boss"])
    page = client.get("/keys?window=7d").text
    assert 'class="spend"' in page and "<svg" in page
    spend = page[page.index('class="spend"') : page.index("</figure>", page.index('class="spend"'))]
    assert "<polyline" in spend or "<circle" in spend  # the keys' spend is drawn
    assert "USD" in spend


def test_the_labels_view_shows_assignment_progress_and_agreement(console) -> None:  # type: ignore[no-untyped-def]
    from pathlib import Path

    from judges import LabellingConfig, load_criteria

    _, store, s = console
    tag = s["tag"]
    judging = load_judging("config/judging.yaml")
    (concise,) = [c for c in load_criteria(Path(judging.criteria_dir)) if c.name == "concise"]
    LabelStore(store).upsert([
        Label(item_id=f"p0-{tag}", criterion="concise", criterion_version=concise.label_version,
              label=label, labeller=f"{who}-{tag}", labelled_at=NOW)
        for who, label in (("bob", "fail"), ("labeller", "pass"))
    ])  # fmt: skip
    team = LabellingConfig(labellers=[f"labeller-{tag}", f"bob-{tag}"], per_item=2)
    judging = judging.model_copy(update={"labelling": team})
    client = TestClient(build_console_app(store, load_config("config/sim.yaml"), judging))
    _sign_in(client, s["viewer"])
    page = client.get("/labels").text
    assert "Each item goes to 2 of 2 named labellers" in page
    assert f"<td>bob-{tag}</td>" in page  # its progress row
    assert f"labeller-{tag} · bob-{tag}" in page or f"bob-{tag} · labeller-{tag}" in page


def test_the_judging_view_links_each_disagreement_to_its_record(console) -> None:  # type: ignore[no-untyped-def]
    client, store, s = console
    tag = s["tag"]
    LabelStore(store).upsert([
        Label(item_id=f"h-{tag}", criterion="concise", criterion_version="1", label="pass",
              labeller=f"carol-{tag}", labelled_at=NOW)  # the judge said fail
    ])  # fmt: skip
    _sign_in(client, s["viewer"])
    page = client.get("/judging").text
    assert (
        f'<a href="/records/h-{tag}">h-{tag}</a></td><td>concise</td><td>fail</td><td>pass' in page
    )
    assert f"/records/p0-{tag}" not in page  # the labeller and the judge agree there
