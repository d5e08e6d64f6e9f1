"""Which addresses a feed fetch may reach (server-side request forgery guard).

The rule, applied to every request of a fetch, redirects included, after DNS resolution:
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
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Literal

import httpx

Kind = Literal["public", "private", "link-local"]
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data"})

# The kind of address the current fetch started at (set by its first request).
_origin: ContextVar[Kind | None] = ContextVar("monitor_fetch_origin", default=None)


class BlockedAddress(httpx.RequestError):
    """The request would reach an address the guard refuses."""


def classify(ip: str) -> Kind:
    addr = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    if addr.is_link_local:
        return "link-local"
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


def make_guard(allow_link_local: bool) -> Callable[[httpx.Request], Awaitable[None]]:
    async def guard(request: httpx.Request) -> None:
        host = request.url.host
        if host.lower() in METADATA_HOSTS and not allow_link_local:
            raise BlockedAddress(f"refused: {host} is a cloud metadata service", request=request)
        try:
            addrs = await resolve(host, request.url.port or 80)
        except OSError:
            return  # let the connection attempt report the DNS failure
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
