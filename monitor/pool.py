"""The parser pool: worker processes that read and match fetched documents, started once
and kept for as long as the pipeline lives (a whole `monitor run`), so a tick pays no
start-up and each worker builds its matcher once.

Why processes: parsing and matching a changed document costs several times its fetch;
in one process a large poll would spend it all on one core. The main process fetches
every feed (one event loop, the cheapest place for it) and stores; the pool prepares.

Why pebble: its pool gives each task a time limit (a hostile document costs one worker,
replaced, not the poll) and charges a worker's death to the task it was running, which
`concurrent.futures` cannot (there one death breaks the whole executor, and a task has no
time limit).

How workers start: for `monitor run`, from a forkserver, a server process that imported
the parsers, the matcher and the database layer once, so the workers' pages are shared
and a replacement starts in milliseconds without copying a process that has threads;
`spawn` would import a fresh interpreter per worker. A one-shot poll cannot afford the
forkserver's imports (a second or more on a slow core, longer than the rest of a poll
in which little changed): its workers are forked from the main process itself, at the
start of the poll, before it has any thread (`fork`), and build their matcher at their
first document. A worker pebble replaces later (one that died or ran out of time) is
forked beside threads: if it hangs on a lock one of them held, the time limit ends it.

A worker reads from the database which of a document's entries are stored already
(guid → content hash), so that only new and revised entries are matched; the storing
transaction checks that assumption (refresh.py), as another process may have stored
some meanwhile. Workers ignore SIGINT and SIGTERM (Ctrl-C and systemd signal the whole
process group): the main process finishes the poll in flight, then closes the pool.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from monitor import memory
from monitor.fetch import FetchResult

if TYPE_CHECKING:
    from pebble import ProcessPool
    from sqlalchemy import Engine

    from monitor.match import Matcher
    from monitor.prepare import Memo, Prepared

log = logging.getLogger("monitor.pool")

# Below this many feeds, a one-shot poll prepares its documents in the storing thread:
# starting the pool costs a few tenths of a second. Once started, the pool does it all.
POOL_MIN_FEEDS = 16
# An on-demand pool (the service's default, `ParserPool.on_demand`) reads documents larger
# than this, so that no single document can hold the storing thread for long; smaller
# ones, the few that change in a tick of a warm service, are read in the storing thread.
INLINE_MAX = 1 * 2**20
# A pool that breaks (every worker gone at once) is replaced this many times in a row
# before the documents it was given fail.
MAX_RESTARTS = 3
DIED = "the parser process died while reading this document"
# A worker gives its freed memory back (memory.py) before a document, if it has not for
# this many seconds: parsing a thousand documents leaves tens of MB in the allocator.
TRIM_EVERY = 10.0
# How often pebble's manager threads look at the pool (its default is 0.1 s). Ending a
# pool waits for their next look: a one-shot poll that had every feed answer 304 spent a
# tenth of its time there. Five looks a tenth of a second cost nothing measurable.
MANAGER_TICK = 0.02
# What the forkserver imports before forking workers: everything a job touches, and the
# command-line package: each worker re-runs the main script (the `monitor` command, which
# only imports it) before its first task, as multiprocessing does.
PRELOAD = [
    "monitor.cli",
    "monitor.prepare",
    "monitor.parse.fast",
    "monitor.parse.generic",
    "monitor.store",
    "monitor.forkserver_preload",
]

Answer: TypeAlias = "tuple[FetchResult, Prepared | None]"


@dataclass(frozen=True, slots=True)
class FeedState:
    """What preparing a feed's document needs to know of the feed besides the answer."""

    url: str  # as configured (relative links in the document resolve against it)
    body_hash: str | None  # of the last body stored: the same body needs no parsing
    first_sight: bool  # never polled: nothing of it is stored yet


def changed(result: FetchResult, feed: FeedState) -> bool:
    """A body that differs from the one stored: it must be parsed (the rest is a few
    column updates)."""
    return result.ok and result.body is not None and result.body_hash != feed.body_hash


@dataclass(frozen=True, slots=True)
class Job:
    """One document for a worker to prepare."""

    feed_id: int
    body: bytes
    url: str  # where it was fetched from
    content_type: str | None
    feed_url: str
    now: datetime
    first_sight: bool


# ------------------------------------------------------------------ in a worker --


@dataclass
class _Worker:
    topics: Path | None
    threshold: float | None
    database_url: str
    _matcher: Matcher | None = None
    _engine: Engine | None = None
    trimmed: float = 0.0  # when freed memory was last given back (time.monotonic)
    memo: Memo | None = None  # entries of the documents this worker read last

    def matcher(self) -> Matcher:
        if self._matcher is None:
            from monitor.match import Matcher, load_profile

            self._matcher = Matcher(load_profile(self.topics), self.threshold)
        return self._matcher

    def known(self, feed_id: int, guids: list[str]) -> dict[str, str]:
        from sqlalchemy.orm import Session

        from monitor import store
        from monitor.db import make_engine

        if self._engine is None:
            self._engine = make_engine(self.database_url)
        with Session(self._engine) as s:
            return store.known_hashes(s, feed_id, guids)


_worker: _Worker | None = None


def start_worker(
    topics: Path | None, threshold: float | None, database_url: str, eager: bool = True
) -> None:
    """A worker's start: signals are the main process's business (it decides when the
    pool ends); `eager`, the matcher is built before the first document arrives (a
    one-shot poll's forked workers build it at their first: a poll where nothing
    changed then costs them nothing)."""
    global _worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.set_wakeup_fd(-1)  # a forked worker's is its parent's event loop's
    _worker = _Worker(topics, threshold, database_url)
    if eager:
        try:
            _worker.matcher()
        except Exception:  # reported by the first job, against its feed
            log.exception("building the matcher failed")
    gc.freeze()  # what is loaded now lives as long as the worker


def prepare_job(job: Job) -> Prepared:
    """Parse, normalize and match one document (prepare.py), in a worker."""
    from monitor.parse import ParseError
    from monitor.prepare import Memo, Prepared, prepare_document, read_document

    assert _worker is not None, "start_worker runs first"
    if _worker.memo is None:
        _worker.memo = Memo()
    now = time.monotonic()
    if now - _worker.trimmed > TRIM_EVERY:  # between documents, at most so often
        memory.give_back()
        _worker.trimmed = now
    try:
        doc = read_document(
            job.body,
            job.url,
            job.content_type,
            job.feed_url,
            job.now,
            _worker.memo,
            lazy=not job.first_sight,
        )
        known = {} if job.first_sight else _worker.known(job.feed_id, doc.guids)
        return prepare_document(doc, _worker.matcher(), known)
    except ParseError as exc:
        return Prepared(error=str(exc))
    except Exception as exc:  # a bug, or the database: this feed only
        log.exception("feed %s: preparing failed", job.feed_url)
        return Prepared(error=f"processing failed: {exc}", error_kind="store")


# ------------------------------------------------------------ in the main process --


class ParserPool:
    """The pool as the poller sees it: `prepare` a changed document, `close` at the end.

    `processes` 0 means no pool: documents are prepared in the storing thread. `job` is
    what a worker runs on a document and `initializer` how it starts (tests give ones that
    misbehave)."""

    def __init__(
        self,
        processes: int,
        topics: Path | None,
        threshold: float | None,
        database_url: str,
        timeout: float,
        job: Callable[[Job], Prepared] = prepare_job,
        initializer: Callable[[Path | None, float | None, str, bool], None] = start_worker,
        forks: bool = False,
        on_demand: bool = False,
    ) -> None:
        """`forks`: workers are forked from this process (one-shot polls), not from a
        forkserver; the caller starts them (`start`) while it has no thread.

        `on_demand` (the service's default): the workers, their forkserver and the
        resource tracker run only for a poll that needs them, one with many feeds never
        polled (a start from scratch, an import) or a document over INLINE_MAX, and end
        with it (`end`). Kept running, they cost ~90 MiB (PSS) and their idle polling
        threads CPU, to read the few documents that change in a warm tick, which the
        storing thread reads for less."""
        self.processes = processes
        self.forks = forks
        self.on_demand = on_demand
        self.timeout = timeout
        self.job = job
        self.initializer = initializer
        self._initargs = (topics, threshold, database_url)
        self._pool: ProcessPool | None = None
        self._starting = threading.Lock()
        self._breaks = 0  # restarts in a row, without a document prepared between them
        self.started = 0  # pools started in this one's life (tests and the soak read it)

    @property
    def running(self) -> bool:
        return self._pool is not None

    def use(self, feeds: int, new: int = 0) -> bool:
        """Whether a poll of `feeds` feeds, `new` of them never polled, prepares all its
        documents here (an on-demand pool may still take the large ones: `takes`)."""
        if self.processes == 0:
            return False
        if self.on_demand:
            return new >= POOL_MIN_FEEDS
        return self.running or feeds >= POOL_MIN_FEEDS

    def takes(self, size: int) -> bool:
        """Whether a document of `size` bytes goes to an on-demand pool in a poll that
        otherwise reads its documents in the storing thread."""
        return self.on_demand and self.processes > 0 and size > INLINE_MAX

    def start(self) -> None:
        """Start the workers (a no-op while they run). The first start launches the
        forkserver and waits for its imports, a few tenths of a second: `start_soon`
        does that beside the main process's own work."""
        with self._starting:
            if self._pool is not None or self.processes == 0:
                return
            from pebble import ProcessPool

            _tick_pebble()
            context: BaseContext
            if self.forks:
                context = multiprocessing.get_context("fork")
            else:
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload(PRELOAD)
            pool = ProcessPool(
                self.processes,
                initializer=self.initializer,
                initargs=(*self._initargs, not self.forks),  # forked workers: lazy matcher
                context=context,
            )
            pool.active  # noqa: B018  (reading it starts the workers)
            self._pool = pool
            self.started += 1

    def start_soon(self) -> None:
        """Start the workers in a thread, while the caller goes on (fetching, say)."""
        if self._pool is None and self.processes > 0:
            threading.Thread(target=self.start, name="pool-start", daemon=True).start()

    async def prepare(self, result: FetchResult, feed: FeedState, now: datetime) -> Answer:
        """The document of `result` prepared by a worker: `(result, Prepared)` (its error
        set when it could not be read, or not in time), or, if the worker died reading
        it, a failed fetch result (the feed is polled again). Never raises for one
        document."""
        from pebble import ProcessExpired

        from monitor.prepare import Prepared

        job = Job(
            result.feed_id,
            result.body or b"",
            result.permanent_url or feed.url,
            result.content_type,
            feed.url,
            now,
            feed.first_sight,
        )
        while True:
            if self._pool is None:
                await asyncio.to_thread(self.start)
            pool = self._pool
            assert pool is not None
            try:
                prepared = await asyncio.wrap_future(
                    pool.schedule(self.job, (job,), timeout=self.timeout)
                )
            except TimeoutError:
                log.error("feed %s: reading its document took over %ss", feed.url, self.timeout)
                # The document's fault: kept as a parse failure, it is not read again
                # while the server sends the same one.
                error = f"reading the document took over {self.timeout:g} s; it was abandoned"
                return result, Prepared(error=error, error_kind="parse")
            except ProcessExpired as exc:
                log.error("feed %s: the parser process died reading it (%s)", feed.url, exc)
                return died(result), None
            except (BrokenProcessPool, RuntimeError) as exc:  # every worker gone at once
                if self._breaks >= MAX_RESTARTS:
                    log.error("feed %s: the parser pool keeps failing (%s)", feed.url, exc)
                    return died(result), None
                await asyncio.to_thread(self._replace, pool, exc)
                continue
            except Exception as exc:  # the answer could not come back (pickling, say)
                log.exception("feed %s: preparing failed", feed.url)
                return result, Prepared(error=f"processing failed: {exc}", error_kind="store")
            self._breaks = 0
            return result, prepared

    def _replace(self, broken: ProcessPool, exc: BaseException) -> None:
        """Drop a broken pool (once, however many documents found it broken)."""
        with self._starting:
            if self._pool is not broken:
                return
            self._pool = None
            self._breaks += 1
            # A replacement starts beside this process's threads: from a forkserver.
            self.forks = False
        log.warning("the parser pool broke (%s); starting a new one", exc)
        broken.stop()  # type: ignore[no-untyped-call]
        try:
            broken.join()
        except (OSError, AttributeError):  # pebble closing what already failed
            log.debug("ending the broken pool", exc_info=True)

    def close(self) -> None:
        """Let the workers finish and end (each exits once its input closes)."""
        with self._starting:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()  # type: ignore[no-untyped-call]
            pool.join()

    def end(self) -> None:
        """After a poll: an on-demand pool ends, with the forkserver and resource tracker
        multiprocessing started for it (each a Python process of its own), so a warm
        service is one process. A later poll that needs them starts them again."""
        if not self.on_demand or self._pool is None:
            return
        self.close()
        end_helpers()


def _tick_pebble() -> None:
    """pebble's manager threads look every MANAGER_TICK. Its constant is not public API
    (pebble.common.types); a pebble without it keeps its own tick."""
    try:
        from pebble.common.types import CONSTS
    except ImportError:
        return
    CONSTS.sleep_unit = min(CONSTS.sleep_unit, MANAGER_TICK)


def end_helpers() -> None:
    """Stop multiprocessing's forkserver and resource tracker, if running. Their `_stop`
    is private (CPython's own tests use it); where it is missing they are left running."""
    from multiprocessing import forkserver, resource_tracker

    gc.collect()  # the ended pool's semaphores unregister themselves first
    for helper in (forkserver._forkserver, resource_tracker._resource_tracker):
        stop = getattr(helper, "_stop", None)
        if stop is not None:
            try:
                stop()
            except (OSError, ChildProcessError):
                log.debug("stopping a multiprocessing helper", exc_info=True)


def died(result: FetchResult) -> FetchResult:
    return FetchResult(result.feed_id, result.url, error=DIED, error_kind="worker")
