"""parse_feed over documents written here, one per trait that real feeds show (charsets
left undeclared, old RSS dialects, HTML in titles, byte-order marks, relative links, repeated
guids, zone abbreviations): the suite covers them without the shared corpus."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.normalize import dedupe, normalize_entry
from monitor.parse import ParseError, parse_feed

URL = "https://news.example.org/feeds/main.xml"
NOW = datetime(2026, 9, 1, tzinfo=UTC)

RUSSIAN = [
    (
        "Правительство обсудило бюджет на следующий год",
        "Министры рассмотрели проект бюджета и поручили доработать расходы на дороги и школы.",
    ),
    (
        "В городе открылась новая библиотека",
        "Читальный зал рассчитан на двести мест, фонд насчитывает сорок тысяч книг.",
    ),
    (
        "Синоптики обещают тёплую погоду в выходные",
        "Температура поднимется до двадцати градусов, осадков не ожидается до вторника.",
    ),
]
HEBREW = [
    (
        "הממשלה אישרה את התקציב לשנה הבאה",
        "השרים דנו בהצעת התקציב והחליטו להגדיל את ההוצאה על חינוך ותחבורה ציבורית.",
    ),
    (
        "ספרייה חדשה נפתחה במרכז העיר",
        "באולם הקריאה יש מאתיים מקומות ובאוסף ארבעים אלף ספרים בשפות שונות.",
    ),
]


def rss(
    items: list[tuple[str, str]], declaration: str = '<?xml version="1.0"?>', extra: str = ""
) -> str:
    body = "".join(
        f"<item><title>{t}</title><link>https://news.example.org/{i}</link>"
        f"<guid>https://news.example.org/{i}</guid><description>{d}</description>{extra}</item>"
        for i, (t, d) in enumerate(items)
    )
    return f'{declaration}<rss version="2.0"><channel><title>News</title>{body}</channel></rss>'


@pytest.mark.parametrize(
    ("items", "charset"), [(RUSSIAN, "windows-1251"), (RUSSIAN, "koi8-r"), (HEBREW, "windows-1255")]
)
def test_a_charset_nobody_declared_is_guessed(items: list[tuple[str, str]], charset: str) -> None:
    feed = parse_feed(rss(items * 3).encode(charset), URL)  # no charset anywhere
    assert [e.title for e in feed.entries[: len(items)]] == [t for t, _ in items]


def test_rss10_reads_dc_date_and_rss090_has_neither_ids_nor_dates() -> None:
    rdf = """<?xml version="1.0" encoding="utf-8"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"
 xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel rdf:about="https://news.example.org/"><title>News</title></channel>
<item rdf:about="https://news.example.org/a"><title>Council meets</title>
<link>https://news.example.org/a</link><dc:date>2026-08-30T07:15:00+02:00</dc:date></item>
</rdf:RDF>"""
    feed = parse_feed(rdf.encode(), URL)
    assert feed.version == "rss10"
    dated = normalize_entry(feed.entries[0], URL, feed.language, NOW)
    assert dated.published_at == datetime(2026, 8, 30, 5, 15, tzinfo=UTC)
    old = """<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
 xmlns="http://my.netscape.com/rdf/simple/0.9/">
<channel><title>News</title><link>https://news.example.org/</link></channel>
<item><title>Council meets</title><link>https://news.example.org/a</link></item>
</rdf:RDF>"""
    feed = parse_feed(old.encode(), URL)
    assert feed.version == "rss090" and feed.entries[0].guid is None
    a = normalize_entry(feed.entries[0], URL, None, NOW)
    assert a.guid and a.published_at == NOW and a.date_estimated  # first seen stands in


def test_an_html_title_is_text_and_a_bom_is_no_obstacle() -> None:
    atom = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Alerts</title><id>urn:x</id>
<updated>2026-08-30T07:00:00Z</updated>
<entry><title type="html">Talks on &lt;b&gt;grain&lt;/b&gt; exports resume</title>
<id>urn:x:1</id><link href="https://news.example.org/1"/><updated>2026-08-30T07:00:00Z</updated>
</entry></feed>"""
    feed = parse_feed(b"\xef\xbb\xbf" + atom.encode(), URL)
    a = normalize_entry(feed.entries[0], URL, feed.language, NOW)
    assert a.title == "Talks on grain exports resume"
    assert (
        parse_feed(b"\xef\xbb\xbf" + rss(RUSSIAN).encode(), URL).entries[0].title == RUSSIAN[0][0]
    )


def test_relative_links_resolve_against_the_feed_and_repeated_guids_keep_the_latest() -> None:
    doc = """<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>N</title>
<item><title>First telling</title><link>/story/1</link><guid isPermaLink="false">s1</guid>
<pubDate>Sun, 30 Aug 2026 08:00:00 BST</pubDate></item>
<item><title>Corrected telling</title><link>/story/1</link><guid isPermaLink="false">s1</guid>
<pubDate>Sun, 30 Aug 2026 09:00:00 BST</pubDate></item>
</channel></rss>"""
    feed = parse_feed(doc.encode(), URL)
    assert feed.entries[0].link == "https://news.example.org/story/1"
    assert feed.entries[0].published == datetime(2026, 8, 30, 7, 0, tzinfo=UTC)  # BST = +1
    kept = dedupe([normalize_entry(e, URL, None, NOW) for e in feed.entries])
    assert [a.title for a in kept] == ["Corrected telling"]


@pytest.mark.parametrize(
    "body",
    [
        b"<!doctype html><html><head><title>Moved</title></head><body>News page</body></html>",
        b'{"items": []}',
        b"",
        b"\x00\x01\x02 not text",
    ],
)
def test_what_is_not_a_feed_says_so(body: bytes) -> None:
    with pytest.raises(ParseError, match="not a feed"):
        parse_feed(body, URL)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_documents_are_read_by_feedparser_whatever_chardet_guesses(
    encoding: str,
) -> None:
    """A byte-order mark and no HTTP charset: the mark decides, not chardet (whose "UTF-16"
    had feedparser misread big-endian documents as "not a feed"), and the UTF-8-only fast
    path leaves them alone."""
    from monitor.parse.fast import parse_fast
    from monitor.parse.generic import _guess_charset

    bom = {"utf-16-le": b"\xff\xfe", "utf-16-be": b"\xfe\xff"}.get(encoding, b"")
    body = bom + rss(RUSSIAN, '<?xml version="1.0" encoding="utf-16"?>').encode(encoding)
    assert _guess_charset(body) is None and parse_fast(body, URL, None) is None
    assert [e.title for e in parse_feed(body, URL).entries] == [t for t, _ in RUSSIAN]
