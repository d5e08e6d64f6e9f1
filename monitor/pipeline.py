"""The pipeline of one worker, assembled: poll → fetch → parse → normalize/dedupe → store →
match → cluster → outbox → deliver. This module only wires the parts together; read them
in this order (docs/design.md draws the flow):

- poller.py: claim due feeds, fetch concurrently, one transaction per answer or batch;
- refresh.py: one feed's answer top to bottom (refresh_feed);
- decide.py: the pure deciders (next poll, development join/open/announce);
- developments.py: the clustering index and placing entries in developments;
- outbox.py: what happens to an alert once written.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING

from monitor import store
from monitor.cluster import ClusterParams, load_join_model
from monitor.cluster_index import ClusterIndex
from monitor.config import Settings
from monitor.db import Database, is_sqlite
from monitor.developments import Developments
from monitor.feedback import Lessons
from monitor.fetch import FetchOptions, FetchResult
from monitor.outbox import DeliveryStats, Outbox
from monitor.poller import FEED_LEASE, Poller
from monitor.pool import ParserPool
from monitor.refresh import Context
from monitor.stats import PollStats
from monitor.store.feedback import lessons as read_lessons
from monitor.store.feedback import links as read_links
from monitor.store.feedback import version as feedback_version

if TYPE_CHECKING:
    from monitor.match import Matcher
    from monitor.prepare import Memo, Prepared
    from monitor.profile import Profile

__all__ = ["FEED_LEASE", "Pipeline", "PollStats"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Pipeline:
    """One worker's view of the pipeline; `clock` is injectable for tests."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        clock: Callable[[], datetime] = utcnow,
        service: bool = False,
    ) -> None:
        """`service`: for `monitor run`. Unless `[service] processes` is set, its parser
        pool runs on demand (pool.py): a worker per core for a poll of many new feeds (a
        start from scratch), ended after it; the few documents that change in a warm
        tick are read in the storing thread, where they cost less CPU than the pool's
        messages and idle threads, and the ~90 MiB of its processes. A one-shot poll has
        a worker per core."""
        self.settings = settings
        self.db = db
        self.clock = clock
        self.owner = worker_id()
        if settings.matching.topics is not None:
            self.matcher  # noqa: B018  (a custom profile is checked at start, not mid-poll)
        processes = settings.service.processes
        url = db.engine.url.render_as_string(hide_password=False)
        on_demand = service and processes is None
        if processes is None:
            processes = os.cpu_count() or 1
        if is_sqlite(db.engine) and db.engine.url.database in (None, "", ":memory:"):
            processes = 0  # a database other processes cannot open
        self.pool = ParserPool(
            processes,
            settings.matching.topics,
            settings.matching.threshold,
            url,
            settings.service.document_timeout.total_seconds(),
            forks=not service,
            on_demand=on_demand,
        )
        self.fetch_options = FetchOptions.of(settings.http)
        self.outbox = Outbox(settings, db, clock, self.owner)
        self.developments = Developments(
            ClusterParams(
                window=settings.matching.cluster_window, join=settings.matching.join_probability
            ),
            lambda: self.matcher,
            lambda: self.profile,
            self.outbox,
            settings.alerts.backfill,
            load_join_model(settings.matching.join_model),
        )
        self.lessons = Lessons()
        self.feedback_seen = (0, 0)
        ctx = Context(
            lambda: self.matcher,
            self.developments,
            self.outbox,
            settings.alerts.feed_failure_alert,
            lambda: self.lessons,
            settings.websub.poll_interval if settings.websub.callback else None,
            lambda: self.memo,
        )
        self.poller = Poller(
            db,
            ctx,
            self.pool,
            self.fetch_options,
            clock,
            self.owner,
            self.threshold,
            fetchers=1 if service else os.cpu_count() or 1,
        )

    @cached_property
    def profile(self) -> Profile:
        """The topic profile, read on first use: what an alert says of its topics (their
        titles) and the bar entries are placed by need it, not the compiled matcher."""
        from monitor.profile import load_profile

        return load_profile(self.settings.matching.topics)

    @cached_property
    def matcher(self) -> Matcher:
        """The compiled topic profile, made on first use: a poll whose documents the
        pool prepares never compiles it (some 60 ms) nor loads the parsers."""
        from monitor.match import Matcher

        return Matcher(self.profile, self.settings.matching.threshold)

    def threshold(self) -> float:
        """The matcher's bar (Matcher.threshold), without compiling the matcher."""
        configured = self.settings.matching.threshold
        return self.profile.threshold if configured is None else configured

    @cached_property
    def memo(self) -> Memo:
        """Entries of recently read documents, for the documents this process reads."""
        from monitor.prepare import Memo

        return Memo()

    @property
    def cluster(self) -> ClusterIndex:
        return self.developments.index

    @property
    def pooled(self) -> bool | None:
        """Whether the last poll's documents were prepared by the parser pool."""
        return self.poller.pooled

    def close(self) -> None:
        """End the parser pool's workers (the database stays open: its owner closes it)."""
        self.pool.close()

    # ------------------------------------------------------------------ polling --

    def sync_feeds(self) -> None:
        with self.db.session() as s:
            store.sync_feeds(s, self.settings.feeds, self.clock())

    async def poll(self, only_due: bool = False) -> PollStats:
        """Poll the feeds (all, or the due ones)."""
        self.read_feedback()
        return await self.poller.poll(only_due)

    def read_feedback(self) -> None:
        """What readers taught since the last poll: the matcher's lessons, the clusterer's
        links, and, if feedback moved reports, a clustering index read afresh."""
        with self.db.session() as s:
            self.lessons = read_lessons(s)
            self.developments.links = read_links(s)
            version = feedback_version(s)
        if version != self.feedback_seen:  # merges and splits moved reports: re-read who
            self.developments.forget()  # is where before placing anything
            self.feedback_seen = version

    def process_batch(self, batch: list[tuple[FetchResult, Prepared | None]]) -> PollStats:
        return self.poller.process_batch(batch)

    def process_result(self, result: FetchResult, prepared: Prepared | None = None) -> PollStats:
        return self.poller.process_result(result, prepared)

    def settle(self) -> PollStats:
        return self.poller.settle()

    # --------------------------------------------------------------- delivery --

    async def deliver_due(self) -> DeliveryStats:
        return await self.outbox.deliver_due()

    def build_digests(self) -> int:
        return self.outbox.build_digests()
