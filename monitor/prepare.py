"""The CPU-bound, pure half of processing a fetched feed: parse → normalize/dedupe → match.

A poll's cost is mostly here (feedparser, HTML to text, the matcher), and none of it needs
the database, so a large poll runs it in a pool of worker processes while the main process
fetches and stores: on a machine with two cores both work. A small poll prepares in the
calling process, since starting workers would cost more than it saves.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from monitor.cluster import features
from monitor.match import Matcher, MatchResult, load_profile
from monitor.normalize import Article, dedupe, normalize_entry
from monitor.parse import ParseError, parse_feed
from monitor.rows import QuietRows

log = logging.getLogger("monitor.prepare")

# Below this many feeds in one poll, preparing in-process is cheaper than a pool.
POOL_MIN_FEEDS = 16


@dataclass(frozen=True, slots=True)
class Prepared:
    """A feed document ready to store, or the reason it could not be read.

    `hashes` holds every article of the document (guid → content hash, one per guid) and
    `dates` the publication dates the feed gave. What needs storing is split in two: new
    articles no topic rule holds for, encoded for one bulk insert (`quiet`), and the rest,
    on topic or revisions of stored entries, as articles with their matches, oldest first.
    Articles stored unchanged are in neither. `against` is what the split assumed was
    stored (guid → hash, for this document's guids); the storing transaction checks it.
    """

    title: str | None = None
    language: str | None = None
    ttl_minutes: int | None = None
    hashes: dict[str, str] = field(default_factory=dict)
    dates: list[datetime] = field(default_factory=list)
    articles: list[Article] = field(default_factory=list)
    matches: dict[str, MatchResult] = field(default_factory=dict)
    quiet: QuietRows = field(default_factory=QuietRows)
    against: dict[str, str] = field(default_factory=dict)
    error: str | None = None


def prepare(body: bytes, url: str, content_type: str | None, feed_url: str, now: datetime,
            matcher: Matcher, known: dict[str, str], dialect: str) -> Prepared:
    """Parse `body` (fetched from `url`, configured as `feed_url`) and match its entries,
    except those `known` (guid → content hash) to be stored already as they are; quiet
    rows are encoded for the database `dialect` ("sqlite", "postgresql")."""
    try:
        parsed = parse_feed(body, url, content_type)
    except ParseError as exc:
        return Prepared(error=str(exc))
    normalized = (normalize_entry(e, feed_url, parsed.language, now) for e in parsed.entries)
    # An entry with no title, no text and no link (a broken item) carries nothing.
    articles = dedupe([a for a in normalized if a.title or a.text or a.url])
    articles.sort(key=lambda a: a.published_at)  # oldest first: first reports open events
    quiet = QuietRows()
    rest: list[Article] = []
    matches: dict[str, MatchResult] = {}
    for a in articles:
        stored = known.get(a.guid)
        if stored == a.content_hash:
            continue
        result = matcher.match_article(a)
        if stored is None and not result.scores:
            quiet.add(dialect, a, result, features(result, a.language, a.title))
        else:
            rest.append(a)
            matches[a.guid] = result
    return Prepared(title=parsed.title, language=parsed.language,
                    ttl_minutes=parsed.ttl_minutes,
                    hashes={a.guid: a.content_hash for a in articles},
                    dates=[a.published_at for a in articles if not a.date_estimated],
                    articles=rest, matches=matches, quiet=quiet,
                    against={a.guid: known[a.guid] for a in articles if a.guid in known})


# ------------------------------------------------------------- worker processes --

_worker_matcher: Matcher | None = None


def _start_worker(topics: Path | None, threshold: float | None) -> None:
    global _worker_matcher
    # Ctrl-C reaches the whole process group, and systemd signals the whole unit: the
    # parent decides when workers stop (and they exit when it is gone).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _worker_matcher = Matcher(load_profile(topics), threshold)


def _ping() -> None:
    """A no-op whose completion says a worker is up."""


def _prepare_in_worker(body: bytes, url: str, content_type: str | None, feed_url: str,
                       now: datetime, known: dict[str, str], dialect: str) -> Prepared:
    assert _worker_matcher is not None, "worker started without its matcher"
    return prepare(body, url, content_type, feed_url, now, _worker_matcher, known, dialect)


class Preparer:
    """Runs `prepare` in-process or in a lazily started process pool (`processes` workers;
    0 means always in-process). A worker that dies (say, killed for memory on a hostile
    document) fails that one feed with a clear error and the pool is started afresh."""

    def __init__(self, matcher: Matcher, topics: Path | None, threshold: float | None,
                 dialect: str, processes: int | None = None) -> None:
        self.matcher = matcher
        self.dialect = dialect
        self._initargs = (topics, threshold)
        self.processes = (os.cpu_count() or 1) if processes is None else processes
        self._pool: Executor | None = None
        self._warm: list[Future[None]] = []

    def use_pool(self, feeds: int) -> bool:
        return self.processes > 0 and feeds >= POOL_MIN_FEEDS

    def ready(self) -> bool:
        """Start the workers if need be; True once they can take work, False while they
        start or if they failed to (the next call then starts a fresh pool)."""
        self._executor()
        if any(f.done() and f.exception() is not None for f in self._warm):
            # A worker died starting up (say, signalled with the whole process group):
            # prepare in-process now; the next call starts a fresh pool.
            log.warning("parser workers failed to start; parsing in-process for now")
            self.close()
            return False
        return all(f.done() for f in self._warm)

    async def started(self) -> bool:
        """Start the workers if need be and wait until they can take work (a fraction of a
        second: importing the parser, compiling the profile); False if they failed to
        start, and the caller prepares in-process."""
        self._executor()
        if not all(f.done() for f in self._warm):
            await asyncio.wait([asyncio.wrap_future(f) for f in self._warm])
        return self.ready()

    def _executor(self) -> Executor:
        if self._pool is None:
            # spawn, not fork: the service has scheduler and database threads running.
            self._pool = ProcessPoolExecutor(
                self.processes, mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker, initargs=self._initargs)
            self._warm = [self._pool.submit(_ping) for _ in range(self.processes)]
        return self._pool

    async def prepare(self, body: bytes, url: str, content_type: str | None, feed_url: str,
                      now: datetime, known: dict[str, str], pooled: bool) -> Prepared:
        if not pooled:
            return prepare(body, url, content_type, feed_url, now, self.matcher, known,
                           self.dialect)
        loop = asyncio.get_running_loop()
        pool = self._executor()
        try:
            return await loop.run_in_executor(pool, _prepare_in_worker, body, url,
                                              content_type, feed_url, now, known, self.dialect)
        except BrokenProcessPool:
            log.error("feed %s: the parser process died; the pool is restarted", url)
            if self._pool is pool:  # not a newer pool another document already started
                self.close()
            return Prepared(error="the parser process died while reading this document")

    def close(self) -> None:
        if self._pool is not None:
            # Jobs still queued finish (or fail with the broken pool) rather than being
            # cancelled: a cancelled future would end the caller's poll, not one feed.
            self._pool.shutdown(wait=True)
            self._pool = None
            self._warm = []
