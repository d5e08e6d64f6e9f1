"""Time the web desk's pages on a large database: by default 1,000,000 entries and
100,000 developments, the scale issue 16 asks the desk to answer in under 200 ms (p95).

The database is generated once (synthetic news: a Zipf vocabulary of English and Russian
words, 1,000 outlets, a year of dates, three reports a development on average, the rest
off topic) and kept at --db for later runs; the search index is caught up before timing.
Then the real desk (uvicorn on loopback, as `monitor web` serves it) answers a mix of
requests, each --requests times, and the latency of each kind is printed.

    python bench/desk.py [--entries 1000000] [--developments 100000] [--db PATH]
        [--database-url URL] [--requests 30]
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, insert, select, text

from monitor.config import Settings
from monitor.db import Database
from monitor.models import Alert, Development, Entry, Feed, TopicMatch
from monitor.store import search
from monitor.web.serve import Desk

TOPICS = ["russia-israel", "syria", "iran-nuclear", "hezbollah", "diaspora", "regional-security"]
START = datetime(2025, 1, 1, tzinfo=UTC)
LATIN = "bcdfghklmnprstvz"
VOWELS = "aeiou"


def vocabulary(rng: random.Random, n: int, cyrillic: bool) -> list[str]:
    letters = "бвгдклмнпрстфхц" if cyrillic else LATIN
    vowels = "аеиоу" if cyrillic else VOWELS
    return [
        "".join(rng.choice(letters) + rng.choice(vowels) for _ in range(rng.randint(2, 4)))
        for _ in range(n)
    ]


def generate(db: Database, entries: int, developments: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    words = {"en": vocabulary(rng, 20_000, False), "ru": vocabulary(rng, 20_000, True)}
    cumulative = list(itertools.accumulate(1 / (k + 1) for k in range(20_000)))  # Zipf
    span = 365 * 24 * 3600

    def phrase(lang: str, n: int) -> str:
        return " ".join(rng.choices(words[lang], cum_weights=cumulative, k=n)).capitalize()

    with db.session() as s:
        s.execute(
            insert(Feed),
            [
                {"url": f"https://outlet{k}.example/feed", "name": f"Outlet {k}"}
                for k in range(1000)
            ],
        )
        feed_ids = list(s.scalars(select(Feed.id)))
    t0 = time.monotonic()
    dev_rows = []
    for _ in range(developments):
        seen = START + timedelta(seconds=rng.randrange(span))
        dev_rows.append(
            {
                "title": phrase("en", 9),
                "topics": rng.sample(TOPICS, rng.choice((1, 1, 2))),
                "score": round(rng.uniform(1, 3), 3),
                "state": "alerted" if rng.random() < 0.4 else "history",
                "first_seen_at": seen,
                "last_seen_at": seen + timedelta(hours=rng.randint(0, 48)),
                "event_at": seen,
            }
        )
    with db.session() as s:
        for i in range(0, len(dev_rows), 10_000):
            s.execute(insert(Development), dev_rows[i : i + 10_000])
        devs = list(s.execute(select(Development.id, Development.first_seen_at, Development.state)))
    print(f"{developments} developments in {time.monotonic() - t0:.1f} s", flush=True)
    members = min(entries, developments * 3)
    batch: list[dict[str, Any]] = []
    done = 0
    t0 = time.monotonic()
    for n in range(entries):
        lang = "ru" if rng.random() < 0.25 else "en"
        on_topic = n < members
        if on_topic:
            dev_id, seen, _ = devs[n % len(devs)]
            published = seen + timedelta(minutes=rng.randint(0, 600))
        else:
            dev_id, published = None, START + timedelta(seconds=rng.randrange(span))
        batch.append(
            {
                "feed_id": rng.choice(feed_ids),
                "guid": f"g{n}",
                "url": f"https://news.example/{n}",
                "canonical_url": f"https://news.example/{n}",
                "title": phrase(lang, 9),
                "summary_html": "",
                "text": phrase(lang, 45),
                "language": lang,
                "content_hash": f"{n:064x}",
                "published_at": published,
                "first_seen_at": published,
                "last_seen_at": published,
                "score": 1.5 if on_topic else 0.0,
                "relevant": on_topic,
                "join_reason": "similar" if on_topic else "off-topic",
                "development_id": dev_id,
            }
        )
        if len(batch) == 20_000 or n == entries - 1:
            with db.session() as s:
                s.execute(insert(Entry), batch)
            done += len(batch)
            batch = []
            print(f"\r{done:,} entries ({time.monotonic() - t0:.0f} s)", end="", flush=True)
    print()
    with db.session() as s:
        first = dict(
            s.execute(
                select(Entry.development_id, func.min(Entry.id))
                .where(Entry.development_id.is_not(None))
                .group_by(Entry.development_id)
            ).all()
        )
        rows = [{"development_id": d, "entry_id": e} for d, e in first.items()]
        for i in range(0, len(rows), 20_000):
            s.execute(
                insert(TopicMatch),
                [
                    {"entry_id": r["entry_id"], "topic": rng.choice(TOPICS), "score": 1.5}
                    for r in rows[i : i + 20_000]
                ],
            )
        alerted = [
            {
                "public_id": f"msg_{dev_id:024x}",
                "kind": "development",
                "development_id": dev_id,
                "created_at": seen,
                "payload": {},
            }
            for dev_id, seen, state in devs
            if state == "alerted"
        ]
        for i in range(0, len(alerted), 20_000):
            s.execute(insert(Alert), alerted[i : i + 20_000])
        # what developments.py keeps as reports join, as migration 0010 backfills it
        s.execute(text(migration_0010().BACKFILL[s.get_bind().dialect.name]))
    t0 = time.monotonic()
    total = 0
    while True:
        with db.session() as s:
            n = search.catch_up(s, 50_000)
        total += n
        print(f"\rsearch index: {total:,} entries ({time.monotonic() - t0:.0f} s)", end="")
        if n == 0:
            break
    print()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("VACUUM ANALYZE" if db.engine.dialect.name == "postgresql" else "ANALYZE"))


def migration_0010() -> Any:
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "migrations/versions/0010_desk_indexes.py"
    spec = importlib.util.spec_from_file_location("migration_0010", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def timed(client: httpx.Client, path: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        r = client.get(path)
        out.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--developments", type=int, default=100_000)
    ap.add_argument("--db", type=Path, default=Path("/tmp/monitor-desk-bench.db"))
    ap.add_argument("--database-url", help="PostgreSQL instead of the SQLite file --db")
    ap.add_argument("--requests", type=int, default=30)
    args = ap.parse_args()
    url = args.database_url or f"sqlite:///{args.db}"
    db = Database(url)
    db.upgrade()
    with db.sessions() as s:
        have = s.scalar(select(func.count()).select_from(Entry)) or 0
    if have < args.entries:
        if have:
            raise SystemExit(f"{url} holds {have} entries, not {args.entries}: remove it first")
        generate(db, args.entries, args.developments)
    with db.sessions() as s:
        feed = s.scalar(select(Feed.id).order_by(Feed.id).offset(500))
        common = s.scalar(select(Entry.title).where(Entry.language == "en").limit(1)) or "a"
        rare = s.scalar(select(Entry.title).order_by(Entry.id.desc()).limit(1)) or "a"
    word = common.split()[0].lower()
    rare_words = " ".join(rare.split()[-2:])
    settings = Settings(database={"url": url}, web={"listen": "127.0.0.1:0"})
    desk = Desk(settings, db)
    assert desk.start(), "the desk did not start"
    port = desk.server.servers[0].sockets[0].getsockname()[1]
    paths = {
        "developments, first page": "/",
        "developments, page 500": "/?page=500",
        "developments, one topic": "/?topic=syria",
        "developments, one outlet": f"/?outlet={feed}",
        "developments, Russian": "/?language=ru",
        "developments, one month": "/?since=2025-06-01&until=2025-06-30",
        "developments, title words": f"/?q={word}",
        "API developments": "/api/developments",
        "search, a common word": f"/search?q={word}",
        "search, two rare words": f"/search?q={rare_words}",
        "API search": f"/api/search?q={word[:3]}",
        "a development": "/developments/5000",
    }
    print(f"{url}: {args.entries:,} entries, {args.developments:,} developments")
    print(f"{'request':28} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    worst = 0.0
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        for name, path in paths.items():
            timed(client, path, 2)  # warm the caches
            ms = sorted(timed(client, path, args.requests))
            p95 = ms[max(0, int(len(ms) * 0.95) - 1)]
            worst = max(worst, p95)
            print(f"{name:28} {statistics.median(ms):8.1f} {p95:8.1f} {ms[-1]:8.1f}", flush=True)
    desk.stop()
    db.dispose()
    print(f"worst p95: {worst:.0f} ms ({'under' if worst < 200 else 'OVER'} 200 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
