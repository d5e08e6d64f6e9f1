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
        # special-purpose ranges that are not public, whatever is_global says
        ("100.64.1.1", "private"),
        ("192.0.0.8", "private"),
        ("198.18.0.1", "private"),
        ("192.88.99.1", "private"),
        ("240.0.0.1", "private"),
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
        ("64:ff9b::808:808", "public"),  # NAT64 of 8.8.8.8
        ("2002:a00:1::1", "private"),  # 6to4 of 10.0.0.1
        ("2002:a9fe:a9fe::1", "link-local"),  # 6to4 of 169.254.169.254
        ("2001::1", "private"),  # Teredo
        ("2001:db8::1", "private"),
        ("ff02::1", "private"),
        ("8.8.8.8", "public"),
        ("2a00:1450:4001::1", "public"),
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


def test_a_name_that_cannot_be_resolved_is_not_let_through() -> None:
    error = fetch("http://no-such-host.invalid/feed.xml")
    assert error is not None and "cannot resolve" in error


def test_the_address_checked_is_the_address_connected_to(
    feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name is checked as public, then resolves to a private address
    for the connection. Each new connection resolves in the guard and connects to the
    address it checked, so a second answer cannot slip in."""
    port = int(feed_server.serve("/a.xml", rss([])).rsplit(":", 1)[1].split("/")[0])
    answers = {"calls": 0}

    async def rebinding(host: str, port: int) -> list[str]:
        if host == "feeds.example":
            answers["calls"] += 1
            return ["93.184.216.34"] if answers["calls"] == 1 else ["127.0.0.1"]
        return [host]

    monkeypatch.setattr(netguard, "resolve", rebinding)
    error = fetch(f"http://feeds.example:{port}/a.xml")
    assert error is not None and "not public" in error and answers["calls"] == 2

    async def local(host: str, port: int) -> list[str]:
        return ["127.0.0.1"] if host == "feeds.example" else [host]

    # a name the guard resolves to this machine is fetched from the address it checked
    # (the system resolver knows no feeds.example)
    monkeypatch.setattr(netguard, "resolve", local)
    assert fetch(f"http://feeds.example:{port}/a.xml") is None
