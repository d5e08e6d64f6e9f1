"""Who is asking: signing in, sessions, API tokens, roles, and the forms' CSRF token.

On this machine alone (`[web] listen` on loopback) with no `[[web.users]]` nor
`[[web.tokens]]` configured, there is no login: every request is the local editor. Once a
user or a token is configured, every request but the sign-in page and the stylesheet
must show who it is: a session cookie (set by signing in with a name and password), or
an API token (`Authorization: Bearer …`; a feed reader, which cannot send headers, may
put it in the Atom feed's URL as `?token=`). A viewer reads; an editor also changes
things (feedback, retries): every request that is not a GET or HEAD needs an editor.

Why sessions in the database rather than a signed cookie: a sign-out then ends the
session in every process serving the desk (`monitor run` and `monitor web` apart), and a
stolen cookie dies with it. The cookie holds a random token; only its SHA-256 is stored.
Passwords are argon2 hashes (argon2-cffi: the maintained implementation of the winner of
the Password Hashing Competition, with its recommended parameters).

CSRF: every form carries a token a cross-site page cannot read: the session's own (a
random value kept with it), or, with no login, one derived from the desk's secret; the
sign-in form, before there is a session, the double-submit value of a cookie. Cookies
are SameSite=Strict and HttpOnly (Secure when the desk is reached over HTTPS).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from fastapi import Request
from sqlalchemy import delete, select

from monitor.config import WebConfig
from monitor.db import Database
from monitor.models import WebSession

Role = Literal["viewer", "editor"]
SESSION_COOKIE = "monitor_session"
LOGIN_COOKIE = "monitor_login"
# Failed sign-ins one client may make in FAIL_WINDOW seconds before it must wait.
MAX_FAILURES = 5
FAIL_WINDOW = 600.0


@dataclass(frozen=True)
class Who:
    """The reader behind a request."""

    name: str
    role: Role
    csrf: str  # what this reader's forms carry; "" for an API token: no forms
    session: bool = False  # signed in with a cookie (may sign out)

    @property
    def editor(self) -> bool:
        return self.role == "editor"


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def local_editor(secret: bytes) -> Who:
    """Who asks when no login is configured: this machine's user, an editor."""
    return Who("local", "editor", hmac.new(secret, b"desk forms", hashlib.sha256).hexdigest())


def by_token(cfg: WebConfig, token: str) -> Who | None:
    """The API token's holder, if `token` is one of `[[web.tokens]]`."""
    digest = sha256(token)
    for t in cfg.tokens:
        if hmac.compare_digest(digest, t.token_sha256):
            return Who(t.name, t.role, "")
    return None


def by_session(db: Database, cfg: WebConfig, token: str, now: datetime) -> Who | None:
    """The reader signed in with this cookie, if the session is live and the reader is
    still one of `[[web.users]]` (with the role the config gives now: a reader removed
    or made a viewer is so at their next request)."""
    with db.sessions() as s:
        row = s.scalar(select(WebSession).where(WebSession.token_sha256 == sha256(token)))
        if row is None or _aware(row.expires_at) <= now:
            return None
        user = next((u for u in cfg.users if u.name == row.user), None)
        if user is None:
            return None
        return Who(row.user, user.role, row.csrf, session=True)


def identify(request: Request) -> Who | None:
    """Who a request is, or None when it must sign in first."""
    cfg: WebConfig = request.app.state.settings.web
    if not cfg.login_required:
        secret: bytes = request.app.state.secret
        return local_editor(secret)
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials:
        return by_token(cfg, credentials.strip())
    if request.url.path == "/alerts.atom" and request.query_params.get("token"):
        return by_token(cfg, request.query_params["token"])
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return by_session(request.app.state.db, cfg, cookie, datetime.now(UTC))
    return None


def form_ok(request: Request, sent: str) -> bool:
    """Whether a posted form's token is the one this reader's forms carry."""
    who: Who | None = getattr(request.state, "who", None)
    if who is None or not who.csrf or not sent:
        return False
    return hmac.compare_digest(sent, who.csrf)


class Passwords:
    """Checking a name and password against `[[web.users]]`, at the same cost whether or
    not the name exists (so the answer's time tells nothing)."""

    def __init__(self) -> None:
        from argon2 import PasswordHasher

        self.hasher = PasswordHasher()
        self._dummy = self.hasher.hash(secrets.token_hex(16))

    def check(self, cfg: WebConfig, name: str, password: str) -> Role | None:
        from argon2.exceptions import InvalidHashError, VerificationError

        user = next((u for u in cfg.users if hmac.compare_digest(u.name, name)), None)
        try:
            self.hasher.verify(user.password if user else self._dummy, password)
        except (VerificationError, InvalidHashError):
            return None
        return user.role if user else None

    def hash(self, password: str) -> str:
        return self.hasher.hash(password)


class Throttle:
    """Failed sign-ins per client: past MAX_FAILURES in FAIL_WINDOW seconds a client
    waits, so a password cannot be guessed at the speed of the network."""

    def __init__(self) -> None:
        self.failures: dict[str, deque[float]] = {}

    def wait(self, client: str) -> float:
        """Seconds `client` must wait before trying again (0: it may try now)."""
        now = time.monotonic()
        seen = self.failures.get(client)
        while seen and now - seen[0] > FAIL_WINDOW:
            seen.popleft()
        if not seen or len(seen) < MAX_FAILURES:
            return 0.0
        return FAIL_WINDOW - (now - seen[0])

    def failed(self, client: str) -> None:
        if len(self.failures) > 10_000:  # a flood of addresses: forget the oldest
            self.failures.pop(next(iter(self.failures)))
        self.failures.setdefault(client, deque()).append(time.monotonic())

    def succeeded(self, client: str) -> None:
        self.failures.pop(client, None)


def open_session(db: Database, name: str, role: Role, cfg: WebConfig, now: datetime) -> str:
    """Sign `name` in: a new session (expired ones are cleared); the cookie's token."""
    token = secrets.token_urlsafe(32)
    with db.session() as s:
        s.execute(delete(WebSession).where(WebSession.expires_at <= now))
        s.add(
            WebSession(
                token_sha256=sha256(token),
                user=name,
                role=role,
                csrf=secrets.token_hex(32),
                created_at=now,
                expires_at=now + cfg.session_lifetime,
            )
        )
    return token


def close_session(db: Database, token: str) -> None:
    with db.session() as s:
        s.execute(delete(WebSession).where(WebSession.token_sha256 == sha256(token)))


def new_token() -> tuple[str, str]:
    """An API token and the SHA-256 the config keeps of it."""
    token = secrets.token_urlsafe(32)
    return token, sha256(token)


def _aware(d: datetime) -> datetime:
    return d if d.tzinfo else d.replace(tzinfo=UTC)
