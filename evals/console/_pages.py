"""The console's page renderer: Jinja2 templates that escape by default."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from evals.console._access import csrf_token, signed_in


class Pages:
    """Renders the templates (escaping by default) with who is signed in and the CSRF
    token every form repeats."""

    def __init__(self) -> None:
        self.env = Environment(
            loader=PackageLoader("evals.console", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
        )

    def __call__(self, request: Request, name: str, code: int = 200, **ctx: Any) -> HTMLResponse:
        html = self.env.get_template(name).render(
            me=signed_in(request), csrf=csrf_token(request), path=request.url.path, **ctx
        )
        return HTMLResponse(html, status_code=code)
