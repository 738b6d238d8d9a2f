"""The console in a real headless browser (Debian's Chromium, driven by Playwright) on
the session's stack: ``gavel console`` as a subprocess on the session's store, and a
signed-in page. Used by the console's stack test and the swap's."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import CONFIG, GAVEL, ROOT
from tests.judges.test_label_page import CHROMIUM, CHROMIUM_ARGS, _require_chromium


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def console_server(log_path: Path, *extra: str) -> Iterator[str]:
    """``gavel console`` on the session's stack config; yields its base URL."""
    _require_chromium()
    port = _free_port()
    with log_path.open("w") as log:
        proc = subprocess.Popen([GAVEL, "console", "--config", CONFIG, "--port", str(port), *extra],
                                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(base + "/signin", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("gavel console did not start:\n" + log_path.read_text())
                time.sleep(0.2)
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=20)


@contextmanager
def browser_page() -> Iterator[tuple[Any, list[str]]]:
    """A Chromium page, and the list where every dialog (a script that ran), uncaught
    error and console error of the page is kept."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("dialog", lambda d: (errors.append(f"dialog: {d.message}"), d.dismiss()))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            yield page, errors
        finally:
            browser.close()


def sign_in(page: Any, base: str, secret: str) -> None:
    """Sign in on the console's form (signing out first if a session is open)."""
    page.context.clear_cookies()
    page.goto(base + "/signin")
    page.fill("input[name=key]", secret)
    page.press("input[name=key]", "Enter")
    page.wait_for_url(base + "/")
