"""Which addresses a feed fetch may reach (server-side request forgery guard).

The rule, applied to every request of a fetch, redirects included, after DNS resolution,
and again to the address each new connection is made to (`GuardedBackend`: the address
checked is the address connected to, so a name that resolves once to a public address and
then to a private one, DNS rebinding, reaches nothing):
  - link-local addresses (169.254.0.0/16, fe80::/10), which include the cloud metadata
    service, are refused unless [http] allow_link_local = true;
  - a fetch that started at a public address may not be redirected to a loopback,
    private or otherwise non-public one;
  - a feed the operator configured on a private address (an intranet feed, a local test
    server) keeps working: its own address, and redirects within private space, are fine.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from typing import Any, Literal

import httpcore
import httpx

Kind = Literal["public", "private", "link-local"]
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data"})

# The kind of address the current fetch started at (set by its first request).
_origin: ContextVar[Kind | None] = ContextVar("monitor_fetch_origin", default=None)


class BlockedAddress(httpx.RequestError):
    """The request would reach an address the guard refuses."""


# Special-purpose ranges (IANA registries) that are not public whatever a given Python's
# `is_global` says of them: shared, benchmarking, documentation, 6to4 relays, NAT64,
# discard, Teredo and ORCHID blocks, multicast and reserved space.
_NOT_PUBLIC = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "100.64.0.0/10",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "3fff::/20",
        "fc00::/7",
        "ff00::/8",
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_6TO4 = ipaddress.ip_network("2002::/16")


def classify(ip: str) -> Kind:
    addr = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(addr, ipaddress.IPv6Address):
        # Addresses that carry an IPv4 address are judged by it.
        if addr.ipv4_mapped:
            addr = addr.ipv4_mapped
        elif addr in _NAT64:
            addr = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
        elif addr in _6TO4:
            addr = ipaddress.IPv4Address((int(addr) >> 80) & 0xFFFFFFFF)
    if addr.is_link_local:
        return "link-local"
    if any(addr in net for net in _NOT_PUBLIC if net.version == addr.version):
        return "private"
    if addr.is_global:
        return "public"
    return "private"


async def resolve(host: str, port: int) -> list[str]:
    try:
        ipaddress.ip_address(host)
        return [host]
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def start_fetch() -> None:
    """Called at the start of each fetch (in its own task) to forget the last origin."""
    _origin.set(None)


def make_guard(
    allow_link_local: bool, proxied: bool = False
) -> Callable[[httpx.Request], Awaitable[None]]:
    """The check of every request. `proxied`: requests go through a proxy from the
    environment, which resolves names itself (a name this host cannot resolve is then the
    proxy's to judge)."""

    async def guard(request: httpx.Request) -> None:
        host = request.url.host
        if host.lower() in METADATA_HOSTS and not allow_link_local:
            raise BlockedAddress(f"refused: {host} is a cloud metadata service", request=request)
        try:
            addrs = await resolve(host, request.url.port or 80)
        except OSError as exc:  # nothing to check is nothing to let through
            if proxied:
                return
            raise httpx.ConnectError(f"cannot resolve {host}: {exc}", request=request) from None
        if not addrs:
            raise httpx.ConnectError(f"cannot resolve {host}", request=request)
        kinds = {classify(a) for a in addrs}
        if "link-local" in kinds and not allow_link_local:
            raise BlockedAddress(
                f"refused: {host} is a link-local address (cloud metadata); "
                "set [http] allow_link_local = true to allow",
                request=request,
            )
        kind: Kind = "public" if kinds == {"public"} else "private"
        origin = _origin.get()
        if origin is None:
            _origin.set(kind)
        elif origin == "public" and kind != "public":
            raise BlockedAddress(
                f"refused: a redirect from a public address to {host}, which is not public",
                request=request,
            )

    return guard


def check_connection(host: str, addrs: list[str], allow_link_local: bool) -> str:
    """The address a new connection to `host` is made to, among those it resolved to,
    under the rule above; BlockedAddress if none may be reached."""
    if host.lower() in METADATA_HOSTS and not allow_link_local:
        raise BlockedAddress(f"refused: {host} is a cloud metadata service")
    kinds = [classify(a) for a in addrs]
    if "link-local" in kinds and not allow_link_local:
        raise BlockedAddress(f"refused: {host} resolves to a link-local address")
    if _origin.get() == "public" and any(k != "public" for k in kinds):
        raise BlockedAddress(f"refused: {host} now resolves to an address that is not public")
    return addrs[0]


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, resolving each new connection's host itself and
    connecting to the address it checked (TLS still names the host)."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend, allow_link_local: bool) -> None:
        self.inner = inner
        self.allow_link_local = allow_link_local

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addrs = await resolve(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
        if not addrs:
            raise httpcore.ConnectError(f"cannot resolve {host}")
        address = check_connection(host, addrs, self.allow_link_local)
        return await self.inner.connect_tcp(address, port, timeout, local_address, socket_options)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        return await self.inner.connect_unix_socket(path, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def guard_transport(transport: httpx.AsyncHTTPTransport, allow_link_local: bool) -> None:
    """Put GuardedBackend, over the asyncio backend of netstream.py (cheaper than the
    anyio one httpx would use), under a transport's connection pool. httpx offers no
    parameter for a pool's network backend, so it is set on the pool it made (httpx 0.28,
    httpcore 1.x; tests/test_netguard.py fails should either rename it)."""
    from monitor.netstream import Backend

    pool = transport._pool
    pool._network_backend = GuardedBackend(Backend(), allow_link_local)
