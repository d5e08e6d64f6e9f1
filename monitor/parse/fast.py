"""The fast path of parse_feed: the common, clean feed read with lxml instead of feedparser.

feedparser reads anything (broken markup, every charset, a dozen dialects) but spends
about 200 µs of Python per entry; most of a large poll is well-formed UTF-8 RSS 2.0 or
Atom 1.0, which libxml2 reads in a few. This module reads only documents it can read as
feedparser does and returns None for everything else, which parse_feed hands to
feedparser (generic.py):

- no DOCTYPE (so no entities to expand) and no xml:base; UTF-8; well-formed;
- an RSS 2.0 or Atom 1.0 root;
- in each item only elements whose meaning is known: the ones we read, a few known to
  carry none of our fields, and elements feedparser has no handler for (it ignores
  those), named the way feedparser names them (lowercase, canonical namespace prefix);
- no relative URIs inside HTML (feedparser rewrites them), no xhtml or base64 content.

Each value then goes through the steps feedparser's own `pop` applies (relative link
resolution, the double-encoded UTF-8 repair, the cp1252 map), and dates go through
feedparser's date parser. tests/test_parse_fast.py checks, on every document of the test
corpus this path accepts, that the normalized articles equal feedparser's.
"""

from __future__ import annotations

import re
from contextlib import suppress
from typing import Any

from feedparser.datetimes import _parse_date  # feedparser's date reader, zones included
from feedparser.encodings import parse_content_type
from feedparser.mixin import _cp1252, _FeedParserMixin
from feedparser.urls import RelativeURIResolver, _urljoin
from lxml import etree

from monitor.parse.generic import feedparser_configured
from monitor.parse.types import ParsedEntry, ParsedFeed, struct_date

feedparser_configured()  # its date reader knows the zones generic.py adds

_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    huge_tree=False,
    recover=False,
    remove_comments=True,
    remove_pis=True,
    strip_cdata=True,
    collect_ids=False,
)
_DECLARED = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_UTF8 = {"utf-8", "utf8"}
# Markup in a value whose sanitizing feedparser does its own way (comments that hide tags,
# scripts, styles, an unclosed iframe): such documents are read by feedparser, so what is stored is
# the same whichever path a document takes (bench/differential.py checks it). XML comments
# of the document itself (a generator's) are dropped by both and do not count.
_HOSTILE = re.compile(r"<!--|<\s*/?\s*(?:script|style)\b", re.I)
_DC = "{http://purl.org/dc/elements/1.1/}"
_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
_QUERY_REF = re.compile("&([A-Za-z0-9_]+);")
# An absolute address that feedparser's _urljoin gives back as it is (urljoin's parse
# and unparse change nothing in it: a lower-case scheme, a plain host, a path, no
# params, query or fragment): most guids and links, which then skip that costly round.
_PLAIN_URL = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]+)?(?:/[\w.~!$&'()*+,=:@%/-]*)?", re.A)
_ATOM = "http://www.w3.org/2005/Atom"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
# feedparser's prefixes for the namespaces it knows (Atom's is "": its names are bare).
_PREFIXES = {uri.lower(): prefix for uri, prefix in _FeedParserMixin.namespaces.items()}
# An attribute feedparser would resolve against the document's address, holding a value
# that is not an absolute http(s) URI.
_URI_ATTRIBUTES = "|".join(sorted({a for _, a in RelativeURIResolver.relative_uris}))
_RELATIVE = re.compile(rf"\b(?:{_URI_ATTRIBUTES})\s*=\s*(?![\"']?\s*https?://)", re.IGNORECASE)

# What an item's element means, by feedparser's name for it.
_READ = {
    "title": "title",
    "link": "link",
    "guid": "guid",
    "id": "guid",
    "description": "summary",
    "summary": "summary",
    "content_encoded": "content",
    "content": "content",
    "pubdate": "published",
    "published": "published",
    "dcterms_issued": "published",
    "dcterms_created": "created",
    "dc_date": "updated",
    "updated": "updated",
    "dcterms_modified": "updated",
    "author": "author",
    "dc_creator": "author",
}
# Handled by feedparser, but into none of the fields we read (leaves only).
_INERT = {
    "category",
    "dc_subject",
    "enclosure",
    "source",
    "media_content",
    "media_thumbnail",
    "media_keywords",
    "comments",
    "wfw_commentrss",
    "slash_comments",
    "feedburner_origlink",
}


class _Unsure(Exception):
    """The document holds something this path does not read as feedparser would."""


def parse_fast(body: bytes, url: str, content_type: str | None) -> ParsedFeed | None:
    """The feed in `body` if it is in this path's scope, else None (use feedparser)."""
    if body.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")) or b"\x00" in body[:64]:
        return None  # UTF-16 or UTF-32: out of scope (UTF-8 only), whatever libxml2 could do
    declared = _DECLARED.match(body[:512].removeprefix(b"\xef\xbb\xbf"))
    xml_encoding = declared.group(1).decode().lower() if declared else ""
    if xml_encoding and xml_encoding not in _UTF8:
        return None
    if b"<!DOCTYPE" in body or b"<!doctype" in body or b"xml:base" in body:
        return None
    encoding = _feedparser_encoding(content_type, xml_encoding, body)
    if encoding is None:
        return None
    try:
        root = etree.fromstring(body, _PARSER)
        name = _name(root)
        reader = _Reader(url, repair=encoding == "utf-8")
        if name == "rss" and root.get("version") == "2.0":
            return reader.rss(root)
        if name == "feed" and root.tag == f"{{{_ATOM}}}feed":
            return reader.atom(root)
    except (etree.XMLSyntaxError, _Unsure, ValueError):
        pass
    return None


def _feedparser_encoding(content_type: str | None, xml_encoding: str, body: bytes) -> str | None:
    """The encoding feedparser settles on for a UTF-8 `body` (RFC 3023, as it reads it),
    or None if that is not certain. Only "utf-8" turns on its double-encoding repair."""
    if not content_type:  # parse.py sends no Content-Type then
        return xml_encoding or "iso-8859-1"
    mime, charset = parse_content_type(content_type)
    if charset and charset.lower() not in _UTF8:
        return None
    if mime in (
        "application/xml",
        "application/xml-dtd",
        "application/xml-external-parsed-entity",
    ) or (mime.startswith("application/") and mime.endswith("+xml")):
        return charset.lower() or xml_encoding or "utf-8"
    if mime.startswith("text/"):
        if charset or body.isascii():
            return charset.lower() or "us-ascii"
        # us-ascii fails on this body; feedparser then tries the declared encoding.
        return xml_encoding or None
    return xml_encoding or "utf-8"


def _join(base: str, uri: str) -> str:
    """feedparser's _urljoin(base, uri), at once for a plain absolute address."""
    return uri if _PLAIN_URL.fullmatch(uri) else str(_urljoin(base, uri))


def _name(el: Any) -> str:
    """feedparser's name for an element: `dc_date`, `content_encoded`, `title`…"""
    tag = el.tag
    if tag[0] != "{":
        return str(tag).lower()
    uri, _, local = tag[1:].partition("}")
    low = uri.lower()
    if "backend.userland.com/rss" in low:
        low = "http://backend.userland.com/rss"
    prefix = _PREFIXES.get(low, el.prefix)
    return f"{prefix.lower()}_{local.lower()}" if prefix else local.lower()


def _handled(name: str) -> bool:
    return hasattr(_FeedParserMixin, f"_start_{name}") or hasattr(_FeedParserMixin, f"_end_{name}")


def _check_ignored(el: Any) -> None:
    """An element feedparser ignores must not hide one it does not (say, a title)."""
    for child in el.iter():
        if isinstance(child.tag, str) and child is not el and _handled(_name(child)):
            raise _Unsure(f"<{child.tag}> inside <{el.tag}>")


def _lang(el: Any, inherited: str | None) -> str | None:
    lang = el.get(_XML_LANG)
    if lang == "":
        return None
    return (lang or inherited or "").replace("_", "-") or None


class _Reader:
    """Reads one document's elements into ParsedFeed/ParsedEntry values, applying to
    each text what feedparser's `pop` does (for a document it read as UTF-8, the repair
    of double-encoded text)."""

    def __init__(self, base: str, repair: bool) -> None:
        self.base = base
        self.repair = repair

    def value(self, text: str | None) -> str:
        out = (text or "").strip()
        if not out.isascii():
            if self.repair:
                with suppress(UnicodeEncodeError, UnicodeDecodeError):
                    # UTF-8 once read as Latin-1 and saved again
                    out = out.encode("iso-8859-1").decode("utf-8")
            out = out.translate(_cp1252)
        return out

    def leaf(self, el: Any) -> str:
        if len(el):
            raise _Unsure(f"markup inside <{el.tag}>")
        text = el.text
        if text and "<" in text:
            if _HOSTILE.search(text):
                raise _Unsure(f"comments, scripts or styles in <{el.tag}>")
            low = text.lower()
            if low.count("<iframe") > low.count("</iframe"):  # the rest would be its content
                raise _Unsure(f"an unclosed iframe in <{el.tag}>")
        return self.value(text)

    def markup(self, el: Any) -> str:
        """Text holding HTML (a title, a description, a content)."""
        kind = (el.get("type") or "html").lower()
        if (
            kind not in ("html", "text/html", "text", "text/plain")
            or el.get("src")
            or el.get("mode")
        ):
            raise _Unsure(f"<{el.tag}> of type {kind}")
        out = self.leaf(el)
        if "=" in out and _RELATIVE.search(out):  # feedparser would rewrite these
            raise _Unsure("relative URIs in markup")
        return out

    def link(self, el: Any) -> str:
        """An RSS <link> holds its URI as text; an Atom one in `href`."""
        if el.tag == "link" and not el.attrib:
            return self.leaf(el)
        if (
            len(el)
            or el.get("rel", "alternate") != "alternate"
            or (el.get("type") or "text/html") not in ("text/html", "application/xhtml+xml")
        ):
            raise _Unsure("a link that is not the alternate one")
        return (el.get("href") or "").strip()

    def author(self, el: Any) -> str:
        if len(el) == 0:
            return self.leaf(el)
        if len(el) != 1 or el[0].tag != f"{{{_ATOM}}}name":
            raise _Unsure("an author with more than a name")
        return self.leaf(el[0])

    def item(self, item: Any, language: str | None) -> ParsedEntry:
        found: dict[str, str] = {}
        permalink = True
        for child in item:
            if not isinstance(child.tag, str):
                continue
            name = _name(child)
            kind = _READ.get(name)
            if kind is None:
                if name in _INERT:
                    if len(child):
                        raise _Unsure(f"markup inside <{child.tag}>")
                elif _handled(name):
                    raise _Unsure(f"element <{child.tag}>")
                else:
                    _check_ignored(child)
                continue
            if kind in found:  # which of two wins differs from element to element
                raise _Unsure(f"two <{child.tag}> elements")
            if kind == "link":
                found[kind] = self.link(child)
            elif kind in ("summary", "content", "title"):
                found[kind] = self.markup(child)
            elif kind == "author":
                found[kind] = self.author(child)
            else:
                found[kind] = self.leaf(child)
            if name == "guid":
                permalink = child.get("isPermaLink", "true") == "true"
            if not found[kind] and kind in ("link", "guid"):
                raise _Unsure(f"an empty <{child.tag}>")

        def date(kind: str) -> Any:
            value = found.get(kind)
            return struct_date(_parse_date(value)) if value else None

        guid = found.get("guid")
        if guid and permalink:
            guid = _join(self.base, guid)
        link = found.get("link")
        if link is not None:
            link = _join(self.base, link)
            if item.tag == "item":  # feedparser's repair of query strings in RSS links
                link = _QUERY_REF.sub(r"&\g<1>", link.replace("&amp;", "&"))
        elif guid and permalink:
            link = guid
        return ParsedEntry(
            guid=guid or None,
            link=link or None,
            title=found.get("title", ""),
            summary_html=found.get("summary", ""),
            content_html=found.get("content", ""),
            published=date("published") or date("created"),
            updated=date("updated"),
            author=found.get("author") or None,
            language=_lang(item, language),
        )

    def feed(
        self, head: dict[str, str], language: str | None, version: str, entries: list[ParsedEntry]
    ) -> ParsedFeed:
        link, ttl = head.get("link"), head.get("ttl")
        return ParsedFeed(
            title=head.get("title") or None,
            link=_urljoin(self.base, link) if link else None,
            language=language or None,
            ttl_minutes=int(ttl) if ttl and ttl.isdigit() else None,
            version=version,
            entries=entries,
        )

    def rss(self, root: Any) -> ParsedFeed:
        channel = root.find("channel")
        if channel is None or len(root) != 1:
            raise _Unsure("not a single channel")
        language = root_language = _lang(root, None)
        declared: str | None = None
        head: dict[str, str] = {}
        entries: list[ParsedEntry] = []
        for child in channel:
            if not isinstance(child.tag, str):
                continue
            tag = child.tag
            if tag == "item":
                entries.append(self.item(child, _lang(child, language)))
            elif tag in ("title", "link", "ttl") and tag not in head:
                head[tag] = self.leaf(child)
            elif tag in (f"{_DC}language", f"{_DC}title") or tag.startswith(_RDF):
                raise _Unsure("channel metadata feedparser maps onto title or language")
            elif tag == "language":
                # feedparser takes <language> as the language of what follows it.
                declared = self.leaf(child)
                language = declared.replace("_", "-") or language
        return self.feed(head, declared or root_language, "rss20", entries)

    def atom(self, root: Any) -> ParsedFeed:
        language = _lang(root, None)
        head: dict[str, str] = {}
        entries: list[ParsedEntry] = []
        links = f"{{{_ATOM}}}link"
        for child in root:
            if not isinstance(child.tag, str):
                continue
            tag = child.tag
            if tag == f"{{{_ATOM}}}entry":
                for other in [
                    c
                    for c in child
                    if c.tag == links and not len(c) and c.get("rel", "alternate") != "alternate"
                ]:
                    child.remove(other)  # enclosures, replies, self: none of our fields
                entries.append(self.item(child, _lang(child, language)))
            elif tag == f"{{{_ATOM}}}title" and "title" not in head:
                head["title"] = self.markup(child)
            elif tag == f"{{{_ATOM}}}id" and "id" not in head:
                head["id"] = self.leaf(child)  # feedparser's feed link when none is given
            elif (
                tag == links and "link" not in head and child.get("rel", "alternate") == "alternate"
            ):
                head["link"] = (child.get("href") or "").strip()
        head.setdefault("link", head.get("id", ""))
        return self.feed(head, language, "atom10", entries)
