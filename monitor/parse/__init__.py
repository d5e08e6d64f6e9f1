"""Reading feed documents: `parse_feed(body, url, content_type) -> ParsedFeed`.

- types.py: ParsedFeed and ParsedEntry, what every reader returns;
- generic.py: feedparser, for any document;
- fast.py: lxml, for the clean UTF-8 RSS 2.0 and Atom most feeds send, several times
  faster with the same result (tests/test_parse_fast.py holds it to that).
"""

from __future__ import annotations

from monitor.errors import ParseError
from monitor.parse.types import ParsedEntry, ParsedFeed

__all__ = ["ParseError", "ParsedEntry", "ParsedFeed", "parse_feed", "parse_with_feedparser"]


def parse_feed(body: bytes, url: str, content_type: str | None = None) -> ParsedFeed:
    """Parse `body` fetched from `url`. Raises ParseError when it holds no feed.

    A clean UTF-8 RSS 2.0 or Atom document is read by parse_fast (lxml, several times
    faster, same result); anything else by feedparser."""
    from monitor.parse.fast import parse_fast

    fast = parse_fast(body, url, content_type)
    return fast if fast is not None else parse_with_feedparser(body, url, content_type)


def parse_with_feedparser(body: bytes, url: str, content_type: str | None = None) -> ParsedFeed:
    """parse_feed through feedparser only (the fast path's reference)."""
    from monitor.parse import generic

    return generic.parse_with_feedparser(body, url, content_type)
