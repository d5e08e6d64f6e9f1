"""Webhook channel: a JSON POST (the payload of alerts.py), signed per Standard Webhooks
when the channel has a secret; redeliveries keep the alert's id as `webhook-id`."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from pydantic import SecretStr, field_validator

from monitor.alerts import AlertContent, payload
from monitor.channels.base import ChannelBase, Outcome
from monitor.fetch import USER_AGENT
from monitor.schedule import parse_retry_after
from monitor.values import Duration

if TYPE_CHECKING:
    import httpx


class WebhookChannel(ChannelBase):
    type: Literal["webhook"]
    url: str
    secret: SecretStr | None = None
    timeout: Duration = timedelta(seconds=15)

    @field_validator("secret")
    @classmethod
    def _base64_secret(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None:
            return None
        raw = v.get_secret_value().removeprefix("whsec_")
        try:
            ok = bool(base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True))
        except (binascii.Error, ValueError):
            ok = False
        if not ok:
            raise ValueError(
                "secret must be base64, as Standard Webhooks secrets are "
                "(e.g. whsec_ followed by base64 of 24-64 random bytes)"
            )
        return v


def webhook_request(
    ch: WebhookChannel, content: AlertContent, now: datetime
) -> tuple[bytes, dict[str, str]]:
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


async def send(
    ch: WebhookChannel, content: AlertContent, now: datetime, client: httpx.AsyncClient
) -> Outcome:
    import httpx

    body, headers = webhook_request(ch, content, now)
    try:
        resp = await client.post(
            ch.url, content=body, headers=headers, timeout=ch.timeout.total_seconds()
        )
    except httpx.HTTPError as exc:
        return Outcome(False, retry=True, error=f"{type(exc).__name__}: {exc}"[:500])
    if 200 <= resp.status_code < 300:
        return Outcome(True)
    detail = f"HTTP {resp.status_code}: {resp.text[:300]}"
    if resp.status_code == 429 or resp.status_code >= 500 or resp.status_code == 408:
        return Outcome(
            False,
            retry=True,
            error=detail,
            retry_after=parse_retry_after(resp.headers.get("retry-after"), now),
        )
    return Outcome(False, retry=False, error=detail)
