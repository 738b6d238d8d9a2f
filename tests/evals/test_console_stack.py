"""The console in real Chromium on the real stack (issue 33): traffic captured by the
gateway, judged by the online loop, labelled, two eval runs of one suite, and keys; a
person signs in, reads the overview's plots, finds a record by a word of its prompt,
reads its verdicts and labels, compares the runs and opens a flipped item, and is
refused the keys view with a ``view`` key and shown it with an ``admin`` key. Hostile
captured text renders as text: no script runs, and the page stays usable.

The swap view is checked on the swap tests' own trial (``test_swap_stack.py``)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from judges import Label, LabelStore
from serving._wire import TrafficRecord
from serving.store import Store
from tests.conftest import STORE_URL, run_gavel
from tests.evals.console_browser import browser_page, console_server, sign_in
from tests.judges.test_online_stack import _judging

pytestmark = pytest.mark.stack

HOSTILE = (
    "<script>alert('script')</script><img src=x onerror=\"alert('img')\">"
    "<a href=\"javascript:alert('link')\">click</a> \u202eevil\u202c"
)
SUITE = """name: console_qa
dataset: data.jsonl
target: {role: app, params: {temperature: 0, max_tokens: 16}}
checks:
  - {name: three_words, assert: min_words, args: {min: 3}}
"""


def _key(name: str, scopes: str) -> str:
    made = run_gavel("keys", "create", name, "--scopes", scopes)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip().splitlines()[-1]


def _ask(stack: str, key: str, text: str) -> str:
    r = httpx.post(f"{stack}/chat/completions", timeout=60,
                   headers={"Authorization": f"Bearer {key}"},
                   json={"model": "app-model", "max_tokens": 8,
                         "messages": [{"role": "user", "content": text}]})  # fmt: skip
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def _eval_runs(tmp: Path, key: str) -> tuple[str, str]:
    """Two runs of a small suite: the app model, then cut to 2 tokens (every item flips)."""
    (tmp / "data.jsonl").write_text(
        "".join(json.dumps({"id": f"q{i}", "messages": [
            {"role": "user", "content": f"Say something about the number {i}."}]}) + "\n"
            for i in range(3))
    )  # fmt: skip
    (tmp / "suite.yaml").write_text(SUITE)
    ids = []
    for n, extra in enumerate(((), ("--params", '{"max_tokens": 2}'))):
        out = tmp / f"run{n}"
        done = run_gavel("eval", "run", str(tmp / "suite.yaml"), "--api-key", key,
                         "--out", str(out), *extra, timeout=600)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        ids.append(json.loads((out / "result.json").read_text())["run_id"])
    return ids[0], ids[1]


def test_a_person_reads_the_stack_in_the_console(stack: str, api_key: str, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    infer = _key(f"console-{tag}", "infer")
    word = f"okapi{tag}"
    asked = _ask(stack, infer, f"Tell me one fact about the {word}.")
    _ask(stack, infer, HOSTILE + f" hostile{tag}")
    judging = _judging(tmp_path, f"console-{tag}")
    once = run_gavel("judge", "online", "--once", "--judging", str(judging), "--api-key",
                     api_key, timeout=300)  # fmt: skip
    assert once.returncode == 0, once.stderr[-2000:]
    store = Store(STORE_URL)
    label = Label(item_id=asked, criterion="answers_question", criterion_version="1",
                  label="fail", note="off topic", labeller=f"alice-{tag}",
                  labelled_at=datetime.now(UTC))  # fmt: skip
    LabelStore(store).upsert([label])
    big = TrafficRecord(
        request_id=f"big-{tag}",
        ts=datetime.now(UTC),
        key_name=f"console-{tag}",
        model="app-model",
        endpoint="chat",
        stream=False,
        status=200,
        request={
            "messages": [
                {"role": "user", "content": f"huge{tag} " + HOSTILE * 8000 + " x" * 250_000}
            ]
        },
        response_text="fine",
    )  # fmt: skip  (1 MB: above the gateway's body cap)
    store.insert_traffic([big])
    store.close()
    base_run, cand_run = _eval_runs(tmp_path, api_key)
    viewer, admin = _key(f"viewer-{tag}", "view"), _key(f"admin-{tag}", "admin")

    with console_server(tmp_path / "console.log") as base, browser_page() as (page, errors):
        sign_in(page, base, viewer)
        assert page.locator("figure svg").count() >= 2  # TTFT and TPOT per day, top keys, ...
        assert datetime.now(UTC).date().isoformat() in page.content()
        page.goto(base + "/traffic")
        page.fill("input[name=text]", word)
        page.fill("input[name=source]", "production")  # the judge's prompt quotes it too
        page.click("form.filters button")
        rows = page.locator("table tr td a")
        assert rows.count() == 1
        rows.first.click()
        page.wait_for_url(f"{base}/records/**")
        text = page.content()
        assert asked in text and "answers_question" in text  # the online judge's verdict
        assert f"alice-{tag}" in text and "off topic" in text  # the label, with its note

        for hostile in (f"hostile{tag}", f"huge{tag}"):
            page.goto(f"{base}/traffic?text={hostile}&source=production")
            page.locator("table tr td a").first.click()
            page.wait_for_load_state()
            assert "<script>alert" in page.inner_text("main")  # shown as text
            assert page.locator("main script, main img, main a[href^='javascript']").count() == 0
            page.click("nav >> text=overview")  # still usable
            page.wait_for_url(base + "/")
        assert not [e for e in errors if "Failed to load resource" not in e], errors

        page.goto(f"{base}/compare?baseline={base_run}&candidate={cand_run}")
        flip = page.locator("details.flip").first
        assert page.locator("details.flip").count() == 3
        flip.locator("summary").click()
        assert flip.locator("div.pair pre").nth(0).is_visible()

        assert page.goto(base + "/keys").status == 403
        sign_in(page, base, admin)
        keys = page.goto(base + "/keys")
        assert keys.status == 200 and f"viewer-{tag}" in page.content()
        assert viewer not in page.content() and admin not in page.content()
