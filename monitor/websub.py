"""WebSub (W3C, formerly PubSubHubbub): feeds that name a hub are pushed, not only polled.

Pure, except `subscribe`: finding a document's hub and its own address (the `rel="hub"`
and `rel="self"` links a publisher puts at the top of its feed), checking a pushed
document's `X-Hub-Signature` against the subscription's secret, and asking a hub for a
subscription. The desk answers the hub at `[websub] callback` + `/FEED_ID`
(`monitor/web/websub.py`): it confirms the subscriptions this monitor asked for, and hands
each correctly signed push to the service, which processes it at once as if it had just
fetched it. Polling goes on, at `[websub] poll_interval` at the most, as a safety net.
"""

from __future__ import annotations

import hashlib
import hmac
import re

# The hub links sit in the document's first lines; a pushed or polled body is not read
# further for them.
HEAD = 16_384
_LINK = re.compile(rb"<(?:atom:|atom10:)?link\b[^>]*>", re.IGNORECASE)
_ATTR = re.compile(rb"""\b(rel|href)\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)
ALGORITHMS = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}


def discover(body: bytes) -> tuple[str | None, str | None]:
    """(hub, self): the document's hub and the address it calls its own, if it names
    them (absolute http(s) addresses only)."""
    hub = own = None
    for tag in _LINK.findall(body[:HEAD]):
        if b"rel" not in tag.lower():  # an RSS <link> (every item has one) names neither
            continue
        attrs = {m.group(1).lower(): (m.group(2) or m.group(3) or b"") for m in _ATTR.finditer(tag)}
        rel = attrs.get(b"rel", b"").decode("ascii", "replace").lower().split()
        href = attrs.get(b"href", b"").decode("utf-8", "replace").strip()
        if not href.lower().startswith(("http://", "https://")):
            continue
        if "hub" in rel and hub is None:
            hub = href
        if "self" in rel and own is None:
            own = href
    return hub, own


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """Whether `header` (`sha256=HEX`, or another algorithm WebSub allows) is the HMAC of
    `body` under `secret`."""
    if not header or "=" not in header:
        return False
    name, _, sent = header.partition("=")
    digest = ALGORITHMS.get(name.strip().lower())
    if digest is None:
        return False
    expected = hmac.new(secret.encode(), body, digest).hexdigest()
    return hmac.compare_digest(expected, sent.strip().lower())
