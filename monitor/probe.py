"""One look at a feed before it is added: fetch it once (through the same guard against
private addresses as every poll) and say what it holds, or why it cannot be read now.
Shared by `monitor feeds add` and the desk's feeds page."""

from __future__ import annotations

from monitor.fetch import FetchOptions, FetchRequest, FetchResult, fetch_stream
from monitor.parse import ParseError, parse_feed


async def probe(url: str, options: FetchOptions) -> str:
    """What one fetch and parse of `url` found, in words (a feed that cannot be read now
    stays added, and is retried on its schedule)."""
    result: FetchResult | None = None
    async for r in fetch_stream([FetchRequest(0, url)], options):
        result = r
    if result is None or result.error:
        why = result.error if result else "no answer"
        return f"cannot read it now ({why}); it will be retried on its schedule"
    try:
        doc = parse_feed(result.body or b"", url, result.content_type)
    except ParseError as exc:
        return f"it does not read as a feed now ({exc}); it will be retried on its schedule"
    newest = max((e.published for e in doc.entries if e.published), default=None)
    when = f", newest {newest:%Y-%m-%d %H:%M} UTC" if newest else ""
    return f"found {doc.title or 'a feed'!r} ({doc.version}): {len(doc.entries)} entries{when}"
