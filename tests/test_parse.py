"""parse_feed (plus normalize_entry) over documents written here and over real feeds of the
shared corpus (../shared/corpus/real-feeds, read from there; those tests skip without it)."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.normalize import Article, dedupe, normalize_entry
from monitor.parse import ParsedFeed, ParseError, parse_feed
from tests.conftest import real_feed

NOW = datetime(2026, 9, 1, tzinfo=UTC)
HTML_TAG = re.compile(
    r"</?(?:p|br|a|img|div|span|b|i|em|strong|script|style|iframe)\b[^>]*>", re.IGNORECASE
)
MOJIBAKE = ("Ã", "Ð", "â€", "Â")
CYRILLIC = re.compile(r"[А-Яа-яЁё]")


def load(name: str, url: str, content_type: str | None = None) -> ParsedFeed:
    return parse_feed(real_feed(name), url, content_type)


def normalized(feed: ParsedFeed, url: str) -> list[Article]:
    return [normalize_entry(e, url, feed.language, NOW) for e in feed.entries]


# name, feed url, version, entries, first entry's title
REAL = [
    (
        "feedreader_moscowtimes.xml",
        "https://themoscowtimes.com/rss/news",
        "rss20",
        50,
        "Russian State TV Praises Trump for Avoiding ‘Democracy’ in Inauguration Speech",
    ),
    (
        "cloudphone-rss-reader_bbc-world.xml",
        "https://feeds.bbci.co.uk/news/world/rss.xml",
        "rss20",
        28,
        "Major Russian grain export terminals hit in Ukraine Black Sea port attack",
    ),
    (
        "feedreader_theverge.atom.xml",
        "https://www.theverge.com/rss/index.xml",
        "atom10",
        10,
        "This is the new Hulu experience with live TV",
    ),
    (
        "feedjira_google-alerts.atom.xml",
        "https://www.google.com/alerts/feeds/1/2",
        "atom10",
        20,
        "Report offers Prediction of Automotive <b>Slack</b> Market by Top key players like Haldex,"
        " Meritor, Bendix ...",
    ),
    (
        "feedreader_orf-at.rdf.xml",
        "https://rss.orf.at/news.xml",
        "rss10",
        50,
        "US-Band New Edition mit Stern auf „Walk of Fame“ geehrt",
    ),
    (
        "miniflux_heise-rss090.rdf.xml",
        "https://www.heise.de/newsticker/heise.rdf",
        "rss090",
        60,
        "OLED-TVs: Vorsichtsmaßnahmen gegen Einbrennen",
    ),
    (
        "miniflux_ibash-windows-1251.xml",
        "http://ibash.org.ru/rss.xml",
        "rss20",
        50,
        "Цитата #17703",
    ),
    (
        "node-feedparser_oren-ru-windows-1251.xml",
        "http://www.oren.ru/rss",
        "rss20",
        10,
        "В Бузулуке главные стройплощадки – детсад и Ледовый дворец",
    ),
    (
        "node-feedparser_neverwinter-relative-urls.xml",
        "https://www.arcgames.com/en/games/neverwinter/news/rss",
        "rss20",
        2,
        "Neverwinter & Jingle Jam Humble Bundle!",
    ),
    (
        "node-feedparser_braingle-guid-dupes.xml",
        "http://feeds.feedburner.com/braingle",
        "rss20",
        1,
        "Huh?",
    ),
    (
        "rss-parser-kmp_skysports-bst-date.xml",
        "https://www.skysports.com/rss/11669",
        "rss20",
        2,
        "Insight: Who should Liverpool sign?",
    ),
]


@pytest.mark.parametrize(
    ("name", "url", "version", "count", "first_title"), REAL, ids=[r[0] for r in REAL]
)
def test_real_feed(name: str, url: str, version: str, count: int, first_title: str) -> None:
    feed = load(name, url)
    assert feed.version == version
    assert len(feed.entries) == count
    assert feed.entries[0].title == first_title
    assert all(e.title for e in feed.entries)
    for e in feed.entries:
        for d in (e.published, e.updated):
            assert d is None or (d.tzinfo is not None and d.utcoffset() == timedelta(0))
    arts = normalized(feed, url)
    for a in arts:
        assert a.url is not None and a.url.startswith(("http://", "https://"))
        assert a.canonical_url is not None and a.canonical_url.startswith(("http://", "https://"))
        assert "#" not in a.canonical_url and "utm_" not in a.canonical_url
        assert a.title and not HTML_TAG.search(a.title)
        assert not HTML_TAG.search(a.text)
        assert "<script" not in a.summary_html.lower()
        assert a.published_at.utcoffset() == timedelta(0)
        if name != "feedreader_theverge.atom.xml":  # that capture is double-encoded at source
            assert not any(m in a.title + a.text for m in MOJIBAKE)
    assert len(dedupe(arts)) == len({a.guid for a in arts})


def test_rss2_with_bom_moscowtimes() -> None:
    feed = load("feedreader_moscowtimes.xml", "https://themoscowtimes.com/rss/news")
    assert feed.title == "The Moscow Times - News, Business, Culture & Multimedia from Russia"
    assert (feed.language, feed.ttl_minutes) == ("en-us", 600)
    assert feed.entries[0].published == datetime(2017, 1, 23, 16, 45, 2, tzinfo=UTC)


def test_bbc_tracking_params_dropped_but_guid_kept() -> None:
    url = "https://feeds.bbci.co.uk/news/world/rss.xml"
    feed = load("cloudphone-rss-reader_bbc-world.xml", url)
    assert feed.ttl_minutes == 15
    first = normalized(feed, url)[0]
    assert (
        first.url
        == "https://www.bbc.co.uk/news/articles/c5y49xp2wrno?at_medium=RSS&at_campaign=rss"
    )
    assert first.canonical_url == "https://www.bbc.co.uk/news/articles/c5y49xp2wrno"
    assert first.guid == "https://www.bbc.co.uk/news/articles/c5y49xp2wrno#0"


def test_atom_theverge_content_and_dates() -> None:
    url = "https://www.theverge.com/rss/index.xml"
    feed = load("feedreader_theverge.atom.xml", url)
    e = feed.entries[0]
    assert e.author == "Chris Welch"
    assert e.published == e.updated == datetime(2017, 1, 7, 14, 0, 1, tzinfo=UTC)  # -05:00 in doc
    assert "<img" in e.content_html and "<img" in e.summary_html
    a = normalized(feed, url)[0]
    assert a.text.startswith("Hulu is giving closed-door demonstrations of its upcoming")
    assert "<img" not in a.summary_html and a.language == "en"


def test_atom_google_alerts_html_title_stripped() -> None:
    url = "https://www.google.com/alerts/feeds/1/2"
    a = normalized(load("feedjira_google-alerts.atom.xml", url), url)[0]
    assert a.title == (
        "Report offers Prediction of Automotive Slack Market by Top key players "
        "like Haldex, Meritor, Bendix ..."
    )
    assert a.canonical_url is not None and a.canonical_url.startswith("https://www.google.com/url?")
    assert a.guid == "tag:google.com,2013:googlealerts/feed:8974135267215335962"


def test_rss10_orf_dc_date_becomes_published() -> None:
    url = "https://rss.orf.at/news.xml"
    feed = load("feedreader_orf-at.rdf.xml", url)
    e = feed.entries[0]
    assert e.published is None
    assert e.updated == datetime(2017, 1, 23, 20, 54, 55, tzinfo=UTC)  # 21:54:55+01:00
    a = normalized(feed, url)[0]
    assert (a.published_at, a.date_estimated, a.language) == (e.updated, False, "de")
    assert a.canonical_url == "http://orf.at/stories/2376368"


def test_rss090_heise_without_ids_or_dates() -> None:
    url = "https://www.heise.de/newsticker/heise.rdf"
    feed = load("miniflux_heise-rss090.rdf.xml", url)
    assert all(e.guid is None and e.published is None and e.updated is None for e in feed.entries)
    arts = normalized(feed, url)
    assert (
        arts[0].guid
        == arts[0].canonical_url
        == (
            "https://www.heise.de/newsticker/meldung/OLED-TVs-Vorsichtsmassnahmen-gegen-Einbrennen-"
            "4205274.html?wt_mc=rss.ho.beitrag.rdf"
        )
    )
    assert all(a.date_estimated and a.published_at == NOW for a in arts)
    assert len(dedupe(arts)) == 60


def test_windows_1251_ibash() -> None:
    url = "http://ibash.org.ru/rss.xml"
    feed = load("miniflux_ibash-windows-1251.xml", url)
    assert feed.entries[0].published == datetime(2018, 3, 21, 7, 27, 32, tzinfo=UTC)  # +0300
    arts = normalized(feed, url)
    assert arts[0].text.startswith("xxx: есть у кого жаба программер xxx: кот немного пхп знает?")
    assert "предоставлялась бо'льшая свобода" in arts[1].text  # &#039; decoded
    # escaped "<nick>" is text, not markup: it must survive as text
    assert any("<L29Ah> [[ clang++ == *g++ ]] && echo yay" in a.text for a in arts)
    assert all(a.language == "ru" and CYRILLIC.search(a.text) for a in arts)


def test_windows_1251_oren_guidless_and_undeclared_language() -> None:
    url = "http://www.oren.ru/rss"
    feed = load("node-feedparser_oren-ru-windows-1251.xml", url)
    assert feed.title == "Новости Оренбурга и области / Раздел Новости"
    assert feed.language is None and feed.ttl_minutes == 30
    arts = normalized(feed, url)
    assert arts[0].guid == "http://www.oren.ru/news/2743422"
    assert arts[1].text == "Из-за чего теперь на них возбуждено уголовное дело (видео)"
    assert {a.language for a in arts} == {"ru"}  # guessed from the script


KOI8 = "feedparser_russian-koi8r-undeclared.xml"
HEB = "feedparser_hebrew-windows-1255-undeclared.xml"


@pytest.mark.parametrize(
    ("name", "content_type", "expected"),
    [
        (KOI8, "text/xml; charset=koi8-r", "Как пережить новогоднюю ночь"),
        (HEB, "text/xml; charset=windows-1255", "האם תדפיס נייר"),
        (KOI8, None, "Как пережить новогоднюю ночь"),
        (HEB, None, "האם תדפיס נייר"),
    ],
)
def test_undeclared_charset(name: str, content_type: str | None, expected: str) -> None:
    e = load(name, "http://example.org/feed", content_type).entries[0]
    assert expected in e.title + e.summary_html


def test_relative_links_resolved_against_feed_url() -> None:
    url = "https://mirror.example.net/feeds/nw.xml"
    feed = load("node-feedparser_neverwinter-relative-urls.xml", url)
    assert feed.link == "https://mirror.example.net/en/games/neverwinter/news"
    assert feed.entries[0].link == (
        "https://mirror.example.net/en/games/neverwinter/news/detail/"
        "10743874-neverwinter-%26-jingle-jam-humble-bundle%21"
    )
    assert feed.entries[0].published == datetime(2017, 12, 7, 18, 0, 29, tzinfo=UTC)  # "07 Dec 17"
    a = normalized(feed, url)[1]
    assert a.canonical_url == (
        "https://mirror.example.net/en/games/neverwinter/news/detail/"
        "10738994-2x-underdark-currency-%26-15%25-off-bags%21"
    )
    assert a.guid == "http://www.arcgames.com/en/games/PAB_nw/news/detail/10738994"


def test_duplicate_guid_element_in_one_item() -> None:
    e = load("node-feedparser_braingle-guid-dupes.xml", "http://feeds.feedburner.com/b").entries[0]
    assert e.guid == "http://www.braingle.com/50366.html"


def test_dedupe_scriptingnews_keeps_latest_per_guid() -> None:
    url = "http://scripting.com/rss.xml"
    feed = load("rsparser_scriptingnews.xml", url)
    arts = normalized(feed, url)
    assert len(arts) == 50 and sum(not a.title for a in arts) == 39  # title-less posts exist
    kept = dedupe(arts)
    assert len(kept) == len({a.guid for a in arts}) == 48
    dup = [a for a in kept if a.guid == "http://scripting.com/2017/06/24.html#a100632"]
    assert [(a.title, a.published_at) for a in dup] == [
        ("Republican-inspired art", datetime(2017, 6, 24, 14, 52, 32, tzinfo=UTC))
    ]


def test_a_real_html_page_is_not_a_feed() -> None:
    with pytest.raises(ParseError):
        parse_feed(real_feed("rss-parser_marketwatch-not-a-feed.html.xml"), "https://m.example/")


def test_bst_zone_abbreviation() -> None:
    e = load("rss-parser-kmp_skysports-bst-date.xml", "https://www.skysports.com/rss/1").entries[0]
    assert e.published == datetime(2019, 5, 17, 5, 0, tzinfo=UTC)  # "06:00:00 BST"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<!DOCTYPE html><html><head><title>News</title></head><body><p>hi</p></body></html>",
        bytes(random.Random(7).randrange(256) for _ in range(4096)),
        b'{"version": "https://jsonfeed.org/version/1", "items": []}',
    ],
    ids=["empty", "html", "random", "json"],
)
def test_not_a_feed_raises_parse_error(body: bytes) -> None:
    with pytest.raises(ParseError, match="not a feed"):
        parse_feed(body, "https://example.com/feed", None)


@pytest.mark.parametrize(
    "name",
    [
        "feedreader_moscowtimes.xml",
        "feedreader_orf-at.rdf.xml",
        "feedreader_theverge.atom.xml",
        "miniflux_ibash-windows-1251.xml",
    ],
)
def test_truncated_real_feed_still_yields_entries(name: str) -> None:
    body = real_feed(name)
    full = parse_feed(body, "https://example.com/feed", None)
    half = parse_feed(body[: len(body) // 2], "https://example.com/feed", None)
    assert half.warning is not None
    assert 0 < len(half.entries) < len(full.entries)
    assert half.entries[0].title == full.entries[0].title


@settings(max_examples=60, deadline=None)
@given(cut=st.integers(min_value=0, max_value=31127), junk=st.binary(max_size=20))
def test_damaged_feed_parses_or_raises_parse_error(cut: int, junk: bytes) -> None:
    body = real_feed("feedreader_moscowtimes.xml")[:cut] + junk
    try:
        feed = parse_feed(body, "https://example.com/feed", "application/rss+xml")
    except ParseError:
        return
    for e in feed.entries:
        normalize_entry(e, "https://example.com/feed", feed.language, NOW)


def test_character_references_xml_forbids_do_not_crash_the_parser() -> None:
    # feedparser's fallback parser raised UnicodeEncodeError on &#xD800; (found by
    # bench/fuzz_parse.py); such references now read as U+FFFD.
    body = real_feed("node-feedparser_braingle-guid-dupes.xml")
    broken = body.replace(b"<title>", b"<title>&#xD800;&#0;<", 1)
    feed = parse_feed(broken, "https://example.com/feed", None)
    assert feed.entries


def test_fuzz_run_over_mutated_real_feeds() -> None:
    """A CI-sized run of bench/fuzz_parse.py: mutated real feeds through parse, normalize
    and match; exit 1 (with the document saved) on anything but articles or 'not a feed'."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parent.parent / "bench" / "fuzz_parse.py"
    run = subprocess.run(
        [sys.executable, str(script), "--iterations", "300", "--seed", "7"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    if "skipped" in run.stdout:
        pytest.skip(run.stdout.strip())
    assert "300 mutated documents" in run.stdout
