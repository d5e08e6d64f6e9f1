"""Signing in to the desk, served by uvicorn over a database a real poll filled: who may
read and who may change, by session or API token; CSRF on every form, throttled guessing,
no open redirect, sign-out that ends the session (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, update

from monitor.config import ConfigError, Settings, load_settings
from monitor.db import Database
from monitor.models import Entry, WebSession
from monitor.pipeline import Pipeline
from monitor.web.auth import MAX_FAILURES, SESSION_COOKIE, sha256
from tests.conftest import Clock, FeedServer, WebhookSink
from tests.test_web import news, start

PASSWORDS = {"ana": "correct horse battery", "vic": "viewer's own secret"}
VIEWER_TOKEN = "viewer-token-for-the-tests-0123456789"
EDITOR_TOKEN = "editor-token-for-the-tests-9876543210"


@dataclass
class Site:
    url: str
    db: Database
    dev: int  # a development the poll found

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, follow_redirects=False)


@pytest.fixture
def site(
    db_url: str, feed_server: FeedServer, webhook_sink: WebhookSink, clock: Clock
) -> Iterator[Site]:
    hasher = PasswordHasher()
    settings = Settings(
        database={"url": db_url},
        service={"processes": 0},
        web={
            "listen": "127.0.0.1:0",
            "users": [
                {"name": "ana", "password": hasher.hash(PASSWORDS["ana"]), "role": "editor"},
                {"name": "vic", "password": hasher.hash(PASSWORDS["vic"]), "role": "viewer"},
            ],
            "tokens": [
                {"name": "reader", "token_sha256": sha256(VIEWER_TOKEN), "role": "viewer"},
                {"name": "bot", "token_sha256": sha256(EDITOR_TOKEN), "role": "editor"},
            ],
        },
        feeds=[{"url": u} for u in news(feed_server, clock)],
        channels=[{"type": "webhook", "url": webhook_sink.url}],
    )
    db = Database(db_url)
    db.upgrade()
    p = Pipeline(settings, db, clock=clock)
    p.sync_feeds()
    asyncio.run(p.poll())
    with db.session() as s:
        dev = s.scalar(select(Entry.development_id).where(Entry.url == "https://n0.example/talks"))
        assert dev is not None
    desk = start(settings, db)
    port = desk.server.servers[0].sockets[0].getsockname()[1]
    yield Site(f"http://127.0.0.1:{port}", db, dev)
    desk.stop()
    p.close()
    db.dispose()


def form_token(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found, "the page carries no form token"
    return found.group(1)


def sign_in(c: httpx.Client, name: str, password: str, target: str = "/") -> httpx.Response:
    page = c.get("/login", params={"next": target})
    assert page.status_code == 200
    return c.post(
        "/login",
        data={"name": name, "password": password, "csrf": form_token(page.text), "next": target},
    )


def test_nothing_is_served_before_signing_in(site: Site) -> None:
    with site.client() as c:
        page = c.get("/feeds", params={"x": "1"})
        assert page.status_code == 303
        assert page.headers["location"] == "/login?next=%2Ffeeds%3Fx%3D1"
        for path in ("/api/developments", "/alerts.atom", f"/api/developments/{site.dev}"):
            r = c.get(path)
            assert r.status_code == 401, path
            assert r.headers["www-authenticate"] == "Bearer"
        assert c.post(f"/api/developments/{site.dev}/feedback", json={}).status_code == 401
        assert c.get("/static/desk.css").status_code == 200  # the sign-in page's style
        login = c.get("/login")
        assert login.status_code == 200 and "Sign in" in login.text
        assert "default-src 'none'" in login.headers["content-security-policy"]


def test_signing_in_keeps_a_session_in_the_database_and_signing_out_ends_it(site: Site) -> None:
    with site.client() as c:
        wrong = sign_in(c, "ana", "not the password")
        assert wrong.status_code == 401 and "Wrong name or password" in wrong.text
        unknown = sign_in(c, "nobody", PASSWORDS["ana"])
        assert unknown.status_code == 401
        ok = sign_in(c, "ana", PASSWORDS["ana"], target="/feeds")
        assert (ok.status_code, ok.headers["location"]) == (303, "/feeds")
        cookie = c.cookies[SESSION_COOKIE]
        set_cookie = ok.headers["set-cookie"].lower()
        assert "httponly" in set_cookie and "samesite=strict" in set_cookie
        page = c.get("/")
        assert page.status_code == 200 and "ana (editor)" in page.text
        with site.db.session() as s:
            stored = list(s.scalars(select(WebSession)))
        assert [x.token_sha256 for x in stored] == [sha256(cookie)]  # never the token itself

        assert c.post("/logout", data={"csrf": "0" * 64}).status_code == 403
        out = c.post("/logout", data={"csrf": form_token(page.text)})
        assert (out.status_code, out.headers["location"]) == (303, "/login")
    with site.db.session() as s:
        assert list(s.scalars(select(WebSession))) == []
    with site.client() as stolen:  # the old cookie signs no one in any more
        stolen.cookies.set(SESSION_COOKIE, cookie)
        assert stolen.get("/").status_code == 303


def test_the_sign_in_form_needs_its_own_token_and_goes_only_to_this_desk(site: Site) -> None:
    with site.client() as c:
        forged = c.post(
            "/login", data={"name": "ana", "password": PASSWORDS["ana"], "csrf": "a" * 64}
        )
        assert forged.status_code == 403 and SESSION_COOKIE not in c.cookies
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        with site.client() as c:
            ok = sign_in(c, "ana", PASSWORDS["ana"], target=target)
            assert (ok.status_code, ok.headers["location"]) == (303, "/"), target


def test_a_viewer_reads_and_only_an_editor_changes(site: Site) -> None:
    path = f"/developments/{site.dev}"
    with site.client() as viewer:
        sign_in(viewer, "vic", PASSWORDS["vic"])
        page = viewer.get(path)
        assert page.status_code == 200 and "vic (viewer)" in page.text
        assert "Mark not relevant" not in page.text  # no form to use
        csrf = form_token(page.text)  # (the sign-out form's)
        refused = viewer.post(path + "/feedback", data={"reason": "off-topic", "csrf": csrf})
        assert refused.status_code == 403 and "viewer" in refused.json()["detail"]
    with site.client() as editor:
        sign_in(editor, "ana", PASSWORDS["ana"])
        page = editor.get(path)
        assert "Mark not relevant" in page.text
        forged = editor.post(path + "/feedback", data={"reason": "off-topic", "csrf": "0" * 64})
        assert forged.status_code == 403
        given = editor.post(
            path + "/feedback", data={"reason": "off-topic", "csrf": form_token(page.text)}
        )
        assert given.status_code == 303
        assert "not-relevant (off-topic)" in editor.get(path).text


def test_api_tokens_carry_their_role_and_the_atom_feed_takes_one_in_its_url(site: Site) -> None:
    with site.client() as c:
        viewer = {"Authorization": f"Bearer {VIEWER_TOKEN}"}
        editor = {"Authorization": f"Bearer {EDITOR_TOKEN}"}
        assert c.get("/api/developments", headers=viewer).json()["total"] >= 1
        assert (
            c.get("/api/developments", headers={"Authorization": "Bearer nope"}).status_code == 401
        )
        body = {"kind": "not-relevant", "reason": "roundup"}
        path = f"/api/developments/{site.dev}/feedback"
        assert c.post(path, json=body, headers=viewer).status_code == 403
        assert c.post(path, json=body, headers=editor).status_code == 201
        # a token is no session: a form posted with one has no CSRF token to match
        assert c.post(
            path[4:], data={"reason": "other", "csrf": ""}, headers=editor
        ).status_code in (403, 422)
        atom = c.get("/alerts.atom", params={"token": VIEWER_TOKEN})
        assert atom.status_code == 200 and "<feed" in atom.text
        assert c.get("/api/developments", params={"token": VIEWER_TOKEN}).status_code == 401


def test_guessing_passwords_is_throttled(site: Site) -> None:
    with site.client() as c:
        for _ in range(MAX_FAILURES):
            assert sign_in(c, "ana", "guess").status_code == 401
        blocked = sign_in(c, "ana", PASSWORDS["ana"])  # even the right one, for now
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
        assert sign_in(c, "vic", PASSWORDS["vic"]).status_code == 303  # another name is not


def test_an_expired_session_signs_in_again(site: Site) -> None:
    with site.client() as c:
        sign_in(c, "ana", PASSWORDS["ana"])
        assert c.get("/").status_code == 200
        with site.db.session() as s:
            s.execute(update(WebSession).values(expires_at=datetime.now(UTC) - timedelta(1)))
        assert c.get("/").status_code == 303


def test_a_login_is_what_lets_the_desk_leave_this_machine(tmp_path: Any) -> None:
    cfg = tmp_path / "monitor.toml"
    cfg.write_text('[web]\nlisten = "0.0.0.0:8080"\n')
    with pytest.raises(ConfigError, match="needs a login"):
        load_settings(cfg)
    hashed = PasswordHasher().hash("a long password")
    user = f'[[web.users]]\nname = "ana"\npassword = "{hashed}"\nrole = "editor"\n'
    cfg.write_text('[web]\nlisten = "0.0.0.0:8080"\n' + user)
    loaded = load_settings(cfg).web
    assert loaded.login_required and loaded.users[0].role == "editor"
    token = f'[[web.tokens]]\nname = "bot"\ntoken_sha256 = "{"ab" * 32}"\n'
    cfg.write_text('[web]\nlisten = "[::]:8080"\n' + token)
    assert load_settings(cfg).web.tokens[0].role == "viewer"

    cfg.write_text('[web]\nlisten = "0.0.0.0:8080"\n' + user.replace(hashed, "hunter2"))
    with pytest.raises(ConfigError, match="hash-password"):
        load_settings(cfg)
    cfg.write_text("[web]\n" + user + token.replace('"bot"', '"ana"'))
    with pytest.raises(ConfigError, match="distinct names"):
        load_settings(cfg)
    cfg.write_text("[web]\n" + token.replace("ab" * 32, "not-hex"))
    with pytest.raises(ConfigError, match="token_sha256"):
        load_settings(cfg)
    secret = tmp_path / "ana.hash"
    secret.write_text(hashed + "\n")
    cfg.write_text(f'[web]\n[[web.users]]\nname = "ana"\npassword_file = "{secret}"\n')
    assert load_settings(cfg).web.users[0].password == hashed


def test_monitor_web_makes_the_secrets_its_config_keeps(tmp_path: Any) -> None:
    import subprocess

    from tests.test_cli import MONITOR

    made = subprocess.run(
        [*MONITOR, "web", "hash-password"],
        input="correct horse battery\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert made.returncode == 0, made.stderr
    assert PasswordHasher().verify(made.stdout.strip(), "correct horse battery")
    short = subprocess.run(
        [*MONITOR, "web", "hash-password"], input="short\n", capture_output=True, text=True
    )
    assert short.returncode == 1 and "8 characters" in short.stderr
    token = subprocess.run(
        [*MONITOR, "web", "new-token", "--name", "bot", "--role", "editor"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert token.returncode == 0
    secret = token.stderr.split("token: ", 1)[1].strip()
    (tmp_path / "monitor.toml").write_text("[web]\n" + token.stdout)
    loaded = load_settings(tmp_path / "monitor.toml").web.tokens[0]
    assert (loaded.name, loaded.role, loaded.token_sha256) == ("bot", "editor", sha256(secret))


def test_a_reader_removed_from_the_config_or_demoted_is_so_at_once(
    site: Site, tmp_path: Any
) -> None:
    from monitor.config import WebConfig, WebUser
    from monitor.web.auth import by_session

    with site.client() as c:
        sign_in(c, "ana", PASSWORDS["ana"])
        cookie = c.cookies[SESSION_COOKIE]
    hashed = PasswordHasher().hash("x" * 12)
    now = datetime.now(UTC)
    demoted = WebConfig(users=[WebUser(name="ana", password=hashed, role="viewer")])
    who = by_session(site.db, demoted, cookie, now)
    assert who is not None and who.role == "viewer"
    gone = WebConfig(users=[WebUser(name="vic", password=hashed)])
    assert by_session(site.db, gone, cookie, now) is None


def test_with_tokens_only_pages_answer_401_rather_than_a_sign_in_page(
    db_url: str, tmp_path: Any
) -> None:
    db = Database(db_url)
    db.upgrade()
    settings = Settings(
        database={"url": db_url},
        web={"listen": "127.0.0.1:0", "tokens": [{"name": "bot", "token_sha256": sha256("t")}]},
    )
    desk = start(settings, db)
    port = desk.server.servers[0].sockets[0].getsockname()[1]
    try:
        r = httpx.get(f"http://127.0.0.1:{port}/", follow_redirects=False)
        assert r.status_code == 401
        ok = httpx.get(f"http://127.0.0.1:{port}/", headers={"Authorization": "Bearer t"})
        assert ok.status_code == 200
    finally:
        desk.stop()
        db.dispose()
