"""httpcore's network backend on asyncio's own transports.

httpx's transport talks to the network through httpcore's anyio backend, whose cancel
scopes, checkpoints and socket-attribute lookups (a `getsockname` per idle-connection
check) wrap every read and write: about a sixth of the CPU of a conditional request that
is answered 304, which is most of a poll. The service runs on asyncio only, so the fetcher
uses this backend instead (netguard.guard_transport puts it under the guard): the same
streams on an asyncio Protocol, timeouts by asyncio.timeout, TLS by loop.start_tls, and
httpcore's exceptions, so the layers above see no difference.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
from httpcore._utils import is_socket_readable

# Received bytes held for the reader before the socket stops being read: a reader asks
# for 64 KiB at a time, and a fast server must not fill memory while it is slow.
HIGH_WATER = 256 * 1024


class _Protocol(asyncio.Protocol):
    """Received bytes, end of stream and write flow control, for one `Stream`."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.lost = False
        self.error: Exception | None = None
        self.reading_paused = False
        self.writing_paused = False
        self.waiter: asyncio.Future[None] | None = None  # a read or a drain waiting

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > HIGH_WATER and not self.reading_paused and self.transport:
            self.transport.pause_reading()
            self.reading_paused = True
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # close the transport: HTTP/1.1 never half-closes

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.error = exc
        self._wake()

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def wait(self, timeout: float | None) -> None:
        """Until the next event (data, end, loss, room to write), for at most `timeout`
        seconds (TimeoutError)."""
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):
                await self.waiter
        finally:
            self.waiter = None


class Stream(httpcore.AsyncNetworkStream):
    """One connection (TCP, or TLS over it)."""

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self.transport = transport
        self.protocol = protocol

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        p = self.protocol
        while not p.buffer and not p.eof and not p.lost:
            try:
                await p.wait(timeout)
            except TimeoutError:
                raise httpcore.ReadTimeout(f"no data within {timeout}s") from None
        if p.buffer:
            data = bytes(p.buffer[:max_bytes])
            del p.buffer[:max_bytes]
            if p.reading_paused and len(p.buffer) <= HIGH_WATER // 4 and p.transport:
                p.reading_paused = False
                p.transport.resume_reading()
            return data
        if p.error is not None:
            raise httpcore.ReadError(str(p.error) or type(p.error).__name__)
        return b""  # the end of the stream

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        p = self.protocol
        if p.lost or self.transport.is_closing():
            raise httpcore.WriteError(str(p.error) if p.error else "the connection is closed")
        self.transport.write(buffer)
        while p.writing_paused and not p.lost:
            try:
                await p.wait(timeout)
            except TimeoutError:
                raise httpcore.WriteTimeout(f"could not send within {timeout}s") from None
        if p.lost and p.error is not None:
            raise httpcore.WriteError(str(p.error))

    async def aclose(self) -> None:
        self.transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                tls = await loop.start_tls(
                    self.transport, self.protocol, ssl_context, server_hostname=server_hostname
                )
        except TimeoutError:
            self.transport.close()
            raise httpcore.ConnectTimeout(f"TLS handshake not done within {timeout}s") from None
        except (OSError, ssl.SSLError, ConnectionError) as exc:
            self.transport.close()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from None
        if tls is None:  # the connection closed during the handshake
            raise httpcore.ConnectError("the connection closed during the TLS handshake")
        assert isinstance(tls, asyncio.Transport)
        self.protocol.transport = tls  # pausing and resuming reading apply to this one now
        return Stream(tls, self.protocol)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # Asked of an idle connection before it is reused: anything arrived (data, or
            # the server closing it) means it cannot be.
            p = self.protocol
            return bool(p.buffer) or p.eof or p.lost or _readable(self.transport)
        if info == "ssl_object":
            return self.transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return self.transport.get_extra_info("sockname")
        if info == "server_addr":
            return self.transport.get_extra_info("peername")
        if info == "socket":
            return self.transport.get_extra_info("socket")
        return None


def _readable(transport: asyncio.Transport) -> bool:
    """Whether the socket has something to read that the loop has not delivered yet (the
    same check as httpcore's own backends)."""
    sock = transport.get_extra_info("socket")
    return sock is not None and is_socket_readable(sock)


class Backend(httpcore.AsyncNetworkBackend):
    """TCP connections as `Stream`s."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport, protocol = await loop.create_connection(
                    _Protocol, host, port, local_addr=(local_address, 0) if local_address else None
                )
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"no connection within {timeout}s") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from None
        sock = transport.get_extra_info("socket")
        for option in socket_options or ():  # as httpcore's own backends: once connected
            sock.setsockopt(*option)
        assert isinstance(transport, asyncio.Transport)
        return Stream(transport, protocol)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not used by the fetcher")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
