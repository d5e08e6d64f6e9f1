#!/usr/bin/env python3
"""Fuzz the document path (parse → normalize → match) with mutated real feeds.

Usage: python bench/fuzz_parse.py [--seconds 60 | --iterations N] [--seed 1]

Each round takes a real feed from ../shared/corpus/real-feeds, applies a few random byte-level and
markup-level mutations (flips, cuts, repeats, stray `<`/`&`, swapped encodings, a BOM,
deep nesting, an entity declaration, a huge attribute) and runs the same `prepare` a poll
runs. The only acceptable outcomes are a feed's articles or a "not a feed" error; anything
else (an exception, a naive date, active content in sanitized HTML) is a finding: the
mutated document is saved under /tmp and the run exits 1. CI runs a short budget of it
(tests/test_parse.py); run it longer here after touching parse or normalize.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from monitor.match import Matcher, load_profile
from monitor.prepare import Prepared, prepare
from monitor.rows import ENTRY_COLUMNS

# The shared real-feed corpus beside the checkout (../shared/corpus/real-feeds).
FEEDS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "real-feeds"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ACTIVE = re.compile(rb"<script|<iframe|\son[a-z]+\s*=|javascript:", re.IGNORECASE)

SNIPPETS = [
    b"<",
    b">",
    b"&",
    b"&amp;",
    b"&#0;",
    b"&#xD800;",
    b"]]>",
    b"<![CDATA[",
    b"</item>",
    b"<item>",
    b"\x00",
    b"\xff\xfe",
    b"\xef\xbb\xbf",
    b"<script>alert(1)</script>",
    b"<img src=x onerror=alert(1)>",
    b"<pubDate>Thu, 31 Feb 99999 25:61:00 XYZ</pubDate>",
    b'<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">]>',
    "Израиль".encode("cp1251"),
    "Израиль".encode(),
    b"<title>" + b"A" * 100_000 + b"</title>",
]


def mutate(body: bytes, rng: random.Random) -> bytes:
    data = bytearray(body)
    for _ in range(rng.randint(1, 4)):
        if not data:
            data.extend(rng.choice(SNIPPETS))
            continue
        at = rng.randrange(len(data))
        op = rng.randrange(7)
        if op == 0:  # flip bytes
            for i in range(at, min(len(data), at + rng.randint(1, 8))):
                data[i] = rng.randrange(256)
        elif op == 1:  # cut a span
            del data[at : at + rng.randint(1, 2000)]
        elif op == 2:  # repeat a span
            data[at:at] = data[at : at + rng.randint(1, 500)] * rng.randint(2, 20)
        elif op == 3:  # insert a hostile snippet
            data[at:at] = rng.choice(SNIPPETS)
        elif op == 4:  # truncate
            del data[at:]
        elif op == 5:  # nest deeply
            data[at:at] = b"<a>" * 2000
        else:  # re-encode as another charset (mojibake for the declared one)
            text = bytes(data).decode("utf-8", "replace")
            data = bytearray(
                text.encode(rng.choice(["cp1251", "koi8-r", "latin-1", "utf-16"]), "replace")
            )
    return bytes(data)


def check(p: Prepared) -> str | None:
    """What is wrong with an outcome, or None."""
    if p.error is not None:
        return None if p.error.startswith("not a feed") else f"unexpected error: {p.error}"
    html = ENTRY_COLUMNS.index("summary_html")
    dates = [a.published_at for a in p.articles] + p.quiet.published
    for published in dates:
        if published.tzinfo is None or published.utcoffset() != UTC.utcoffset(None):
            return f"date not in UTC: {published!r}"
    for summary in [a.summary_html for a in p.articles] + [r[html] for r in p.quiet.rows]:
        if ACTIVE.search(summary.encode()):
            return f"active content survived sanitizing: {summary[:200]!r}"
    for a in p.articles:
        if a.guid not in p.matches:
            return f"entry {a.guid!r} was not matched"
    if len(p.articles) + len(p.quiet.rows) != len(p.hashes):
        return "an entry new to an empty database was neither matched nor encoded"
    return None


def run(seconds: float | None, iterations: int | None, seed: int) -> int:
    rng = random.Random(seed)
    corpus = [(f.name, f.read_bytes()) for f in sorted(FEEDS.glob("*.xml"))]
    if not corpus:
        print(f"skipped: the shared corpus {FEEDS} is absent")
        return 0
    matcher = Matcher(load_profile())
    deadline = time.monotonic() + seconds if seconds else None
    done = 0
    while (iterations is None or done < iterations) and (
        deadline is None or time.monotonic() < deadline
    ):
        name, body = rng.choice(corpus)
        doc = mutate(body, rng)
        try:
            problem = check(
                prepare(
                    doc,
                    "https://example.com/feed",
                    None,
                    "https://example.com/feed",
                    NOW,
                    matcher,
                    {},
                )
            )
        except Exception:
            problem = traceback.format_exc()
        if problem:
            out = Path(tempfile.mkdtemp(prefix="fuzz-")) / name
            out.write_bytes(doc)
            print(f"round {done}: {name}: {problem}\nsaved as {out}", file=sys.stderr)
            return 1
        done += 1
    print(f"fuzz: {done} mutated documents, no findings (seed {seed})")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float)
    ap.add_argument("--iterations", type=int)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.seconds is None and args.iterations is None:
        args.seconds = 60.0
    return run(args.seconds, args.iterations, args.seed)


if __name__ == "__main__":
    sys.exit(main())
