"""Response bodies decoded under a cap. Pure: bytes in, bytes out.

A server chooses how its body is encoded (`Content-Encoding: gzip`, `deflate`, or several
of them in a row). A decoder that inflates a whole chunk at once lets a few kilobytes on
the wire become gigabytes in memory before any size check runs, and nesting multiplies
it (3.5 KB of `gzip, gzip` is 4 GiB). Here every layer inflates at most CHUNK bytes per
step and the decoded total is counted as it grows, so memory stays at a few chunks per
layer and the cap holds on what the body decodes to; at most MAX_LAYERS encodings are
accepted.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

CHUNK = 64 * 1024
MAX_LAYERS = 2
# What we ask servers for (and so the only codings we decode ourselves).
ACCEPT_ENCODING = "gzip, deflate"


class BodyTooLarge(Exception):
    """The decoded body passed the cap."""


class BadEncoding(Exception):
    """A content coding we did not ask for, too many of them, or a corrupt stream."""


class _Inflate:
    """One gzip or deflate layer, inflating in bounded steps."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self.d: zlib._Decompress | None = None

    def _start(self, head: bytes) -> zlib._Decompress:
        if self.coding == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        # "deflate" is zlib-wrapped by the standard, raw by some servers: look.
        wrapped = len(head) >= 2 and head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0
        return zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)

    def feed(self, data: bytes) -> Iterator[bytes]:
        while data:
            if self.d is None:
                self.d = self._start(data)
            try:
                out = self.d.decompress(data, CHUNK)
            except zlib.error as exc:
                raise BadEncoding(f"corrupt {self.coding} body: {exc}") from None
            data = self.d.unconsumed_tail
            if out:
                yield out
            if self.d.eof:  # concatenated gzip members: the next one starts afresh
                data = self.d.unused_data + data
                self.d = None
                if self.coding != "gzip":
                    return

    def end(self) -> Iterator[bytes]:
        if self.d is not None and not self.d.eof:
            try:
                tail = self.d.flush()
            except zlib.error as exc:
                raise BadEncoding(f"corrupt {self.coding} body: {exc}") from None
            if tail:
                yield tail


def codings(header: str | None) -> list[str]:
    """The codings a Content-Encoding header lists, in the order they were applied."""
    found = [c.strip().lower() for c in (header or "").split(",")]
    found = [c for c in found if c and c != "identity"]
    for c in found:
        if c not in ("gzip", "x-gzip", "deflate"):
            raise BadEncoding(f"unsupported content encoding {c!r}")
    if len(found) > MAX_LAYERS:
        raise BadEncoding(f"{len(found)} content encodings stacked (at most {MAX_LAYERS})")
    return ["gzip" if c == "x-gzip" else c for c in found]


class Decoder:
    """Decodes a body as its raw chunks arrive; BodyTooLarge past `cap` decoded bytes."""

    def __init__(self, header: str | None, cap: int) -> None:
        self.layers = [_Inflate(c) for c in reversed(codings(header))]  # last applied first
        self.cap = cap
        self.total = 0

    def _through(self, i: int, data: bytes) -> Iterator[bytes]:
        if i == len(self.layers):
            yield data
            return
        for piece in self.layers[i].feed(data):
            yield from self._through(i + 1, piece)

    def _ending(self, i: int) -> Iterator[bytes]:
        if i == len(self.layers):
            return
        for piece in self.layers[i].end():
            yield from self._through(i + 1, piece)
        yield from self._ending(i + 1)

    def _counted(self, pieces: Iterator[bytes]) -> list[bytes]:
        out = []
        for piece in pieces:
            self.total += len(piece)
            if self.total > self.cap:
                raise BodyTooLarge(str(self.total))
            out.append(piece)
        return out

    def feed(self, chunk: bytes) -> list[bytes]:
        return self._counted(self._through(0, chunk))

    def end(self) -> list[bytes]:
        return self._counted(self._ending(0))
