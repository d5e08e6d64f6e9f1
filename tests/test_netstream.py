"""The fetcher's asyncio network backend (netstream.py) under httpx, against real local
servers: plain and TLS, kept-alive connections reused and closed ones not, a large body
read in pieces, and its failures as httpx's exceptions."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from monitor import netguard, netstream
from monitor.netstream import HIGH_WATER, Backend

BIG = bytes(range(256)) * (4 * HIGH_WATER // 256 + 7)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = BIG if self.path == "/big" else b"hello " + self.path.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        if self.path == "/close":
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def protocols(monkeypatch: pytest.MonkeyPatch) -> list[netstream._Protocol]:
    """Every connection's protocol, as made."""
    made: list[netstream._Protocol] = []
    init = netstream._Protocol.__init__

    def record(self: netstream._Protocol) -> None:
        init(self)
        made.append(self)

    monkeypatch.setattr(netstream._Protocol, "__init__", record)
    return made


async def read_slowly(
    c: httpx.AsyncClient, url: str, protocols: list[netstream._Protocol]
) -> tuple[bytes, int]:
    """The body, read after a pause, and the most bytes held unread meanwhile."""
    chunks: list[bytes] = []
    held = 0
    async with c.stream("GET", url) as r:
        async for chunk in r.aiter_raw():
            if not chunks:
                await asyncio.sleep(0.3)  # the server sends on; the client holds some
                held = max(len(p.buffer) for p in protocols)
            chunks.append(chunk)
    return b"".join(chunks), held


def client(verify: ssl.SSLContext | bool = True, read: float = 5.0) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(verify=verify)
    netguard.guard_transport(transport, allow_link_local=False)
    return httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(read, connect=5.0))


def test_plain_requests_reuse_a_connection_and_read_a_large_body(
    server: ThreadingHTTPServer, protocols: list[netstream._Protocol]
) -> None:
    port = server.server_address[1]

    async def run() -> tuple[list[bytes], list[bytes]]:
        async with client() as c:
            small = [(await c.get(f"http://127.0.0.1:{port}/{k}")).content for k in range(3)]
            pool = c._transport._pool  # type: ignore[attr-defined]
            assert len(pool.connections) == 1  # kept alive, reused
            assert isinstance(pool._network_backend.inner, Backend)
            big, held = await read_slowly(c, f"http://127.0.0.1:{port}/big", protocols)
            assert HIGH_WATER < held < 2 * HIGH_WATER  # reading paused, then resumed
            # A connection the server closed is not reused: the next request succeeds.
            closed = (await c.get(f"http://127.0.0.1:{port}/close")).content
            await asyncio.sleep(0.1)
            after = (await c.get(f"http://127.0.0.1:{port}/after")).content
            return small, [big, closed, after]

    small, (big, closed, after) = asyncio.run(run())
    assert small == [b"hello /0", b"hello /1", b"hello /2"]
    assert big == BIG
    assert (closed, after) == (b"hello /close", b"hello /after")


def test_failures_are_httpx_errors() -> None:
    with socket.socket() as quiet:  # accepts (the kernel does), never answers
        quiet.bind(("127.0.0.1", 0))
        quiet.listen()
        port = quiet.getsockname()[1]

        async def silent() -> None:
            async with client(read=0.3) as c:
                await c.get(f"http://127.0.0.1:{port}/")

        with pytest.raises(httpx.ReadTimeout):
            asyncio.run(silent())

    async def refused() -> None:
        async with client() as c:
            await c.get(f"http://127.0.0.1:{port}/")  # closed above

    with pytest.raises(httpx.ConnectError):
        asyncio.run(refused())


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a cert")
def test_tls(tmp_path: Path, protocols: list[netstream._Protocol]) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    httpd.socket = served.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    port = httpd.server_address[1]
    trusted = ssl.create_default_context(cafile=str(cert))

    async def run(verify: ssl.SSLContext) -> list[bytes]:
        async with client(verify) as c:
            small = (await c.get(f"https://127.0.0.1:{port}/a")).content
            big, held = await read_slowly(c, f"https://127.0.0.1:{port}/big", protocols)
            assert HIGH_WATER < held < 2 * HIGH_WATER
            return [small, big]

    async def untrusted() -> None:
        async with client(ssl.create_default_context()) as c:
            await c.get(f"https://127.0.0.1:{port}/a")

    try:
        assert asyncio.run(run(trusted)) == [b"hello /a", BIG]
        with pytest.raises(httpx.ConnectError):
            asyncio.run(untrusted())
    finally:
        httpd.shutdown()
        httpd.server_close()
