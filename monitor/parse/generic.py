"""Any feed document, through feedparser: every dialect and charset, broken markup too.

Before feedparser: a charset guess for documents that declare none and are not UTF-8,
and the repair of character references it cannot take. feedparser is imported on first
use, so a process that only stores prepared documents never loads it.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from monitor.errors import ParseError
from monitor.parse.types import ParsedEntry, ParsedFeed, struct_date

# RFC 822 dates name zones by abbreviation; feedparser knows the North American ones only
# and reads any other as UTC. These are unambiguous and common in European and Russian feeds.
_ZONES = {"bst": 1, "cet": 1, "cest": 2, "eet": 2, "eest": 3, "msk": 3, "wet": 0, "west": 1}


@functools.cache
def feedparser_configured() -> Any:  # feedparser has no type information
    """feedparser, set up as the pipeline relies on; imported on first use, so a process
    that only stores prepared documents (the main one of a large poll) never loads it."""
    import feedparser
    import feedparser.datetimes.rfc822

    # Relative links resolved against the document's own URL, HTML sanitized: both are
    # feedparser's defaults, stated because the rest of the pipeline relies on them.
    feedparser.RESOLVE_RELATIVE_URIS = True
    feedparser.SANITIZE_HTML = True
    feedparser.datetimes.rfc822.timezone_names.update(_ZONES)
    return feedparser


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _entry(e: Any) -> ParsedEntry:
    contents = e.get("content") or []
    content_html = "\n".join(_text(c.get("value")) for c in contents if c.get("value"))
    language = None
    for c in contents:
        language = language or c.get("language")
    detail = e.get("summary_detail") or e.get("title_detail") or {}
    language = language or detail.get("language")
    link = _text(e.get("link")) or None
    if link is None:
        for candidate in e.get("links") or []:
            if candidate.get("href") and candidate.get("rel", "alternate") == "alternate":
                link = candidate["href"].strip()
                break
    return ParsedEntry(
        guid=_text(e.get("id")) or None,
        link=link,
        title=_text(e.get("title")),
        summary_html=_text(e.get("summary")),
        content_html=content_html,
        # dict.get: FeedParserDict would silently map a missing `updated` to `published`.
        published=struct_date(dict.get(e, "published_parsed"))
        or struct_date(dict.get(e, "created_parsed")),
        updated=struct_date(dict.get(e, "updated_parsed")),
        author=_text(e.get("author")) or None,
        language=language or None,
    )


# UTF-8, UTF-32 (before UTF-16: FF FE 00 00 starts both) and UTF-16 byte-order marks.
_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff", b"\xff\xfe", b"\xfe\xff")


def _guess_charset(body: bytes) -> str | None:
    """A charset for a document that declares none and is not UTF-8 (else None).

    The server sent no charset and the XML declaration names none, so by the rules the
    document would be read as UTF-8, which it is not: a Cyrillic feed in KOI8-R or
    windows-1251 would turn into mojibake. chardet's guess is better than that.
    """
    head = body[:200].lower()
    if b"encoding=" in head.split(b"?>", 1)[0] or body.startswith(_BOMS):
        return None  # declared, or a byte-order mark says it (and chardet may not: UTF-16)
    try:
        body.decode("utf-8")
        return None
    except UnicodeDecodeError:
        pass
    import chardet

    guess = chardet.detect(body[:65536]).get("encoding")
    return str(guess) if guess else None


_CHARREF = re.compile(rb"&#(?:[xX]([0-9a-fA-F]{1,8})|([0-9]{1,10}));")


def _valid_charref(m: re.Match[bytes]) -> bytes:
    """A character reference to a code point XML forbids (a surrogate, NUL, beyond
    U+10FFFF) becomes U+FFFD: feedparser's fallback parser raises on some of them."""
    code = int(m.group(1), 16) if m.group(1) else int(m.group(2))
    if (
        code in (0x9, 0xA, 0xD)
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    ):
        return m.group(0)
    return b"&#xFFFD;"


def parse_with_feedparser(body: bytes, url: str, content_type: str | None = None) -> ParsedFeed:
    """parse_feed for any document: feedparser, after the charset guess and the repair
    of character references it cannot take."""
    headers = {"content-location": url}
    content_type = content_type or ""
    if "charset=" not in content_type.lower() and (guess := _guess_charset(body)):
        content_type = f"{content_type.split(';')[0] or 'application/xml'}; charset={guess}"
    if content_type:
        headers["content-type"] = content_type
    if b"&#" in body:
        body = _CHARREF.sub(_valid_charref, body)
    try:
        d = feedparser_configured().parse(body, response_headers=headers)
    except Exception as crash:  # feedparser's loose parser has crashed on odd input
        raise ParseError(
            f"not a feed (the parser failed: {type(crash).__name__}: {crash})"
        ) from crash
    version = d.get("version") or ""
    warning = None
    if d.get("bozo"):
        exc = d.get("bozo_exception")
        warning = f"{type(exc).__name__}: {exc}" if exc else "malformed feed"
        if not version and not d.entries:
            raise ParseError(f"not a feed ({warning})")
    elif not version and not d.entries:
        raise ParseError("not a feed (no RSS or Atom root element)")
    feed = d.get("feed", {})
    ttl = None
    try:
        ttl = int(feed.get("ttl")) if feed.get("ttl") else None
    except (TypeError, ValueError):
        ttl = None
    return ParsedFeed(
        title=_text(feed.get("title")) or None,
        link=_text(feed.get("link")) or None,
        language=_text(feed.get("language")) or None,
        ttl_minutes=ttl,
        version=version,
        entries=[_entry(e) for e in d.entries],
        warning=warning,
    )
