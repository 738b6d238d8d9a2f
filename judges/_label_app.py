"""The labelling page (``gavel label``): people read sampled records and label them.

A small FastAPI app over the same store as the gateway. Sign-in is with a gateway key
that has the ``label`` (or ``admin``) scope; the key's name is the labeller. The judge's
verdicts of a record are sent only once every applicable criterion of that record has a
label, so the page cannot show them earlier.
"""

from __future__ import annotations

import secrets
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import resources
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import Field
from starlette.exceptions import HTTPException

from judges._calibration import LabellerAgreement, labeller_agreement
from judges._criteria import Criterion
from judges._labels import Label, LabelStore, Note
from judges._pair_app import PairLabels, add_pair_routes
from judges._registry import KindRegistry
from judges._store import VerdictStore
from judges._wire import Verdict
from judges.kinds import default_kinds
from serving import ApiKey, GavelModel, bearer_token, hash_key, openai_error
from serving.store import Store

COOKIE = "gavel_label_session"
SESSION_TTL_S = 12 * 3600.0


class LabelInput(GavelModel):
    """One criterion's label as the page sends it."""

    criterion: Annotated[str, Field(min_length=1, max_length=128)]
    label: Literal["pass", "fail"]
    note: Note | None = None
    criterion_note: Note | None = None


class LabelSubmit(GavelModel):
    """The labels of one record."""

    labels: Annotated[list[LabelInput], Field(min_length=1)]


class SignIn(GavelModel):
    """The sign-in form: a gateway key."""

    key: Annotated[str, Field(min_length=1, max_length=512)]


class CriterionView(GavelModel):
    """One applicable criterion of a record; the judge's side only once revealed."""

    name: str
    kind: str
    description: str
    rubric: str
    human: Label | None = None
    judge_verdict: str | None = None
    judge_reasoning: str | None = None
    judge: str | None = None
    """Judge name and version, e.g. ``binary@1``."""


class RecordView(GavelModel):
    """A sampled record as the page shows it."""

    item_id: str
    day: str
    model: str
    key_name: str | None
    endpoint: str
    request: dict[str, Any]
    response_text: str | None
    metadata: dict[str, str]
    criteria: list[CriterionView]
    revealed: bool
    """True once every criterion has a label: the judge's verdicts are then included."""


class QueueEntry(GavelModel):
    """One record in the labelling queue (no judge verdicts here)."""

    item_id: str
    day: str
    model: str
    labelled: bool
    disagreement: bool
    """Some labelled criterion where the judge said otherwise (only known once labelled)."""


class Filters(GavelModel):
    """Queue filters; all optional."""

    day: str | None = None
    model: str | None = None
    criterion: str | None = None
    verdict: Literal["pass", "fail", "error"] | None = None
    """The judge's verdict (on ``criterion`` if given, else on any criterion). Applies to
    records the labeller has labelled only: it never tells which unlabelled records the
    judge failed."""
    disagreement: bool = False


def build_queue(
    verdicts: Sequence[Verdict], labels: Sequence[Label], filters: Filters
) -> list[QueueEntry]:
    """The records to label, in (day, item) order, after the filters. Pure.

    ``verdicts`` are those of the pass/fail criteria on the page; ``labels`` are the
    labeller's own, at the criteria's current label versions. Filtering by the judge's
    verdict keeps labelled records only, so the queue never reveals a verdict before the
    labeller has labelled the record.
    """
    by_item: dict[str, dict[str, Verdict]] = defaultdict(dict)
    for v in verdicts:
        by_item[v.item_id][v.criterion] = v
    human = {(lab.item_id, lab.criterion): lab for lab in labels}
    out: list[QueueEntry] = []
    for item_id, crits in by_item.items():
        if filters.criterion is not None and filters.criterion not in crits:
            continue
        mine = {c: human.get((item_id, c)) for c in crits}
        labelled = all(lab is not None for lab in mine.values())
        if filters.verdict is not None:
            looked = [crits[filters.criterion]] if filters.criterion else list(crits.values())
            if not labelled or not any(v.verdict == filters.verdict for v in looked):
                continue
        disagree = any(
            lab is not None
            and crits[c].verdict in ("pass", "fail")
            and lab.label != crits[c].verdict
            for c, lab in mine.items()
        )
        if filters.disagreement and not disagree:
            continue
        first = next(iter(crits.values()))
        out.append(
            QueueEntry(
                item_id=item_id,
                day=first.day or first.run_id,
                model=first.model,
                labelled=labelled,
                disagreement=disagree,
            )
        )
    out.sort(key=lambda e: (e.day, e.item_id))
    return out


def build_label_app(
    store: Store, criteria: Sequence[Criterion], *, kinds: KindRegistry | None = None
) -> FastAPI:
    """The labelling app over ``store``, for the pass/fail ``criteria`` (current versions)."""
    crits = {c.name: c for c in (kinds or default_kinds()).pass_fail(criteria)}
    versions = {name: c.version for name, c in crits.items()}
    label_versions = {name: c.label_version for name, c in crits.items()}
    store.ensure_schema()
    vstore, lstore = VerdictStore(store), LabelStore(store)
    app = FastAPI(title="Gavel labelling", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store
    app.state.sessions = Sessions()

    @app.middleware("http")
    async def _security_headers(request: Request, call_next: Any) -> Response:
        resp: Response = await call_next(request)
        resp.headers["Content-Security-Policy"] = "frame-ancestors 'none'"
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, exc: HTTPException) -> Response:
        kind = "authentication_error" if exc.status_code == 401 else "invalid_request_error"
        code = {401: "invalid_api_key", 403: "insufficient_scope", 404: "not_found"}
        return openai_error(
            exc.status_code, str(exc.detail), type_=kind, code=code.get(exc.status_code)
        )

    @app.exception_handler(RequestValidationError)
    async def _bad_body(_: Request, exc: RequestValidationError) -> Response:
        e = exc.errors()[0]
        loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
        return openai_error(400, f"{loc}: {e.get('msg')}", type_="invalid_request_error")

    html = resources.files("judges").joinpath("label_page.html").read_text(encoding="utf-8")
    pair_html = resources.files("judges").joinpath("pair_page.html").read_text(encoding="utf-8")
    registry = kinds or default_kinds()
    paired = registry.pairwise(criteria)
    add_pair_routes(app, PairLabels(store, paired), Depends(_labeller), pair_html)

    common = resources.files("judges").joinpath("label_common.js").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return html

    @app.get("/common.js")
    def common_js() -> Response:
        return Response(common, media_type="text/javascript")

    @app.post("/api/session")
    def sign_in(body: SignIn, request: Request) -> JSONResponse:
        key = _check_key(store, body.key)
        resp = JSONResponse({"labeller": key.name})
        resp.set_cookie(
            COOKIE,
            request.app.state.sessions.open(hash_key(body.key or "")),
            max_age=int(SESSION_TTL_S),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return resp

    @app.delete("/api/session")
    def sign_out(request: Request) -> JSONResponse:
        request.app.state.sessions.close(request.cookies.get(COOKIE))
        resp = JSONResponse({"signed_out": True})
        resp.delete_cookie(COOKIE)
        return resp

    @app.get("/api/me")
    def me(who: Who) -> dict[str, Any]:
        return {"labeller": who.name, "criteria": sorted(crits)}

    @app.get("/api/queue")
    def queue(who: Who, filters: Annotated[Filters, Depends()]) -> list[QueueEntry]:
        if filters.criterion is not None and filters.criterion not in crits:
            raise HTTPException(400, f"criterion: no pass/fail criterion {filters.criterion!r}")
        found = vstore.current(versions, day=filters.day, model=filters.model)
        labels = [
            lab
            for lab in lstore.for_items({v.item_id for v in found}, labeller=who.name)
            if label_versions.get(lab.criterion) == lab.criterion_version
        ]
        return build_queue(found, labels, filters)

    @app.get("/api/agreement")
    def agreement(who: Who) -> list[LabellerAgreement]:
        """Agreement between labellers per criterion: the ceiling for the judge's kappa."""
        return labeller_agreement(list(crits.values()), lstore.query())

    def view(item_id: str, labeller: str) -> RecordView:
        found = vstore.current(versions, item_id=item_id)  # pass/fail criteria only
        recs = store.traffic_by_ids([item_id])
        if not found or not recs:
            raise HTTPException(404, f"no sampled record {item_id!r} to label")
        rec = recs[0]
        human = {
            lab.criterion: lab
            for lab in lstore.for_items([item_id], labeller=labeller)
            if label_versions.get(lab.criterion) == lab.criterion_version
        }
        revealed = all(v.criterion in human for v in found)
        views = []
        for v in sorted(found, key=lambda v: v.criterion):
            c = crits[v.criterion]
            views.append(
                CriterionView(
                    name=c.name,
                    kind=c.kind,
                    description=c.description,
                    rubric=c.rubric,
                    human=human.get(c.name),
                    judge_verdict=v.verdict if revealed else None,
                    judge_reasoning=(v.reasoning or v.error) if revealed else None,
                    judge=f"{v.judge}@{v.judge_version} ({v.judge_model})" if revealed else None,
                )
            )
        return RecordView(
            item_id=item_id,
            day=found[0].day or found[0].run_id,
            model=rec.model,
            key_name=rec.key_name,
            endpoint=rec.endpoint,
            request=rec.request,
            response_text=rec.response_text,
            metadata=rec.metadata,
            criteria=views,
            revealed=revealed,
        )

    @app.get("/api/records/{item_id:path}")
    def record(item_id: str, who: Who) -> RecordView:
        return view(item_id, who.name)

    @app.put("/api/labels/{item_id:path}")
    def put_labels(item_id: str, body: LabelSubmit, who: Who) -> RecordView:
        current = view(item_id, who.name)
        applicable = {c.name for c in current.criteria}
        names = [i.criterion for i in body.labels]
        for name in names:
            if name not in applicable:
                raise HTTPException(
                    400, f"criterion: {name!r} does not apply to this record ({item_id})"
                )
        if len(set(names)) != len(names):
            raise HTTPException(400, "labels: a criterion is given twice")
        now = datetime.now(UTC)
        lstore.upsert(
            Label(
                item_id=item_id,
                criterion=i.criterion,
                criterion_version=label_versions[i.criterion],
                label=i.label,
                note=i.note or None,
                criterion_note=i.criterion_note or None,
                labeller=who.name,
                labelled_at=now,
            )
            for i in body.labels
        )
        return view(item_id, who.name)

    return app


class Sessions:
    """Server-side sessions of the page: the cookie holds a random id, never the key.

    Each session remembers the key's hash, so a revoked key ends its sessions at once.
    Sessions live in this process (a restart of the page signs everyone out).
    """

    def __init__(self, ttl_s: float = SESSION_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._open: dict[str, tuple[str, float]] = {}

    def open(self, key_hash: str) -> str:
        """A new session for the key; returns its id (the cookie's value)."""
        now = time.monotonic()
        self._open = {k: v for k, v in self._open.items() if v[1] > now}  # drop expired
        sid = secrets.token_urlsafe(32)
        self._open[sid] = (key_hash, now + self.ttl_s)
        return sid

    def key_hash(self, sid: str | None) -> str | None:
        """The key hash of a live session."""
        found = self._open.get(sid or "")
        if found is None or found[1] <= time.monotonic():
            return None
        return found[0]

    def close(self, sid: str | None) -> None:
        """End a session."""
        self._open.pop(sid or "", None)


def _labeller(request: Request) -> ApiKey:
    """The signed-in key: a bearer header, or the page's session cookie."""
    store: Store = request.app.state.store
    token = bearer_token(request.headers.get("authorization"))
    if token is not None:
        return _check_key(store, token)
    key_hash = request.app.state.sessions.key_hash(request.cookies.get(COOKIE))
    if key_hash is None:
        raise HTTPException(401, "Sign in with a gateway key that has the 'label' scope.")
    return _check_hash(store, key_hash)


Who = Annotated[ApiKey, Depends(_labeller)]


def _check_key(store: Store, token: str | None) -> ApiKey:
    if not token:
        raise HTTPException(401, "Sign in with a gateway key that has the 'label' scope.")
    return _check_hash(store, hash_key(token))


def _check_hash(store: Store, key_hash: str) -> ApiKey:
    """The key that ``key_hash`` (the hash presented, or a session's) signs in as: not
    revoked, not expired, and not a rotated-out secret past its grace."""
    key = store.key_by_hash(key_hash)
    if key is None:
        raise HTTPException(401, "The key is invalid.")
    refusal = key.refusal(key_hash, datetime.now(UTC))
    if refusal is not None:
        raise HTTPException(401, f"The key is {refusal}.")
    if not key.allows("label"):
        raise HTTPException(403, f"The key {key.name!r} lacks the 'label' scope.")
    return key
