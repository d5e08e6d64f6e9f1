"""Send alerts through channels (webhook, email, console). The delivery edge.

A send returns an Outcome instead of raising: delivered, retry later (network errors, 429,
5xx, honouring Retry-After), or failed for good (other 4xx). The outbox loop in
`pipeline.py` turns outcomes into retries with backoff or a dead letter.
"""

from __future__ import annotations

import email.utils
import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from monitor.alerts import AlertContent, payload, render_html, render_text, subject
from monitor.config import AppriseChannel, ConsoleChannel, EmailChannel, WebhookChannel
from monitor.fetch import USER_AGENT
from monitor.schedule import parse_retry_after

if TYPE_CHECKING:
    import httpx

ChannelConfig = WebhookChannel | EmailChannel | ConsoleChannel | AppriseChannel
# A server cannot push a retry further out than this (the retry_max setting caps it again).


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    retry: bool = False
    error: str | None = None
    retry_after: timedelta | None = None


def webhook_request(ch: WebhookChannel, content: AlertContent,
                    now: datetime) -> tuple[bytes, dict[str, str]]:
    """Body and headers; signed per Standard Webhooks when the channel has a secret."""
    body = json.dumps(payload(content), ensure_ascii=False, separators=(",", ":"))
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": content.id,
        "webhook-timestamp": str(int(now.timestamp())),
    }
    if ch.secret is not None:
        from standardwebhooks import Webhook  # only for signed channels: slow to import

        signer = Webhook(ch.secret.get_secret_value())
        headers["webhook-signature"] = signer.sign(content.id, now.astimezone(UTC), body)
    return body.encode("utf-8"), headers


async def send_webhook(ch: WebhookChannel, content: AlertContent, now: datetime,
                       client: httpx.AsyncClient) -> Outcome:
    import httpx

    body, headers = webhook_request(ch, content, now)
    try:
        resp = await client.post(ch.url, content=body, headers=headers,
                                 timeout=ch.timeout.total_seconds())
    except httpx.HTTPError as exc:
        return Outcome(False, retry=True, error=f"{type(exc).__name__}: {exc}"[:500])
    if 200 <= resp.status_code < 300:
        return Outcome(True)
    detail = f"HTTP {resp.status_code}: {resp.text[:300]}"
    if resp.status_code == 429 or resp.status_code >= 500 or resp.status_code == 408:
        return Outcome(False, retry=True, error=detail,
                       retry_after=parse_retry_after(resp.headers.get("retry-after"), now))
    return Outcome(False, retry=False, error=detail)


def email_message(ch: EmailChannel, content: AlertContent) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = subject(content)[:250]
    msg["From"] = ch.sender
    msg["To"] = ", ".join(ch.to)
    msg["Date"] = email.utils.formatdate(localtime=False)
    msg["Message-ID"] = f"<{content.id}@monitor>"
    msg.set_content(render_text(content))
    msg.add_alternative(render_html(content), subtype="html")
    return msg


async def send_email(ch: EmailChannel, content: AlertContent) -> Outcome:
    import aiosmtplib

    port = ch.port or {"ssl": 465, "starttls": 587, "none": 25}[ch.security]
    try:
        refused, _ = await aiosmtplib.send(
            email_message(ch, content), hostname=ch.host, port=port,
            username=ch.username,
            password=ch.password.get_secret_value() if ch.password else None,
            use_tls=ch.security == "ssl", start_tls=ch.security == "starttls",
            validate_certs=ch.verify_tls,
            cert_bundle=str(ch.ca_file) if ch.ca_file else None,
            timeout=ch.timeout.total_seconds(),
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [r.code for r in exc.recipients]
        detail = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        return Outcome(False, retry=not all(500 <= c < 600 for c in codes),
                       error=f"all recipients refused: {detail}"[:500])
    except aiosmtplib.SMTPResponseException as exc:
        permanent = 500 <= exc.code < 600  # 4xx are temporary by definition
        return Outcome(False, retry=not permanent, error=f"SMTP {exc.code}: {exc.message}"[:500])
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        return Outcome(False, retry=True, error=f"{type(exc).__name__}: {exc}"[:500])
    if refused:
        # Delivered to the others; the refusal is kept as the delivery's note.
        detail = "; ".join(f"{rcpt}: {r.code} {r.message}" for rcpt, r in refused.items())
        return Outcome(True, error=f"some recipients refused: {detail}"[:500])
    return Outcome(True)


def send_console(content: AlertContent, stream: Any = None) -> Outcome:
    out = stream or sys.stdout
    out.write("\n=== ALERT " + "=" * 60 + "\n" + render_text(content) + "\n")
    out.flush()
    return Outcome(True)


async def send_apprise(ch: AppriseChannel, content: AlertContent) -> Outcome:
    """One notification to every URL of the channel; any failure retries the whole send."""
    import apprise  # only for apprise channels: it loads every plugin

    notifier = apprise.Apprise()
    for i, url in enumerate(ch.urls, 1):
        if not notifier.add(url.get_secret_value()):
            return Outcome(False, retry=False, error=f"apprise URL #{i} is not a valid URL")
    result = await notifier.async_notify(title=subject(content), body=render_text(content))
    if result:
        return Outcome(True)
    logs = " | ".join(entry.message for entry in list(result.logs())[-3:])
    return Outcome(False, retry=True,
                   error=f"apprise: {result.failed_count} of {len(ch.urls)} failed {logs}"[:500])


async def send(ch: ChannelConfig, content: AlertContent, now: datetime,
               client: httpx.AsyncClient) -> Outcome:
    if isinstance(ch, WebhookChannel):
        return await send_webhook(ch, content, now, client)
    if isinstance(ch, EmailChannel):
        return await send_email(ch, content)
    if isinstance(ch, AppriseChannel):
        return await send_apprise(ch, content)
    return send_console(content)
