"""Signing in and out of the desk (when `[[web.users]]` are configured; auth.py says
why it works as it does)."""

from __future__ import annotations

import hmac
import logging
import secrets
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from monitor.config import WebConfig
from monitor.db import Database
from monitor.web import auth
from monitor.web.pages import templates

router = APIRouter()
log = logging.getLogger("monitor.web")


def _safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of this desk only (never another site)."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _page(request: Request, target: str, error: str | None, status: int = 200) -> Response:
    value = request.cookies.get(auth.LOGIN_COOKIE) or secrets.token_hex(32)
    response = templates.TemplateResponse(
        request,
        "login.html",
        {"next": _safe_next(target), "csrf": value, "error": error},
        status_code=status,
    )
    response.set_cookie(
        auth.LOGIN_COOKIE,
        value,
        max_age=3600,
        path="/login",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return response


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_page(request: Request, next: str | None = None) -> Response:
    cfg: WebConfig = request.app.state.settings.web
    if not cfg.users:  # nothing to sign in with: no login, or API tokens only
        return RedirectResponse("/", status_code=303)
    return _page(request, next or "/", None)


@router.post("/login", include_in_schema=False)
def login(
    request: Request,
    name: Annotated[str, Form(max_length=100)],
    password: Annotated[str, Form(max_length=1000)],
    csrf: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/",
) -> Response:
    cfg: WebConfig = request.app.state.settings.web
    db: Database = request.app.state.db
    cookie = request.cookies.get(auth.LOGIN_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie, csrf):
        return _page(request, next, "The sign-in form was out of date: try again.", 403)
    client = f"{request.client.host if request.client else '?'}|{name}"
    throttle: auth.Throttle = request.app.state.throttle
    wait = throttle.wait(client)
    if wait:
        raise HTTPException(
            429,
            f"too many failed sign-ins: try again in {int(wait) + 1} s",
            headers={"Retry-After": str(int(wait) + 1)},
        )
    passwords: auth.Passwords = request.app.state.passwords
    role = passwords.check(cfg, name, password)
    if role is None:
        throttle.failed(client)
        log.warning("desk: failed sign-in for %r from %s", name, client.split("|")[0])
        return _page(request, next, "Wrong name or password.", 401)
    throttle.succeeded(client)
    token = auth.open_session(db, name, role, cfg, datetime.now(UTC))
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        auth.SESSION_COOKIE,
        token,
        max_age=int(cfg.session_lifetime.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    response.delete_cookie(auth.LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout", include_in_schema=False)
def logout(request: Request, csrf: Annotated[str, Form()]) -> Response:
    if not auth.form_ok(request, csrf):
        raise HTTPException(403, "this form is out of date or not the desk's: reload the page")
    token = request.cookies.get(auth.SESSION_COOKIE)
    if token:
        auth.close_session(request.app.state.db, token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(auth.SESSION_COOKIE)
    return response
