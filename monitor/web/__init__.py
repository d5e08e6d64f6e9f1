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
- topics.py: the active profile, and a draft previewed on stored history;
- websub.py: where WebSub hubs confirm subscriptions and push documents;
- feeds.py: feeds added (after a test fetch), paused, removed; OPML in and out;
- auth.py, login.py: who is asking (no login on this machine alone; else sessions and
  API tokens, viewers and editors), signing in and out;
- chart.py: developments per day by topic, as SVG geometry;
- serve.py: running it (in the service's process, or alone).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from importlib import resources
from urllib.parse import urlencode

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

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
    from monitor.web import actions, api, atom, feeds, login, pages, topics, websub
    from monitor.web.auth import Passwords, Throttle, identify

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
    app.state.secret = secrets.token_bytes(32)  # the forms' token without a login (auth.py)
    app.state.throttle = Throttle()
    if settings.web.users:
        app.state.passwords = Passwords()

    @app.middleware("http")
    async def guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """Who asks (auth.py), turned away when unknown or not allowed; and the headers
        every answer carries."""
        path = request.url.path
        request.state.who = None
        if path == "/login" or path.startswith(("/static/", "/websub/")):
            response = await call_next(request)
        elif (who := await run_in_threadpool(identify, request)) is None:
            response = _sign_in_first(request)
        elif request.method not in ("GET", "HEAD") and not who.editor:
            response = JSONResponse({"detail": f"{who.name} is a viewer: editors only"}, 403)
        else:
            request.state.who = who
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
    app.include_router(login.router)
    app.include_router(feeds.router)
    app.include_router(topics.router)
    app.include_router(websub.router)
    return app


def _sign_in_first(request: Request) -> Response:
    """An unknown reader: the API and the Atom feed say 401 (and every page, when there is
    no one to sign in as: tokens only); a page sends to sign-in."""
    path = request.url.path
    api = path.startswith("/api/") or path == "/alerts.atom"
    if api or request.method != "GET" or not request.app.state.settings.web.users:
        return JSONResponse(
            {"detail": "sign in, or send an API token: Authorization: Bearer TOKEN"},
            401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    target = path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)
