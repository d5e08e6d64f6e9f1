"""OPML import and export of feed lists. Pure: text in, dataclasses out (and back)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from monitor.errors import MonitorError


class OpmlError(MonitorError, ValueError):
    pass


@dataclass(frozen=True)
class OpmlFeed:
    url: str
    name: str | None = None


def parse_opml(text: str | bytes) -> list[OpmlFeed]:
    """Every outline with an xmlUrl, at any depth (folders are flattened), in order."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise OpmlError(f"not valid OPML: {exc}") from None
    if root.tag.lower() != "opml":
        raise OpmlError(f"not OPML: the root element is <{root.tag}>")
    feeds: list[OpmlFeed] = []
    seen: set[str] = set()
    for outline in root.iter("outline"):
        url = (outline.get("xmlUrl") or outline.get("xmlurl") or "").strip()
        if url and url not in seen:
            seen.add(url)
            feeds.append(OpmlFeed(url, outline.get("title") or outline.get("text") or None))
    return feeds


def render_opml(feeds: list[OpmlFeed], title: str = "monitor feeds") -> str:
    root = ET.Element("opml", version="2.0")
    ET.SubElement(ET.SubElement(root, "head"), "title").text = title
    body = ET.SubElement(root, "body")
    for f in feeds:
        attrs = {"type": "rss", "xmlUrl": f.url}
        if f.name:
            attrs["text"] = attrs["title"] = f.name
        ET.SubElement(body, "outline", attrs)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")
