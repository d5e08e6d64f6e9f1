"""OPML import and export."""

from __future__ import annotations

import pytest

from monitor.opml import OpmlError, OpmlFeed, parse_opml, render_opml

SAMPLE = """<?xml version="1.0"?>
<opml version="1.0"><head><title>Desk</title></head><body>
  <outline text="Israel">
    <outline text="Times of Israel" type="rss" xmlUrl="https://www.timesofisrael.com/feed/"/>
    <outline title="Ynet" xmlUrl="https://www.ynetnews.com/Integration/StoryRss3089.xml"/>
  </outline>
  <outline text="Russia"><outline text="Медуза" xmlUrl="https://meduza.io/rss/all"/>
    <outline text="dup" xmlUrl="https://www.timesofisrael.com/feed/"/></outline>
  <outline text="a folder with no feed"/>
</body></opml>"""


def test_nested_outlines_are_flattened_in_order_without_duplicates() -> None:
    feeds = parse_opml(SAMPLE)
    assert feeds == [
        OpmlFeed("https://www.timesofisrael.com/feed/", "Times of Israel"),
        OpmlFeed("https://www.ynetnews.com/Integration/StoryRss3089.xml", "Ynet"),
        OpmlFeed("https://meduza.io/rss/all", "Медуза"),
    ]


def test_round_trip() -> None:
    feeds = parse_opml(SAMPLE)
    assert parse_opml(render_opml(feeds)) == feeds


@pytest.mark.parametrize("bad", ["<opml><body>", "<rss version='2.0'/>", ""])
def test_bad_files_are_refused_clearly(bad: str) -> None:
    with pytest.raises(OpmlError):
        parse_opml(bad)
