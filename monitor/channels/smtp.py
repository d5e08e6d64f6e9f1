"""Email channel: a text and HTML message over SMTP (SSL, STARTTLS or plain), with
temporary (4xx) and permanent (5xx) refusals told apart."""

from __future__ import annotations

import email.utils
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr

from monitor.alerts import AlertContent, render_html, render_text, subject
from monitor.channels.base import ChannelBase, Outcome

if TYPE_CHECKING:
    import httpx


class EmailChannel(ChannelBase):
    type: Literal["email"]
    host: str
    port: int | None = None
    security: Literal["ssl", "starttls", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    sender: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    ca_file: Path | None = Field(None, description="PEM bundle to trust (a private CA)")
    verify_tls: bool = True


def email_message(ch: EmailChannel, content: AlertContent) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = subject(content)[:250]
    msg["From"] = ch.sender
    msg["To"] = ", ".join(ch.to)
    msg["Date"] = email.utils.formatdate(localtime=False)
    msg["Message-ID"] = f"<{content.id}@monitor>"
    msg.set_content(render_text(content, ch.timezone))
    msg.add_alternative(render_html(content, ch.timezone), subtype="html")
    return msg


async def send(
    ch: EmailChannel, content: AlertContent, now: datetime, client: httpx.AsyncClient
) -> Outcome:
    import aiosmtplib

    port = ch.port or {"ssl": 465, "starttls": 587, "none": 25}[ch.security]
    try:
        refused, _ = await aiosmtplib.send(
            email_message(ch, content),
            hostname=ch.host,
            port=port,
            username=ch.username,
            password=ch.password.get_secret_value() if ch.password else None,
            use_tls=ch.security == "ssl",
            start_tls=ch.security == "starttls",
            validate_certs=ch.verify_tls,
            cert_bundle=str(ch.ca_file) if ch.ca_file else None,
            timeout=ch.timeout.total_seconds(),
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [r.code for r in exc.recipients]
        detail = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        return Outcome(
            False,
            retry=not all(500 <= c < 600 for c in codes),
            error=f"all recipients refused: {detail}"[:500],
        )
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
