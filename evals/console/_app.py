"""The console's web app: FastAPI routes over the store, HTML from Jinja2 templates that
escape by default, plots as server-side SVG, and the labelling pages mounted at
``/label/`` (their own sign-in, with the ``label`` scope).
"""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

import evals.console._data as _data
import evals.console._labels as _labels
import evals.console._loadtests as _loadtests
import evals.console._more as _more
from evals.console._access import (
    CSRF,
    SESSION,
    SESSION_TTL_S,
    Sessions,
    check_csrf,
    key_for_secret,
    require,
    signed_in,
)
from evals.console._pages import Pages
from evals.console._svg import Series, bar_chart, line_chart
from judges import JudgingConfig, build_label_app, default_kinds
from serving import StackConfig
from serving.store import DayCache, Store, TrafficQuery, VerdictFilter

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
FILTERS = ("first_day", "last_day", "model", "key", "status", "source", "arm",
           "finish_reason", "labelled", "text", "after", "limit")  # fmt: skip


def build_console_app(
    store: Store,
    stack: StackConfig,
    judging: JudgingConfig,
    *,
    secure_cookies: bool = False,
    reports: Path = Path("reports"),
    bench_data: Path = Path("docs/benchmarks/data"),
) -> FastAPI:
    """The console over ``store``, for the stack ``stack`` and its judging config
    (``secure_cookies``: send cookies over HTTPS only, as behind a TLS proxy); the load
    tests are read from ``reports/loadtest`` and the benchmarks from ``bench_data``."""
    store.ensure_schema()
    app = FastAPI(title="Gavel console", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store, app.state.sessions, app.state.secure = store, Sessions(), secure_cookies
    app.state.days = DayCache()
    label_csp = _label_csp()
    page = Pages()
    css = resources.files("evals.console").joinpath("static/console.css").read_text("utf-8")

    @app.middleware("http")
    async def _headers(request: Request, call_next: Any) -> Response:
        if "\x00" in request.url.path or "%00" in request.url.query:
            resp = page(request, "error.html", 400, status=400,
                        message="A NUL character is not allowed in a URL.")  # fmt: skip
        else:
            resp = await call_next(request)
        label = request.url.path.startswith("/label")
        resp.headers["Content-Security-Policy"] = label_csp if label else CSP
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Cache-Control"] = "no-store"
        token = getattr(request.state, "new_csrf", None)
        if token:
            resp.set_cookie(CSRF, token, httponly=True, samesite="strict", secure=app.state.secure)
        return resp

    @app.exception_handler(HTTPException)
    async def _error(request: Request, exc: HTTPException) -> Response:
        return page(request, "error.html", exc.status_code, status=exc.status_code,
                    message=str(exc.detail))  # fmt: skip

    @app.get("/favicon.ico")
    def _favicon() -> Response:
        return Response(status_code=204)

    @app.get("/static/console.css")
    def _css() -> Response:
        return Response(css, media_type="text/css")

    _session_routes(app, page, store)
    criteria = _criteria(judging)  # read once, at start
    _view_routes(app, page, stack, judging, criteria)
    _more.add_routes(app, page, stack)
    _labels.add_routes(app, page, judging, criteria)
    _loadtests.add_routes(app, page, reports, bench_data)
    app.mount("/label", build_label_app(store, criteria, labelling=judging.labelling))
    return app


def _session_routes(app: FastAPI, page: Pages, store: Store) -> None:
    """Sign in (a key, once, for a session cookie) and sign out; both POSTs check CSRF."""

    @app.get("/signin", response_class=HTMLResponse)
    def signin_form(request: Request) -> HTMLResponse:
        return page(request, "signin.html")

    @app.post("/signin")
    async def signin(request: Request) -> Response:
        await check_csrf(request)
        secret = (await request.form()).get("key")
        _, presented = key_for_secret(store, secret if isinstance(secret, str) else "")
        resp = RedirectResponse("/", status_code=303)
        resp.set_cookie(SESSION, app.state.sessions.open(presented), httponly=True,
                        samesite="strict", max_age=int(SESSION_TTL_S),
                        secure=app.state.secure or request.url.scheme == "https")  # fmt: skip
        return resp

    @app.post("/signout")
    async def signout(request: Request) -> Response:
        await check_csrf(request)
        app.state.sessions.close(request.cookies.get(SESSION))
        resp = RedirectResponse("/signin", status_code=303)
        resp.delete_cookie(SESSION)
        return resp


def _view_routes(
    app: FastAPI, page: Pages, stack: StackConfig, judging: JudgingConfig, criteria: list[Any]
) -> None:
    """The views: overview, traffic, a record, judging, keys."""
    store: Store = app.state.store

    @app.get("/", response_class=HTMLResponse)
    def overview(request: Request, window: str = "7d") -> HTMLResponse:
        require(request, "view")
        win = window if window in _data.WINDOWS else "7d"
        ov = _data.overview(store, stack, judging, criteria, win, app.state.days)
        return page(request, "overview.html", ov=ov, window=win, windows=list(_data.WINDOWS),
                    plots=_overview_plots(ov), report=_more.last_report(store, stack))  # fmt: skip

    @app.get("/traffic", response_class=HTMLResponse)
    def traffic(request: Request) -> HTMLResponse:
        require(request, "view")
        try:
            result = store.search_traffic(_query(request))
        except (ValidationError, ValueError) as exc:
            raise HTTPException(400, _explain(exc)) from None
        nxt = None
        if result.next:
            nxt = "/traffic?" + urlencode({**request.query_params, "after": result.next})
        rows = [(r, _data.shown_text(r)) for r in result.records]
        return page(request, "traffic.html", rows=rows, q=request.query_params, next=nxt)

    @app.get("/records/{request_id:path}", response_class=HTMLResponse)
    def record(request: Request, request_id: str) -> HTMLResponse:
        key = signed_in(request)
        labeller = None
        if key is None or not key.allows("view"):
            labeller = require(request, "label").name
            if not _data.labelled_by(store, request_id, labeller):
                raise HTTPException(403, f"The key {labeller!r} did not label this record.")
        view = _data.record_view(store, request_id)
        if view is None:
            raise HTTPException(404, "No captured record has this id.")
        if labeller is not None:
            view = view.for_labeller(labeller)
        twin_hidden = _data.shown_text(view.twin) if view.twin else None
        return page(request, "record.html", v=view, twin_hidden=twin_hidden)

    @app.get("/judging", response_class=HTMLResponse)
    def judging_view(request: Request, window: str = "30d") -> HTMLResponse:
        require(request, "view")
        win = window if window in _data.WINDOWS else "30d"
        return page(request, "judging.html", ov=_data.quality(store, judging, criteria, win))

    @app.get("/keys", response_class=HTMLResponse)
    def keys(request: Request, window: str = "30d") -> HTMLResponse:
        require(request, "admin")
        win = window if window in _data.WINDOWS else "30d"
        first, last = _data.window(win, datetime.now(UTC).date())
        spend = _data.key_spend(store, first, last, app.state.days)
        keys = store.list_keys()
        used = {k.name: store.key_spend(k.name, last) for k in keys if k.budgeted}
        return page(request, "keys.html", keys=keys, spend=spend, window=win, used=used,
                    windows=list(_data.WINDOWS), plot=spend_plot(spend))  # fmt: skip


def _query(request: Request) -> TrafficQuery:
    """The explorer's query from the page's parameters (blank ones left out)."""
    args: dict[str, Any] = {
        k: v for k, v in request.query_params.items() if k in FILTERS and v != ""
    }
    crit, outcome = request.query_params.get("criterion"), request.query_params.get("verdict")
    if crit and outcome:
        args["verdict"] = VerdictFilter(criterion=crit, outcome=outcome)
    return TrafficQuery.model_validate(args)


def _label_csp() -> str:
    """The labelling pages' CSP on the console's origin: their own inline scripts (by
    hash), nothing from elsewhere, no fetch to another origin."""
    hashes = []
    for name in ("label_page.html", "pair_page.html"):
        html = resources.files("judges").joinpath(name).read_text(encoding="utf-8")
        for body in re.findall(r"<script>(.*?)</script>", html, re.S):
            digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
            hashes.append(f"'sha256-{digest}'")
    return (
        f"default-src 'none'; script-src 'self' {' '.join(hashes)}; style-src 'self' "
        "'unsafe-inline'; connect-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )


def _criteria(judging: JudgingConfig) -> list[Any]:
    from judges import load_criteria

    return load_criteria(Path(judging.criteria_dir), default_kinds())


def _explain(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        e = exc.errors()[0]
        return f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
    return str(exc)


def spend_plot(spend: dict[str, dict[str, float]], top: int = 8) -> str:
    """The ``top`` keys' spend per day, one line each (pure)."""
    ranked = sorted(spend, key=lambda k: -sum(spend[k].values()))[:top]
    days = sorted({d for k in ranked for d in spend[k]})
    series = [Series(k, [(d, spend[k].get(d, 0.0), None) for d in days]) for k in ranked]
    return line_chart(series, unit=" USD") if series else ""


def _overview_plots(ov: _data.Overview) -> dict[str, str]:
    """The overview's SVG plots (pure: the overview in, markup out)."""
    plots: dict[str, str] = {}
    for model, m in ov.models.items():
        for name, p50s, p99s, slo in (
            ("ttft", m.ttft_p50_ms, m.ttft_p99_ms, ov.slo_ttft_ms),
            ("tpot", m.tpot_p50_ms, m.tpot_p99_ms, ov.slo_tpot_ms),
        ):
            p50 = Series("p50", [(d, p50s[d], None) for d in sorted(p50s)])
            p99 = Series("p99", [(d, p99s[d], None) for d in sorted(p99s)])
            plots[f"{name}:{model}"] = line_chart([p50, p99], target=slo.get(model), unit=" ms")
    rates = [Series(c, [(d, r.value, r.interval) for d, r in days.items()])
             for c, days in sorted(ov.pass_rates.items())]  # fmt: skip
    plots["pass_rates"] = line_chart(rates, y_range=(0.0, 1.0))
    plots["top_keys"] = bar_chart(ov.top_keys, unit=" USD")
    return plots
