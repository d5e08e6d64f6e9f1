"""Reading a document with a memo of the entries read before (prepare.Memo): what is
prepared must be what a first reading prepares; only the entries stored as they are may
be left unnormalized."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime, timedelta

from monitor.match import Matcher, load_profile
from monitor.normalize import Article, Draft
from monitor.prepare import Memo, Prepared, prepare_document, read_document
from tests.conftest import rss
from tests.test_pipeline import IRRELEVANT, RELEVANT

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
FEED = "https://news.example.org/feed.xml"


def doc(*items: tuple[str, str, str]) -> bytes:
    """An RSS document of (guid, title, description) items, an hour apart."""
    return rss(
        [
            {
                "title": title,
                "link": f"https://news.example.org/{guid}",
                "guid": guid,
                "description": text,
                "pubDate": email.utils.format_datetime(NOW - timedelta(hours=k)),
            }
            for k, (guid, title, text) in enumerate(items)
        ]
    ).encode()


def prepared(body: bytes, known: dict[str, str], memo: Memo | None) -> Prepared:
    d = read_document(body, FEED, "application/rss+xml", FEED, NOW, memo)
    return prepare_document(d, Matcher(load_profile()), known)


def test_a_memo_prepares_what_a_first_reading_prepares() -> None:
    first = doc(
        ("a", IRRELEVANT["title"], IRRELEVANT["description"]),
        ("b", RELEVANT["title"], RELEVANT["description"]),
        ("c", "Weather", "Rain all <b>day</b>."),
    )
    memo = Memo()
    stored = prepared(first, {}, memo)
    known = stored.hashes
    # Next: one entry new, one revised, one as it was; the memo knows two of them.
    second = doc(
        ("d", RELEVANT["title"] + " again", RELEVANT["description"]),
        ("a", IRRELEVANT["title"], IRRELEVANT["description"]),
        ("b", RELEVANT["title"], RELEVANT["description"] + " Updated."),
        ("c", "Weather", "Rain all <b>day</b>."),
    )
    read = read_document(second, FEED, "application/rss+xml", FEED, NOW, memo)
    kinds = {a.guid.rsplit("/", 1)[1]: type(a) for a in read.articles}
    assert kinds == {"a": Draft, "b": Article, "c": Draft, "d": Article}
    with_memo = prepared(second, known, memo)
    assert with_memo == prepared(second, known, None)
    assert [a.guid.rsplit("/", 1)[1] for a in with_memo.articles] == ["b", "d"]

    # A drafted entry that is not stored as it was (deleted meanwhile) is normalized.
    del known["https://news.example.org/a"]
    assert prepared(second, known, memo) == prepared(second, known, None)


def test_the_memo_keeps_the_feeds_read_last() -> None:
    memo = Memo()
    memo.FEEDS = 2
    for feed in ("one", "two", "three"):
        memo.put(feed, {b"k": ("guid", "hash")})
    assert (memo.get("one"), memo.get("three")) == ({}, {b"k": ("guid", "hash")})


def test_a_lazy_reading_prepares_what_a_full_one_prepares() -> None:
    """`lazy`: entries with a guid are drafts (guid and hash only); those not stored as
    they are, normalized after; an entry without a guid, or without title and text, is
    read in full (its guid, or whether it is kept, depends on its link)."""
    first = doc(
        ("a", IRRELEVANT["title"], IRRELEVANT["description"]),
        ("b", RELEVANT["title"], RELEVANT["description"]),
        ("c", "Weather", "Rain all <b>day</b>."),
    )
    known = prepared(first, {}, None).hashes
    second = doc(
        ("d", RELEVANT["title"] + " again", RELEVANT["description"]),
        ("a", IRRELEVANT["title"], IRRELEVANT["description"]),
        ("b", RELEVANT["title"], RELEVANT["description"] + " Updated."),
        ("c", "Weather", "Rain all <b>day</b>."),
        ("", "No guid", "Its guid is its link."),
        ("e", "", ""),
    )
    read = read_document(second, FEED, "application/rss+xml", FEED, NOW, lazy=True)
    kinds = sorted((a.guid.rsplit("/", 1)[1], type(a).__name__) for a in read.articles)
    assert kinds == [
        ("", "Article"),
        ("a", "Draft"),
        ("b", "Draft"),
        ("c", "Draft"),
        ("d", "Draft"),
        ("e", "Article"),
    ]
    matcher = Matcher(load_profile())
    full = prepare_document(
        read_document(second, FEED, "application/rss+xml", FEED, NOW), matcher, known
    )
    assert prepare_document(read, matcher, known) == full
    assert sorted(a.guid.rsplit("/", 1)[1] for a in full.articles) == ["b", "d"]
