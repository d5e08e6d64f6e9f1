"""Developments: the in-memory clustering index of one worker, and placing stored entries
in developments, opening and announcing new ones.

The index (cluster_index.ClusterIndex) is a cache of the recent entries in the database: it
catches up by entry id under the clustering lock before anything is placed, and is started
afresh after a rollback. New on-topic entries are stored as pending and placed together at
the end of the poll (`settle`), oldest first, so what is alerted does not depend on the
order in which feeds answered. Each decision is decide.place / decide.may_announce.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from monitor import metrics, store
from monitor.alerts import TopicRef
from monitor.cluster import (
    Assignment,
    ClusterParams,
    Features,
    JoinModel,
    Member,
    features,
    features_from_json,
    keys_from_json,
)
from monitor.cluster_index import ClusterIndex
from monitor.decide import may_announce, place
from monitor.feedback import Links
from monitor.models import PENDING, Development, Entry
from monitor.stats import PollStats

if TYPE_CHECKING:
    from monitor.match import Matcher, MatchResult
    from monitor.outbox import Outbox
    from monitor.profile import Profile

log = logging.getLogger("monitor.developments")


def stored_match(row: Entry, threshold: float) -> MatchResult:
    """An entry's stored topic scores as the match result alert decisions read."""
    from monitor.match import MatchResult, TopicScore

    scores = {m.topic: TopicScore(m.topic, m.score, list(m.evidence)) for m in row.matches}
    return MatchResult(scores, frozenset(), frozenset(), frozenset(), threshold)


class Developments:
    """Places entries in developments; `matcher` is called only when an old entry stored
    without features must be matched again, `profile` for an alert's topic titles."""

    def __init__(
        self,
        params: ClusterParams,
        matcher: Callable[[], Matcher],
        profile: Callable[[], Profile],
        outbox: Outbox,
        backfill: timedelta,
        model: JoinModel | None = None,
    ) -> None:
        self.index = ClusterIndex(params, model)
        self.matcher = matcher
        self.profile = profile
        self.outbox = outbox
        self.backfill = backfill
        # Readers' merges and splits (feedback.Links), read at the start of each poll.
        self.links = Links()

    # ------------------------------------------------------------ the index --

    def forget(self) -> None:
        """After a rollback the index may hold entries that were never stored (and whose
        ids will be given to others), after readers' merges and splits entries that moved:
        start it afresh from what is committed."""
        self.index = ClusterIndex(self.index.params, self.index.model)

    def begin(self, s: Session, now: datetime) -> None:
        """Take the clustering lock before this transaction inserts any entry, so entry ids
        grow in commit order and the index can catch up on other workers' entries by id;
        catch up now. Once per transaction: from then on it holds the lock (and on SQLite
        the write lock), so no one else inserts."""
        if s.info.get("clustering"):
            return
        store.lock_clustering(s)
        self.catch_up(s, now)
        s.info["clustering"] = True

    def catch_up(self, s: Session, now: datetime) -> None:
        """Bring in what other transactions (or earlier runs) stored since last time. Safe
        without the clustering lock too (a poll catches up ahead, Poller.poll): it reads
        only entries up to the highest id committed when it starts."""
        index = self.index
        since = now - 2 * index.params.window
        index.prune(since)
        upto = store.last_entry_id(s)
        if upto <= index.max_entry_id:
            return
        after = index.max_entry_id
        index.max_entry_id = upto  # (those older than `since` are never read)
        for e in store.recent_entries(s, since, after, upto, index.params.background):
            if e.development_id is None and e.cluster_features:
                index.observe_keys(e.id, e.published_at, keys_from_json(e.cluster_features))
                continue
            if e.cluster_features:
                f = features_from_json(e.cluster_features)
            else:  # stored before features were kept
                old = s.get(Entry, e.id)
                assert old is not None
                f = features(self.matcher().match(old.title, old.text), e.language, old.title)
            if e.development_id is None:
                index.observe(e.id, e.published_at, f)
            else:
                index.add(
                    Member(
                        e.id, e.development_id, e.canonical_url, e.content_hash, e.published_at, f
                    )
                )

    def observe_quiet(
        self, ids: Sequence[int], published: Sequence[datetime], keys: Sequence[str]
    ) -> None:
        """Off-topic entries, stored in bulk: only the background of the word weights
        (`keys`: each one's, packed)."""
        for entry_id, at, k in zip(ids, published, keys, strict=True):
            self.index.observe_keys(entry_id, at, k)

    # -------------------------------------------------------------- placing --

    def stored(
        self,
        s: Session,
        planned: Sequence[tuple[Entry, bool, MatchResult, Features]],
        now: datetime,
        stats: PollStats,
    ) -> None:
        """Entries just stored and flushed (`is_new`, or revisions of stored ones): a
        revision stays in its development (which it may now announce), a new on-topic entry
        waits for `settle`, the rest count as background."""
        # The word weights count every document of this batch before any is placed, as
        # they count every earlier one.
        for row, is_new, _, f in planned:
            if is_new:
                self.index.observe(row.id, row.published_at, f)
        cutoff = now - self.backfill
        for row, is_new, result, f in planned:
            if row.development_id is not None and not is_new:
                row.join_reason = "update"
                dev = s.get(Development, row.development_id)
                if dev is not None:
                    self._joined(s, dev, row, result, now, cutoff, stats)
            elif result.scores:
                row.join_reason = PENDING
            else:  # no topic rule holds anywhere in it: stored and matched, not clustered
                row.join_reason = "off-topic"
            self._track(row, f)

    def settle(self, s: Session, now: datetime, threshold: Callable[[], float]) -> PollStats:
        """Place every pending entry (on topic, stored, not yet in a development); oldest
        first, ties broken by URL. Pending entries left by a crashed or concurrent poll are
        placed by the next one that gets here (under the clustering lock). `threshold`
        (the matcher's) is asked only when there is something to place: a poll without
        news never loads the matcher."""
        stats = PollStats()
        if not store.has_pending(s):  # the usual warm poll: nothing new on topic
            return stats
        store.lock_clustering(s)
        pending = store.pending_entries(s)  # read under the lock: no one else places them
        self.catch_up(s, now)
        cutoff = now - self.backfill
        bar = threshold()
        for row in pending:
            result = stored_match(row, bar)
            f = features_from_json(row.cluster_features or {})
            self._place(s, row, result, f, now, cutoff, stats)
            self._track(row, f)
        return stats

    def _track(self, row: Entry, f: Features) -> None:
        if row.development_id is not None:
            self.index.add(
                Member(
                    row.id,
                    row.development_id,
                    row.canonical_url,
                    row.content_hash,
                    row.published_at,
                    f,
                )
            )
        else:
            self.index.observe(row.id, row.published_at, f)

    def _place(
        self,
        s: Session,
        row: Entry,
        result: MatchResult,
        f: Features,
        now: datetime,
        cutoff: datetime,
        stats: PollStats,
    ) -> None:
        links = self.links
        a = self.index.assign(
            row.canonical_url,
            row.content_hash,
            row.published_at,
            f,
            (lambda x, y: links.shift(x.words, y.words)) if links.links else None,
        )
        if a.development_id is None:  # the same article, older than the index holds?
            same = store.same_article(s, row)
            if same is not None:
                reason = "same-url" if same.content_hash != row.content_hash else "same-content"
                a = Assignment(same.development_id, reason, 1.0, same.id)
        dev = s.get(Development, a.development_id) if a.development_id is not None else None
        intent = place(
            dev.id if dev else None,
            dev.state if dev else None,
            f"{a.reason}:{a.similarity}" + (f" fb#{a.feedback_id}" if a.feedback_id else ""),
            result.relevant,
            f.commentary,
            row.published_at,
            cutoff,
        )
        if dev is not None:
            row.development_id = dev.id
            row.join_reason = intent.reason
            self._joined(s, dev, row, result, now, cutoff, stats)
            return
        dev = Development(
            title=row.title or row.text[:200],
            topics=result.topics,
            languages=[row.language] if row.language else [],
            score=result.best,
            first_seen_at=now,
            last_seen_at=now,
            event_at=row.published_at,
            state=intent.state,
        )
        s.add(dev)
        s.flush()
        dev.primary_entry_id = row.id
        row.development_id = dev.id
        row.join_reason = intent.reason
        stats.developments += 1
        metrics.DEVELOPMENTS.inc()
        if intent.announce:
            self._announce(s, dev, row, result, now, stats)

    def _joined(
        self,
        s: Session,
        dev: Development,
        row: Entry,
        result: MatchResult,
        now: datetime,
        cutoff: datetime,
        stats: PollStats,
    ) -> None:
        dev.last_seen_at = now
        if row.language and row.language not in (dev.languages or []):
            dev.languages = sorted({*(dev.languages or []), row.language})
        if result.relevant:
            dev.topics = sorted(set(dev.topics) | set(result.topics))
            dev.score = max(dev.score, result.best)
        if may_announce(dev.state, result.relevant, row.published_at, cutoff):
            self._announce(s, dev, row, result, now, stats)

    def _topics(self, result: MatchResult) -> list[TopicRef]:
        """The topics an alert names: those over the bar, best first, with their titles."""
        titles = {t.id: t.title for t in self.profile().topics}
        return [
            TopicRef(ts.topic, titles.get(ts.topic, ts.topic), ts.score, list(ts.evidence))
            for ts in sorted(result.scores.values(), key=lambda ts: -ts.score)
            if ts.score >= result.threshold
        ]

    def _announce(
        self,
        s: Session,
        dev: Development,
        row: Entry,
        result: MatchResult,
        now: datetime,
        stats: PollStats,
    ) -> None:
        dev.state = "alerted"
        dev.primary_entry_id = row.id
        dev.title = row.title or dev.title
        dev.topics = result.topics
        dev.score = result.best
        self.outbox.announce(s, dev, now, self._topics(result))
        stats.alerts += 1
        log.info("alert: %s [%s] %.2f", dev.title, ", ".join(dev.topics), dev.score)
