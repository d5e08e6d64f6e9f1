"""The CPU-bound, pure half of processing a fetched feed: parse → normalize/dedupe → match.

A poll's cost is mostly here (the parser, HTML to text, the matcher), and none of it needs
the database: the parser pool's workers run it (pool.py), or, in a small poll with no
pool running, the storing thread.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

from monitor.cluster import features
from monitor.match import Matcher, MatchResult
from monitor.normalize import (
    Article,
    Draft,
    dedupe,
    draft_entry,
    entry_dates,
    html_to_text,
    normalize_entry,
    source_key,
)
from monitor.parse import ParseError, parse_feed
from monitor.rows import QuietRows


@dataclass(frozen=True, slots=True)
class Prepared:
    """A feed document ready to store, or the reason it could not be read.

    `hashes` holds every article of the document (guid → content hash, one per guid) and
    `dates` the publication dates the feed gave. What needs storing is split in two: new
    articles no topic rule holds for, encoded for one bulk insert (`quiet`), and the rest,
    on topic or revisions of stored entries, as articles with their matches, oldest first.
    Articles stored unchanged are in neither. `against` is what the split assumed was
    stored (guid → hash, for this document's guids); the storing transaction checks it.
    """

    title: str | None = None
    language: str | None = None
    ttl_minutes: int | None = None
    hashes: dict[str, str] = field(default_factory=dict)
    dates: list[datetime] = field(default_factory=list)
    articles: list[Article] = field(default_factory=list)
    matches: dict[str, MatchResult] = field(default_factory=dict)
    quiet: QuietRows = field(default_factory=QuietRows)
    against: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    error_kind: str = "parse"  # errors.KINDS, when `error` is set


@dataclass(frozen=True, slots=True)
class Document:
    """A feed document read: its articles, one per guid, oldest first; those `Memo` knew
    are drafts (`prepare_document` normalizes the ones not stored as they are)."""

    title: str | None
    language: str | None
    ttl_minutes: int | None
    articles: list[Article | Draft]

    @property
    def guids(self) -> list[str]:
        return [a.guid for a in self.articles]


class Memo:
    """The guid and content hash of each entry of the last document read of each of the
    FEEDS feeds read most recently, by `normalize.source_key`. A feed that changed
    usually changes again, and its new document repeats most of the last one's entries:
    those are known without normalizing them. Bounded: FEEDS documents' entries (about
    1.5 MiB for 100 documents of 50 entries)."""

    FEEDS = 256

    def __init__(self) -> None:
        self._feeds: OrderedDict[str, dict[bytes, tuple[str, str]]] = OrderedDict()

    def get(self, feed_url: str) -> dict[bytes, tuple[str, str]]:
        return self._feeds.get(feed_url, {})

    def put(self, feed_url: str, entries: dict[bytes, tuple[str, str]]) -> None:
        self._feeds[feed_url] = entries
        self._feeds.move_to_end(feed_url)
        while len(self._feeds) > self.FEEDS:
            self._feeds.popitem(last=False)

    def clear(self) -> None:
        self._feeds.clear()


def read_document(
    body: bytes,
    url: str,
    content_type: str | None,
    feed_url: str,
    now: datetime,
    memo: Memo | None = None,
    lazy: bool = False,
) -> Document:
    """Parse and normalize `body` (fetched from `url`, configured as `feed_url`); raises
    ParseError when it is not a feed. With a `memo`, the entries it knows are drafts;
    `lazy` (a feed with stored entries, most of which the document repeats): the others
    too where they can be (normalize.draft_entry), `prepare_document` completing those
    not stored as they are."""
    parsed = parse_feed(body, url, content_type)
    known = memo.get(feed_url) if memo is not None else {}
    seen: dict[bytes, tuple[str, str]] = {}
    read: list[Article | Draft] = []
    for e in parsed.entries:
        key = source_key(e, feed_url) if memo is not None else b""
        if (hit := known.get(key)) is not None:
            published, updated, estimated = entry_dates(e, now)
            read.append(
                Draft(*hit, published, updated, estimated, e, feed_url, parsed.language, now)
            )
            seen[key] = hit
            continue
        a: Article | Draft | None = draft_entry(e, feed_url, parsed.language, now) if lazy else None
        if a is None:
            a = normalize_entry(e, feed_url, parsed.language, now)
        # An entry with no title, no text and no link (a broken item) carries nothing;
        # a draft has a title or a text.
        if isinstance(a, Draft) or a.title or a.text or a.url:
            read.append(a)
            seen[key] = (a.guid, a.content_hash)
    if memo is not None:
        memo.put(feed_url, seen)
    articles = dedupe(read)
    articles.sort(key=lambda a: a.published_at)  # oldest first: first reports open events
    # The feed's own title names it in alerts and lists: text, whichever parser read it.
    title = html_to_text(parsed.title, titled=True)[:300] if parsed.title else None
    return Document(title or None, parsed.language, parsed.ttl_minutes, articles)


def prepare_document(doc: Document, matcher: Matcher, known: dict[str, str]) -> Prepared:
    """Match a document's articles, except those `known` (guid → content hash) to be
    stored already as they are; new off-topic ones become quiet rows."""
    quiet = QuietRows()
    rest: list[Article] = []
    matches: dict[str, MatchResult] = {}
    for a in doc.articles:
        stored = known.get(a.guid)
        if stored == a.content_hash:
            continue
        if isinstance(a, Draft):
            a = a.complete()
        result = matcher.match_article(a)
        if stored is None and not result.scores:
            quiet.add(a, result, features(result, a.language, a.title))
        else:
            rest.append(a)
            matches[a.guid] = result
    articles = doc.articles
    return Prepared(
        title=doc.title,
        language=doc.language,
        ttl_minutes=doc.ttl_minutes,
        hashes={a.guid: a.content_hash for a in articles},
        dates=[a.published_at for a in articles if not a.date_estimated],
        articles=rest,
        matches=matches,
        quiet=quiet,
        against={a.guid: known[a.guid] for a in articles if a.guid in known},
    )


def prepare(
    body: bytes,
    url: str,
    content_type: str | None,
    feed_url: str,
    now: datetime,
    matcher: Matcher,
    known: dict[str, str],
) -> Prepared:
    """`read_document` then `prepare_document`, or the reason the body is not a feed."""
    try:
        doc = read_document(body, url, content_type, feed_url, now)
    except ParseError as exc:
        return Prepared(error=str(exc))
    return prepare_document(doc, matcher, known)
