"""Fetch feed documents over HTTP: concurrent, conditional, bounded. The network edge.

Each request carries the stored validators (ETag, Last-Modified) so an unchanged feed costs
a 304 and no parsing. Bodies are streamed and cut off at a size cap counted as they decode
(bodies.py), so neither a huge document nor a gzip bomb, nested or not, can exhaust
memory; every request has a connect timeout and a total deadline, so a slow-drip server
cannot stall a poll.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import hashlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from monitor import __version__
from monitor.bodies import ACCEPT_ENCODING, BadEncoding, BodyTooLarge, Decoder

if TYPE_CHECKING:
    import ssl

    import httpx

    from monitor.config import HttpConfig

USER_AGENT = f"monitor/{__version__} (self-hosted news feed monitor)"
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml, application/xml;q=0.9, "
    "text/xml;q=0.9, */*;q=0.5"
)


@dataclass(frozen=True, slots=True)
class FetchRequest:
    feed_id: int
    url: str
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class FetchResult:
    feed_id: int
    url: str
    status: int | None = None
    body: bytes | None = None
    body_hash: str | None = None
    content_type: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    permanent_url: str | None = None  # the new address after 301/308 redirects only
    retry_after: str | None = None
    max_age: float | None = None  # seconds the server says the document stays fresh
    error: str | None = None
    error_kind: str | None = None  # errors.KINDS

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True, slots=True)
class FetchOptions:
    connect_timeout: timedelta = timedelta(seconds=10)
    timeout: timedelta = timedelta(seconds=30)
    max_body: int = 10 * 2**20
    concurrency: int = 32
    per_host: int = 2
    user_agent: str = USER_AGENT
    allow_link_local: bool = False

    @classmethod
    def of(cls, http: HttpConfig) -> FetchOptions:
        """The `[http]` settings as the fetcher takes them."""
        return cls(
            connect_timeout=http.connect_timeout,
            timeout=http.timeout,
            max_body=http.max_body,
            concurrency=http.concurrency,
            per_host=http.per_host,
            allow_link_local=http.allow_link_local,
            **({"user_agent": http.user_agent} if http.user_agent else {}),
        )


REDIRECTS = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 10


@dataclass(frozen=True, slots=True)
class _Client:
    """The HTTP client of a poll and, beside it, the transport it sends through.

    A fetch's first request goes to the transport directly: the client's own layers
    (redirect and auth handling, cookie extraction, event hooks) are a fifth of the CPU
    of a 304, and most answers are 304s. Should the answer be a redirect, the client
    follows it from there, hooks and cookie jar included; so the jar is sent with every
    request but only a redirect chain adds to it. Behind a proxy (HTTP_PROXY and the
    like) there is no direct transport: the client, which routes to the proxy, sends all.
    """

    http: httpx.AsyncClient
    transport: httpx.AsyncHTTPTransport | None
    guard: Callable[[httpx.Request], Awaitable[None]]

    async def send(self, url: str, headers: dict[str, str]) -> tuple[httpx.Response, str | None]:
        """The response, streaming (the caller closes it), and the address it came from
        when every redirect on the way there was permanent (301/308), else None."""
        import httpx

        request = self.http.build_request("GET", url, headers=headers)
        if self.transport is None:
            response = await self.http.send(request, stream=True)
            return response, _moved(response.history, response)
        await self.guard(request)
        first = await self.transport.handle_async_request(request)
        first.request = request
        location = first.headers.get("location")
        if first.status_code not in REDIRECTS or not location:
            return first, None
        await first.aclose()
        try:
            target = request.url.join(location)
        except httpx.InvalidURL as exc:
            raise httpx.RemoteProtocolError(
                f"bad redirect location: {exc}", request=request
            ) from None
        followed = await self.http.send(
            self.http.build_request("GET", target, headers=headers), stream=True
        )
        return followed, _moved([first, *followed.history], followed)


def _moved(history: Sequence[httpx.Response], response: httpx.Response) -> str | None:
    """A feed's new address: where it ended up when every redirect was permanent."""
    if history and all(r.status_code in (301, 308) for r in history):
        return str(response.url)
    return None


async def _fetch_one(client: _Client, req: FetchRequest, opts: FetchOptions) -> FetchResult:
    import httpx

    from monitor import netguard

    headers = {"Accept-Encoding": ACCEPT_ENCODING}
    if req.etag:
        headers["If-None-Match"] = req.etag
    if req.last_modified:
        headers["If-Modified-Since"] = req.last_modified
    netguard.start_fetch()
    try:
        async with asyncio.timeout(opts.timeout.total_seconds()):
            resp, moved_to = await client.send(req.url, headers)
            try:
                base = FetchResult(
                    feed_id=req.feed_id,
                    url=req.url,
                    status=resp.status_code,
                    content_type=resp.headers.get("content-type"),
                    etag=header(resp.headers.get("etag"), 500) or req.etag,
                    last_modified=header(resp.headers.get("last-modified"), 100)
                    or req.last_modified,
                    permanent_url=moved_to if moved_to and len(moved_to) <= 2048 else None,
                    retry_after=resp.headers.get("retry-after"),
                    max_age=freshness(resp.headers),
                )
                if resp.status_code == 304:
                    # Read the (empty) rest, or the connection is closed, not kept alive.
                    await resp.aread()
                    return base
                if resp.status_code >= 400:
                    return replace(
                        base,
                        error=f"HTTP {resp.status_code} {resp.reason_phrase}",
                        error_kind="gone" if resp.status_code == 410 else "http",
                    )
                declared = resp.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > opts.max_body:
                    raise BodyTooLarge(declared)
                # Raw bytes, decoded here under the cap (bodies.py): httpx's own decoder
                # inflates a whole chunk at once, nested encodings included.
                decoder = Decoder(resp.headers.get("content-encoding"), opts.max_body)
                chunks: list[bytes] = []
                async for chunk in resp.aiter_raw():
                    chunks += decoder.feed(chunk)
                chunks += decoder.end()
                body = b"".join(chunks)
                return replace(base, body=body, body_hash=hashlib.sha256(body).hexdigest())
            finally:
                await resp.aclose()
    except BadEncoding as exc:
        return FetchResult(req.feed_id, req.url, error=str(exc), error_kind="http")
    except BodyTooLarge:
        return FetchResult(
            req.feed_id,
            req.url,
            error=f"body larger than the {opts.max_body}-byte cap",
            error_kind="too-large",
        )
    except TimeoutError:
        return FetchResult(
            req.feed_id,
            req.url,
            error=f"timed out after {opts.timeout.total_seconds():g}s",
            error_kind="timeout",
        )
    except netguard.BlockedAddress as exc:
        return FetchResult(req.feed_id, req.url, error=str(exc), error_kind="blocked")
    except httpx.TooManyRedirects:
        return FetchResult(req.feed_id, req.url, error="too many redirects", error_kind="http")
    except httpx.HTTPError as exc:
        return FetchResult(req.feed_id, req.url, error=_describe(exc), error_kind="network")
    except (httpx.InvalidURL, ValueError) as exc:  # a stored address the client cannot use
        return FetchResult(
            req.feed_id, req.url, error=f"not a usable address: {exc}", error_kind="bad-url"
        )


def feed_url(value: str) -> str:
    """`value` if the HTTP client can fetch it (http or https, a host, a numeric port, a
    valid IP literal), else ValueError saying what is wrong. Config, `feeds add` and OPML
    import check every address with it, so a bad one is refused on the way in."""
    import httpx

    v = value.strip()
    if not v.lower().startswith(("http://", "https://")):
        raise ValueError(f"feed url must be http(s)://…, got {value!r}")
    try:
        parts = urlsplit(v)
        parts.port  # noqa: B018  (raises on a port that is not a number in range)
        httpx.URL(v)
    except (ValueError, httpx.InvalidURL) as exc:
        raise ValueError(f"feed url {value!r} is not a usable address: {exc}") from None
    if not parts.hostname or any(c.isspace() for c in parts.netloc):
        raise ValueError(f"feed url {value!r} names no valid host")
    return v


# Freshness beyond this is not believed (schedule.MAX_HINT caps its use further).
MAX_FRESHNESS = 7 * 86400.0


def freshness(headers: httpx.Headers) -> float | None:
    """Seconds until the response goes stale: Cache-Control max-age, else Expires; absurd
    values (a max-age of 10^30, an Expires in the year 9999) are capped, not trusted."""
    for part in headers.get("cache-control", "").split(","):
        key, _, value = part.strip().partition("=")
        value = value.strip().strip('"')
        if key.lower() == "max-age" and value.isascii() and value.isdigit():
            return min(float(value[:12]), MAX_FRESHNESS)
    if expires := headers.get("expires"):
        try:
            when = email.utils.parsedate_to_datetime(expires)
            date = (
                email.utils.parsedate_to_datetime(headers["date"])
                if headers.get("date")
                else datetime.now(UTC)
            )
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        if date.tzinfo is None:
            date = date.replace(tzinfo=UTC)
        try:
            return min(max(0.0, (when - date).total_seconds()), MAX_FRESHNESS)
        except OverflowError:
            return MAX_FRESHNESS
    return None


def _describe(exc: httpx.HTTPError) -> str:
    import httpx

    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect: {text}"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out: {type(exc).__name__}"
    return f"{type(exc).__name__}: {text}"


def make_client(opts: FetchOptions) -> _Client:
    """The HTTP client of a poll (httpx is imported here, on first use, not when the
    command starts; a fanned poll loads it before forking its helpers: `preload`)."""
    from urllib.request import getproxies

    import httpx

    from monitor import netguard

    timeout = httpx.Timeout(
        opts.timeout.total_seconds(), connect=opts.connect_timeout.total_seconds()
    )
    limits = httpx.Limits(
        max_connections=opts.concurrency, max_keepalive_connections=opts.concurrency
    )
    # Proxies from the environment are the client's to route to (it ignores them when
    # given a transport): with any set, the client sends every request itself.
    direct = None if getproxies() else httpx.AsyncHTTPTransport(verify=ssl_context(), limits=limits)
    if direct is not None:  # through a proxy, the proxy makes the connections
        netguard.guard_transport(direct, opts.allow_link_local)
    guard = netguard.make_guard(opts.allow_link_local, proxied=direct is None)
    http = httpx.AsyncClient(
        verify=ssl_context(),
        transport=direct,
        limits=limits,
        timeout=timeout,
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS - (direct is not None),  # a direct first hop counts
        headers={"User-Agent": opts.user_agent, "Accept": ACCEPT},
        event_hooks={"request": [guard]},
    )
    return _Client(http, direct, guard)


def header(value: str | None, limit: int) -> str | None:
    """A header value worth keeping: printable, and within `limit` characters (the column
    it is stored in; a validator cut short would be wrong, so a longer one is dropped)."""
    if not value or len(value) > limit or not value.isprintable():
        return None
    return value


def host_of(url: str) -> str:
    """The host part that per-host limits count by; for an address that does not even
    split (it fails in its fetch), the address itself."""
    try:
        return urlsplit(url).netloc.lower()
    except ValueError:
        return url


@functools.cache
def ssl_context() -> ssl.SSLContext:
    """httpx's default TLS setup (certifi's CAs, or SSL_CERT_FILE/SSL_CERT_DIR), made once
    per process: loading the CA bundle is tens of ms, and the service's every tick makes
    a client."""
    import httpx

    return httpx.create_ssl_context()


async def preload() -> None:
    """Load now what a client loads at its first request: httpx's transport stack and
    the address guard, anyio's asyncio backend (httpcore's locks), the CA bundle.
    Processes forked after this (fanout.py's helpers) share it, where each would spend
    some 50 ms of CPU on it before its first request."""
    import anyio

    from monitor import netguard, netstream  # noqa: F401

    async with anyio.Lock():  # what loads the backend, as httpcore's first lock does
        pass
    ssl_context()


async def fetch_stream(
    requests: Sequence[FetchRequest], opts: FetchOptions
) -> AsyncGenerator[FetchResult, None]:
    """Yield results as they complete, at most `concurrency` at once and `per_host` per host."""
    total = asyncio.Semaphore(opts.concurrency)
    hosts: dict[str, asyncio.Semaphore] = {}

    async def guarded(client: _Client, req: FetchRequest) -> FetchResult:
        host = host_of(req.url)
        per_host = hosts.setdefault(host, asyncio.Semaphore(opts.per_host))
        async with per_host, total:
            return await _fetch_one(client, req, opts)

    client = make_client(opts)
    async with client.http:  # closes its transport too
        tasks = [asyncio.create_task(guarded(client, r)) for r in requests]
        try:
            for next_done in asyncio.as_completed(tasks):
                yield await next_done
        finally:
            for t in tasks:
                t.cancel()
