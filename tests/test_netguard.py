"""The SSRF guard, with a real local server for the redirect cases."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from monitor import netguard
from monitor.fetch import FetchOptions, FetchRequest, fetch_stream
from tests.conftest import FeedServer, rss


@pytest.mark.parametrize(
    ("ip", "kind"),
    [
        ("93.184.216.34", "public"),
        ("2606:4700::1111", "public"),
        ("127.0.0.1", "private"),
        ("10.1.2.3", "private"),
        ("192.168.0.5", "private"),
        ("172.16.9.9", "private"),
        ("::1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("::ffff:169.254.169.254", "link-local"),
        ("::ffff:10.0.0.1", "private"),
    ],
)
def test_classify(ip: str, kind: str) -> None:
    assert netguard.classify(ip) == kind


def fetch(url: str, **opts: bool) -> str | None:
    async def go() -> str | None:
        results = [r async for r in fetch_stream([FetchRequest(1, url)], FetchOptions(**opts))]
        return results[0].error

    return asyncio.run(go())


def test_a_configured_private_feed_is_allowed(feed_server: FeedServer) -> None:
    assert fetch(feed_server.serve("/a.xml", rss([]))) is None


def test_redirect_to_cloud_metadata_is_refused(feed_server: FeedServer) -> None:
    url = feed_server.serve(
        "/r.xml",
        "",
        status=302,
        content_type="text/plain",
        headers={"Location": "http://169.254.169.254/latest/meta-data/"},
    )
    error = fetch(url)
    assert error is not None and "link-local" in error
    named = feed_server.serve(
        "/n.xml",
        "",
        status=302,
        content_type="text/plain",
        headers={"Location": "http://metadata.google.internal/"},
    )
    assert "metadata" in (fetch(named) or "")


def test_redirect_from_public_to_private_is_refused() -> None:
    async def go() -> None:
        guard = netguard.make_guard(allow_link_local=False)
        netguard.start_fetch()
        await guard(httpx.Request("GET", "http://93.184.216.34/feed"))  # origin: public
        with pytest.raises(netguard.BlockedAddress, match="not public"):
            await guard(httpx.Request("GET", "http://127.0.0.1:8080/admin"))
        netguard.start_fetch()
        await guard(httpx.Request("GET", "http://10.0.0.5/feed"))  # origin: private
        await guard(httpx.Request("GET", "http://127.0.0.1/feed"))  # stays private: fine
        with pytest.raises(netguard.BlockedAddress, match="link-local"):
            await guard(httpx.Request("GET", "http://169.254.169.254/"))
        await netguard.make_guard(allow_link_local=True)(
            httpx.Request("GET", "http://169.254.169.254/")
        )

    asyncio.run(go())
