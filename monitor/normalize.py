"""Turn parsed entries into normalized articles: canonical URLs, plain text, UTC dates,
stable ids and content hashes. Pure: no I/O."""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import nh3

from monitor.parse import ParsedEntry

# Query parameters that identify a campaign or a click, never the article.
_TRACKING_PREFIXES = ("utm_", "mc_", "pk_", "mtm_", "at_", "hsa_")
_TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "gclsrc",
        "yclid",
        "msclkid",
        "igshid",
        "twclid",
        "ocid",
        "cmpid",
        "cmp",
        "ito",
        "ns_mchannel",
        "ns_source",
        "ns_campaign",
        "ns_linkname",
        "ns_fee",
        "sr_share",
        "ref",
        "ref_src",
        "referrer",
        "smid",
        "share",
        "_ga",
        "_gl",
        "amp",
        "outputtype",
        "rss",
        "rssfeed",
        "from",
        "utm",
    }
)
_BLOCK = re.compile(
    r"<(/?(?:p|div|br|hr|li|ul|ol|dl|dt|dd|h[1-6]|table|caption|thead|tbody|tfoot|tr|td|th"
    r"|blockquote|pre|section|article|aside|header|footer|nav|main|address|figure|figcaption"
    r"|details|summary|picture|video|audio)\b)",
    re.IGNORECASE,
)
# Elements whose content is never article text; removed with everything inside them.
_DROP_CONTENT = {
    "script",
    "style",
    "noscript",
    "iframe",
    "textarea",
    "title",
    "template",
    "object",
    "embed",
    "svg",
    "math",
    "select",
    "button",
    "canvas",
    "head",
}
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_LATIN = re.compile(r"[A-Za-z]")
# A feed may date an entry slightly ahead (clock skew); beyond this it is not believed.
FUTURE_TOLERANCE = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Article:
    """One feed entry, normalized; the unit stored, matched and clustered."""

    guid: str
    url: str | None
    canonical_url: str | None
    title: str
    text: str
    summary_html: str
    language: str | None
    published_at: datetime
    updated_at: datetime | None
    date_estimated: bool
    content_hash: str
    author: str | None = None


def canonical_url(url: str, base: str | None = None) -> str:
    """The URL with tracking parameters, fragments and AMP variants removed.

    Two links that reach the same article through a newsletter, a share button or an AMP
    page map to one string, which is what dedupe compares. Idempotent; never raises on a
    malformed port or host (the URL is then kept as given, minus its fragment).
    """
    url = url.strip()
    if base:
        url = urljoin(base, url)
    parts = urlsplit(url)
    scheme = (parts.scheme or "http").lower()
    host = (parts.hostname or "").lower().rstrip(".")
    while host.startswith("amp."):
        host = host[4:]
    try:
        port = parts.port
    except ValueError:  # "example.com:abc" or an out-of-range port
        return urlunsplit((scheme, parts.netloc.lower(), parts.path, parts.query, ""))
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    path = re.sub(r"/+", "/", parts.path or "/")
    while True:  # AMP variants may be stacked: /story.amp/, /amp/amp
        before = path
        path = path.rstrip("/") or "/"
        path = re.sub(r"/amp(?=/|$)", "", path) or "/"
        path = path.removesuffix(".amp") or "/"
        if path == before:
            break
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not k.lower().startswith(_TRACKING_PREFIXES) and k.lower() not in _TRACKING_PARAMS
    ]
    query.sort()
    return urlunsplit((scheme, host, path, urlencode(query), ""))


def squeeze(text: str) -> str:
    """Runs of whitespace as one space, none at the ends. The same as substituting \\s+
    and stripping (both use Unicode's whitespace; tests/test_normalize.py checks every
    code point), at a quarter of the cost."""
    return " ".join(text.split())


# Bounds on stored values, the same on every database (the column sizes of models.Entry;
# text columns are bounded too, so no feed can put megabytes into an alert).
MAX_URL = 2048
MAX_GUID = 1024
MAX_AUTHOR = 300
MAX_TITLE = 1000
MAX_TEXT = 100_000

# Bounds on the markup of one field that the sanitizer reads. html5ever (inside nh3) takes
# time quadratic in nesting depth: 16,000 nested <div>s cost a second, a megabyte of them
# minutes. Markup nested deeper than MAX_DEPTH is not prose: only its text is kept.
MAX_HTML = 512 * 1024
MAX_DEPTH = 256
_TAG = re.compile(r"<(/?)([A-Za-z][^\s/>]*)[^>]*?(/?)>")
_VOID = frozenset("area base br col embed hr img input link meta param source track wbr".split())


def tame(fragment: str) -> str:
    """`fragment` cut to MAX_HTML characters, its tags dropped if it nests deeper than
    MAX_DEPTH: linear work, so the sanitizer after it stays fast on hostile input."""
    fragment = fragment[:MAX_HTML]
    if fragment.count("<") <= MAX_DEPTH:
        return fragment
    depth = 0
    for m in _TAG.finditer(fragment):
        if m.group(1):
            depth = max(0, depth - 1)
        elif not m.group(3) and m.group(2).lower() not in _VOID:
            depth += 1
            if depth > MAX_DEPTH:
                return _TAG.sub(" ", fragment)
    return fragment


# A "<" that starts no tag ("A<B", "x < 3"): text, not markup the sanitizer would eat.
_LONE_LT = re.compile(r"<(?![A-Za-z/!?][^<>]*>)")
# Markup that appears only once entities are decoded (&lt;script&gt;): active or embedding
# elements are dropped from the text too, so no consumer that renders it as HTML runs it.
_DECODED_TAG = re.compile(
    r"</?(?:script|style|iframe|frame|frameset|object|embed|applet|svg|math|img|link|meta|"
    r"base|form|input|button|textarea|select|a|video|audio|source)\b[^>]*>",
    re.IGNORECASE,
)


def html_to_text(fragment: str, titled: bool = False) -> str:
    """Plain text of an HTML fragment: tags and script/style bodies gone, entities decoded,
    active markup that entities spelled out removed. `titled`: a title, plain text by the
    RSS rules though it may hold markup, so a "<" that starts no tag ("A<B") is text."""
    if not fragment:
        return ""
    if "<" not in fragment and "&" not in fragment:
        return squeeze(fragment[:MAX_HTML].replace("\0", ""))
    fragment = tame(fragment)
    if titled:
        fragment = _LONE_LT.sub("&lt;", fragment)
    spaced = _BLOCK.sub(r" <\1", fragment)
    text = html.unescape(nh3.clean(spaced, tags=set(), clean_content_tags=_DROP_CONTENT))
    if "<" in text:
        text = _DECODED_TAG.sub(" ", text)
    return squeeze(text.replace("\0", ""))


def sanitize_html(fragment: str) -> str:
    """Feed HTML made safe to show: no scripts, frames, event handlers or remote images."""
    tags = {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "p",
        "br",
        "ul",
        "ol",
        "li",
        "blockquote",
        "q",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "code",
        "pre",
        "span",
        "small",
        "sub",
        "sup",
    }
    return nh3.clean(
        tame(fragment),
        tags=tags,
        attributes={"a": {"href", "title"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer",
    )


def guess_language(text: str, declared: str | None) -> str | None:
    """The declared language's primary tag, else a guess from the script (ru vs. en)."""
    if declared:
        return declared.split("-")[0].split("_")[0].lower()[:8] or None
    if text.isascii():  # the common case, without counting letters
        return "en" if _LATIN.search(text) else None
    cyr = len(_CYRILLIC.findall(text))
    lat = len(_LATIN.findall(text))
    if cyr + lat == 0:
        return None
    return "ru" if cyr > lat else "en"


def content_hash(title: str, text: str) -> str:
    """Hash of what a reader sees; identical copies under other URLs share it."""
    basis = squeeze(f"{title}\n{text}".casefold())
    return hashlib.sha256(basis.encode("utf-8")).hexdigest()


def normalize_entry(
    entry: ParsedEntry, feed_url: str, feed_language: str | None, now: datetime
) -> Article:
    """Normalize one entry.

    Dates: published, else updated, else `now` (marked estimated); a date more than
    FUTURE_TOLERANCE ahead of `now` is replaced by `now`. Ids: the guid, else the canonical
    link, else a hash of title and text, so a guid-less entry keeps its identity across polls.
    """
    url = _web_address(urljoin(feed_url, entry.link)) if entry.link else None
    canon = canonical_url(url) if url else None
    body_html = _body_html(entry)
    title = html_to_text(entry.title, titled=True)
    text = html_to_text(body_html)
    published, updated, estimated = entry_dates(entry, now)
    chash = content_hash(title, text)
    guid = _guid(entry.guid or canon or f"sha256:{chash}")
    author = squeeze(entry.author.replace("\0", ""))[:MAX_AUTHOR] if entry.author else None
    return Article(
        guid=guid,
        url=url,
        canonical_url=canon if canon and len(canon) <= MAX_URL else None,
        title=title[:MAX_TITLE],
        text=text[:MAX_TEXT],
        summary_html=sanitize_html(body_html).replace("\0", ""),
        language=guess_language(f"{title} {text}", entry.language or feed_language),
        published_at=published,
        updated_at=updated,
        date_estimated=estimated,
        content_hash=chash,
        author=author or None,
    )


def _guid(raw: str) -> str:
    if len(raw) > MAX_GUID:  # kept whole as a hash: a cut guid could meet another's
        raw = "sha256:" + hashlib.sha256(raw.encode("utf-8", "replace")).hexdigest()
    return raw.replace("\0", "")


def draft_entry(
    entry: ParsedEntry, feed_url: str, feed_language: str | None, now: datetime
) -> Draft | None:
    """An entry as a Draft: its guid and content hash as `normalize_entry` makes them, at
    a fraction of the cost (no link, sanitizing or language), for a document whose
    entries are mostly stored already. None when that is not cheaper or cannot be told:
    an entry without a guid (its guid is its link's) or without title and text (whether
    it is kept at all depends on its link)."""
    if not entry.guid:
        return None
    title = html_to_text(entry.title, titled=True)
    text = html_to_text(_body_html(entry))
    if not title and not text:
        return None
    published, updated, estimated = entry_dates(entry, now)
    return Draft(
        _guid(entry.guid),
        content_hash(title, text),
        published,
        updated,
        estimated,
        entry,
        feed_url,
        feed_language,
        now,
    )


def _body_html(entry: ParsedEntry) -> str:
    """The entry's fuller text: its content, else its summary."""
    if len(entry.content_html) > len(entry.summary_html):
        return entry.content_html
    return entry.summary_html


def entry_dates(entry: ParsedEntry, now: datetime) -> tuple[datetime, datetime | None, bool]:
    """(published, updated, estimated) as normalize_entry dates an entry."""
    published = entry.published or entry.updated
    estimated = published is None
    if published is None or published > now + FUTURE_TOLERANCE:
        published = now
    updated = entry.updated if entry.updated and entry.updated <= now + FUTURE_TOLERANCE else None
    return published, updated, estimated


def source_key(entry: ParsedEntry, feed_url: str) -> bytes:
    """A digest of everything an entry's guid and content hash are made from, as the feed
    wrote it: two entries with the same key normalize to the same guid and hash."""
    h = hashlib.blake2b(digest_size=16)
    for part in (feed_url, entry.guid, entry.link, entry.title, _body_html(entry)):
        h.update(b"\0" if part is None else part.encode("utf-8", "surrogatepass") + b"\1")
    return h.digest()


@dataclass(frozen=True, slots=True)
class Draft:
    """An entry known by its guid and content hash (from `Memo`, or `draft_entry`) without
    being normalized: most entries of a changed document are stored already as they are,
    and normalizing them (HTML to text and sanitizing, twice nh3; the link's URL work) was
    most of reading the document. `complete` normalizes it when it does need storing."""

    guid: str
    content_hash: str
    published_at: datetime
    updated_at: datetime | None
    date_estimated: bool
    entry: ParsedEntry
    feed_url: str
    feed_language: str | None
    now: datetime

    def complete(self) -> Article:
        return normalize_entry(self.entry, self.feed_url, self.feed_language, self.now)


def _web_address(url: str) -> str | None:
    """An http(s) address that fits its column, else None: `javascript:` and `data:` links
    are not stored, and neither is a URL longer than any browser takes."""
    url = url.strip().replace("\0", "")
    if not url.lower().startswith(("http://", "https://")) or len(url) > MAX_URL:
        return None
    return url


A = TypeVar("A", bound="Article | Draft")


def _stamp(a: Article | Draft) -> datetime:
    return a.updated_at or a.published_at


def dedupe(articles: list[A]) -> list[A]:
    """One article per guid within a document (the latest revision wins), order kept."""
    best: dict[str, A] = {}
    for a in articles:
        prev = best.get(a.guid)
        if prev is None or _stamp(a) > _stamp(prev):
            best[a.guid] = a
    return list(best.values())
