"""The poller: claim due feeds, fetch them concurrently, and store each answer in a
transaction (refresh.refresh_feed); at the end of the poll, place the new on-topic entries
(developments.Developments.settle). Claiming, concurrency and transactions live here; what
an answer means lives in refresh.py.

Each feed's answer commits with its entries, their matches, their developments and any
alert's outbox rows, or not at all: a crash never leaves an alert without its development.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import deque
from collections.abc import AsyncGenerator, Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from monitor import memory, metrics, store
from monitor.db import database_down, is_sqlite
from monitor.decide import FeedView, feed_succeeded
from monitor.fanout import Fanout, helpers_for
from monitor.fetch import FetchOptions, FetchRequest, FetchResult, fetch_stream, preload
from monitor.leases import stale_owners
from monitor.models import Feed
from monitor.pool import Answer, FeedState, ParserPool, changed
from monitor.refresh import Context, fail, refresh_feed
from monitor.stats import PollStats

if TYPE_CHECKING:
    from monitor.db import Database
    from monitor.prepare import Prepared

log = logging.getLogger("monitor.poller")

FEED_LEASE = timedelta(minutes=5)
NOT_MODIFIED_BATCH = 200
# Changed feeds stored per transaction: one commit and one flush of feed rows for many,
# gathered for at most BATCH_WAIT seconds.
STORE_BATCH = 16
BATCH_WAIT = 0.2

# Answers waiting for the storing side, and bytes of documents given to the pool and not
# yet answered: past these, fetching waits, so memory stays flat however far storing or
# parsing falls behind (while the pool starts, say).
INBOX = 16
PREPARING_BYTES = 32 * 2**20


def log_failure(what: str) -> None:
    """Log the exception being handled: one line when the database is down (the same on
    every feed), else with its traceback (a bug)."""
    exc = sys.exc_info()[1]
    down = database_down(exc) if exc is not None else None
    if down:
        log.error("%s: %s", what, down)
    else:
        log.exception(what)


class Poller:
    """One worker's polls; `threshold` is the matcher's, for the entries `settle` places."""

    def __init__(
        self,
        db: Database,
        ctx: Context,
        pool: ParserPool,
        options: FetchOptions,
        clock: Callable[[], datetime],
        owner: str,
        threshold: Callable[[], float],
        fetchers: int = 1,
    ) -> None:
        """`fetchers`: how many processes a large poll may fetch in (fanout.py)."""
        self.db = db
        self.ctx = ctx
        self.pool = pool
        self.fetch_options = options
        self.clock = clock
        self.owner = owner
        self.threshold = threshold
        self.fetchers = fetchers
        self.pooled: bool | None = None  # whether the last poll's documents went to the pool
        self._catching_up: asyncio.Task[None] | None = None  # see _noting_news

    async def poll(self, only_due: bool = False) -> PollStats:
        """Fetch every claimed feed and store each answer as it arrives.

        Fetching runs in one task, storing in another: the storing thread writes what
        arrives, up to STORE_BATCH changed feeds per transaction, while the fetches go on
        and the parser pool (pool.py) prepares the documents that changed; a small poll
        with no pool running prepares them in the storing thread."""
        now = self.clock()
        with self.db.session() as s:
            feeds = store.claim_feeds(
                s, now, self.owner, FEED_LEASE, only_due, stale_owners(is_sqlite(self.db.engine))
            )
            requests = [
                FetchRequest(f.id, f.permanent_url or f.url, f.etag, f.last_modified) for f in feeds
            ]
            state = {f.id: FeedState(f.url, f.body_hash, f.first_polled_at is None) for f in feeds}
        stats = PollStats(feeds=len(requests))
        if not requests:
            return stats
        # Helpers are forked first, before the pool's threads exist.
        helpers = helpers_for(len(requests), self.fetchers)
        if helpers:
            await preload()  # once here, not again in every helper
        fetched = (
            Fanout(requests, self.fetch_options, helpers).results()
            if helpers
            else fetch_stream(requests, self.fetch_options)
        )
        new = sum(f.first_sight for f in state.values())
        self.pooled = self.pool.use(len(requests), new)
        if self.pooled and self.pool.forks:
            self.pool.start()  # forked now, while this process has no thread (pool.py)
        elif self.pooled and any(f.first_sight for f in state.values()):
            self.pool.start_soon()  # every document is new: start while fetching
        noted = self._noting_news(fetched, state, now)
        source = self._answers(noted, state, now)
        try:
            await self._store_as_they_come(source, state, stats)
        finally:
            await source.aclose()
            await noted.aclose()
            await fetched.aclose()  # ends the helpers, should storing have failed
            await self._caught_up()
            await asyncio.to_thread(self.pool.end)  # an on-demand pool's work is done
        stats.add(await asyncio.to_thread(self.settle))
        memory.give_back()  # a long-running process stays the size of its polls, not its largest
        return stats

    async def _store_as_they_come(
        self, source: AsyncGenerator[Answer, None], state: dict[int, FeedState], stats: PollStats
    ) -> None:
        # Changed bodies held at once (arrived, waiting to be stored): enough for a batch
        # and what the pool prepares meanwhile; past it they wait, so memory stays flat.
        ahead = 2 * STORE_BATCH
        pending: deque[Answer] = deque()
        bodies = 0  # entries of `pending` with a changed body
        arrived = asyncio.Condition()
        fetched_all = False

        def room() -> bool:
            return bodies < ahead

        async def produce() -> None:
            nonlocal bodies, fetched_all
            async for result, prepared in source:
                async with arrived:
                    await arrived.wait_for(room)
                    bodies += changed(result, state[result.feed_id])
                    pending.append((result, prepared))
                    arrived.notify_all()
            async with arrived:
                fetched_all = True
                arrived.notify_all()

        async def consume() -> None:
            nonlocal bodies
            loop = asyncio.get_running_loop()
            batch: list[Answer] = []
            changed_feeds = 0  # entries of `batch` with a changed body
            due = 0.0  # when a batch holding changed feeds is stored, full or not
            while True:
                async with arrived:
                    try:
                        async with asyncio.timeout_at(due if changed_feeds else None):
                            await arrived.wait_for(lambda: bool(pending) or fetched_all)
                    except TimeoutError:
                        pass
                    while pending and changed_feeds < STORE_BATCH:
                        batch.append(pending.popleft())
                        if changed(batch[-1][0], state[batch[-1][0].feed_id]):
                            bodies -= 1
                            changed_feeds += 1
                            if changed_feeds == 1:
                                due = loop.time() + BATCH_WAIT
                    arrived.notify_all()
                    end = fetched_all and not pending
                # A batch of changed feeds fills for up to BATCH_WAIT (one commit for
                # many); unchanged feeds alone wait for a larger batch, being only a few
                # column updates each.
                if batch and (
                    end
                    or changed_feeds >= STORE_BATCH
                    or (changed_feeds and loop.time() >= due)
                    or len(batch) >= NOT_MODIFIED_BATCH
                ):
                    await self._caught_up()
                    stats.add(await asyncio.to_thread(self.process_batch, batch))
                    batch, changed_feeds = [], 0
                if end:
                    return

        async with asyncio.TaskGroup() as group:
            group.create_task(produce())
            group.create_task(consume())

    async def _noting_news(
        self, fetched: AsyncGenerator[FetchResult, None], state: dict[int, FeedState], now: datetime
    ) -> AsyncGenerator[FetchResult, None]:
        """`fetched`, passed on. At the first changed document, the clustering index starts
        catching up on what is stored (Developments.catch_up), while the storing thread
        has nothing else to do: the first poll of a new process reads back the 5,000
        latest off-topic entries (the background of the word weights), and before this
        its first transaction did so while every later answer waited behind it."""
        ahead = False
        async for result in fetched:
            if not ahead and changed(result, state[result.feed_id]):
                ahead = True
                self._catching_up = asyncio.create_task(asyncio.to_thread(self._catch_up, now))
            yield result

    def _catch_up(self, now: datetime) -> None:
        try:
            with self.db.session() as s:
                self.ctx.developments.catch_up(s, now)
        except Exception:  # the first transaction that stores an entry catches up instead
            log_failure("reading the clustering index ahead of storing failed")
            self.ctx.developments.forget()

    async def _caught_up(self) -> None:
        """Wait for a catch-up ahead: the index is not to be read or changed meanwhile."""
        if self._catching_up is not None:
            await self._catching_up
            self._catching_up = None

    async def _answers(
        self, fetched: AsyncGenerator[FetchResult, None], state: dict[int, FeedState], now: datetime
    ) -> AsyncGenerator[Answer, None]:
        """Every request's answer, in the order they complete: the fetch result and, for
        a changed document the pool prepared, what it made of it (None: the storing
        thread prepares it)."""
        if not self.pooled and not self.pool.on_demand:
            async for result in fetched:
                yield result, None
            return
        out: asyncio.Queue[Answer | None] = asyncio.Queue(INBOX)
        budget = Budget(PREPARING_BYTES)

        async def prepare(result: FetchResult, size: int) -> None:
            try:
                answer = await self.pool.prepare(result, state[result.feed_id], now)
                await out.put(answer)
            finally:
                await budget.give_back(size)

        async def fetch() -> None:
            try:
                async with asyncio.TaskGroup() as group:
                    async for result in fetched:
                        size = len(result.body or b"")
                        if changed(result, state[result.feed_id]) and (
                            self.pooled or self.pool.takes(size)
                        ):
                            await budget.take(size)
                            group.create_task(prepare(result, size))
                        else:
                            await out.put((result, None))
            finally:
                await out.put(None)

        fetching = asyncio.create_task(fetch())
        try:
            while (answer := await out.get()) is not None:
                yield answer
            await fetching  # raises what failed it
        finally:
            fetching.cancel()

    def process_batch(self, batch: Sequence[Answer]) -> PollStats:
        """Store several fetched feeds in one transaction (one commit, one flush of the feed
        rows); should that fail, each is stored on its own, so a failure stays one feed's."""
        if len(batch) == 1:
            return self.process_result(*batch[0])
        now = self.clock()
        stats = PollStats()
        try:
            with self.db.session() as s:
                rest = self._not_modified(s, [r for r, _ in batch if r.not_modified], now, stats)
                rest.update(r.feed_id for r, _ in batch if not r.not_modified)
                feeds = store.feeds_by_id(s, sorted(rest))
                for result, prepared in batch:
                    if (feed := feeds.get(result.feed_id)) is not None:
                        stats.add(refresh_feed(self.ctx, s, feed, result, prepared, now))
            return stats
        except Exception:
            log_failure(f"storing {len(batch)} feeds at once failed; one by one")
            self.ctx.developments.forget()
        stats = PollStats()
        for result, prepared in batch:
            stats.add(self.process_result(result, prepared))
        return stats

    def process_result(self, result: FetchResult, prepared: Prepared | None = None) -> PollStats:
        """Everything that follows one fetch, in one transaction."""
        now = self.clock()
        try:
            with self.db.session() as s:
                feed = s.get(Feed, result.feed_id)
                if feed is None:
                    return PollStats()
                return refresh_feed(self.ctx, s, feed, result, prepared, now)
        except Exception as exc:  # one feed's failure must not end the poll
            log_failure(f"feed {result.url}: processing failed")
            self.ctx.developments.forget()
            # What was counted was rolled back: only the failure counts.
            stats = PollStats()
            with self.db.session() as s:
                feed = s.get(Feed, result.feed_id)
                if feed is not None:
                    fail(self.ctx, s, feed, f"processing failed: {exc}", "store", now, stats)
                else:
                    stats.failed(result.url)
            return stats

    def _not_modified(
        self, s: Session, results: Sequence[FetchResult], now: datetime, stats: PollStats
    ) -> set[int]:
        """Record plain "not modified" answers, the bulk of most polls, in one UPDATE (what
        refresh_feed does for them, on plain rows: a thousand ORM objects cost more than the
        rest of a warm poll's storing). Returns the feeds that need refresh_feed."""
        if not results:
            return set()
        rows = store.schedules(s, [r.feed_id for r in results])
        values = []
        for r in results:
            row = rows.get(r.feed_id)
            if row is None:
                continue
            if (
                r.error is not None
                or row.error_kind == "parse"
                or (r.permanent_url and r.permanent_url != (row.permanent_url or row.url))
            ):
                rows.pop(r.feed_id)
                continue
            hint = timedelta(seconds=r.max_age) if r.max_age is not None else None
            feed = FeedView(
                row.url, timedelta(seconds=row.interval_seconds), row.error_count, row.next_poll_at
            )
            update = feed_succeeded(feed, now, hint)
            if update.recovered:
                log.info("feed %s recovered after %d errors", row.url, row.error_count)
            values.append(
                {
                    "feed_id": r.feed_id,
                    "last_polled_at": now,
                    "last_status": r.status,
                    "lease_owner": None,
                    "lease_until": None,
                    "etag": r.etag,
                    "last_modified": r.last_modified,
                    **update.columns,
                }
            )
        store.update_feeds(s, values)
        metrics.POLLS.labels("not_modified").inc(len(values))
        stats.not_modified += len(values)
        return {r.feed_id for r in results} - rows.keys()

    def settle(self) -> PollStats:
        """Place this poll's pending entries (Developments.settle) in one transaction.
        Deciding at the end of the poll, rather than as each feed's answer arrives, makes
        the developments and alerts a function of what was fetched, not of the order in
        which the fetches completed."""
        try:
            with self.db.session() as s:
                return self.ctx.developments.settle(s, self.clock(), self.threshold)
        except Exception:  # the entries stay pending: the next poll places them
            log_failure("placing this poll's entries in developments failed")
            self.ctx.developments.forget()
            return PollStats()


class Budget:
    """Bytes that may be in flight at once; one item larger than the whole budget still
    goes, alone."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.changed = asyncio.Condition()

    async def take(self, size: int) -> None:
        async with self.changed:
            await self.changed.wait_for(lambda: self.used == 0 or self.used + size <= self.limit)
            self.used += size

    async def give_back(self, size: int) -> None:
        async with self.changed:
            self.used -= size
            self.changed.notify_all()
