"""Delivery through real parts: the local webhook sink, aiosmtpd as the SMTP server, a stream."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import email.utils
import io
import secrets
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from monitor.alerts import AlertContent, ArticleRef, TopicRef
from monitor.channels import ConsoleChannel, EmailChannel, Outcome, WebhookChannel, send
from monitor.channels import smtp as smtp_channel
from monitor.channels.console import send_console
from monitor.channels.smtp import email_message
from monitor.schedule import parse_retry_after

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


async def send_email(ch: EmailChannel, c: AlertContent) -> Outcome:
    return await smtp_channel.send(ch, c, NOW, None)  # type: ignore[arg-type]  # SMTP needs no client


HOSTILE = (
    '<script>alert(1)</script><iframe src="http://evil/"></iframe>'
    "<img src=http://tracker/pixel onerror=alert(2)>"
)
ALLOWED_TAGS = {"html", "body", "h2", "p", "ul", "li", "blockquote", "ol", "a", "b", "br", "span"}


def content(title: str = "Flood warning for the Danube", **kw: Any) -> AlertContent:
    articles = kw.pop("articles", None) or [
        ArticleRef(
            "https://news.example.org/a/1",
            "Danube rising",
            "Example News",
            NOW - timedelta(hours=1),
            "en",
            "Levels up.",
        ),
        ArticleRef(
            "https://other.example.net/b",
            "River alert",
            "Other Wire",
            NOW - timedelta(hours=2),
            None,
            "",
        ),
    ]
    topics = kw.pop("topics", None) or [TopicRef("floods", "Floods", 0.91, ["Danube rising"])]
    return AlertContent(
        id=f"msg_{secrets.token_hex(16)}",
        kind=kw.pop("kind", "development"),
        created_at=NOW,
        title=title,
        score=0.9,
        topics=topics,
        articles=articles,
        development_id=42,
        **kw,
    )


def deliver(ch: Any, c: AlertContent, now: datetime = NOW) -> Outcome:
    async def go() -> Outcome:
        async with httpx.AsyncClient() as client:
            return await send(ch, c, now, client)

    return asyncio.run(go())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http_date(delta: timedelta) -> str:
    return email.utils.format_datetime(NOW + delta, usegmt=True)


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


# ------------------------------------------------------------------ webhook --


def test_webhook_body_headers_and_signature(webhook_sink: Any) -> None:
    secret, now, c = new_secret(), datetime.now(UTC), content()
    ch = WebhookChannel(type="webhook", url=webhook_sink.url, secret=secret)
    assert deliver(ch, c, now) == Outcome(True)
    [got] = webhook_sink.accepted
    body, headers = got["body"], got["headers"]
    assert body["id"] == c.id and body["version"] == 1 and body["title"] == c.title
    assert [a["url"] for a in body["articles"]] == [a.url for a in c.articles]
    primary = body["articles"][0]
    assert primary["title"] == "Danube rising" and primary["source"] == "Example News"
    assert primary["published"] == (NOW - timedelta(hours=1)).isoformat()
    assert headers["webhook-id"] == c.id
    assert headers["webhook-timestamp"] == str(int(now.timestamp()))
    assert headers["content-type"] == "application/json"
    assert Webhook(secret).verify(got["raw"], headers) == body
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(got["raw"].replace(b"Danube", b"Dnieper"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(got["raw"], headers)


def test_webhook_without_secret_is_unsigned(webhook_sink: Any) -> None:
    ch = WebhookChannel(type="webhook", url=webhook_sink.url)
    assert deliver(ch, content()).delivered
    headers = webhook_sink.accepted[0]["headers"]
    assert "webhook-signature" not in headers and "webhook-id" in headers


def test_webhook_signature_with_non_utc_now(webhook_sink: Any) -> None:
    secret = new_secret()
    now = datetime.now(UTC).astimezone(timezone(timedelta(hours=3)))
    ch = WebhookChannel(type="webhook", url=webhook_sink.url, secret=secret)
    assert deliver(ch, content(), now).delivered
    got = webhook_sink.accepted[0]
    Webhook(secret).verify(got["raw"], got["headers"])


@pytest.mark.parametrize(
    ("status", "headers", "retry", "after"),
    [
        (500, {}, True, None),
        (503, {"Retry-After": _http_date(timedelta(seconds=90))}, True, timedelta(seconds=90)),
        (429, {"Retry-After": "7"}, True, timedelta(seconds=7)),
        (429, {}, True, None),
        (408, {}, True, None),
        (404, {}, False, None),
        (400, {"Retry-After": "7"}, False, None),
    ],
)
def test_webhook_status_outcomes(
    webhook_sink: Any, status: int, headers: dict[str, str], retry: bool, after: timedelta | None
) -> None:
    webhook_sink.responses.append((status, headers))
    out = deliver(WebhookChannel(type="webhook", url=webhook_sink.url), content())
    assert (out.delivered, out.retry, out.retry_after) == (False, retry, after)
    assert out.error is not None and f"HTTP {status}" in out.error
    assert len(webhook_sink.received) == 1


def test_webhook_connection_refused_retries() -> None:
    ch = WebhookChannel(type="webhook", url=f"http://127.0.0.1:{free_port()}/hook", timeout="5s")
    out = deliver(ch, content())
    assert not out.delivered and out.retry and out.error and "Connect" in out.error


def test_webhook_huge_retry_after_still_gives_outcome(webhook_sink: Any) -> None:
    webhook_sink.responses.append((429, {"Retry-After": "99999999999999"}))
    out = deliver(WebhookChannel(type="webhook", url=webhook_sink.url), content())
    assert not out.delivered and out.retry


# -------------------------------------------------------------- Retry-After --


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("soon", None),
        ("-1", None),
        ("1.5", None),
        ("0", timedelta(0)),
        ("7", timedelta(seconds=7)),
        (" 120 ", timedelta(seconds=120)),
        (_http_date(timedelta(seconds=30)), timedelta(seconds=30)),
        (_http_date(-timedelta(hours=1)), timedelta(0)),  # in the past: retry now, not negative
        ("Thu, 01 Jan 2026 14:00:30 +0200", timedelta(seconds=30)),
        ("Thu, 01 Jan 2026 12:00:30 -0000", timedelta(seconds=30)),  # naive -> UTC
        ("Thu, 99 Foo 2026 25:61:00 GMT", None),
        ("99999999999999", timedelta(days=1)),  # capped, not an overflow
        ("\u00b2", None),  # str.isdigit() accepts '²'; it is not a number of seconds
    ],
)
def test_parse_retry_after(value: str | None, expected: timedelta | None) -> None:
    assert parse_retry_after(value, NOW) == expected


# -------------------------------------------------------------------- email --


class Collector:
    def __init__(self) -> None:
        self.envelopes: list[Any] = []
        self.sessions: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        self.sessions.append(session)
        return "250 OK"

    def message(self, i: int = 0) -> email.message.EmailMessage:
        raw = self.envelopes[i].content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, email.message.EmailMessage)
        return msg


@pytest.fixture
def smtp() -> Iterator[Any]:
    """A factory for started aiosmtpd controllers on 127.0.0.1; all stopped at the end."""
    started: list[Controller] = []

    def start(handler: Collector, port: int | None = None, **kw: Any) -> int:
        port = port or free_port()
        ctl = Controller(handler, hostname="127.0.0.1", port=port, **kw)
        ctl.start()
        started.append(ctl)
        return port

    yield start
    for ctl in started:
        ctl.stop()


def email_channel(port: int, **kw: Any) -> EmailChannel:
    data = {
        "type": "email",
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "from": "monitor@example.org",
        "to": ["ops@example.org", "oncall@example.org"],
        "timeout": "5s",
        **kw,
    }
    return EmailChannel.model_validate(data)


class TagAudit(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def test_email_plain_delivers_escaped_multipart(smtp: Any) -> None:
    handler = Collector()
    ch = email_channel(smtp(handler))
    hostile_article = ArticleRef(
        "https://news.example.org/x?a=1&b=2",
        "Bad " + HOSTILE,
        HOSTILE,
        NOW,
        "en",
        "Summary " + HOSTILE,
    )
    c = content(
        "Alert " + HOSTILE,
        articles=[hostile_article],
        topics=[TopicRef("t", "Topic " + HOSTILE, 0.5, ["Why " + HOSTILE])],
    )
    assert deliver(ch, c) == Outcome(True)
    [env] = handler.envelopes
    assert env.mail_from == "monitor@example.org"
    assert env.rcpt_tos == ["ops@example.org", "oncall@example.org"]
    msg = handler.message()
    assert msg["Subject"].startswith("[monitor] Alert ")
    assert msg["To"] == "ops@example.org, oncall@example.org"
    assert msg["Message-ID"] == f"<{c.id}@monitor>"
    plain = msg.get_body(("plain",))
    html_part = msg.get_body(("html",))
    assert plain is not None and html_part is not None
    text, page = plain.get_content(), html_part.get_content()
    assert "Alert <script>" in text and hostile_article.url in text
    audit = TagAudit()
    audit.feed(page)
    assert {tag for tag, _ in audit.tags} <= ALLOWED_TAGS
    assert [attrs for tag, attrs in audit.tags if tag == "a"] == [[("href", hostile_article.url)]]
    for bad in ("<script", "<iframe", "<img", "onerror=alert(2)>"):
        assert bad not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=http://tracker/pixel onerror=alert(2)&gt;" in page


def test_email_html_rejects_javascript_links() -> None:
    evil = ArticleRef("javascript:alert(document.cookie)", "Click", "Feed", NOW)
    msg = email_message(email_channel(25), content(articles=[evil]))
    html_part = msg.get_body(("html",))
    assert html_part is not None
    assert 'href="javascript:' not in html_part.get_content()


@pytest.fixture
def tls_cert(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def start_tls_server(
    smtp: Any,
    handler: Collector,
    cert: tuple[Path, Path],
    logins: list[str],
    port: int | None = None,
) -> int:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*cert)

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            b"alerts",
            b"s3cret",
        )
        if ok:
            logins.append(f"{mechanism}:{session.ssl is not None}")
        return AuthResult(success=ok, handled=False)

    return int(
        smtp(
            handler,
            port,
            tls_context=ctx,
            require_starttls=True,
            auth_require_tls=True,
            authenticator=authenticator,
        )
    )


def test_email_starttls_with_login(
    smtp: Any, tls_cert: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    handler, logins = Collector(), []
    port = start_tls_server(smtp, handler, tls_cert, logins)
    # The server's certificate is self-signed: the channel trusts it through ca_file.
    ch = email_channel(
        port, security="starttls", username="alerts", password="s3cret", ca_file=str(tls_cert[0])
    )
    assert deliver(ch, content()) == Outcome(True)
    assert len(handler.envelopes) == 1 and len(logins) == 1 and logins[0].endswith(":True")
    assert handler.sessions[0].authenticated
    assert handler.message()["Subject"].startswith("[monitor]")


def test_email_starttls_untrusted_cert_is_not_delivered(
    smtp: Any, tls_cert: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    handler = Collector()
    port = start_tls_server(smtp, handler, tls_cert, [])
    ch = email_channel(port, security="starttls", username="alerts", password="s3cret")
    out = deliver(ch, content())
    assert not out.delivered and out.error and "CERTIFICATE_VERIFY_FAILED" in out.error
    assert handler.envelopes == []


def test_email_wrong_password(
    smtp: Any, tls_cert: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_cert[0]))
    handler = Collector()
    port = start_tls_server(smtp, handler, tls_cert, [])
    ch = email_channel(port, security="starttls", username="alerts", password="wrong")
    out = deliver(ch, content())
    assert not out.delivered and not out.retry
    assert out.error and out.error.startswith("SMTP 535")
    assert handler.envelopes == []


def test_email_server_down_then_up(smtp: Any) -> None:
    port = free_port()
    ch, c = email_channel(port), content()
    down = asyncio.run(send_email(ch, c))
    assert not down.delivered and down.retry and down.error
    handler = Collector()
    smtp(handler, port)
    assert asyncio.run(send_email(ch, c)) == Outcome(True)
    assert len(handler.envelopes) == 1


class RefuseRecipients(Collector):
    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        return "550 5.1.1 No such user"


def test_email_recipients_refused_is_permanent(smtp: Any) -> None:
    out = asyncio.run(send_email(email_channel(smtp(RefuseRecipients())), content()))
    assert not out.delivered and not out.retry


# ------------------------------------------------------------------ console --


def test_console_writes_title_and_primary_url(capsys: pytest.CaptureFixture[str]) -> None:
    c, buf = content(), io.StringIO()
    assert send_console(c, buf) == Outcome(True)
    out = buf.getvalue()
    assert c.title in out and c.articles[0].url in out
    assert out.index(c.articles[0].url) < out.index(c.articles[1].url)
    assert deliver(ConsoleChannel(type="console"), c).delivered
    assert c.articles[0].url in capsys.readouterr().out


# ------------------------------------------------------------------ apprise --


def test_apprise_channel_posts_through_a_real_server(webhook_sink: Any) -> None:
    from monitor.channels import AppriseChannel

    url = webhook_sink.url.replace("http://", "json://")
    ch = AppriseChannel(type="apprise", urls=[url])
    assert deliver(ch, content("Apprise check")) == Outcome(True)
    body = webhook_sink.accepted[0]["body"]
    assert "Apprise check" in body["title"] and "news.example.org/a/1" in body["message"]


def test_apprise_failures_retry_or_fail_for_good(webhook_sink: Any) -> None:
    from monitor.channels import AppriseChannel

    webhook_sink.responses.append((503, {}))
    url = webhook_sink.url.replace("http://", "json://")
    out = deliver(AppriseChannel(type="apprise", urls=[url]), content())
    assert not out.delivered and out.retry
    out = deliver(AppriseChannel(type="apprise", urls=["no-such-scheme://x"]), content())
    assert not out.delivered and not out.retry and "not a valid URL" in (out.error or "")


class _Trickle:
    """A webhook receiver that answers 200 at once and then sends its body a byte a
    second: each read arrives well within any per-read timeout, the whole never does."""

    def __init__(self, seconds: int) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Length", str(seconds))
                self.end_headers()
                for _ in range(seconds):
                    try:
                        self.wfile.write(b".")
                        self.wfile.flush()
                    except OSError:
                        return
                    time.sleep(1)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def test_a_receiver_that_trickles_its_reply_is_cut_off_by_the_send_deadline() -> None:
    import httpx

    slow = _Trickle(seconds=30)
    ch = WebhookChannel(type="webhook", url=slow.url, timeout="2s")

    async def go() -> Outcome:
        async with httpx.AsyncClient() as client:
            return await send(ch, content(), NOW, client)

    try:
        outcome = asyncio.run(go())
    finally:
        slow.httpd.shutdown()
    assert not outcome.delivered and outcome.retry
    assert "within 2s" in (outcome.error or "")


def test_the_email_reads_as_an_alert_and_the_webhook_says_why_in_structure() -> None:
    """Subject without doubled spaces; the reason without the matcher's [concept:term]
    tags (its terms in bold in HTML); the lead of the report; times in the channel's time
    zone; a digest lists developments, not one development and its "Also" reports; the
    webhook carries the evidence as topic, sentence and terms."""
    from monitor.alerts import payload, render_html, render_text, subject

    ev = "Putin met Israel's prime minister in Sochi [russia:Putin, israel:Israel's]"
    c = content(
        title="Putin  and Bennett   meet",
        topics=[TopicRef("russia-israel", "Russia and Israel", 1.8, [ev])],
    )
    assert "  " not in subject(c)
    text = render_text(c, "Europe/Moscow")
    assert "Why: Putin met Israel's prime minister in Sochi" in text and "[russia:" not in text
    assert "Levels up." in text and "MSK" in text  # the lead, and Moscow time
    page = render_html(c, "Europe/Moscow")
    assert "<b>Putin</b>" in page and "[russia:" not in page
    assert payload(c)["why"] == [
        {
            "topic": "russia-israel",
            "sentence": "Putin met Israel's prime minister in Sochi",
            "terms": [
                {"concept": "russia", "term": "Putin"},
                {"concept": "israel", "term": "Israel's"},
            ],
        }
    ]
    digest = content(title="Digest: 2 new developments", kind="digest")
    listed = render_text(digest)
    assert "1. " in listed and "2. " in listed and "Also:" not in listed and "Why:" not in listed


def test_every_kind_of_payload_matches_the_documented_schema() -> None:
    import json as json_module

    import jsonschema

    from monitor.alerts import payload

    schema = json_module.loads(
        (Path(__file__).parent.parent / "docs" / "schemas" / "alert-payload.schema.json").read_text(
            encoding="utf-8"
        )
    )
    ev = "Putin met Israel's prime minister [russia:Putin]"
    for kind in ("development", "digest", "feed-health", "test"):
        c = content(kind=kind, topics=[TopicRef("russia-israel", "Russia and Israel", 1.2, [ev])])
        jsonschema.validate(payload(c), schema)
    bad = payload(content())
    bad["articles"][0].pop("url")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
