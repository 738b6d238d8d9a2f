"""The labelling page in a real headless browser: Debian's Chromium driven by Playwright.

``gavel label`` runs as a subprocess on a seeded store (SQLite and PostgreSQL). A person
signs in with a key, labels three records with the keyboard only, reloads, and finds
the labels there; the judge's verdict is not in the page until a record is labelled.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from judges._labels import LabelStore
from tests.conftest import GAVEL, ROOT
from tests.judges.conftest import LABELLED_CRITERIA, Seeded, secret, seed_pairs

CHROMIUM = Path(os.environ.get("GAVEL_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-extensions",
    "--no-first-run",
]


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    why = f"no Chromium at {CHROMIUM}; `make browser` installs Debian's chromium"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true needs the browser: {why}")
    pytest.skip(why)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def label_server(seeded: Seeded) -> Iterator[str]:
    """``gavel label`` on the seeded store; yields its base URL."""
    _require_chromium()
    port = _free_port()
    log = (seeded.tmp / "label.log").open("w")
    proc = subprocess.Popen(
        [GAVEL, "label", "--config", str(seeded.stack_config), "--judging",
         str(seeded.judging_config), "--port", str(port)],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("gavel label did not start:\n" + (seeded.tmp / "label.log").read_text())
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def _shown_labels(page: object) -> dict[str, str]:
    texts: dict[str, str] = page.eval_on_selector_all(  # type: ignore[attr-defined]
        ".crit", "cards => Object.fromEntries(cards.map(c => "
        "[c.dataset.criterion, c.querySelector('.human').textContent]))",
    )  # fmt: skip
    return texts


def test_label_three_records_with_the_keyboard(seeded: Seeded, label_server: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    name, key = seeded.key(["label"])
    crits = sorted(LABELLED_CRITERIA)
    # What the person decides for records 0..2, per criterion in page order.
    plan = {
        seeded.items[0]: ["pass", "fail"],
        seeded.items[1]: ["fail", "fail"],
        seeded.items[2]: ["pass", "pass"],
    }
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{label_server}/?day={seeded.day.isoformat()}")
            page.fill("#key", key)
            page.press("#key", "Enter")
            expect(page.locator("#record-id")).to_have_text(seeded.items[0])
            expect(page.locator("#who")).to_contain_text(name)
            expect(page.locator("#position")).to_have_text(f"1 / {len(seeded.items)}")

            for n, (item, decisions) in enumerate(plan.items()):
                expect(page.locator("#record-id")).to_have_text(item)
                # Before labelling: no verdict and no judge reasoning anywhere in the page.
                html = page.content()
                for c in crits:
                    assert secret(item, c) not in html
                assert page.locator(".judge-verdict").count() == 0
                if n == 0:  # a note, typed after pressing `n`, left with Esc
                    page.keyboard.press("n")
                    page.keyboard.type("reads fine")
                    page.keyboard.press("Escape")
                for d in decisions:
                    page.keyboard.press("p" if d == "pass" else "f")
                page.keyboard.press("Enter")
                expect(page.locator(".judge-verdict")).to_have_count(len(crits))
                html = page.content()
                for c in crits:
                    assert secret(item, c) in html
                    verdict = seeded.judge[(item, c)]
                    card = page.locator(f'.crit[data-criterion="{c}"] .judge-verdict')
                    expect(card).to_have_text(f"judge: {verdict}")
                page.keyboard.press("ArrowRight")

            # The fourth record is next and still hidden.
            expect(page.locator("#record-id")).to_have_text(seeded.items[3])
            page.reload()
            expect(page.locator("#record-id")).to_have_text(seeded.items[3])
            assert page.locator(".judge-verdict").count() == 0
            for item in reversed(list(plan)):
                page.keyboard.press("ArrowLeft")
                expect(page.locator("#record-id")).to_have_text(item)
                expect(page.locator(".judge-verdict")).to_have_count(len(crits))
                want = {c: f"you: {d}" for c, d in zip(crits, plan[item], strict=True)}
                assert _shown_labels(page) == want
            note = page.locator(f'.crit[data-criterion="{crits[0]}"] input[data-field="note"]')
            expect(note).to_have_value("reads fine")

            # Disagreement filter: only labelled records where the judge said otherwise.
            disagree = [
                i
                for i, ds in plan.items()
                if any(seeded.judge[(i, c)] != d for c, d in zip(crits, ds, strict=True))
            ]
            page.goto(f"{label_server}/?day={seeded.day.isoformat()}&disagreement=true")
            expect(page.locator("#position")).to_have_text(f"1 / {len(disagree)}")
        finally:
            browser.close()

    stored = {(lab.item_id, lab.criterion): lab for lab in LabelStore(seeded.store).for_items(plan)}
    assert len(stored) == 3 * len(crits)
    for item, decisions in plan.items():
        for c, d in zip(crits, decisions, strict=True):
            assert stored[(item, c)].label == d
            assert stored[(item, c)].labeller == name
    assert stored[(seeded.items[0], crits[0])].note == "reads fine"


def _sides(page: object) -> tuple[str, str]:
    left: str = page.locator("#left").text_content()  # type: ignore[attr-defined]
    right: str = page.locator("#right").text_content()  # type: ignore[attr-defined]
    return left, right


def test_label_pairs_blind_with_the_keyboard(seeded: Seeded, label_server: str) -> None:
    """Pairwise items: the arm, model and request ids are nowhere in the page; keys a/b/t
    label by screen side and the store holds the label by response; the judge's verdict
    appears only once labelled; a changed label keeps its history across a reload."""
    from playwright.sync_api import expect, sync_playwright

    pairs = seed_pairs(seeded)
    name, key = seeded.key(["label"])
    hidden = ["app-model", "app-terse", "shadow", "production", "candidate", "JUDGE-PAIR"]
    hidden += [i for item in pairs.item_ids for i in item.split("|")]
    want: dict[int, str] = {}  # pair index -> label by response
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{label_server}/pairs?day={seeded.day.isoformat()}")
            page.fill("#key", key)
            page.press("#key", "Enter")
            expect(page.locator("#position")).to_have_text(f"1 / {len(pairs.item_ids)}")
            expect(page.locator("#who")).to_contain_text(name)
            for n, choice in enumerate(["PROD", "tie", "CAND"]):
                expect(page.locator("#mine")).to_have_text("not labelled")
                html = page.content()
                for text in hidden:
                    assert text not in html, text
                assert page.locator(".judge-verdict").count() == 0
                left, right = _sides(page)
                i = int((left if "PROD" in left else right).split("-")[1].split()[0])
                if choice == "tie":
                    page.keyboard.press("t")
                    want[i] = "tie"
                else:
                    page.keyboard.press("a" if choice in left else "b")
                    want[i] = "A" if choice == "PROD" else "B"
                expect(page.locator(".judge-verdict")).to_have_count(1)
                expect(page.locator(".history-entry")).to_have_count(1)
                if n < 2:
                    page.keyboard.press("ArrowRight")
            # Change the last pair's label: the history keeps both, across a reload.
            page.keyboard.press("t")
            expect(page.locator(".history-entry")).to_have_count(2)
            want[list(want)[-1]] = "tie"
            page.reload()
            expect(page.locator("#mine")).to_have_text("you: tie")
            expect(page.locator(".history-entry")).to_have_count(2)
            expect(page.locator(".judge-verdict")).to_have_count(1)
        finally:
            browser.close()

    stored = {lab.item_id: lab for lab in LabelStore(seeded.store).for_items(pairs.item_ids)}
    assert {pairs.item_ids.index(i): lab.label for i, lab in stored.items()} == want
    assert all(lab.labeller == name and lab.criterion == "preferred_response"
               for lab in stored.values())  # fmt: skip


def test_pair_sides_are_drawn_per_labeller(seeded: Seeded, label_server: str) -> None:
    """Over 8 pairs and two labellers, both sides carry production's answer."""
    pairs = seed_pairs(seeded)
    day = seeded.day.isoformat()
    on_left = []
    for _ in range(2):
        _, key = seeded.key(["label"])
        auth = {"authorization": f"Bearer {key}"}
        queue = httpx.get(f"{label_server}/api/pairs?day={day}", headers=auth).json()
        assert len(queue) == len(pairs.item_ids)
        for entry in queue:
            view = httpx.get(f"{label_server}/api/pairs/{entry['pair_id']}", headers=auth).json()
            assert view["judge_verdict"] is None and "model" not in view["request"]
            on_left.append(view["left"].startswith("PROD"))
    assert any(on_left) and not all(on_left)
    bad = httpx.put(f"{label_server}/api/pairs/nope", headers=auth, json={"label": "tie"})
    assert bad.status_code == 404 and bad.json()["error"]["code"] == "not_found"
    bad = httpx.put(f"{label_server}/api/pairs/{queue[0]['pair_id']}", headers=auth,
                    json={"label": "A"})  # fmt: skip
    assert bad.status_code == 400
