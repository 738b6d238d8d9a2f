"""Who uses the labelling app: sessions (the cookie holds a random id, never the key) and
the signed-in key, which must have the ``label`` (or ``admin``) scope and be neither
revoked, expired nor a rotated-out secret past its grace."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import Field
from starlette.exceptions import HTTPException

from serving import ApiKey, GavelModel, bearer_token, hash_key, openai_error
from serving.store import Store

COOKIE = "gavel_label_session"
SESSION_TTL_S = 12 * 3600.0


class SignIn(GavelModel):
    """The sign-in form: a gateway key."""

    key: Annotated[str, Field(min_length=1, max_length=512)]


def add_guards(app: FastAPI) -> None:
    """Security headers on every response, and OpenAI-style errors."""

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


def add_session_routes(app: FastAPI, store: Store) -> None:
    """``POST /api/session`` (sign in with a key, for a session cookie) and ``DELETE``."""

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
