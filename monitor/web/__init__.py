"""The web desk: developments, one development, feeds, an Atom feed of alerts, and a JSON
API with its OpenAPI description, served by `monitor run` on `[web] listen` (and by
`monitor web` alone).

Why FastAPI: the API's OpenAPI description comes from the same typed models the
handlers return, and its Starlette core serves the server-rendered pages (Jinja2, which
escapes every value by default) beside it; uvicorn serves both. No JavaScript build:
the pages are HTML forms and links, the chart an SVG drawn on the server.

Feed content is hostile: every field goes through Jinja2's escaping, and every answer
carries a Content-Security-Policy that allows no script, style or frame but the desk's
own, so markup that slipped through still could not run.

- pages.py: the HTML pages;
- api.py: the JSON API;
- atom.py: alerts as an Atom feed;
- actions.py: feedback given and taken back (forms and API);
- chart.py: developments per day by topic, as SVG geometry;
- serve.py: running it (in the service's process, or alone).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from importlib import resources

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles

from monitor import __version__
from monitor.config import Settings
from monitor.db import Database

# What a page may load: the desk's own stylesheet and nothing that runs.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def create_app(settings: Settings, db: Database) -> FastAPI:
    """The desk over `db`, configured by `settings`."""
    from monitor.web import actions, api, atom, pages

    app = FastAPI(
        title="monitor",
        version=__version__,
        description="Developments found in the watched feeds, their reports and alerts.",
        openapi_url="/api/openapi.json",
        docs_url=None,  # the interactive docs load scripts from elsewhere: the CSP forbids it
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.secret = secrets.token_bytes(32)  # the forms' token (actions.py)

    @app.middleware("http")
    async def secure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for key, value in HEADERS.items():
            response.headers.setdefault(key, value)
        return response

    static = resources.files("monitor.web") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    app.include_router(pages.router)
    app.include_router(api.router)
    app.include_router(atom.router)
    app.include_router(actions.router)
    return app
