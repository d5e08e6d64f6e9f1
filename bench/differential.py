"""Every document of the peer parsers' test suites (../shared/corpus/peer-suites) through
both readers: where the lxml fast path takes a document, what the pipeline would store
from it must equal what feedparser gives (feed title and language, every normalized
article). Prints one line per difference and a summary; exit 1 if any is left.

    python bench/differential.py [--corpus DIR] [--verbose]

Deliberate differences, each documented in docs/design.md, are listed in DELIBERATE.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitor.parse import ParsedFeed

HERE = Path(__file__).resolve().parent
DEFAULT = HERE.parent.parent / "shared" / "corpus" / "peer-suites"
URL = "https://feeds.example.org/feed.xml"
NOW = datetime(2026, 11, 25, tzinfo=UTC)
CONTENT_TYPES = (None, "application/rss+xml; charset=utf-8", "text/xml")
# Differences known and left, each with its reason (docs/design.md, "The fast path"):
# they are reported apart and do not fail the run; any other difference does.
KNOWN = {
    "kurtmckee+feedparser/tests/encoding/double-encoded-html.xml": (
        "mojibake repair under text/xml or no Content-Type: feedparser repairs, the fast "
        "path keeps the bytes"
    ),
    "kurtmckee+feedparser/tests/wellformed/atom10/entry_link_rel_enclosure_no_href.xml": (
        "an enclosure link without href: feedparser takes the enclosure as the entry link"
    ),
    "kurtmckee+feedparser/tests/wellformed/namespace/unknown-namespace.xml": (
        "an item in an unknown namespace: feedparser reads an empty entry from it"
    ),
    "kurtmckee+feedparser/tests/wellformed/sanitize/acceptable_element_br.xml": (
        "<br><br> kept as written; feedparser folds it to one"
    ),
    "w3c+feedvalidator/testcases/atom/4.1.3.1/type-text-html.xml": (
        'type="text/html" content, whose inner title feedparser reads as text'
    ),
    "w3c+feedvalidator/testcases/rss/must/rdf_Description.xml": (
        "a channel title inside rdf:Description, read by feedparser only"
    ),
}


def stored(feed: ParsedFeed) -> dict[str, object]:
    """What the pipeline keeps of a parsed document (prepare.read_document's view)."""
    from monitor.normalize import html_to_text, normalize_entry

    articles = [normalize_entry(e, URL, feed.language, NOW) for e in feed.entries]
    return {
        "title": html_to_text(feed.title, titled=True)[:300] if feed.title else None,
        "language": feed.language,
        "articles": [tuple(getattr(a, k) for k in a.__slots__) for a in articles],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    if not args.corpus.exists():
        print(f"skipped: the peer suites are absent ({args.corpus})")
        return 0
    from monitor.errors import ParseError
    from monitor.parse import parse_with_feedparser
    from monitor.parse.fast import parse_fast

    docs = sorted(
        p
        for p in args.corpus.rglob("*")
        if p.is_file() and p.suffix in (".xml", ".rss", ".atom", ".rdf", ".feed")
    )
    taken = differing = known = 0
    fields: dict[str, int] = {}
    for path in docs:
        body = path.read_bytes()
        for ctype in CONTENT_TYPES:
            try:
                fast = parse_fast(body, URL, ctype)
            except Exception as exc:  # the fast path must never raise
                print(f"RAISED {path.relative_to(args.corpus)} [{ctype}]: {exc!r}")
                differing += 1
                continue
            if fast is None:
                continue
            taken += 1
            try:
                slow = parse_with_feedparser(body, URL, ctype)
            except ParseError:
                print(f"DIFF {path.relative_to(args.corpus)} [{ctype}]: feedparser refuses it")
                differing += 1
                continue
            a, b = stored(fast), stored(slow)
            bad = [k for k in a if a[k] != b[k]]
            if bad and str(path.relative_to(args.corpus)) in KNOWN:
                known += 1
                continue
            if bad:
                differing += 1
                for k in bad:
                    fields[k] = fields.get(k, 0) + 1
                print(f"DIFF {path.relative_to(args.corpus)} [{ctype}]: {', '.join(bad)}")
                if args.verbose:
                    for k in bad:
                        print(f"    fast {k}: {str(a[k])[:300]}\n    slow {k}: {str(b[k])[:300]}")
    print(
        f"differential: {len(docs)} documents, {taken} (document, content type) taken by the "
        f"fast path, {differing} differing {fields or ''}, {known} known differences "
        f"in {len(KNOWN)} documents"
    )
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
